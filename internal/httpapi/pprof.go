package httpapi

import "net/http/pprof"

// PprofPrefix is where MountPprof serves Go's profiler.
const PprofPrefix = "/debug/pprof/"

// MountPprof serves Go's profiler (package net/http/pprof) under
// /debug/pprof/ on s: the index, every named profile (heap, goroutine,
// allocs, block, mutex, threadcreate), cmdline, profile (CPU), symbol and
// trace. Commands mount it only when asked (--pprof): a profile costs the
// job while it is taken, and cmdline and heap dumps show what the process
// holds. So, unlike the API's other reads, every profiler route needs the
// bearer token when one is configured. Call it before Start.
func MountPprof(s *Server) {
	s.Handle("GET "+PprofPrefix, s.auth(pprof.Index))
	s.Handle("GET "+PprofPrefix+"cmdline", s.auth(pprof.Cmdline))
	s.Handle("GET "+PprofPrefix+"profile", s.auth(pprof.Profile))
	s.Handle("GET "+PprofPrefix+"symbol", s.auth(pprof.Symbol))
	s.Handle("POST "+PprofPrefix+"symbol", s.auth(pprof.Symbol))
	s.Handle("GET "+PprofPrefix+"trace", s.auth(pprof.Trace))
}
