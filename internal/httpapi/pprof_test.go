package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func pprofGet(t *testing.T, h http.Handler, path, token string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestPprofOnlyWhenMounted(t *testing.T) {
	off, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, body := pprofGet(t, off.Handler(), p, ""); code != http.StatusNotFound {
			t.Errorf("without MountPprof: GET %s = %d %q, want 404", p, code, body)
		}
	}
	on, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	MountPprof(on)
	h := on.Handler()
	if code, body := pprofGet(t, h, "/debug/pprof/", ""); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ = %d %.200q", code, body)
	}
	if code, body := pprofGet(t, h, "/debug/pprof/goroutine?debug=1", ""); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET goroutine = %d %.200q", code, body)
	}
	if code, _ := pprofGet(t, h, "/debug/pprof/cmdline", ""); code != http.StatusOK {
		t.Errorf("GET cmdline = %d", code)
	}
	// The API's own routes are still there.
	if code, _ := pprofGet(t, h, "/api/v1/jobs", ""); code != http.StatusOK {
		t.Errorf("GET /api/v1/jobs = %d", code)
	}
}

func TestPprofNeedsTheToken(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	MountPprof(s)
	h := s.Handler()
	if code, _ := pprofGet(t, h, "/debug/pprof/cmdline", ""); code != http.StatusUnauthorized {
		t.Errorf("without token: %d, want 401", code)
	}
	if code, _ := pprofGet(t, h, "/debug/pprof/cmdline", "other"); code != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", code)
	}
	if code, _ := pprofGet(t, h, "/debug/pprof/heap", "s3cret"); code != http.StatusOK {
		t.Errorf("with token: %d, want 200", code)
	}
}
