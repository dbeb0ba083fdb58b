package sysinfoagent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/corral-dev/corral/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The tests run every party as a real process: the test binary re-executes
// itself in a role (roleEnv) as a "container" (installs the filter, sends
// its listener to the socket, then makes syscalls on request), a keeper, or
// an agent. Only the Answerer is the test's own: it returns a marker so a
// test can tell the agent's answer from the kernel's.

const (
	roleEnv   = "CORRAL_SA_ROLE"
	socketEnv = "CORRAL_SA_SOCKET"
	answerEnv = "CORRAL_SA_ANSWER" // agent: "marker" or "hang"
	spawnEnv  = "CORRAL_SA_SPAWN"  // agent: start keepers itself
	policyEnv = "CORRAL_SA_POLICY" // container: "sysinfo" (default) or "tuxcall"
)

// markerRAM is the totalram the test answerer reports.
const markerRAM = 0x5eed_0000_0000

func markerAnswer(pid int) (unix.Sysinfo_t, error) {
	return unix.Sysinfo_t{Totalram: markerRAM, Procs: uint16(pid), Unit: 1, Uptime: 4242}, nil
}

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "container":
		os.Exit(runContainerRole())
	case "keeper":
		err := RunKeeper(KeeperConfig{SocketPath: os.Getenv(socketEnv), Log: testLog()}, signalStop())
		if err != nil {
			fmt.Fprintln(os.Stderr, "keeper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "agent":
		os.Exit(runAgentRole())
	}
	os.Exit(3)
}

func testLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func signalStop() <-chan struct{} {
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; close(stop) }()
	return stop
}

func keeperArgv() []string {
	return []string{"/usr/bin/env", roleEnv + "=keeper", os.Args[0], "-test.run=^$"}
}

func runAgentRole() int {
	var ans Answerer = AnswererFunc(markerAnswer)
	switch mode := os.Getenv(answerEnv); {
	case mode == "hang":
		ans = AnswererFunc(func(int) (unix.Sysinfo_t, error) { select {} })
	case strings.HasPrefix(mode, "hang-after-1"):
		// Answers 4 calls, then hangs; -nostore: records no ids.
		var calls atomic.Int64
		ans = AnswererFunc(func(pid int) (unix.Sysinfo_t, error) {
			if calls.Add(1) > 4 {
				select {}
			}
			return markerAnswer(pid)
		})
		if strings.HasSuffix(mode, "-nostore") {
			testSkipIDStore.Store(true)
		}
	}
	// No answer cache: the hanging answerers must be asked every time.
	cfg := AgentConfig{SocketPath: os.Getenv(socketEnv), Answerer: ans, Log: testLog(), AnswerTTL: -1}
	if os.Getenv(spawnEnv) == "1" {
		cfg.KeeperCommand = keeperArgv()
	}
	a, err := NewAgent(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	if err := a.Run(signalStop()); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

// reply is what the container role prints for each command.
type reply struct {
	Errno    int       `json:"errno"`
	Totalram uint64    `json:"totalram"`
	Procs    uint16    `json:"procs"`
	Uptime   int64     `json:"uptime"`
	Loads    [3]uint64 `json:"loads"`
	Tid      int       `json:"tid"`
	Micros   int64     `json:"micros"`
	Err      string    `json:"err,omitempty"`
}

func runContainerRole() int {
	runtime.LockOSThread() // the filter lands on this thread only
	socket := os.Getenv(socketEnv)
	policy := seccomp.SysinfoOnly(socket)
	if os.Getenv(policyEnv) == "tuxcall" {
		policy.Syscalls = append(policy.Syscalls, specs.LinuxSyscall{Names: []string{"tuxcall"}, Action: specs.ActNotify})
	}
	out := json.NewEncoder(os.Stdout)
	fd, err := seccomp.Install(policy)
	if err == nil {
		st := specs.State{Version: specs.Version, ID: "test-" + strconv.Itoa(os.Getpid()), Status: specs.StateCreated, Pid: os.Getpid(), Bundle: "/"}
		err = seccomp.SendToListener(socket, st, "test-metadata", fd)
		unix.Close(fd)
	}
	if err != nil {
		out.Encode(reply{Err: err.Error()})
		return 1
	}
	out.Encode(reply{Tid: unix.Gettid()}) // ready
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var r reply
		r.Tid = unix.Gettid()
		start := time.Now()
		switch cmd := in.Text(); cmd {
		case "sysinfo":
			var si unix.Sysinfo_t
			_, _, e := unix.Syscall(unix.SYS_SYSINFO, uintptr(unsafe.Pointer(&si)), 0, 0)
			r.Errno, r.Totalram, r.Procs, r.Uptime, r.Loads = int(e), si.Totalram, si.Procs, si.Uptime, si.Loads
		case "efault":
			_, _, e := unix.Syscall(unix.SYS_SYSINFO, 8, 0, 0) // unmapped page
			r.Errno = int(e)
		case "tuxcall":
			_, _, e := unix.Syscall(184, 0, 0, 0)
			r.Errno = int(e)
		case "exit":
			return 0
		default:
			// "loop N": N sysinfo calls; errno of the first failure,
			// totalram of the last answer, and the time in micros.
			var n int
			if _, err := fmt.Sscanf(cmd, "loop %d", &n); err != nil {
				r.Err = "unknown command " + cmd
				break
			}
			var si unix.Sysinfo_t
			for i := 0; i < n; i++ {
				_, _, e := unix.Syscall(unix.SYS_SYSINFO, uintptr(unsafe.Pointer(&si)), 0, 0)
				if e != 0 && r.Errno == 0 {
					r.Errno = int(e)
				}
			}
			r.Totalram = si.Totalram
		}
		r.Micros = time.Since(start).Microseconds()
		out.Encode(r)
	}
	return 0
}

// container is a running container-role process.
type container struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan reply
	tid   int
}

func startContainer(t testing.TB, socket string, env ...string) *container {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"=container", socketEnv+"="+socket), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, cmd: cmd, stdin: stdin, lines: make(chan reply, 16)}
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				close(c.lines)
				return
			}
			c.lines <- r
		}
	}()
	t.Cleanup(c.stop)
	ready := c.next(10 * time.Second)
	if ready.Err != "" {
		t.Fatalf("container: %s", ready.Err)
	}
	c.tid = ready.Tid
	return c
}

func (c *container) next(timeout time.Duration) reply {
	c.t.Helper()
	select {
	case r, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("container exited")
		}
		return r
	case <-time.After(timeout):
		c.t.Fatalf("container did not answer within %v", timeout)
	}
	return reply{}
}

// do sends a command and waits for its reply.
func (c *container) do(cmd string, timeout time.Duration) reply {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		c.t.Fatalf("container: %v", err)
	}
	return c.next(timeout)
}

func (c *container) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	fmt.Fprintln(c.stdin, "exit")
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// startProc starts the test binary in a role; it is killed at cleanup.
func startProc(t *testing.T, role, socket string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role, socketEnv+"="+socket), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	})
	return cmd
}

// socketIn returns a socket path in a fresh directory, short enough for
// sun_path, and makes sure any keeper started for it dies with the test.
func socketIn(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	t.Cleanup(func() {
		if pid, err := KeeperPid(sock); err == nil && pid > 0 && isKeeper(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
		os.RemoveAll(dir)
	})
	return sock
}

// isKeeper checks that pid is one of our test binaries in the keeper role
// before the cleanup kills it (a stale pidfile must not kill a stranger).
func isKeeper(pid int) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && strings.Contains(string(env), roleEnv+"=keeper")
}

func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
