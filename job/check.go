package job

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice"
)

type buildResult struct {
	env              *sluice.Environment
	allowNonRestored bool
}

// ErrRestoreRefused is wrapped by the error of check when the restore
// would fail or drop state (exit status 1).
var ErrRestoreRefused = errors.New("restore would fail or drop state")

// check is the check subcommand: can this build restore SAVEPOINT?
func (c *cmd) check(args []string) error {
	fs, err := c.flags("check", fmt.Sprintf(`Usage: %s check SAVEPOINT [flags]

Builds the job as it is now, without running it, and compares it with
SAVEPOINT (a savepoint or checkpoint directory, or its _metadata file): per
operator and state, whether a restore restores it as is, migrates it (a
codec that reads its old version), starts it new, drops it, or refuses it
as incompatible. Exits 1 when the restore would fail or drop state (pass
--allow-non-restored-state to accept dropping the state of removed
operators, as the restore would), 0 when it would restore everything. Give
the job's keys as for run: the parallelism and the job's own keys shape
what is compared.

Flags:
`, c.program()))
	if err != nil {
		return err
	}
	path, rest := splitPositional(args)
	b, err := c.buildOnly(fs, rest)
	if err != nil {
		return err
	}
	if path == "" && fs.NArg() > 0 {
		path, rest = fs.Arg(0), fs.Args()[1:]
	} else {
		rest = fs.Args()
	}
	if len(rest) > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(rest, " "))
		return ErrUsage
	}
	if path == "" {
		fmt.Fprintf(c.stderr, "check needs the savepoint: %s check SAVEPOINT\n", c.program())
		return ErrUsage
	}
	rep, err := b.env.CheckRestore(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	fmt.Fprint(c.stdout, rep.String())
	if !rep.OK(b.allowNonRestored) {
		return fmt.Errorf("%s: %w", path, ErrRestoreRefused)
	}
	fmt.Fprintln(c.stdout, "restore OK")
	return nil
}
