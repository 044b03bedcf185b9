package job_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/job"
)

// A job with a key of its own (keys) becomes a program with run, savepoint,
// stop, check and describe; main would be job.Main(j). Here describe shows
// the graph the job builds at parallelism 2, with keys set in the
// environment.
func Example() {
	var keys int
	j := job.Job{
		Name: "uppercase",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&keys, "keys", 100, "number of distinct keys")
		},
		Validate: func(sluice.Config) error {
			if keys < 1 {
				return fmt.Errorf("keys: must be at least 1, got %d", keys)
			}
			return nil
		},
		Build: func(cfg sluice.Config) (*sluice.Environment, error) {
			env := sluice.New(cfg)
			in := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Keys: keys}))
			upper := sluice.Map(in, "upper", func(r datagen.Record) string { return strings.ToUpper(r.Key) })
			sluice.Sink(upper, "sink", sluice.DiscardSink[string]())
			return env, nil
		},
	}
	os.Setenv("SLUICE_KEYS", "10")
	defer os.Unsetenv("SLUICE_KEYS")
	err := job.Run(context.Background(), j, []string{"describe", "--parallelism", "2"}, os.Stdout, os.Stderr)
	fmt.Println("exit status", job.ExitCode(err))
	// Output:
	// task "datagen" parallelism 2: [datagen upper sink]
	// exit status 0
}
