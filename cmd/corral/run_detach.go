package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

// reaperCommand is the hidden subcommand a `corral run -d --rm` leaves
// behind: it waits for the container to exit and deletes it. Nothing else
// would: a detached container has no parent that waits for it.
const reaperCommand = "__run-reaper"

// runDetached creates and starts the container with its output in
// ROOT/ID.log, prints the id and returns. With --rm a reaper process deletes
// the container (and the log) when it exits.
func runDetached(rt *runtime.Runtime, f *runFlags, id string, rs *runspec.Result) (int, error) {
	logPath := detachLogPath(rt, id)
	if err := os.MkdirAll(runtimeRoot(rt), 0o700); err != nil {
		return exitRuntimeError, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return exitRuntimeError, fmt.Errorf("detach log: %w", err)
	}
	defer logf.Close()
	c, err := rt.Create(id, runtime.CreateOpts{Bundle: rs.Bundle, Spec: rs.Spec, Stdout: logf, Stderr: logf, NoNewKeyring: f.noNewKeyring})
	if err != nil {
		os.Remove(logPath)
		return execErrorCode(err), err
	}
	if err := c.Start(); err != nil {
		c.Delete(true)
		os.Remove(logPath)
		return execErrorCode(err), err
	}
	if f.rm {
		if err := spawnReaper(rt, id); err != nil {
			return exitRuntimeError, fmt.Errorf("--rm: %w (the container runs; delete it with 'corral delete -f %s')", err, id)
		}
	}
	fmt.Println(id)
	return 0, nil
}

// runtimeRoot is the state root the runtime uses.
func runtimeRoot(rt *runtime.Runtime) string {
	if rt.Root == "" {
		return runtime.DefaultRoot
	}
	return rt.Root
}

// spawnReaper starts `corral --root ROOT __run-reaper ID` in its own
// session, detached from our terminal and output, and does not wait.
func spawnReaper(rt *runtime.Runtime, id string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(exe, "--root", runtimeRoot(rt), reaperCommand, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:    reaperCommand + " ID",
		Short:  "internal: wait for a detached --rm container to exit and delete it",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := reaperMain(newRuntime(), args); code != 0 {
				return ExitStatus(code)
			}
			return nil
		},
	})
}

// reaperMain is the reaper: wait until the container's init exits (a
// pidfd works for a process that is not our child), then delete the
// container and its log. Returns the exit status.
func reaperMain(rt *runtime.Runtime, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: corral %s ID\n", reaperCommand)
		return 2
	}
	id := args[0]
	c, err := rt.Load(id)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral %s: %v\n", reaperCommand, err)
		return 1
	}
	if pid := c.Pid(); pid > 0 {
		if err := waitPidExit(pid); err != nil && !errors.Is(err, unix.ESRCH) {
			fmt.Fprintf(os.Stderr, "corral %s: %v\n", reaperCommand, err)
			return 1
		}
	}
	// The pid could have been reused between Load and pidfd_open; the
	// runtime checks the init's start time, so only delete a container it
	// sees stopped, and wait again otherwise.
	for {
		st, err := c.Status()
		if err != nil {
			return 1
		}
		if st == runtime.Stopped {
			break
		}
		if err := waitPidExit(c.Pid()); err != nil && !errors.Is(err, unix.ESRCH) {
			return 1
		}
	}
	os.Remove(detachLogPath(rt, id))
	if err := c.Delete(true); err != nil {
		fmt.Fprintf(os.Stderr, "corral %s: %v\n", reaperCommand, err)
		return 1
	}
	return 0
}

// waitPidExit blocks until pid exits, through a pidfd (poll says readable
// when the process is gone). ESRCH: it is already gone.
func waitPidExit(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}
