package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/runspec"
)

// `corral run --init` runs this very binary (static, so it needs nothing
// of the container's root) as the container's PID 1, bound read-only at
// initPath, in front of the command: it forwards every signal to the
// command and reaps every orphan, as docker's --init (tini) does. Without
// it, a command that is PID 1 and has no handler for SIGTERM or SIGINT
// never sees them (the kernel protects a namespace's init), and zombies
// of programs that do not wait for their children pile up.
// (runspec.addInit binds it at runspec.InitPath.)
const initCommand = runspec.InitCommand

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:                initCommand + " -- COMMAND [ARG...]",
		Short:              "internal: the --init of a container (PID 1 that forwards signals and reaps orphans)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			os.Exit(initMain(args)) // main calls initMain before cobra; kept for --help
			return nil
		},
	})
}

// initMain starts args as a child, forwards every signal it gets to it,
// reaps every child that exits and, when the command ends, exits as it
// did (128+N for signal N).
func initMain(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "corral init: no command")
		return 125
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral init: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs) // everything catchable, SIGCHLD included
	proc, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral init: %v\n", err)
		return 126
	}
	child := proc.Pid
	for s := range sigs {
		sig := s.(unix.Signal)
		if sig == unix.SIGURG {
			continue // the Go runtime's own preemption signal
		}
		if sig != unix.SIGCHLD {
			unix.Kill(child, sig)
			continue
		}
		if code, done := reapAll(child); done {
			return code
		}
	}
	return 0
}

// reapAll collects every exited child; done when the command was one.
func reapAll(child int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == child {
			done = true
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			}
		}
	}
}
