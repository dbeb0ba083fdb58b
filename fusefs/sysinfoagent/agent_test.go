package sysinfoagent

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
	"golang.org/x/sys/unix"
)

func hostRAM(t *testing.T) uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	return si.Totalram * uint64(si.Unit)
}

// inProcessKeeper runs a keeper in the test process.
func inProcessKeeper(t *testing.T, sock string, stall time.Duration) *Keeper {
	t.Helper()
	k, err := NewKeeper(KeeperConfig{SocketPath: sock, StallTimeout: stall, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- k.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })
	// The pidfile is written once both sockets listen.
	testutil.WaitFor(t, 5*time.Second, "the keeper", func() bool { _, err := os.Stat(PidPath(sock)); return err == nil })
	return k
}

func inProcessAgent(t *testing.T, sock string, ans Answerer) *Agent {
	t.Helper()
	a, err := NewAgent(AgentConfig{SocketPath: sock, Answerer: ans, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })
	return a
}

// TestAgentAnswersThroughKeeper: the whole path with real processes; the
// answer lands in the caller's memory and names the caller's thread.
func TestAgentAnswersThroughKeeper(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	inProcessAgent(t, sock, AnswererFunc(markerAnswer))
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	c := startContainer(t, sock)
	for i := 0; i < 100; i++ {
		r := c.do("sysinfo", 5*time.Second)
		if r.Errno != 0 || r.Totalram != markerRAM || r.Procs != uint16(c.tid) || r.Uptime != 4242 {
			t.Fatalf("call %d: %+v, want the agent's marker for tid %d", i, r, c.tid)
		}
	}
	// A bad pointer: the real syscall runs and reports EFAULT.
	if r := c.do("efault", 5*time.Second); unix.Errno(r.Errno) != unix.EFAULT {
		t.Errorf("sysinfo(bad pointer): errno %d, want EFAULT", r.Errno)
	}
	// The first call is forwarded; then the agent receives by itself.
	if st := k.Stats(); st.Held != 1 || st.Forwarded < 1 || st.Forwarded > 5 {
		t.Errorf("keeper stats %+v: want one forwarded call, the rest received by the agent", st)
	}
}

// TestOtherNotificationsRunForReal: a notify rule for another syscall in
// the same filter is continued, not answered.
func TestOtherNotificationsRunForReal(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	inProcessAgent(t, sock, AnswererFunc(markerAnswer))
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	c := startContainer(t, sock, policyEnv+"=tuxcall")
	if r := c.do("tuxcall", 5*time.Second); unix.Errno(r.Errno) != unix.ENOSYS {
		t.Errorf("tuxcall: errno %d, want ENOSYS (the real syscall)", r.Errno)
	}
	if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
		t.Errorf("sysinfo: %+v, want the agent's answer", r)
	}
}

// TestKeeperAloneAnswersHostValues: without an agent the real syscall runs.
func TestKeeperAloneAnswersHostValues(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	c := startContainer(t, sock)
	r := c.do("sysinfo", time.Second)
	if r.Errno != 0 || r.Totalram != hostRAM(t) {
		t.Errorf("sysinfo without agent: %+v, want host RAM %d", r, hostRAM(t))
	}
	c.stop()
	// The container ended: its listener hangs up and the keeper lets go.
	testutil.WaitFor(t, 5*time.Second, "the keeper to release the fd", func() bool { return k.Stats().Held == 0 })
}

