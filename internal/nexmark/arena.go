package nexmark

import "unsafe"

// arenaChunk is the size of one arena chunk: about 600 events' strings.
const arenaChunk = 256 << 10

// arena hands out strings built in large byte chunks, so that the padding
// and the other generated strings cost no allocation of their own. A chunk
// is written only past what has been handed out and never reused: a string
// stays valid (immutable) as long as anything references it, and the
// garbage collector frees a chunk when no string of it is referenced any
// more. The price of that safety is memory: an operator that keeps one
// generated string (in heap state, a window buffer) keeps its whole chunk
// alive; code that keeps a few strings for long should strings.Clone them.
type arena struct {
	buf   []byte // the current chunk: len is what was handed out or is being built
	start int    // where the string being built starts
}

// begin starts a string of at most n bytes and returns the chunk to
// append it to.
func (a *arena) begin(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(arenaChunk, n))
	}
	a.start = len(a.buf)
	return a.buf
}

// end finishes the string built since begin: b is the chunk with it
// appended (it must not have grown past begin's n).
func (a *arena) end(b []byte) string {
	a.buf = b
	if len(b) == a.start {
		return ""
	}
	return unsafe.String(&b[a.start], len(b)-a.start)
}
