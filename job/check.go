package job

import (
	"errors"

	"github.com/sluicehq/sluice"
)

type buildResult struct {
	env              *sluice.Environment
	allowNonRestored bool
}

// check is the check subcommand: can this build restore SAVEPOINT?
func (c *cmd) check(args []string) error {
	return errors.New("check: waits on Environment.CheckRestore")
}
