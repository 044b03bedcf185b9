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
	"github.com/sluicehq/sluice/internal/httpapi"
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
	// At once: the history holds the last 32 snapshots, and periodic ones
	// follow every 50ms.
	var d httpapi.CheckpointDetail
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || d.ID != cid || d.Status != "completed" || len(d.Tasks) != d.Total || d.Total == 0 {
		t.Fatalf("GET checkpoint %d: %d %+v %v", cid, resp.StatusCode, d, err)
	}

	// The read routes on the real job.
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode
	}
	var o httpapi.JobOverview
	if code := get("/api/v1/jobs/"+id, &o); code != 200 || o.Status != httpapi.StatusRunning || len(o.Vertices) == 0 || o.Checkpoints.Completed < 1 {
		t.Fatalf("overview: %d %+v", code, o)
	}
	var v httpapi.VertexDetail
	if code := get("/api/v1/jobs/"+id+"/vertices/"+o.Vertices[0].ID, &v); code != 200 || v.Name != o.Vertices[0].Name {
		t.Fatalf("vertex %s: %d %+v", o.Vertices[0].ID, code, v)
	}
	// Ids link up: the plan's edges and each checkpoint task name vertices
	// by the ids the overview lists.
	ids := map[string]bool{}
	for _, v := range o.Vertices {
		ids[v.ID] = true
	}
	var p httpapi.Plan
	if code := get("/api/v1/jobs/"+id+"/plan", &p); code != 200 || len(p.Edges) == 0 || !ids[p.Edges[0].From] || !ids[p.Edges[0].To] || p.Edges[0].Partitioning != "hash" {
		t.Fatalf("plan: %d %+v (vertex ids %v)", code, p, ids)
	}
	for _, tk := range d.Tasks {
		if !ids[tk.Vertex] {
			t.Errorf("checkpoint task of vertex %q, not an id of the overview %v", tk.Vertex, ids)
		}
	}
	var ex httpapi.Exceptions
	if code := get("/api/v1/jobs/"+id+"/exceptions", &ex); code != 200 || ex.Failure != nil {
		t.Fatalf("exceptions: %d %+v", code, ex)
	}
	var h httpapi.HealthResponse
	if code := get("/readyz", &h); code != 200 || h.Status != "ready" {
		t.Fatalf("readyz: %d %+v", code, h)
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
