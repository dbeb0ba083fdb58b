package fusefs

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
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
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(init), "-p", "--", "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Skipf("nsenter: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// nsenter forks the command into the namespace: wait for that child.
	entered := 0
	for deadline := time.Now().Add(5 * time.Second); entered == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, nsPid, err := statusIDs("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"); err == nil && nsPid != cmd.Process.Pid {
			entered = cmd.Process.Pid // nsenter exec'd in place (older util-linux forks; both work)
		}
		b, _ := exec.Command("pgrep", "-P", strconv.Itoa(cmd.Process.Pid)).Output()
		if p, err := strconv.Atoi(string(trimNL(b))); err == nil {
			entered = p
		}
	}
	if entered == 0 {
		t.Fatal("nsenter started nothing in the namespace")
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

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
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
