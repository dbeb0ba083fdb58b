package survival

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/testutil"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The worker protocol with real processes: the supervisor is this test,
// its workers are this test binary started again (TestMain runs
// testWorker in them), and the "device" is a SEQPACKET socket pair (one
// request per read, as /dev/fuse): the test writes requests on the
// kernel's end, the supervisor's relay reads them from the other end, the
// one the workers inherit and answer on. What is checked is what a
// container would see: every request answered once a worker is replaced,
// and a successor answering from its predecessor's shared memory.

const envTestWorker = "SURVIVAL_TEST_WORKER"

// Requests the test worker knows (FUSE opcodes it never sees).
const (
	opPid      = 1000 + iota // answer: the worker's pid
	opHang                   // answered by any worker but the first, which never answers it
	opPut                    // keep "content of PID" for handle testHandle; answer: the pid
	opGet                    // answer: what the handle store keeps for testHandle
	opRestarts               // answer: the restarts in the shared counters
)

const testHandle = uint64(1_700_000_000_000) << 20

func TestMain(m *testing.M) {
	if os.Getenv(envTestWorker) == "1" {
		os.Exit(testWorker())
	}
	os.Exit(m.Run())
}

// testWorker is a worker: inherit, say ready, wait for release, then
// answer relayed requests on the device until the socket ends.
func testWorker() int {
	in, err := Inherit()
	if err != nil || in.Requests == nil || in.Handles == nil || in.Counters == nil {
		fmt.Fprintln(os.Stderr, "test worker:", err, in)
		return 2
	}
	first := in.Info == "0"
	in.Ready()
	if !in.WaitRelease() {
		return 1
	}
	dev := os.NewFile(uintptr(in.FuseFD), "dev")
	buf := make([]byte, 4096)
	for {
		n, err := in.Requests.Read(buf)
		if err != nil || n == 0 {
			return ExitUnmounted
		}
		raw := buf[:n]
		slot := in.InFlight.Taken(raw)
		op, unique := binary.LittleEndian.Uint32(raw[4:]), uniqueOf(raw)
		var answer []byte
		switch op {
		case opHang:
			if first {
				// Stuck on it, as a deadlocked worker. Not select{}: with
				// no other goroutine the Go runtime would call that a
				// deadlock and exit, and the test's SIGKILL would find
				// no process (a flake under CI's load).
				for {
					time.Sleep(time.Hour)
				}
			}
			answer = []byte(strconv.Itoa(os.Getpid()))
		case opPid:
			answer = []byte(strconv.Itoa(os.Getpid()))
		case opPut:
			in.Handles.Put(testHandle, unique, []byte("content of "+strconv.Itoa(os.Getpid())))
			answer = []byte(strconv.Itoa(os.Getpid()))
		case opGet:
			answer, _, _, _ = in.Handles.Get(testHandle)
		case opRestarts:
			answer = []byte(strconv.FormatUint(in.Counters.Daemon(CounterWorkerRestarts), 10))
		}
		out := binary.LittleEndian.AppendUint64(nil, unique)
		if _, err := dev.Write(append(out, answer...)); err != nil {
			return 1
		}
		in.InFlight.Answered(slot)
	}
}

// testDaemon is a supervisor over a socket-pair device with shared
// memory, and the kernel's end of the device.
type testDaemon struct {
	t      *testing.T
	sup    *Supervisor
	kernel *os.File
	next   uint64
}

func startTestDaemon(t *testing.T) *testDaemon {
	t.Helper()
	t.Setenv(envTestWorker, "1")
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Non-blocking, so that reads of the kernel's end take deadlines.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{t: t, kernel: os.NewFile(uintptr(fds[0]), "kernel"), next: 2}
	dev := os.NewFile(uintptr(fds[1]), "dev")
	handles, err := NewHandleStoreFile()
	if err != nil {
		t.Fatal(err)
	}
	countersF, err := NewCountersFile()
	if err != nil {
		t.Fatal(err)
	}
	counters, err := OpenCounters(countersF)
	if err != nil {
		t.Fatal(err)
	}
	d.sup = &Supervisor{
		Exe: os.Args[0], Args: []string{"-test.run=^$"}, Conn: dev, Init: fuse.InitIn{Major: 7, Minor: 40},
		Handles: handles, CountersFile: countersF, Counters: counters,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ReadyWithin: 20 * time.Second,
	}
	d.sup.Info = func() string { return strconv.Itoa(d.sup.Restarts + d.sup.Upgrades) }
	// "always": a socket is no /dev/fuse to probe RESEND on.
	if rec, err := d.sup.ChooseRecovery("always", nil); err != nil || !rec.Relaying {
		t.Fatalf("recovery %+v, %v; want the relay", rec, err)
	}
	if _, err := d.sup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.sup.Stop(5 * time.Second)
		d.kernel.Close() // the relay's reads end
		// dev stays open: a relay pump between two reads must not read
		// the next test's device under a reused descriptor number.
		select {
		case <-d.sup.RelayGone():
		case <-time.After(10 * time.Second):
			t.Error("the relay did not see the device end")
		}
		handles.Close()
		countersF.Close()
	})
	return d
}