// TestAgentKilledInFlight: the agent dies (SIGKILL) while it sits on a
// notification; the keeper continues it at once, so the caller gets host
// values within a second, and a new agent serves the same container again.
func TestAgentKilledInFlight(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, time.Minute) // the stall timeout must not be what saves us
	c := startContainer(t, sock)
	agent := startProc(t, "agent", sock, answerEnv+"=hang")
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })

	if _, err := c.stdin.Write([]byte("sysinfo\n")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the notification to reach the agent", func() bool { return k.Stats().Forwarded > 0 })
	time.Sleep(50 * time.Millisecond)
	killed := time.Now()
	agent.Process.Kill()
	r := c.next(time.Second)
	if r.Errno != 0 || r.Totalram != hostRAM(t) {
		t.Fatalf("in-flight sysinfo after the agent died: %+v, want host values", r)
	}
	t.Logf("answered %v after SIGKILL", time.Since(killed))
	if r := c.do("sysinfo", time.Second); r.Totalram != hostRAM(t) {
		t.Errorf("sysinfo with no agent: %+v", r)
	}
	startProc(t, "agent", sock, answerEnv+"=marker")
	testutil.WaitFor(t, 5*time.Second, "the new agent", func() bool { return k.Stats().AgentAttached })
	if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
		t.Errorf("sysinfo with the new agent: %+v, want its answer", r)
	}
}

// TestAgentKilledHoldingDirectNotification: the same when the agent
// received the notification itself (direct mode): the keeper finds it by
// its id in the shared table. With skipStore the agent never records ids,
// as if it died between receiving and recording: the keeper's search past
// the last recorded id finds it anyway.
func TestAgentKilledHoldingDirectNotification(t *testing.T) {
	testutil.RequireRoot(t)
	for _, mode := range []string{"hang-after-1", "hang-after-1-nostore"} {
		t.Run(mode, func(t *testing.T) {
			sock := socketIn(t)
			k := inProcessKeeper(t, sock, time.Minute)
			c := startContainer(t, sock)
			agent := startProc(t, "agent", sock, answerEnv+"="+mode)
			testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
			if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
				t.Fatalf("first call: %+v", r)
			}
			for i := 0; i < 3; i++ { // recorded ids move on; the hang starts later
				c.do("sysinfo", 5*time.Second)
			}
			fwd := k.Stats().Forwarded
			if _, err := c.stdin.Write([]byte("sysinfo\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if k.Stats().Forwarded != fwd {
				t.Fatalf("the call was forwarded, not received by the agent")
			}
			agent.Process.Kill()
			r := c.next(time.Second)
			if r.Errno != 0 || r.Totalram != hostRAM(t) {
				t.Fatalf("call held by the killed agent: %+v, want host values", r)
			}
		})
	}
}

// TestStalledAgentIsBypassed: an agent alive but stuck does not hang the
// caller beyond the stall timeout.
func TestStalledAgentIsBypassed(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 200*time.Millisecond)
	startProc(t, "agent", sock, answerEnv+"=hang")
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	c := startContainer(t, sock)
	r := c.do("sysinfo", 2*time.Second)
	if r.Errno != 0 || r.Totalram != hostRAM(t) {
		t.Fatalf("sysinfo with a stuck agent: %+v", r)
	}
	testutil.WaitFor(t, time.Second, "the keeper to count a stalled answer", func() bool { return k.Stats().StalledAnswers == 1 })
}

// TestStuckDirectAgentIsDetached: an agent that hangs while it receives by
// itself: its held call is continued after the stall timeout, and the
// calls it no longer receives make the keeper take the listener back.
func TestStuckDirectAgentIsDetached(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 200*time.Millisecond)
	c := startContainer(t, sock)
	startProc(t, "agent", sock, answerEnv+"=hang-after-1")
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	for i := 0; i < 4; i++ {
		if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
			t.Fatalf("call %d: %+v", i, r)
		}
	}
	for i := 0; i < 3; i++ { // held by the stuck agent, then queued, then the keeper's
		if r := c.do("sysinfo", 2*time.Second); r.Errno != 0 || r.Totalram != hostRAM(t) {
			t.Fatalf("call with a stuck agent: %+v", r)
		}
	}
	testutil.WaitFor(t, time.Second, "the keeper to drop the agent", func() bool { return !k.Stats().AgentAttached })
	if st := k.Stats(); st.Held != 1 {
		t.Errorf("keeper holds %d fds, want 1", st.Held)
	}
}

