package broker

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests prove that a client other than franz-go can use the broker:
// kcat is librdkafka's command line tool, and librdkafka is the client most
// non-Java Kafka clients wrap. It consumes read_committed by default.

// TestKcat runs the kcat round trips against the embedded broker, in
// memory and with a data directory (where topic auto-creation takes
// another path, see persistAutoCreatedTopics).
func TestKcat(t *testing.T) {
	t.Parallel()
	requireKcat(t)
	t.Run("ephemeral", func(t *testing.T) {
		t.Parallel()
		runKcatInterop(t, startEphemeral(t).Addrs())
	})
	t.Run("data-dir", func(t *testing.T) {
		t.Parallel()
		runKcatInterop(t, startDir(t, t.TempDir()).Addrs())
	})
}

// requireKcat skips the test when kcat is not installed.
func requireKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed: apt-get install kcat")
	}
}

// runKcatInterop produces and consumes with kcat and franz-go in every
// combination against addrs, and checks that librdkafka honours
// transactions and the auto-created partition count.
func runKcatInterop(t *testing.T, addrs []string) {
	t.Run("kcat to kcat", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("kcat")
		want := kvs("kcat", 10)
		kcatProduce(t, addrs, topic, want)
		if got := kcatConsume(t, addrs, topic); !slices.Equal(sortedStrings(got), sortedStrings(want)) {
			t.Errorf("kcat consumed %v, want %v", sortedStrings(got), sortedStrings(want))
		}
	})
	t.Run("franz-go to kcat", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("franz")
		want := kvs("franz", 10)
		produceSync(t, addrs, topic, want)
		if got := kcatConsume(t, addrs, topic); !slices.Equal(sortedStrings(got), sortedStrings(want)) {
			t.Errorf("kcat consumed %v, want %v", sortedStrings(got), sortedStrings(want))
		}
	})
	t.Run("kcat to franz-go", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("kcat")
		want := kvs("kcat", 10)
		kcatProduce(t, addrs, topic, want)
		if got := consumeN(t, addrs, topic, len(want), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(want)) {
			t.Errorf("franz-go consumed %v, want %v", sortedStrings(got), sortedStrings(want))
		}
	})
	t.Run("transactions", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("txn")
		cl := txnProducer(t, addrs, topic, uniqueName("txn-id"))
		aborted, committed := kvs("aborted", 3), kvs("committed", 4)
		produceTxn(t, cl, aborted, false)
		produceTxn(t, cl, committed, true)
		if got := kcatConsume(t, addrs, topic); !slices.Equal(sortedStrings(got), sortedStrings(committed)) {
			t.Errorf("kcat (read_committed) consumed %v, want %v", sortedStrings(got), sortedStrings(committed))
		}
		all := append(slices.Clone(aborted), committed...)
		if got := kcatConsume(t, addrs, topic, "-X", "isolation.level=read_uncommitted"); !slices.Equal(sortedStrings(got), sortedStrings(all)) {
			t.Errorf("kcat (read_uncommitted) consumed %v, want %v", sortedStrings(got), sortedStrings(all))
		}
	})
	t.Run("auto-created partitions", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("kcat")
		kcatProduce(t, addrs, topic, kvs("p", 1))
		if got := kcatPartitions(t, addrs, topic); got != DefaultPartitions {
			t.Errorf("kcat -L: %s has %d partitions, want %d", topic, got, DefaultPartitions)
		}
	})
}

// kcat runs kcat with args and stdin and returns its standard output.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t), "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kcatProduce produces recs as key:value lines.
func kcatProduce(t *testing.T, addrs []string, topic string, recs []kv) {
	t.Helper()
	var in strings.Builder
	for _, r := range recs {
		in.WriteString(r.K + ":" + r.V + "\n")
	}
	kcat(t, in.String(), "-b", strings.Join(addrs, ","), "-t", topic, "-P", "-K:")
}

// kcatConsume reads every partition of topic from the beginning to its end
// and returns the records.
func kcatConsume(t *testing.T, addrs []string, topic string, extra ...string) []kv {
	t.Helper()
	args := append([]string{"-b", strings.Join(addrs, ","), "-t", topic, "-C", "-e", "-q", "-o", "beginning", "-f", `%k %s\n`}, extra...)
	var out []kv
	for line := range strings.Lines(kcat(t, "", args...)) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok {
			t.Fatalf("kcat output line %q is not 'key value'", line)
		}
		out = append(out, kv{k, v})
	}
	return out
}

// kcatPartitions returns topic's partition count as kcat -L reports it.
func kcatPartitions(t *testing.T, addrs []string, topic string) int {
	t.Helper()
	out := kcat(t, "", "-b", strings.Join(addrs, ","), "-L", "-J", "-t", topic)
	var md struct {
		Topics []struct {
			Topic      string            `json:"topic"`
			Partitions []json.RawMessage `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J output: %v\n%s", err, out)
	}
	for _, tp := range md.Topics {
		if tp.Topic == topic {
			return len(tp.Partitions)
		}
	}
	t.Fatalf("kcat -L -J does not list %s: %s", topic, out)
	return 0
}
