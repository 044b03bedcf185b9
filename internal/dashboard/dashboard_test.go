package dashboard_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/dashboard"
	"github.com/sluicehq/sluice/internal/httpapi"
)

// TestServedBesideTheAPI mounts the dashboard on the control API's server
// and reads the page, its assets and an API route through the one handler.
func TestServedBesideTheAPI(t *testing.T) {
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	dashboard.Mount(srv)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, c := range []struct {
		path, wantType, wantBody string
		code                     int
	}{
		{"/", "text/html", `<script src="/ui/app.js"`, 200},
		{"/ui/app.js", "text/javascript", "use strict", 200},
		{"/ui/style.css", "text/css", "--high", 200},
		{"/ui/missing.js", "", "", 404},
		{"/api/v1/jobs", "application/json", `"jobs"`, 200},
	} {
		resp, err := http.Get(ts.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("GET %s: %d, want %d", c.path, resp.StatusCode, c.code)
			continue
		}
		if c.code != 200 {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, ct, c.wantType)
		}
		if !strings.Contains(string(body), c.wantBody) {
			t.Errorf("GET %s: body lacks %q", c.path, c.wantBody)
		}
		if c.path != "/api/v1/jobs" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: no content security policy", c.path)
		}
	}
}

// TestAssetsLoadNothingFromElsewhere: the page's files name no other
// origin (no CDN) beyond the SVG namespace, and the embedded tree is the
// directory's.
func TestAssetsLoadNothingFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err := filepath.WalkDir("assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s names another origin: %s", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d asset files, want index.html, app.js, style.css", n)
	}
}
