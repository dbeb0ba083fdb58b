package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The liveness check (issue 11, fusefs/survival/liveness.go): the
// supervisor reads a view through the mount itself, the way a container
// does; a read left unanswered for --liveness-timeout gets the worker
// killed and replaced.

const defaultLivenessTimeout = 10 * time.Second

// probeView is what the probe reads: small, and computed by the same path
// as every view.
const probeView = "proc/uptime"

// probeMount reads probeView through the mount in a child process
// (`corralfs probe-read`); it returns once the worker answered (an error
// is an answer too: the worker is alive).
//
// Not in the supervisor itself: behind the relay (kernels before 6.9) a
// request the supervisor's pumps have read can no longer be abandoned,
// not even by SIGKILL (the kernel waits for its answer), and a probe read
// that no worker will answer (the worker stopped at shutdown with the
// probe queued to it) held the supervisor's thread, so the process could
// not exit, so its /dev/fuse descriptor stayed open, so the connection
// never ended: the supervisor, its mount and every reader hung for good
// (seen in the v2 VM: `corralfs` ignoring SIGTERM and SIGKILL). A stuck
// child holds no descriptor of the connection: it ends when the
// connection does.
func (s *supervisor) probeMount() {
	if err := probeCommand(s.mp).Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			s.log.Warn("liveness probe could not start", "err", err)
		}
	}
}

// probeCommand is the child that reads probeView through the mount at mp
// once. /proc/self/exe: the running binary, even after an upgrade replaced
// the file (a broken new one must not look like an answer); it dies with
// the supervisor.
func probeCommand(mp string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", "probe-read", filepath.Join(mp, probeView))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// waitAnswering waits, at startup, until a read of probeView through the
// mount succeeds, each try made by a child for the reason probeMount
// gives: a supervisor blocked in its own mount before the first worker
// answered could not be stopped by any signal. A child still stuck at the
// deadline is killed and left to end with the connection.
func (s *supervisor) waitAnswering(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	path := filepath.Join(s.mp, probeView)
	last := errors.New("no answer")
	for {
		cmd := probeCommand(s.mp)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting a probe read of %s: %w", path, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			last = err
		case <-time.After(time.Until(deadline)):
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s does not answer within %s", path, timeout)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer within %s: the last read %v", path, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runProbeRead is `corralfs probe-read PATH`: open and read PATH once.
// Any outcome is an answer; the exit status says which for the curious.
func runProbeRead(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: corralfs probe-read PATH (started by the supervisor's liveness check)")
		return 2
	}
	b, err := os.ReadFile(args[0])
	if err != nil || len(b) == 0 {
		return 1
	}
	return 0
}
