package nexmark

import (
	"errors"
	"fmt"
	"math"
)

// Profile selects the rules the generator follows.
type Profile uint8

// The generator profiles (docs/benchmarks.md).
const (
	// ProfileComparison is the stream fixed event for event so that two
	// implementations can compare outputs exactly: one SplitMix64 stream
	// per event, a fixed draw order and fixed tables.
	ProfileComparison Profile = iota
	// ProfileReference follows the Nexmark suite's own generator: one
	// java.util.Random per event seeded from its id, the suite's string,
	// price and padding rules, bidder ids offset as the suite does.
	ProfileReference
)

// String returns "comparison" or "reference".
func (p Profile) String() string {
	switch p {
	case ProfileComparison:
		return "comparison"
	case ProfileReference:
		return "reference"
	}
	return fmt.Sprintf("Profile(%d)", uint8(p))
}

// ParseProfile parses "comparison" or "reference".
func ParseProfile(s string) (Profile, error) {
	switch s {
	case "comparison":
		return ProfileComparison, nil
	case "reference":
		return ProfileReference, nil
	}
	return 0, fmt.Errorf("profile: unknown %q (want comparison or reference)", s)
}

// Defaults of GeneratorConfig.
const (
	// DefaultRate is the default event rate in events per second of event
	// time: 10M events span one second.
	DefaultRate = 10_000_000
	// DefaultBaseTime is the default event time of the first event of
	// every generator: 2026-01-01T00:00:00Z in milliseconds, a multiple of
	// 10 s so that windows start with the stream.
	DefaultBaseTime = 1767225600000
	// DefaultSeed is the default seed.
	DefaultSeed = 42
	// DefaultEvents is the default number of events in all.
	DefaultEvents = 10_000_000
)

// GeneratorConfig configures the Nexmark generator. The stream is a pure
// function of it: nothing depends on timing.
type GeneratorConfig struct {
	// Events is the number of events in all, rounded down to a multiple
	// of Generators.
	Events int64
	// Generators is the number of splits, each a contiguous range of event
	// ids read in order. Use at least the source parallelism.
	Generators int
	// Rate is in events per second of event time, over all generators:
	// it spaces the events' DateTime, it does not pace the generator.
	Rate float64
	// BaseTime is the DateTime of every generator's first event, ms.
	BaseTime int64
	// Seed selects the stream (ProfileComparison; the reference profile
	// has no seed of its own and mixes it into each event's seed).
	Seed uint64
	// Profile selects the rules.
	Profile Profile
}

// DefaultConfig returns 10M events from one generator at the default rate,
// base time and seed, in the comparison profile.
func DefaultConfig() GeneratorConfig {
	return GeneratorConfig{Events: DefaultEvents, Generators: 1, Rate: DefaultRate, BaseTime: DefaultBaseTime, Seed: DefaultSeed, Profile: ProfileComparison}
}

// Validate reports every field out of range, each prefixed with its
// config key (the flag of `sluice bench nexmark`).
func (c GeneratorConfig) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("nexmark.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Generators < 1 || c.Generators > 1<<16 {
		bad("generators", "must be in [1, 65536] (got %d)", c.Generators)
	}
	if c.Events < 0 {
		bad("events", "must be >= 0 (got %d)", c.Events)
	} else if c.Events > 1<<50 {
		bad("events", "must be <= 2^50 (got %d)", c.Events)
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate <= 0 {
		bad("rate", "must be a finite number > 0 (got %v)", c.Rate)
	}
	if c.BaseTime < 0 || c.BaseTime > 1<<52 {
		bad("base-time", "must be in [0, 2^52] ms (got %d)", c.BaseTime)
	}
	if c.Profile != ProfileComparison && c.Profile != ProfileReference {
		bad("profile", "unknown profile %d", c.Profile)
	}
	return errors.Join(errs...)
}

// PerGenerator returns the number of events of each generator.
func (c GeneratorConfig) PerGenerator() int64 {
	if c.Generators < 1 {
		return 0
	}
	return c.Events / int64(c.Generators)
}

// Total returns the number of events the generators produce: Events
// rounded down to a multiple of Generators.
func (c GeneratorConfig) Total() int64 { return c.PerGenerator() * int64(c.Generators) }
