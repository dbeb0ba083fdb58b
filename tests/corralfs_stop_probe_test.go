package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// The supervisor is told to stop while its liveness probe waits on a
// stopped worker. Behind the relay a request its pumps have read can no
// longer be abandoned, not even by SIGKILL: when the supervisor made the
// probe read itself, that thread waited for an answer no worker would
// give, the process could not exit, its /dev/fuse descriptor kept the
// connection alive, and the daemon, its mount and every reader hung for
// good (the v2 VM, where the relay is the only recovery). It must exit.
func TestCorralfsStopsWithProbeInFlight(t *testing.T) {
	testutil.RequireRoot(t)
	forEachRecovery(t, func(t *testing.T, r recovery) {
		mp := corralfsMountpoint(t)
		// Probes every 2 s; a stuck one replaces the worker only after 4 s.
		d := startCorralfs(t, mp, append([]string{"--liveness-timeout", "4s"}, r.args...)...)
		worker, conn := d.status().WorkerPid, testutil.FuseConnOf(mp)
		if err := syscall.Kill(worker, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(worker, syscall.SIGCONT) })
		// Wait for the probe to be under way: a process of the daemon's
		// waiting for a FUSE answer.
		for deadline := time.Now().Add(10 * time.Second); !daemonWaitsInFUSE(d); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no liveness probe under way after 10 s")
			}
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			select {
			case <-d.done:
				t.Error("the supervisor ignored SIGTERM for 30 s with a probe in flight")
			case <-time.After(10 * time.Second):
				t.Errorf("the supervisor survives SIGKILL with a probe in flight: %s", abortFUSE(conn))
			}
		}
		if !processGone(worker) {
			syscall.Kill(worker, syscall.SIGKILL)
			t.Errorf("the stopped worker %d outlived its supervisor", worker)
		}
	})
}

// daemonWaitsInFUSE: a thread of the supervisor or of one of its children
// waits for a FUSE answer.
func daemonWaitsInFUSE(d *corralfsDaemon) bool {
	for _, pid := range append([]int{d.cmd.Process.Pid}, childrenOf(d.cmd.Process.Pid)...) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, w := range tasks {
			if b, _ := os.ReadFile(w); strings.Contains(string(b), "request_wait_answer") {
				return true
			}
		}
	}
	return false
}

// abortFUSE ends FUSE connection conn (testutil.FuseConnOf, taken while mounted:
// a stopping daemon detaches its mount) through fusectl, so that a daemon
// that cannot exit stops poisoning the machine; it says what it did.
func abortFUSE(conn string) string {
	if conn == "" {
		return "its connection is unknown"
	}
	dir, err := testutil.FusectlDir()
	if err != nil {
		return err.Error()
	}
	if err := os.WriteFile(filepath.Join(dir, conn, "abort"), []byte("1"), 0); err != nil {
		return "aborting connection " + conn + ": " + err.Error()
	}
	return "connection " + conn + " aborted"
}
