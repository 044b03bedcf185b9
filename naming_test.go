package sluice_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestCtxNamesAContext: in every Go file of the module, an identifier named
// ctx is a context.Context and nothing else (a ProcessContext is pc, an
// OperatorContext oc). Checked from the syntax: every parameter, result,
// struct field and typed variable named ctx must have type context.Context,
// and no ctx may be defined from a composite literal (&T{...} or T{...}),
// which is never a context.
func TestCtxNamesAContext(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	var bad []string
	report := func(n ast.Node, what string) {
		bad = append(bad, fset.Position(n.Pos()).String()+": "+what)
	}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				for _, id := range n.Names {
					if id.Name == "ctx" && !isContextType(n.Type) {
						report(id, "ctx declared with a type other than context.Context")
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if id.Name != "ctx" {
						continue
					}
					if n.Type != nil && !isContextType(n.Type) || n.Type == nil && i < len(n.Values) && isLiteral(n.Values[i]) {
						report(id, "ctx declared as something other than a context.Context")
					}
				}
			case *ast.AssignStmt:
				if n.Tok != token.DEFINE || len(n.Lhs) != len(n.Rhs) {
					return true
				}
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok && id.Name == "ctx" && isLiteral(n.Rhs[i]) {
						report(id, "ctx defined from a composite literal, which is not a context.Context")
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("the name ctx is for a context.Context only:\n%s", strings.Join(bad, "\n"))
	}
}

func isContextType(e ast.Expr) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := s.X.(*ast.Ident)
	return ok && x.Name == "context" && s.Sel.Name == "Context"
}

func isLiteral(e ast.Expr) bool {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	_, ok := e.(*ast.CompositeLit)
	return ok
}
