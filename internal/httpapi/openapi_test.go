package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// openAPI is the part of docs/openapi.yaml the test reads.
type openAPI struct {
	OpenAPI    string                    `yaml:"openapi"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

type schema struct {
	Ref        string            `yaml:"$ref"`
	Properties map[string]schema `yaml:"properties"`
	AllOf      []schema          `yaml:"allOf"`
}

func readOpenAPI(t *testing.T) (openAPI, []byte) {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("docs/openapi.yaml: openapi %q, want 3.0.x", doc.OpenAPI)
	}
	return doc, b
}

// specRoutes lists the spec's operations as mux patterns, "GET /path".
func specRoutes(doc openAPI) []string {
	var out []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "post", "put", "delete", "patch", "head", "options":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPICoversRoutes: every route the server serves is in
// docs/openapi.yaml and every operation there is served, by the very
// pattern the spec names (the mux resolves a request made from it).
func TestOpenAPICoversRoutes(t *testing.T) {
	doc, _ := readOpenAPI(t)
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, r := range s.routes() {
		served = append(served, r.pattern)
	}
	sort.Strings(served)
	spec := specRoutes(doc)
	for _, p := range served {
		if !slices.Contains(spec, p) {
			t.Errorf("%s is served but not in docs/openapi.yaml", p)
		}
	}
	mux := s.mux()
	param := regexp.MustCompile(`\{[a-z]+\}`)
	for _, p := range spec {
		if !slices.Contains(served, p) {
			t.Errorf("%s is in docs/openapi.yaml but not served", p)
			continue
		}
		method, path, _ := strings.Cut(p, " ")
		req := httptest.NewRequest(method, param.ReplaceAllString(path, "7"), nil)
		if _, got := mux.Handler(req); got != p {
			t.Errorf("%s: a request %s %s is served by %q", p, method, req.URL.Path, got)
		}
	}
	if len(served) < 13 {
		t.Errorf("only %d routes served: %v", len(served), served)
	}
}

// TestOpenAPIRefsResolve: every $ref of the spec names a component.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, b := readOpenAPI(t)
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					if !resolves(raw, ref) {
						t.Errorf("$ref %q does not resolve", ref)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
}

func resolves(doc map[string]any, ref string) bool {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPISchemasMatchTypes: each schema of an answer or request lists
// exactly the JSON fields of the Go type the server encodes or decodes.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc, _ := readOpenAPI(t)
	types := map[string]any{
		"Error": ErrorResponse{}, "Health": HealthResponse{}, "JobList": JobList{}, "JobInfo": JobInfo{},
		"SavepointResponse": SavepointResponse{}, "StopRequest": StopRequest{},
		"TriggerCheckpointResponse": TriggerCheckpointResponse{}, "CancelResponse": CancelResponse{},
		"JobOverview": JobOverview{}, "CheckpointCounts": CheckpointCounts{}, "Vertex": VertexView{},
		"VertexDetail": VertexDetail{}, "Subtask": SubtaskView{}, "Edge": EdgeView{}, "Source": SourceView{},
		"Split": SplitView{}, "Sink": SinkView{}, "Plan": Plan{}, "PlanVertex": PlanVertex{}, "PlanEdge": PlanEdge{},
		"CheckpointOverview": CheckpointOverview{}, "LatestCheckpoints": LatestCheckpoints{},
		"CheckpointSummary": CheckpointSummary{}, "CheckpointDetail": CheckpointDetail{},
		"TaskCheckpoint": TaskCheckpointView{}, "Exceptions": Exceptions{}, "Failure": FailureView{}, "Restore": RestoreView{},
	}
	for name, v := range types {
		sc, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("docs/openapi.yaml has no schema %s", name)
			continue
		}
		got := schemaProps(doc, sc)
		want := jsonFields(reflect.TypeOf(v))
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has properties\n\t%v\nthe Go type %T encodes\n\t%v", name, got, v, want)
		}
	}
}

func schemaProps(doc openAPI, sc schema) []string {
	if name, ok := strings.CutPrefix(sc.Ref, "#/components/schemas/"); ok {
		return schemaProps(doc, doc.Components.Schemas[name])
	}
	var out []string
	for k := range sc.Properties {
		out = append(out, k)
	}
	for _, a := range sc.AllOf {
		out = append(out, schemaProps(doc, a)...)
	}
	return out
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// TestRestDocCoversRoutes: docs/rest.md has a section "### METHOD path"
// for every route served, and none for a route that is not.
func TestRestDocCoversRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/rest.md")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var served, documented []string
	for _, r := range s.routes() {
		served = append(served, r.pattern)
	}
	for line := range strings.Lines(string(b)) {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "### "); ok {
			documented = append(documented, h)
		}
	}
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("docs/rest.md has no section ### %s", p)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("docs/rest.md documents ### %s, which is not served", d)
		}
	}
	// Every example answer is JSON.
	blocks := strings.Split(string(b), "```json\n")
	for i, blk := range blocks[1:] {
		body, _, _ := strings.Cut(blk, "```")
		if !json.Valid([]byte(body)) {
			t.Errorf("docs/rest.md: example %d is not JSON:\n%s", i+1, body)
		}
	}
}
