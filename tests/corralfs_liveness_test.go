package tests

// Issue 11: a worker that stops answering (here SIGSTOP) is replaced by
// the supervisor's liveness check; before, every read waited forever.

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

func TestLivenessReplacesStoppedWorker(t *testing.T) {
	testutil.RequireRoot(t)
	forEachRecovery(t, func(t *testing.T, r recovery) {
		// Looser in the VM, whose emulated CPU may take seconds per read.
		timeout := time.Duration(testutil.Repeat(2, 8)) * time.Second
		d, e := floodDaemon(t, append([]string{"--liveness-timeout", timeout.String()}, r.args...)...)
		stopped := d.status().WorkerPid
		if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(stopped, syscall.SIGCONT) })
		// The container (its start binds the views, which asks the
		// daemon too, then its first read) waits for the stopped worker
		// until the supervisor replaces it: one timeout, plus up to
		// half of one for the check to run, plus a worker's start.
		start := time.Now()
		ms := firstReads(t, e, 1)
		took := time.Since(start)
		t.Logf("first read with the worker stopped: %.0f ms (the container's whole run %v)", ms[0], took.Round(time.Millisecond))
		if bound := 3*timeout + 10*time.Second; took > bound {
			t.Errorf("the container took %v to start and read, want under %v", took, bound)
		}
		if !processGone(stopped) {
			t.Errorf("the stopped worker %d is still there", stopped)
		}
		st := d.status()
		if st.WorkerPid == stopped || st.Restarts < 1 {
			t.Errorf("status after the liveness check: worker %d (stopped %d), restarts %d", st.WorkerPid, stopped, st.Restarts)
		}
		out, err := exec.Command(d.cmd.Path, "status", "--control-socket", d.ctl).CombinedOutput()
		if err != nil || !regexp.MustCompile(`of them unresponsive [1-9]`).Match(out) {
			t.Errorf("corralfs status does not show the replacement: %v\n%s", err, out)
		}
		if !strings.Contains(d.out.String(), "worker left a read unanswered; replacing it") {
			t.Errorf("no log line for the replacement:\n%s", d.out.String())
		}
		// And the new worker serves the next container at once.
		checkFirstReads(t, "after the replacement", firstReads(t, e, 3))
	})
}