// send writes a request on the kernel's end; its unique id is returned.
func (d *testDaemon) send(op uint32) uint64 {
	d.t.Helper()
	d.next += 2
	if _, err := d.kernel.Write(request(op, d.next, 8)); err != nil {
		d.t.Fatal(err)
	}
	return d.next
}

// answer reads answers until the one to unique (others are dropped).
func (d *testDaemon) answer(unique uint64) string {
	d.t.Helper()
	a, err := d.awaitAnswer(unique)
	if err != nil {
		d.t.Fatal(err)
	}
	return a
}

func (d *testDaemon) awaitAnswer(unique uint64) (string, error) {
	buf := make([]byte, 4096)
	_ = d.kernel.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, err := d.kernel.Read(buf)
		if err != nil {
			return "", fmt.Errorf("no answer to request %d: %v", unique, err)
		}
		if n >= 8 && binary.LittleEndian.Uint64(buf) == unique {
			return string(buf[8:n]), nil
		}
	}
}

func (d *testDaemon) ask(op uint32) string { return d.answer(d.send(op)) }

// waitExit waits for w's exit report (skipping retired workers').
func (d *testDaemon) waitExit(w *Worker) {
	d.t.Helper()
	for {
		select {
		case e := <-d.sup.Exited():
			if e == w {
				return
			}
		case <-time.After(20 * time.Second):
			d.t.Fatalf("worker %d did not exit", w.Pid())
		}
	}
}

