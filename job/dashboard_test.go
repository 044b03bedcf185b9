package job_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRunServesDashboard: run serves the dashboard beside the control API
// and prints its URL.
func TestRunServesDashboard(t *testing.T) {
	addr, _, stdout, _ := startJob(t, countJob(&counts{got: map[string][]int64{}}), "--http", "127.0.0.1:0", "--checkpoint-dir", t.TempDir())
	if want := "dashboard on http://" + addr + "/\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `<script src="/ui/app.js"`) {
		t.Errorf("GET /: %d\n%s", resp.StatusCode, b)
	}
}
