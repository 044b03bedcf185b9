//go:build race

package heap

// verifyKeyGroups makes SetCurrentKeyInGroup and WindowMajor.GroupOf check
// the caller's key group against the key's hash: on in race-detector
// builds, which is how the test suites run.
const verifyKeyGroups = true
