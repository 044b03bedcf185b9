//go:build race

package nexmark

// raceEnabled: tests that only measure single-threaded generator output
// use fewer events under the race detector, which adds nothing there.
const raceEnabled = true