// TestKeeperKilledAgentRestartsIt: kill -9 of the keeper; the agent holds
// copies of every listener, starts a new keeper and hands them over.
func TestKeeperKilledAgentRestartsIt(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	startProc(t, "agent", sock, answerEnv+"=marker", spawnEnv+"=1")
	testutil.WaitFor(t, 10*time.Second, "the spawned keeper", func() bool { _, err := KeeperPid(sock); return err == nil })
	c := startContainer(t, sock)
	// The agent attaches to the keeper it started a moment after the
	// pidfile appears; until then the keeper answers with host values.
	testutil.WaitFor(t, 5*time.Second, "the agent's answer", func() bool { return c.do("sysinfo", 5*time.Second).Totalram == markerRAM })
	pid, err := KeeperPid(sock)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(pid, 5*time.Second)
	// Calls during the gap wait for the new keeper; none fails.
	for i := 0; i < 5; i++ {
		r := c.do("sysinfo", 10*time.Second)
		if r.Errno != 0 {
			t.Fatalf("sysinfo after the keeper died: errno %d", r.Errno)
		}
		if r.Totalram != markerRAM {
			t.Errorf("sysinfo %d after the keeper died: %+v, want the agent's answer", i, r)
		}
	}
	if npid, err := KeeperPid(sock); err != nil || npid == pid {
		t.Errorf("no new keeper (pid %d, %v)", npid, err)
	}
}

