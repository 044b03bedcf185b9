package job

import (
	"flag"
	"fmt"
	"strings"
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

// describe is the describe subcommand: the graph, uids, states and codecs.
func (c *cmd) describe(args []string) error {
	fs, err := c.flags("describe", fmt.Sprintf(`Usage: %s describe [flags]

Builds the job without running it and prints its tasks (chains of operators
with their uids and parallelism), the edges between them, and the states
each operator registers with their codecs.

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
	return nil
}