// A worker killed with SIGKILL in the middle of a request: the supervisor
// starts another, which answers the request the dead one had read, goes
// on with the handle content the dead one stored, and sees the restart in
// the shared counters.
func TestSupervisorReplacesKilledWorker(t *testing.T) {
	d := startTestDaemon(t)
	first := d.sup.Current()
	if got := d.ask(opPid); got != strconv.Itoa(first.Pid()) {
		t.Fatalf("answered by %s, want the worker %d", got, first.Pid())
	}
	d.ask(opPut)
	stuck := d.send(opHang)
	// The first worker has read the request and will never answer it.
	// The journal keeps it (and nothing else) until answered.
	testutil.WaitFor(t, 10*time.Second, "only the stuck request is in flight", func() bool {
		var kept []uint64
		d.sup.relay.journal.each(func(raw []byte) { kept = append(kept, uniqueOf(raw)) })
		return len(kept) == 1 && kept[0] == stuck
	})
	if err := syscall.Kill(first.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitExit(first)
	if first.ExitCode() == ExitUnmounted {
		t.Fatalf("a killed worker reported %s", first.State())
	}
	second := d.sup.Replace(first)
	if second.Pid() == first.Pid() || d.sup.Current() != second {
		t.Fatalf("replaced by %d (current %d)", second.Pid(), d.sup.Current().Pid())
	}
	if got := d.answer(stuck); got != strconv.Itoa(second.Pid()) {
		t.Errorf("the dead worker's request was answered by %q, want the new worker %d", got, second.Pid())
	}
	if got, want := d.ask(opGet), "content of "+strconv.Itoa(first.Pid()); got != want {
		t.Errorf("the successor's handle content: %q, want the predecessor's %q", got, want)
	}
	if got := d.ask(opRestarts); got != "1" || d.sup.Restarts != 1 {
		t.Errorf("restarts: workers see %s, supervisor %d; want 1", got, d.sup.Restarts)
	}
}

// An upgrade starts the new worker before it retires the old one, and the
// new one serves from then on.
func TestSupervisorUpgrade(t *testing.T) {
	d := startTestDaemon(t)
	old := d.sup.Current()
	nw, err := d.sup.Upgrade()
	if err != nil {
		t.Fatal(err)
	}
	if nw == old || !old.Exited() {
		t.Fatalf("after the upgrade: new %d, old %d exited %v", nw.Pid(), old.Pid(), old.Exited())
	}
	if got := d.ask(opPid); got != strconv.Itoa(nw.Pid()) {
		t.Errorf("answered by %s, want the new worker %d", got, nw.Pid())
	}
	if d.sup.Upgrades != 1 || d.sup.Counters.Daemon(CounterWorkerUpgrades) != 1 {
		t.Errorf("upgrades: %d, counted %d; want 1", d.sup.Upgrades, d.sup.Counters.Daemon(CounterWorkerUpgrades))
	}
	// An upgrade to a binary that does not come up keeps the old worker.
	d.sup.Exe = "/nonexistent/corralfs"
	if _, err := d.sup.Upgrade(); err == nil {
		t.Fatal("an upgrade to a missing binary succeeded")
	}
	if d.sup.Current() != nw || d.sup.Upgrades != 1 {
		t.Errorf("a failed upgrade replaced the worker or counted (%d)", d.sup.Upgrades)
	}
	if got := d.ask(opPid); got != strconv.Itoa(nw.Pid()) {
		t.Errorf("after a failed upgrade answered by %s, want %d", got, nw.Pid())
	}
}

// A worker that stops answering (SIGSTOP) is killed by the liveness check
// and replaced; the probe it left unanswered is answered by the next one.
func TestLivenessReplacesStuckWorker(t *testing.T) {
	d := startTestDaemon(t)
	d.sup.Liveness = 300 * time.Millisecond
	answered := make(chan string, 8)
	// The probe asks through the device, as corralfs reads through the
	// mount (from the supervisor's goroutine: no t.Fatal there).
	d.sup.Probe = func() {
		d.next += 2
		if _, err := d.kernel.Write(request(opPid, d.next, 8)); err != nil {
			answered <- err.Error()
			return
		}
		a, err := d.awaitAnswer(d.next)
		if err != nil {
			a = err.Error()
		}
		answered <- a
	}
	stuck := d.sup.Current()
	d.sup.CheckLiveness()
	if got := <-answered; got != strconv.Itoa(stuck.Pid()) {
		t.Fatalf("probe answered by %s", got)
	}
	if err := syscall.Kill(stuck.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(LivenessEvery(d.sup.Liveness))
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	var replaced *Worker
	for replaced == nil || len(answered) == 0 {
		select {
		case <-tick.C:
			d.sup.CheckLiveness()
		case w := <-d.sup.Exited():
			if w == stuck {
				replaced = d.sup.Replace(w)
			}
		case <-deadline:
			t.Fatalf("stuck worker not replaced (replaced %v, unresponsive %d)", replaced != nil, d.sup.Unresponsive)
		}
	}
	if got := <-answered; got != strconv.Itoa(replaced.Pid()) {
		t.Errorf("the stuck probe was answered by %s, want the new worker %d", got, replaced.Pid())
	}
	if d.sup.Unresponsive != 1 || d.sup.Counters.Daemon(CounterWorkerUnresponsive) != 1 {
		t.Errorf("unresponsive: %d, counted %d; want 1", d.sup.Unresponsive, d.sup.Counters.Daemon(CounterWorkerUnresponsive))
	}
}

// StoreShared hands systemd (here: a socket playing its notify socket)
// the very file, under its name.
func TestStoreSharedPassesTheFile(t *testing.T) {
	sockPath := t.TempDir() + "/notify"
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sockPath}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", sockPath)
	f, err := NewHandleStoreFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	StoreShared(FDNameHandles, f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	buf, oob := make([]byte, 256), make([]byte, 64)
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "FDSTORE=1\nFDNAME="+FDNameHandles {
		t.Errorf("notify message %q", got)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("descriptors %v, %v", fds, err)
	}
	defer unix.Close(fds[0])
	var got, want unix.Stat_t
	_ = unix.Fstat(fds[0], &got)
	_ = unix.Fstat(int(f.Fd()), &want)
	if got.Ino != want.Ino || got.Dev != want.Dev {
		t.Error("systemd was given another file")
	}
}