// TestRuntimeSocketRejectsGarbage: bad runtime messages are refused and
// the keeper keeps serving.
func TestRuntimeSocketRejectsGarbage(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	send := func(data []byte, fd int) {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var oob []byte
		if fd >= 0 {
			oob = unix.UnixRights(fd)
		}
		if _, _, err := c.WriteMsgUnix(data, oob, nil); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(buf) // the keeper closes when done
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	send([]byte("not json"), -1)
	send([]byte(`{"ociVersion":"1.0.0","fds":["seccompFd"],"pid":1,"state":{"id":"x"}}`), -1)
	send([]byte(`{"ociVersion":"1.0.0","fds":["seccompFd"],"pid":1,"state":{"id":"x"}}`), int(r.Fd()))
	if k.Stats().Held != 0 {
		t.Fatalf("keeper holds %d fds after garbage", k.Stats().Held)
	}
	c := startContainer(t, sock)
	if r := c.do("sysinfo", time.Second); r.Errno != 0 {
		t.Errorf("sysinfo after garbage: %+v", r)
	}
	if k.Stats().Held != 1 {
		t.Errorf("keeper holds %d fds, want 1", k.Stats().Held)
	}
}

// BenchmarkSysinfoThroughAgent: sysinfo calls per second on one thread of
// a container, through keeper and agent (the answerer itself is free).
// Compare BenchmarkSysinfoKeeperOnly (CONTINUE by the keeper) and the
// kernel's own sysinfo.
func BenchmarkSysinfoThroughAgent(b *testing.B) {
	benchSysinfo(b, true)
}

func BenchmarkSysinfoKeeperOnly(b *testing.B) {
	benchSysinfo(b, false)
}

func BenchmarkSysinfoNoFilter(b *testing.B) {
	var si unix.Sysinfo_t
	for i := 0; i < b.N; i++ {
		unix.Sysinfo(&si)
	}
}

func benchSysinfo(b *testing.B, withAgent bool) {
	testutil.RequireRoot(b)
	sock := socketIn(b)
	k, err := NewKeeper(KeeperConfig{SocketPath: sock, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go k.Run(stop)
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(PidPath(sock)); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if withAgent {
		a, _ := NewAgent(AgentConfig{SocketPath: sock, Answerer: AnswererFunc(markerAnswer), Log: quietLog()})
		go a.Run(stop)
		for i := 0; i < 500 && !k.Stats().AgentAttached; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	c := startContainer(b, sock)
	r := c.do(fmt.Sprintf("loop %d", b.N), 10*time.Minute)
	if r.Errno != 0 {
		b.Fatalf("errno %d", r.Errno)
	}
	if withAgent && r.Totalram != markerRAM {
		b.Fatalf("answers did not come from the agent: %+v", r)
	}
	b.ReportMetric(float64(r.Micros)*1000/float64(b.N), "ns/op")
	b.ReportMetric(float64(b.N)/(float64(r.Micros)/1e6), "calls/s")

}

// TestStoredFdOutlivesTheAgent: an fd the agent asks the keeper to hold
// (what a restarting corralfs would do with its /dev/fuse connection) is
// handed to the next agent, still open on the same file.
func TestStoredFdOutlivesTheAgent(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a1, err := NewAgent(AgentConfig{SocketPath: sock, Answerer: AnswererFunc(markerAnswer), Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	stop1, done1 := make(chan struct{}), make(chan error, 1)
	go func() { done1 <- a1.Run(stop1) }()
	if err := a1.StoreFd("fuse", []byte(`{"proto":"7.40"}`), int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	w.Close() // only the keeper (and a1) hold the write end now
	testutil.WaitFor(t, 5*time.Second, "the keeper to hold the fd", func() bool { return k.Stats().Held == 1 && a1.Held(KindFd)["fuse"] > 0 })
	close(stop1)
	<-done1

	a2 := inProcessAgent(t, sock, AnswererFunc(markerAnswer))
	testutil.WaitFor(t, 5*time.Second, "the fd at the new agent", func() bool { return a2.Held(KindFd)["fuse"] > 0 })
	if _, err := unix.Write(a2.Held(KindFd)["fuse"], []byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("read %q, %v through the held pipe", buf[:n], err)
	}
	a2.DropFd("fuse")
	testutil.WaitFor(t, 5*time.Second, "the keeper to drop it", func() bool { return k.Stats().Held == 0 })
	testutil.WaitFor(t, 5*time.Second, "the agent to close its copy", func() bool { return len(a2.Held(KindFd)) == 0 })
	// Every write end is closed now: the reader sees EOF.
	if n, err := r.Read(buf); n != 0 || err == nil {
		t.Errorf("pipe still open after the drop: %d, %v", n, err)
	}
}

// TestDroppedAgentComesBack: a live agent the keeper dropped (as it does a
// stuck one) reconnects and hands back its copies of the listeners; the
// keeper recognises the files it already holds (no duplicate entries) and
// the agent answers again.
func TestDroppedAgentComesBack(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	a := inProcessAgent(t, sock, AnswererFunc(markerAnswer))
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	c := startContainer(t, sock)
	for i := 0; i < 3; i++ {
		if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
			t.Fatalf("call %d: %+v", i, r)
		}
	}
	k.mu.Lock()
	link := k.agent
	k.mu.Unlock()
	k.detach(link, "test drops the agent")
	testutil.WaitFor(t, 5*time.Second, "the agent to come back", func() bool { return a.Stats().Sessions >= 2 && k.Stats().AgentAttached })
	testutil.WaitFor(t, 5*time.Second, "the agent's answers", func() bool { return c.do("sysinfo", 5*time.Second).Totalram == markerRAM })
	if st := k.Stats(); st.Held != 1 {
		t.Errorf("keeper holds %d fds after the agent came back, want 1", st.Held)
	}
	if n := a.Stats().Listeners; n != 1 {
		t.Errorf("agent holds %d listeners, want 1", n)
	}
}

// TestAgentOutlivesContainers: a container the agent receives on directly
// ends (its listener hangs up); the keeper and the agent let go of its fd
// and the agent goes on answering the next container.
func TestAgentOutlivesContainers(t *testing.T) {
	testutil.RequireRoot(t)
	sock := socketIn(t)
	k := inProcessKeeper(t, sock, 0)
	a := inProcessAgent(t, sock, AnswererFunc(markerAnswer))
	testutil.WaitFor(t, 5*time.Second, "the agent", func() bool { return k.Stats().AgentAttached })
	for round := 0; round < 3; round++ {
		c := startContainer(t, sock)
		for i := 0; i < 5; i++ {
			if r := c.do("sysinfo", 5*time.Second); r.Totalram != markerRAM {
				t.Fatalf("container %d call %d: %+v", round, i, r)
			}
		}
		c.stop()
		testutil.WaitFor(t, 5*time.Second, "both to let go of the listener", func() bool { return k.Stats().Held == 0 && a.Stats().Listeners == 0 })
	}
}
