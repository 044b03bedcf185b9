//go:build !race

package heap

// verifyKeyGroups: off outside race-detector builds (see verify_race.go).
const verifyKeyGroups = false
