// Package bytesize parses and prints byte sizes on the command line and in
// job files: "268435456", "256MiB", "64MB", "1GiB", "512KiB".
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// units are the suffixes Parse accepts, longest first: binary (KiB, MiB,
// GiB, TiB, also K, M, G, T) and decimal (KB, MB, GB, TB).
var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// Parse reads a size: a whole number of bytes with an optional unit
// (case-insensitive, a space before it allowed).
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n != 0 && (n > (1<<63-1)/mult || n < -(1<<63-1)/mult) {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// Format prints n with the largest binary unit that divides it.
func Format(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Value is a flag.Value holding a size.
type Value struct{ N *int64 }

// String prints the size (flag.Value).
func (v Value) String() string {
	if v.N == nil {
		return "0"
	}
	return Format(*v.N)
}

// Set parses a size (flag.Value).
func (v Value) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	*v.N = n
	return nil
}
