package inputs

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

func newTestResolver(t *testing.T) *Resolver {
	t.Helper()
	r, err := NewResolver("", realReader(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// On a kernel without NS_GET_TGID_FROM_PIDNS (Linux < 6.9, the test VM's
// 6.1) the ancestry finds the init, without a /proc scan.
func TestResolveByAncestry(t *testing.T) {
	init, child, _ := startPidNS(t)
	r := newTestResolver(t)
	r.noIoctl.Store(true)
	slots := cap(r.scanSlots)
	r.scanSlots = make(chan struct{}) // a scan would block forever: fail by timeout instead
	done := make(chan struct{})
	var c Caller
	var err error
	go func() { c, err = r.Resolve(child); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the ancestry lookup scanned /proc")
	}
	r.scanSlots = make(chan struct{}, slots)
	if err != nil || c.InitPid != init {
		t.Fatalf("Resolve(%d) = %+v, %v; want init %d", child, c, err, init)
	}
}

// A process that entered the namespace by setns (`corral exec`, here
// nsenter) has its parent outside: the kernel, or else a scan, finds the
// init.
func TestResolveSetnsProcess(t *testing.T) {
	init, _, _ := startPidNS(t)
	bb := testutil.StaticBusybox(t)
	cmd := exec.Command(bb, "nsenter", "-t", strconv.Itoa(init), "-p", "--", bb, "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// nsenter forks the command into the namespace: wait for that child.
	entered := 0
	children := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + strconv.Itoa(cmd.Process.Pid) + "/children"
	for deadline := time.Now().Add(10 * time.Second); entered == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(children)
		if f := strings.Fields(string(b)); len(f) > 0 {
			entered, _ = strconv.Atoi(f[0])
		}
	}
	if entered == 0 {
		t.Fatal("nsenter started nothing in the namespace")
	}
	if ns, _ := nsInode("/proc/" + strconv.Itoa(entered) + "/ns/pid"); ns != mustNS(t, init) {
		t.Fatalf("nsenter's child %d is not in the namespace", entered)
	}
	for _, noIoctl := range []bool{false, true} {
		r := newTestResolver(t)
		r.noIoctl.Store(noIoctl)
		c, err := r.Resolve(entered)
		if err != nil || c.InitPid != init {
			t.Fatalf("noIoctl=%v: Resolve(%d) = %+v, %v; want init %d", noIoctl, entered, c, err, init)
		}
	}
}

func mustNS(t *testing.T, pid int) uint64 {
	t.Helper()
	ns, err := nsInode("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// One namespace's lookup under way (however slow) does not delay another
// namespace's.
func TestLookupDoesNotBlockOtherNamespaces(t *testing.T) {
	_, childA, _ := startPidNS(t)
	initB, childB, _ := startPidNS(t)
	r := newTestResolver(t)
	nsA, err := nsInode("/proc/" + strconv.Itoa(childA) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	stuck := &nsLookup{done: make(chan struct{})}
	r.pending[nsA] = stuck // namespace A's lookup hangs
	blockedA := make(chan struct{})
	go func() { r.Resolve(childA); close(blockedA) }()
	start := time.Now()
	c, err := r.Resolve(childB)
	if err != nil || c.InitPid != initB {
		t.Fatalf("Resolve(%d) = %+v, %v; want init %d", childB, c, err, initB)
	}
	t.Logf("namespace B resolved in %v while A's lookup hung", time.Since(start))
	select {
	case <-blockedA:
		t.Fatal("a second lookup of A did not wait for the one under way")
	default:
	}
	stuck.err = errNoCaller
	close(stuck.done)
	<-blockedA
}

// With the pidfd budget used up, entries check the start time instead and
// stay correct; the budget is given back when an init dies.
func TestPidfdBudget(t *testing.T) {
	_, childA, cmdA := startPidNS(t)
	initB, childB, _ := startPidNS(t)
	r := newTestResolver(t)
	r.maxPidfds = 1
	if _, err := r.Resolve(childA); err != nil {
		t.Fatal(err)
	}
	cB, err := r.Resolve(childB)
	if err != nil || cB.InitPid != initB {
		t.Fatalf("Resolve(%d) over budget = %+v, %v; want init %d", childB, cB, err, initB)
	}
	if got := r.pidfds.Load(); got != 1 {
		t.Fatalf("%d pidfds held, budget 1", got)
	}
	r.mu.RLock()
	eB := r.byNS[cB.Key.NSInode]
	r.mu.RUnlock()
	if eB.pidfd >= 0 || !r.alive(eB) {
		t.Fatalf("entry over budget: pidfd %d alive %v; want no pidfd, alive", eB.pidfd, r.alive(eB))
	}
	cmdA.Process.Kill()
	cmdA.Wait()
	r.Forget()
	if got := r.pidfds.Load(); got != 0 {
		t.Fatalf("%d pidfds held after A's init died, want 0", got)
	}
}
