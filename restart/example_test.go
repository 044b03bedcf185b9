package restart_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/restart"
)

// A policy from a command-line flag or a configuration file.
func ExampleParse() {
	p, err := restart.Parse("fixed-delay:attempts=10,delay=5s")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%#v\n", p)
	_, err = restart.Parse("exponential-delay:jitter=2,max-attempts=-1")
	fmt.Println(err)
	// Output:
	// restart.FixedDelay{Attempts:10, Delay:5000000000}
	// restart.jitter: must be <= 1 (or negative for none), got 2
	// restart.max-attempts: must be >= 0 (0 is unlimited), got -1
}

// A policy value makes one strategy per job run; the strategy decides
// about each failure.
func ExampleFixedDelay() {
	s, err := restart.Build(restart.FixedDelay{Attempts: 2, Delay: time.Second}, 0)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	for range 3 {
		fmt.Println(s.OnFailure(now, fmt.Errorf("task failed")))
	}
	// Output:
	// true 1s
	// true 1s
	// false 0s
}
