// Package dashboard is the job's live web dashboard (docs/design.md §8): one
// page, hand-written HTML, CSS and JavaScript embedded in the binary, served
// beside the control API on the job's HTTP endpoint. The page holds no state
// of the job: every second it reads the REST API (/api/v1/jobs/{id},
// .../checkpoints, .../exceptions) and draws the job graph coloured by
// backpressure, throughput per task, the checkpoint history, consumer lag per
// partition over time (kept in the page), watermarks, restarts and the last
// failure; its savepoint and stop buttons call the API's mutating routes,
// asking for the bearer token when the API answers 401 or 403.
//
// Nothing is loaded from elsewhere: the Content-Security-Policy of every
// answer allows the page's own origin only.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Routes are the patterns the dashboard is served on, for
// httpapi.Server.Handle: the page at the root and its assets under /ui/.
var Routes = []string{"GET /{$}", "GET /ui/"}

// csp allows nothing but the page's own origin: no CDN, no inline script.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler returns the dashboard's handler: GET / answers the page and
// GET /ui/NAME its assets (app.js, style.css, index.html). Mount it on each
// of Routes.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The binary is the version: a restarted job with a new build must
		// not be served a stale script.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Mounter is what Mount needs: httpapi.Server's Handle.
type Mounter interface {
	Handle(pattern string, h http.Handler)
}

// Mount serves the dashboard on m's endpoint (before it starts).
func Mount(m Mounter) {
	h := Handler()
	for _, p := range Routes {
		m.Handle(p, h)
	}
}
