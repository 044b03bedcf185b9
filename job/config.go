package job

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultEnvPrefix starts the environment variable of every key.
const DefaultEnvPrefix = "SLUICE_"

// EnvVar returns the environment variable of key: prefix, then the key in
// upper case with '-' and '.' as '_' (checkpoint-dir → SLUICE_CHECKPOINT_DIR).
func EnvVar(prefix, key string) string {
	return prefix + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(key))
}

// resolver applies the configuration layers to a flag set: the command line
// first (it wins), then the environment for the keys the command line left
// alone, then the config file for the keys neither set. What is set by none
// keeps its default. It remembers where each key's value came from, to name
// it in errors.
type resolver struct {
	fs     *flag.FlagSet
	prefix string
	getenv func(string) string
	// from names the source of each key set by the environment or the
	// file; keys set on the command line are "--key".
	from map[string]string
}

// resolve parses args with fs and applies the environment and the file
// named by the key "config". Errors name the key and its source.
func (r *resolver) resolve(args []string) error {
	r.from = map[string]string{}
	if err := r.checkEnvNames(); err != nil {
		return err
	}
	if err := r.fs.Parse(args); err != nil {
		return printedError{err} // the flag package named the flag and printed it
	}
	set := map[string]bool{}
	r.fs.Visit(func(f *flag.Flag) { set[f.Name] = true; r.from[f.Name] = "--" + f.Name })
	var errs []error
	r.fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := EnvVar(r.prefix, f.Name)
		v, ok := r.lookupEnv(name)
		if !ok {
			return
		}
		if err := r.fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s (key %s): invalid value %q: %w", name, f.Name, v, err))
			return
		}
		set[f.Name] = true
		r.from[f.Name] = name
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	cf := r.fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	return r.applyFile(cf.Value.String(), set)
}

func (r *resolver) lookupEnv(name string) (string, bool) {
	if r.getenv != nil {
		v := r.getenv(name)
		return v, v != ""
	}
	return os.LookupEnv(name)
}

// checkEnvNames refuses two keys with one environment variable
// (checkpoint.dir and checkpoint-dir): a mistake of the job's author.
func (r *resolver) checkEnvNames() error {
	seen := map[string]string{}
	var err error
	r.fs.VisitAll(func(f *flag.Flag) {
		n := EnvVar(r.prefix, f.Name)
		if other, ok := seen[n]; ok && err == nil {
			err = fmt.Errorf("keys %s and %s share the environment variable %s: rename one", other, f.Name, n)
		}
		seen[n] = f.Name
	})
	return err
}

// applyFile reads a YAML config file of keys and sets the keys not in set.
// Nested mappings are flattened with dots (checkpoint: {interval: 1s} is
// checkpoint.interval: 1s); a sequence of scalars is joined with commas.
func (r *resolver) applyFile(path string, set map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	entries, err := flatten(path, "", doc.Content[0])
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]int{}
	for _, e := range entries {
		where := fmt.Sprintf("%s:%d", path, e.line)
		if l, dup := seen[e.key]; dup {
			errs = append(errs, fmt.Errorf("%s: key %s is already set on line %d", where, e.key, l))
			continue
		}
		seen[e.key] = e.line
		f := r.fs.Lookup(e.key)
		switch {
		case f == nil:
			errs = append(errs, fmt.Errorf("%s: unknown key %q%s", where, e.key, suggest(r.fs, e.key)))
			continue
		case e.key == "config":
			errs = append(errs, fmt.Errorf("%s: key config names the file itself and cannot be set in it", where))
			continue
		case set[e.key]:
			continue // the command line or the environment wins
		}
		if err := r.fs.Set(e.key, e.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: key %s: invalid value %q: %w", where, e.key, e.value, err))
			continue
		}
		r.from[e.key] = where
	}
	return errors.Join(errs...)
}

// printedError is an error the flag package printed already.
type printedError struct{ err error }

func (e printedError) Error() string { return e.err.Error() }
func (e printedError) Unwrap() error { return e.err }

type fileEntry struct {
	key, value string
	line       int
}

func flatten(path, prefix string, n *yaml.Node) ([]fileEntry, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of keys to values", path, n.Line)
	}
	var out []fileEntry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		switch v.Kind {
		case yaml.MappingNode:
			sub, err := flatten(path, key, v)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case yaml.SequenceNode:
			var parts []string
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: key %s: a list may hold only plain values", path, item.Line, key)
				}
				parts = append(parts, item.Value)
			}
			out = append(out, fileEntry{key: key, value: strings.Join(parts, ","), line: k.Line})
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				return nil, fmt.Errorf("%s:%d: key %s has no value", path, k.Line, key)
			}
			out = append(out, fileEntry{key: key, value: v.Value, line: k.Line})
		default:
			return nil, fmt.Errorf("%s:%d: key %s: unsupported value (aliases are not read)", path, k.Line, key)
		}
	}
	return out, nil
}

// suggest names the closest known key to a misspelt one.
func suggest(fs *flag.FlagSet, key string) string {
	best, bestD := "", 3
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
