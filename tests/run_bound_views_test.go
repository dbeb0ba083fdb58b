package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/fusefs/facts"
)

// Bound views (docs/design.md decisions 49-52): `corral run` binds the
// container's own files below BOUND/<key>, which the kernel serves from
// the page cache. A container may only ever read its own: this test
// reaches container A's inode from everywhere else it can be reached and
// expects EACCES, after A has read it (its content is in the page cache).
// Out of scope: a descriptor A passes over a socket (A gives its content
// away; nothing a file system can refuse).
func TestRunBoundViewsIsolation(t *testing.T) {
	e := runNewEnv(t, true)
	runNeedBound(t, e.views)
	nameA, nameB := runName("bound-a"), runName("bound-b")
	keyA, _ := facts.BoundKeyOfCgroup("/corral/" + nameA)
	keyB, _ := facts.BoundKeyOfCgroup("/corral/" + nameB)

	// A: a long-running container with 256 MiB.
	r := e.run(t, "run", "-d", "--views", e.views, "--sysinfo", "off", "--name", nameA, "-m", "256m", "--", "sleep", "600")
	if r.code != 0 {
		t.Fatalf("run -d: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() {
		e.run(t, "kill", nameA, "KILL")
		runWaitStatus(t, e, nameA, "stopped")
		e.run(t, "delete", "-f", nameA)
		// run -d's log stays after delete (noticed, left to the runtime).
		os.Remove(filepath.Join(e.root, nameA+".log"))
	})
	pidA := runStatePid(t, e, nameA)

	// A reads its own file: bound (not the shared one), its limit, and
	// now in the page cache.
	out := e.run(t, "exec", nameA, "sh", "-c", "grep ' /proc/meminfo ' /proc/self/mountinfo; cat /proc/meminfo; cat /proc/meminfo")
	if out.code != 0 {
		t.Fatalf("exec in A: exit %d: %s", out.code, out.stderr)
	}
	if !strings.Contains(out.stdout, "/"+facts.BoundDir+"/"+keyA+"/proc/meminfo /proc/meminfo") {
		t.Fatalf("A's /proc/meminfo is not its bound file:\n%s", out.stdout)
	}
	if n := strings.Count(out.stdout, "MemTotal:         262144 kB"); n != 2 {
		t.Fatalf("A's meminfo (cat twice) shows MemTotal 262144 kB %d times:\n%s", n, out.stdout)
	}

	// The host: the mount's path of A's file, and A's /proc/PID/root.
	for _, p := range []string{
		filepath.Join(e.views, facts.BoundDir, keyA, "proc/meminfo"),
		fmt.Sprintf("/proc/%d/root/proc/meminfo", pidA),
	} {
		if b, err := os.ReadFile(p); !errors.Is(err, syscall.EACCES) {
			t.Errorf("host read of %s: %v (%d bytes), want EACCES", p, err, len(b))
		}
	}

	// B, another container given the whole mount: A's file by the mount's
	// path is refused, its own (the same way) is its own content.
	script := fmt.Sprintf(`cat /views/%[1]s/%[2]s/proc/meminfo >/dev/null 2>/tmp/err; echo "A: $? $(cat /tmp/err)"
grep MemTotal /views/%[1]s/%[3]s/proc/meminfo`, facts.BoundDir, keyA, keyB)
	got := e.sh(t, []string{"--name", nameB, "-m", "128m", "-v", e.views + ":/views:ro"}, script)
	if !strings.Contains(got, "A: 1 ") || !strings.Contains(got, "Permission denied") {
		t.Errorf("B reading A's bound meminfo: %q, want Permission denied", got)
	}
	if !strings.Contains(got, "MemTotal:         131072 kB") {
		t.Errorf("B reading its own bound meminfo through the mount: %q, want MemTotal 131072 kB", got)
	}
}

// runStatePid is the init pid `corral state NAME` reports.
func runStatePid(t *testing.T, e *runEnv, name string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid, ok := runState(t, e, name)["pid"].(float64); ok && pid > 0 {
			return int(pid)
		}
		if time.Now().After(deadline) {
			t.Fatalf("corral state %s: no pid", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// busybox cat reads with sendfile, which takes the page cache up to the
// size the kernel has without asking for attributes: an OPEN that renders
// must hand the kernel the new content and size first (decision 51), or
// cat shows an old uptime, or a meminfo cut or padded.
func TestRunBoundViewsSendfile(t *testing.T) {
	e := runNewEnv(t, true)
	runNeedBound(t, e.views)
	out := e.sh(t, []string{"--rootfs", runBusybox(t), "-m", "256m"}, `for i in 1 2 3; do cat /proc/uptime; sleep 0.3; done
cat /proc/meminfo > /tmp/m; echo "lines $(wc -l < /tmp/m) bytes $(wc -c < /tmp/m) last $(tail -c 1 /tmp/m | od -An -c)"; grep MemTotal /tmp/m`)
	lines := strings.Split(out, "\n")
	if len(lines) < 5 {
		t.Fatalf("output:\n%s", out)
	}
	if lines[0] == lines[1] || lines[1] == lines[2] {
		t.Errorf("uptime read with sendfile 0.3 s apart did not change:\n%s", out)
	}
	if !strings.Contains(out, "MemTotal:         262144 kB") || !regexp.MustCompile(`last +\\n`).MatchString(out) {
		t.Errorf("meminfo read with sendfile is not whole:\n%s", out)
	}
}

// runNeedBound skips where the corralfs at dir offers no bound views: it
// leaves them out behind the relay (kernels before 6.9, docs/design.md
// decision 52), and `corral run` then binds the shared files.
func runNeedBound(t *testing.T, dir string) {
	t.Helper()
	if !offersBound(dir) {
		t.Skipf("the corralfs at %s offers no bound views (relay: kernel before 6.9)", dir)
	}
}

func offersBound(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, facts.BoundDir))
	return err == nil
}
