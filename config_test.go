package sluice_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// countingStorage is a user's Storage: it counts the files created through
// it, to prove the job used it.
type countingStorage struct {
	store.Storage
	creates atomic.Int64
}

func (c *countingStorage) Create(ctx context.Context, name string) (store.Writer, error) {
	c.creates.Add(1)
	return c.Storage.Create(ctx, name)
}

func boundedJob(cfg sluice.Config) *sluice.Environment {
	env := sluice.New(cfg)
	src := sluice.FromSource(env, "src", datagen.New(datagen.Config{Splits: 2, RecordsPerSplit: 100}))
	sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record]())
	return env
}

// TestCheckpointStorageFromConfig: a Storage passed in the job config keeps
// the checkpoints, and a second run restores from it, saying at INFO which
// checkpoint it restored (id, location, age).
func TestCheckpointStorageFromConfig(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fs, err := store.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStorage{Storage: fs}
	_, statErr := os.Stat("data/checkpoints/job")
	defaultAbsent := errors.Is(statErr, os.ErrNotExist)
	res, err := boundedJob(sluice.Config{CheckpointStorage: st, Logger: quietLogger()}).Execute(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.creates.Load() == 0 || res.LastCheckpoint == nil {
		t.Fatalf("the job did not write its checkpoints through CheckpointStorage (%d files, last %v)", st.creates.Load(), res.LastCheckpoint)
	}
	id := res.LastCheckpoint.CheckpointID
	if _, err := os.Stat(filepath.Join(root, "chk-"+itoa(id), store.MetadataName)); err != nil {
		t.Fatalf("checkpoint %d is not in the storage: %v", id, err)
	}
	if _, err := os.Stat("data/checkpoints/job"); defaultAbsent && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the default checkpoint dir was created as well: %v", err)
	}

	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if _, err := boundedJob(sluice.Config{CheckpointStorage: st, Logger: logger}).Execute(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`level=INFO msg="restoring checkpoint" job=job attempt=0 checkpoint=` + itoa(id) + ` location=chk-` + itoa(id) + ` age=\S+`)
	if !re.MatchString(logs.String()) {
		t.Fatalf("no INFO line naming the restored checkpoint %d in:\n%s", id, logs.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestConfigValidateJoinsErrors: Validate reports every problem, each
// prefixed with its key, not only the first; and CheckpointDir and
// CheckpointStorage exclude each other.
func TestConfigValidateJoinsErrors(t *testing.T) {
	t.Parallel()
	fs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := sluice.Config{
		Parallelism:       -1,
		BatchSize:         -1,
		CheckpointDir:     t.TempDir(),
		CheckpointStorage: fs,
		Checkpoint:        checkpoint.Config{Timeout: -1, Retained: -1},
		Restart:           restart.ExponentialDelay{Jitter: 2, Multiplier: 0.5},
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, line := range strings.Split(err.Error(), "\n") {
		key, _, _ := strings.Cut(line, ":")
		got = append(got, key)
	}
	want := []string{"checkpoint-storage", "parallelism", "batch-size", checkpoint.KeyTimeout, checkpoint.KeyRetained, "restart.backoff-multiplier", "restart.jitter"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("keys %q, want %q; errors:\n%v", got, want, err)
	}
	if err := (sluice.Config{}).Validate(); err != nil {
		t.Fatalf("the zero Config is invalid: %v", err)
	}
}

// TestConfigRestartDocNamesTheDefault: the doc of Config.Restart names the
// default that Build uses.
func TestConfigRestartDocNamesTheDefault(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "env.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok && ts.Name.Name == "Config" {
			for _, fld := range ts.Type.(*ast.StructType).Fields.List {
				if len(fld.Names) == 1 && fld.Names[0].Name == "Restart" {
					doc = fld.Doc.Text()
				}
			}
		}
		return true
	})
	if name := restart.Default().Name(); !strings.Contains(doc, "Default") || !strings.Contains(doc, name) {
		t.Fatalf("Config.Restart's doc does not name the default %s:\n%s", name, doc)
	}
}
