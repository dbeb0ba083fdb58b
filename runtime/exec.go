package runtime

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOpts are the inputs of Exec besides the process spec.
type ExecOpts struct {
	// Detach returns as soon as the process runs (exit is then 0); the
	// process is reparented to the container's init when we exit.
	Detach bool
	// PidFile, if set, receives the host pid of the new process.
	PidFile string
	// ConsoleSocket receives the pty master when p.Terminal is set.
	ConsoleSocket string
	// OnConsole, when p.Terminal is set and there is no ConsoleSocket, is
	// called with the pty master before the process runs (foreground tty).
	OnConsole func(master *os.File)
	// Stdin, Stdout, Stderr: as in CreateOpts (nil = /dev/null).
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles become fds 3, 4, ... in the process.
	ExtraFiles []*os.File
}

// Exec runs p inside the running container (its namespaces, cgroup, root)
// and, unless Detach, waits for it: exit is its status (128+N on signal N).
func (c *Container) Exec(p *specs.Process, o ExecOpts) (exit int, err error) {
	if _, err := c.checkStatus(OpExec); err != nil {
		return -1, err
	}
	return -1, errNotImplemented
}
