package inputs

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/tests/testutil"
)

func realReader(t *testing.T) cgroupreader.Reader { return mustReader(t) }

func mustReader(t testing.TB) cgroupreader.Reader {
	t.Helper()
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startPidNS runs `sh -c 'sleep 60 & wait'` as the init of a new pid
// namespace and returns the init and its child (host pids).
func startPidNS(t *testing.T) (init, child int, cmd *exec.Cmd) {
	t.Helper()
	testutil.RequireRoot(t)
	cmd = exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	init = cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/task/" + strconv.Itoa(init) + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
			return init, child, cmd
		}
	}
	t.Fatal("the namespace's init started no child")
	return
}

func TestResolveContainerCaller(t *testing.T) {
	init, child, _ := startPidNS(t)
	reader := realReader(t)
	r, err := NewResolver("", reader)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	c, err := r.Resolve(child)
	if err != nil {
		t.Fatal(err)
	}
	if c.HostNamespace || c.InitPid != init {
		t.Fatalf("child %d resolved to %+v, want init %d", child, c, init)
	}
	st, err := startTime("/proc", init)
	if err != nil {
		t.Fatal(err)
	}
	if c.Key.InitStart != st || c.InitStart != ticksToDuration(st) {
		t.Errorf("init start %d (%v), want %d", c.Key.InitStart, c.InitStart, st)
	}
	want, _ := reader.PathsOf(init)
	if pathsKey(c.Paths) != pathsKey(want) {
		t.Errorf("paths %+v, want the init's %+v", c.Paths, want)
	}
	// Hits do not scan /proc again, for any process of the namespace.
	for _, pid := range []int{child, init, child} {
		c2, err := r.Resolve(pid)
		if err != nil || c2.Key != c.Key {
			t.Fatalf("Resolve(%d) = %+v, %v; want key %+v", pid, c2, err, c.Key)
		}
	}
	if r.lookups.Load() != 1 {
		t.Errorf("%d lookups for one namespace, want 1", r.lookups.Load())
	}
}

func TestResolveHostCaller(t *testing.T) {
	testutil.RequireRoot(t)
	reader := realReader(t)
	r, err := NewResolver("", reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Resolve(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := reader.PathsOf(os.Getpid())
	if !c.HostNamespace || c.Key.HostPaths != pathsKey(want) || c.InitPid != 0 {
		t.Errorf("host caller resolved to %+v", c)
	}
	if _, err := r.Resolve(0); err == nil {
		t.Error("pid 0 (a caller outside our pid namespace) resolved")
	}
	if _, err := r.Resolve(1 << 30); err == nil {
		t.Error("a pid that does not exist resolved")
	}
}

// A cache entry whose init is not the process it was made for any more
// (the init died and its pid was reused) must never be used.
func TestCallerCacheRejectsReusedPid(t *testing.T) {
	init, child, _ := startPidNS(t)
	r, err := NewResolver("", realReader(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ns, err := nsInode("/proc/" + strconv.Itoa(child) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	// Plant an entry that names a live process with the wrong start time:
	// what a recycled pid looks like without a pidfd.
	me := os.Getpid()
	myStart, _ := startTime("/proc", me)
	planted := &nsEntry{initPid: me, initStart: myStart + 1, pidfd: -1}
	r.byNS[ns] = planted
	if r.alive(planted) {
		t.Fatal("an entry with a different start time counts as alive")
	}
	c, err := r.Resolve(child)
	if err != nil {
		t.Fatal(err)
	}
	if c.InitPid != init || r.lookups.Load() != 1 {
		t.Fatalf("stale entry was used: %+v (lookups %d)", c, r.lookups.Load())
	}
	// The right start time without a pidfd is valid...
	if !r.alive(&nsEntry{initPid: me, initStart: myStart, pidfd: -1}) {
		t.Error("a correct start time counts as dead")
	}
	// ...and an entry holding a pidfd dies with its process, whatever
	// later reuses the pid.
	e := r.byNS[ns]
	if e == nil || e.pidfd < 0 {
		t.Fatalf("no pidfd held for the init: %+v", e)
	}
	syscall.Kill(init, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for r.alive(e) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r.alive(e) {
		t.Fatal("entry of a killed init still alive")
	}
	r.Forget()
	if len(r.byNS) != 0 {
		t.Errorf("Forget kept %d dead entries", len(r.byNS))
	}
}

func TestNsPidAndStartTimeParsing(t *testing.T) {
	if p, err := nsPidOf("/proc/self/status"); err != nil || p != os.Getpid() {
		t.Errorf("nsPidOf(self) = %d, %v; want %d (the test runs in the host namespace)", p, err, os.Getpid())
	}
	if _, err := startTime("/proc", os.Getpid()); err != nil {
		t.Error(err)
	}
	// A command name with spaces and parentheses must not shift fields.
	dir := t.TempDir()
	os.MkdirAll(dir+"/7", 0o755)
	os.WriteFile(dir+"/7/stat", []byte("7 (a) b (c) S 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0\n"), 0o644)
	if st, err := startTime(dir, 7); err != nil || st != 12345 {
		t.Errorf("startTime = %d, %v; want 12345", st, err)
	}
}
