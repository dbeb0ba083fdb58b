package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestRunKilledThenDeleteForce (issue 11): `corral run` SIGKILLed at any
// instant of its start leaves something `corral delete -f ID` removes, after
// which the name is free and no cgroup, mount or process of it is left. A
// run killed in its first milliseconds used to leave an empty state
// directory that delete -f ignored, so the name stayed taken.
//
// Every `corral run` starts inside a test cgroup (a shell moves itself
// there, then execs corral), so any process it forked, the container's
// init included, is found afterwards wherever it still is.
func TestRunKilledThenDeleteForce(t *testing.T) {
	e := runNewEnv(t, false)
	cg := testutil.NewCgroup(t, fmt.Sprintf("tests-runkilled-%d", os.Getpid()), testutil.CgroupLimits{})
	procsFile := filepath.Join(cg.Dir("pids"), "cgroup.procs")
	if cg.Dir("pids") == "" {
		procsFile = filepath.Join(cg.Dir("memory"), "cgroup.procs")
	}
	// What a kill between the mkdir that claims the id and the first state
	// write leaves, staged (that window is microseconds wide, so the sweep
	// below hits it only sometimes): an empty directory, and one with the
	// temporary file of an unfinished state write.
	for _, tmp := range []string{"", ".state-12345"} {
		name := runName("stale")
		dir := filepath.Join(e.root, name)
		if err := os.Mkdir(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if tmp != "" {
			if err := os.WriteFile(filepath.Join(dir, tmp), []byte(`{"id":`), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if r := e.run(t, append(e.runFlags(), "--name", name, "--", "true")...); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
			t.Fatalf("run over a stale state directory: exit %d, %s", r.code, r.stderr)
		}
		if out, err := exec.Command(e.corral, "--root", e.root, "delete", "-f", name).CombinedOutput(); err != nil {
			t.Fatalf("delete -f of a stale state directory: %v\n%s", err, out)
		}
		if r := e.run(t, append(e.runFlags(), "--name", name, "--", "true")...); r.code != 0 {
			t.Fatalf("the name is still taken after delete -f of its stale state directory: exit %d, %s", r.code, r.stderr)
		}
	}

	// From before corral has parsed its flags to a running container.
	for _, ms := range []float64{0, 0.5, 1, 2, 3, 5, 8, 12, 20, 30, 45, 70, 100, 150, 250} {
		delay := time.Duration(ms * float64(time.Millisecond))
		name := runName("killed")
		args := append(e.runFlags(), "--name", name, "--memory", "64m", "--", "sleep", "1000")
		cmd := exec.Command("sh", append([]string{"-c", `echo 0 >"$0" && exec "$@"`, procsFile, e.corral, "--root", e.root}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay) // the instant of the kill is the variable here, not a wait for a condition
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		out, err := exec.Command(e.corral, "--root", e.root, "delete", "-f", name).CombinedOutput()
		if err != nil {
			t.Fatalf("killed after %v: delete -f %s: %v\n%s", delay, name, err, out)
		}
		if _, err := os.Lstat(filepath.Join(e.root, name)); err == nil {
			t.Fatalf("killed after %v: delete -f left the state directory", delay)
		}
		for _, parent := range runCgroupParents() {
			if _, err := os.Stat(filepath.Join(parent, name)); err == nil {
				t.Fatalf("killed after %v: delete -f left cgroup %s", delay, filepath.Join(parent, name))
			}
		}
		// An init that was never recorded exits by itself once its parent
		// is gone (EOF on the sync socket): wait for that, bounded.
		deadline := time.Now().Add(20 * time.Second)
		for {
			pids, err := cg.Procs()
			if err != nil {
				t.Fatal(err)
			}
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("killed after %v: processes %v of the run survive delete -f", delay, pids)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), name) {
			t.Fatalf("killed after %v: a mount naming %s is left on the host", delay, name)
		}
		// The name is free again.
		r := e.run(t, append(e.runFlags(), "--name", name, "--", "true")...)
		if r.code != 0 {
			t.Fatalf("killed after %v: the name is still taken after delete -f: exit %d, %s", delay, r.code, r.stderr)
		}
	}
}
