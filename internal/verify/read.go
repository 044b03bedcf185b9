package verify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CommittedPrefix starts the name of every committed file ReadDir reads:
// the file sink's default prefix ("part") and its separator.
const CommittedPrefix = "part-"

// maxLine bounds a line; longer ones are reported as malformed rather than
// buffered without limit.
const maxLine = 64 << 10

// ReadDir returns the outputs "key,n" of every committed file under dir:
// regular files named part-* in dir and its subdirectories, in lexical
// path order. Hidden files and directories (name starting with ".", which
// is where the file sink keeps in-progress and pre-committed files) are
// skipped: they are not output.
//
// ReadDir reads every file once before returning and reports the first
// malformed line with its file and line number: a line that is not
// "key,n" with a non-empty key and a decimal n, or a last line without its
// newline (a torn write, which a committed file must never contain). The
// returned sequence reads the files again, so memory stays small however
// large the output; committed files are immutable, and if one changes
// between the two reads the sequence panics with an error saying which,
// since silently yielding other outputs would falsify the verification.
func ReadDir(dir string) (iter.Seq2[string, int64], error) {
	files, err := committedFiles(dir)
	if err != nil {
		return nil, err
	}
	for i := range files {
		if err := files[i].scan(nil, func(string, int64) bool { return true }); err != nil {
			return nil, err
		}
	}
	return func(yield func(string, int64) bool) {
		intern := make(map[string]string)
		for i := range files {
			stop := false
			err := files[i].scan(intern, func(k string, n int64) bool {
				stop = !yield(k, n)
				return !stop
			})
			if err != nil {
				panic(fmt.Errorf("verify: committed output changed while being read: %w", err))
			}
			if stop {
				return
			}
		}
	}, nil
}

// committedFile is one file ReadDir reads, with what it looked like on the
// first read.
type committedFile struct {
	path    string
	size    int64
	modTime time.Time
	checked bool
}

func committedFiles(dir string) ([]committedFile, error) {
	var files []committedFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if path != dir && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasPrefix(name, CommittedPrefix) {
			return nil
		}
		files = append(files, committedFile{path: path})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: list committed files: %w", err)
	}
	return files, nil
}

// scan parses the file and calls fn per line until it returns false. The
// first scan records the file's size and modification time; later scans
// check them. intern, if not nil, maps key bytes to one string per key, so
// a key costs one allocation per scan rather than one per line.
func (f *committedFile) scan(intern map[string]string, fn func(key string, n int64) bool) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if f.checked && (st.Size() != f.size || !st.ModTime().Equal(f.modTime)) {
		return fmt.Errorf("verify: %s: size or modification time changed", f.path)
	}
	f.size, f.modTime, f.checked = st.Size(), st.ModTime(), true
	r := bufio.NewReaderSize(fh, maxLine)
	for line := 1; ; line++ {
		b, err := r.ReadSlice('\n')
		if err == io.EOF {
			if len(b) > 0 {
				return fmt.Errorf("verify: %s:%d: last line %s has no newline: the file is torn", f.path, line, quote(b))
			}
			return nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("verify: %s:%d: line longer than %d bytes", f.path, line, maxLine)
		}
		if err != nil {
			return fmt.Errorf("verify: read %s: %w", f.path, err)
		}
		key, n, ok := parseLine(b[:len(b)-1])
		if !ok {
			return fmt.Errorf("verify: %s:%d: malformed line %s: want key,n", f.path, line, quote(b))
		}
		k := ""
		if intern != nil {
			var seen bool
			if k, seen = intern[string(key)]; !seen {
				k = string(key)
				intern[k] = k
			}
		}
		if !fn(k, n) {
			return nil
		}
	}
}

// parseLine splits "key,n" at the last comma (so keys may contain commas)
// and parses n as a decimal int64 with an optional minus sign. A trailing
// "\r" is not tolerated: the sink writes "\n" only.
func parseLine(b []byte) (key []byte, n int64, ok bool) {
	i := bytes.LastIndexByte(b, ',')
	if i <= 0 || i == len(b)-1 {
		return nil, 0, false
	}
	key, num := b[:i], b[i+1:]
	neg := num[0] == '-'
	if neg {
		num = num[1:]
		if len(num) == 0 {
			return nil, 0, false
		}
	}
	// 19 digits always fit a uint64, so the loop cannot overflow; the
	// int64 range is checked after it.
	if len(num) > 19 {
		return nil, 0, false
	}
	var u uint64
	for _, c := range num {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > 1<<63 || !neg && u == 1<<63 {
		return nil, 0, false
	}
	if neg {
		return key, -int64(u), true
	}
	return key, int64(u), true
}
