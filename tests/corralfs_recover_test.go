package tests

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// A corralfs killed without systemd's fd store takes its connection with
// it: a running container's views answer "Transport endpoint is not
// connected" (LXCFS users restart their containers). The next corralfs on
// the same mount point binds its fresh views over the dead ones in every
// running container: reads recover without a restart, and after the first
// good read no read fails again.
func TestCorralfsRecoversRunningContainers(t *testing.T) {
	testutil.RequireRoot(t)
	e := runNewEnv(t, false)
	mp := corralfsMountpoint(t)
	d := startCorralfs(t, mp)
	e.views = mp

	c := &surviveContainer{name: runName("recover"), dir: t.TempDir(), done: make(chan struct{})}
	// One line a read: the first line of meminfo, or READFAIL.
	startContainer(t, e, c, "--memory", "256m", "--", "sh", "-c",
		`while :; do head -n1 /proc/meminfo 2>/dev/null || echo READFAIL; head -n1 /proc/uptime >/dev/null 2>&1 || echo READFAIL; sleep 0.02; done`)
	const want = "MemTotal:         262144 kB"
	lines := func() []string { return strings.Split(strings.TrimSpace(c.output("stdout")), "\n") }
	testutil.WaitFor(t, 30*time.Second, "the container reading its own MemTotal", func() bool {
		return strings.Contains(c.output("stdout"), want)
	})

	d.kill9() // supervisor and (by its liveness pipe) worker: no fd store keeps the connection
	testutil.WaitFor(t, 20*time.Second, "reads failing after the daemon's death", func() bool {
		return strings.Contains(c.output("stdout"), "READFAIL")
	})

	d2 := startCorralfs(t, mp)
	var recoveredAt int
	testutil.WaitFor(t, 30*time.Second, "reads recovering after the restart", func() bool {
		ls := lines()
		for i := len(ls) - 1; i >= 0; i-- {
			if ls[i] == "READFAIL" {
				if i+1 < len(ls) && ls[i+1] == want {
					recoveredAt = i + 1
					return true
				}
				return false
			}
		}
		return false
	})
	// Keep reading: after recovery no read fails (200 reads, about 4 s).
	testutil.WaitFor(t, 60*time.Second, "200 reads after the recovery", func() bool { return len(lines()) > recoveredAt+200 })
	ls := lines()
	for i, l := range ls[recoveredAt:] {
		if l != want {
			t.Fatalf("read %d after the recovery: %q (want %q)", i, l, want)
		}
	}
	select {
	case <-c.done:
		t.Fatalf("the container exited: %v\n%s", c.err, c.output("stderr"))
	default:
	}
	if !strings.Contains(d2.out.String(), "replaced the views a dead corralfs left") {
		t.Errorf("the new daemon did not say it replaced views:\n%s", d2.out.String())
	}
	// No dead bind is left in the container, under the new ones or beside.
	out, err := exec.Command(e.corral, "--root", e.root, "state", c.name).Output()
	if err != nil {
		t.Fatalf("corral state: %v", err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("corral state %s: %v", out, err)
	}
	live := mountDevice(t, "/proc/self/mountinfo", mp)
	views := 0
	for _, line := range strings.Split(runReadFile(t, fmt.Sprintf("/proc/%d/mountinfo", st.Pid)), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.Contains(line, " - fuse.corralfs ") {
			views++
			if f[2] != live {
				t.Errorf("a view of superblock %s (the live mount is %s) is left in the container: %s", f[2], live, line)
			}
		}
	}
	if views == 0 {
		t.Error("no views in the container's mountinfo")
	}
	// Stop it the way a user would, so corral run cleans up after it.
	if out, err := exec.Command(e.corral, "--root", e.root, "kill", c.name, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("corral kill: %v\n%s", err, out)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("corral run did not return after its container was killed")
	}
}

// mountDevice is the major:minor of the mount at mp in a mountinfo file.
func mountDevice(t *testing.T, mountinfoPath, mp string) string {
	t.Helper()
	dev := ""
	for _, line := range strings.Split(runReadFile(t, mountinfoPath), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == mp {
			dev = f[2] // the last (top) mount wins
		}
	}
	if dev == "" {
		t.Fatalf("nothing mounted at %s", mp)
	}
	return dev
}
