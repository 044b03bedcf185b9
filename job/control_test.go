package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/job"
)

// TestCheckpointAndCancelSubcommands: `checkpoint` prints the id of a
// completed checkpoint the REST API then shows; `cancel` ends the job's
// run with an error wrapping sluice.ErrCancelled (exit status 1).
func TestCheckpointAndCancelSubcommands(t *testing.T) {
	var run1 counts
	addr, id, _, done := startJob(t, countJob(&run1), "--http", "127.0.0.1:0", "--checkpoint-dir", t.TempDir())
	waitFor(t, "output", func() bool { return run1.total() > 50 })
	var out, errb bytes.Buffer
	if err := job.Run(context.Background(), countJob(nil), []string{"checkpoint", "--http", addr}, &out, &errb); err != nil {
		t.Fatalf("checkpoint: %v %s", err, errb.String())
	}
	cid, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil || cid < 1 {
		t.Fatalf("checkpoint printed %q", out.String())
	}
	resp, err := http.Get("http://" + addr + "/api/v1/jobs/" + id + "/checkpoints/" + strconv.FormatInt(cid, 10))
	if err != nil {
		t.Fatal(err)
	}
	var cp struct {
		ID     int64
		Status string
	}
	err = json.NewDecoder(resp.Body).Decode(&cp)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || cp.ID != cid || cp.Status != "completed" {
		t.Fatalf("GET checkpoint %d: %d %+v %v", cid, resp.StatusCode, cp, err)
	}

	out.Reset()
	if err := job.Run(context.Background(), countJob(nil), []string{"cancel", "--http", addr, "--job-id", id}, &out, &errb); err != nil {
		t.Fatalf("cancel: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "cancelling job "+id) {
		t.Fatalf("cancel printed %q", out.String())
	}
	runErr := <-done
	if !errors.Is(runErr, sluice.ErrCancelled) || job.ExitCode(runErr) != 1 {
		t.Fatalf("run after cancel: %v (exit %d), want ErrCancelled and exit 1", runErr, job.ExitCode(runErr))
	}
}
