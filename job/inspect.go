package job

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"
)

// buildOnly resolves the keys and builds the job without running it.
func (c *cmd) buildOnly(fs *flag.FlagSet, args []string) (*buildResult, error) {
	if err := c.parse(fs, args); err != nil {
		return nil, err
	}
	cfg, err := c.engineConfig(false)
	if err != nil {
		return nil, err
	}
	env, err := c.j.Build(cfg)
	if err != nil {
		return nil, err
	}
	return &buildResult{env: env, allowNonRestored: cfg.AllowNonRestoredState}, nil
}

// splitPositional moves a leading positional argument (check's SAVEPOINT)
// out of args, so that flags may follow it.
func splitPositional(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// adviseTimeout bounds describe's questions to the cluster (a source's
// partition count) for the advisor.
const adviseTimeout = 5 * time.Second

// describe is the describe subcommand: the graph, uids, states and codecs,
// and the advisor's warnings.
func (c *cmd) describe(ctx context.Context, args []string) error {
	fs, err := c.flags("describe", fmt.Sprintf(`Usage: %s describe [flags]

Builds the job without running it and prints its tasks (chains of operators
with their uids and parallelism), the edges between them, the states each
operator registers with their codecs, and the advisor's warnings: a source
whose parallelism is neither a multiple nor a divisor of its partition
count, or that leaves subtasks idle, and a transaction timeout too short for
the checkpoint timeout and restart delay (it asks the cluster for the
partition counts, for up to 5s).

Flags:
`, c.program()))
	if err != nil {
		return err
	}
	b, err := c.buildOnly(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	s, err := b.env.Describe()
	if err != nil {
		return err
	}
	states, err := b.env.DescribeStates()
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, s+states)
	actx, cancel := context.WithTimeout(ctx, adviseTimeout)
	defer cancel()
	warnings, aerr := b.env.Advise(actx)
	for _, w := range warnings {
		fmt.Fprintf(c.stdout, "WARN %s\n", w.Message)
	}
	if aerr != nil {
		for _, line := range strings.Split(aerr.Error(), "\n") {
			fmt.Fprintf(c.stdout, "advice incomplete: %s\n", line)
		}
	}
	return nil
}
