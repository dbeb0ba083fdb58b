package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Filters are tested in the kernel: the test binary re-executes itself
// with childEnv set, the child installs the filter, makes the requested
// syscalls and prints what happened as JSON. A filter cannot be removed, so
// it never touches the test process itself.

const childEnv = "CORRAL_SECCOMP_TEST_CHILD"

// call is one raw syscall the child makes after installing the filter.
type call struct {
	Nr   uintptr   `json:"nr"`
	Args [6]uint64 `json:"args"`
	// Threads > 0 makes the call from that many other locked goroutines
	// (threads) as well, to see which threads carry the filter.
	Threads int `json:"threads,omitempty"`
}

type childRequest struct {
	Policy *specs.LinuxSeccomp `json:"policy"`
	NNP    bool                `json:"nnp"`
	Calls  []call              `json:"calls"`
	// AnswerSysinfo runs a minimal notification answerer on another
	// thread and makes one sysinfo call through it.
	AnswerSysinfo bool `json:"answerSysinfo"`
	// Exec replaces the child with this program after the calls.
	Exec []string `json:"exec"`
	// Bench times this many getpid calls on the filtered thread (no
	// filter at all when Policy is nil).
	Bench int `json:"bench"`
}

type childResult struct {
	InstallErr string    `json:"installErr"`
	ListenerFd int       `json:"listenerFd"`
	ListenerOK string    `json:"listenerOK"`
	Errnos     [][]int   `json:"errnos"` // per call: this thread, then each extra thread
	Sysinfo    string    `json:"sysinfo"`
	BenchNs    float64   `json:"benchNs"`
	Loads      [3]uint64 `json:"loads"`
}

func TestMain(m *testing.M) {
	if req := os.Getenv(childEnv); req != "" {
		runChild(req)
		return
	}
	os.Exit(m.Run())
}

func runChild(raw string) {
	runtime.LockOSThread()
	var req childRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad request:", err)
		os.Exit(3)
	}
	var res childResult
	if req.NNP {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "child: no_new_privs:", err)
			os.Exit(3)
		}
	}
	fd := -1
	if req.Policy != nil {
		var err error
		fd, err = Install(req.Policy)
		if err != nil {
			res.InstallErr = err.Error()
		}
	}
	res.ListenerFd = fd
	if fd >= 0 {
		if err := listenerFdValid(fd); err != nil {
			res.ListenerOK = err.Error()
		} else {
			res.ListenerOK = "ok"
		}
	}
	for _, c := range req.Calls {
		res.Errnos = append(res.Errnos, makeCall(c))
	}
	if req.AnswerSysinfo && fd >= 0 {
		res.Sysinfo = sysinfoThroughListener(fd)
	}
	if req.Bench > 0 {
		start := time.Now()
		for i := 0; i < req.Bench; i++ {
			unix.Getpid()
		}
		res.BenchNs = float64(time.Since(start).Nanoseconds()) / float64(req.Bench)
	}
	out, _ := json.Marshal(res)
	os.Stdout.Write(append(out, '\n'))
	if len(req.Exec) > 0 && res.InstallErr == "" {
		err := unix.Exec(req.Exec[0], req.Exec, os.Environ())
		fmt.Fprintln(os.Stderr, "child: exec:", err)
		os.Exit(4)
	}
	os.Exit(0)
}

func makeCall(c call) []int {
	one := func() int {
		_, _, e := unix.Syscall6(c.Nr, uintptr(c.Args[0]), uintptr(c.Args[1]), uintptr(c.Args[2]), uintptr(c.Args[3]), uintptr(c.Args[4]), uintptr(c.Args[5]))
		return int(e)
	}
	out := []int{one()}
	if c.Threads > 0 {
		res := make([]int, c.Threads)
		var wg sync.WaitGroup
		for i := range res {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // a distinct thread each; dies with the goroutine
				res[i] = one()
			}()
		}
		wg.Wait()
		out = append(out, res...)
	}
	return out
}

// seccompNotif / seccompResp mirror struct seccomp_notif / seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// sysinfoThroughListener answers this thread's sysinfo call from another
// (unfiltered) thread by letting it run for real (CONTINUE). It keeps
// receiving until the call returns: a signal to the caller while it waits
// makes the kernel drop the notification and send a new one when the
// syscall restarts.
func sysinfoThroughListener(fd int) string {
	stop := make(chan struct{})
	result := make(chan string, 1)
	report := func(s string) {
		select {
		case result <- s:
		default:
		}
	}
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(p, 100); n <= 0 || p[0].Revents&unix.POLLIN == 0 {
				continue
			}
			var n seccompNotif
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
				if e == unix.ENOENT || e == unix.EINTR {
					continue
				}
				report("recv: " + e.Error())
				return
			}
			if n.Nr != int32(unix.SYS_SYSINFO) {
				report(fmt.Sprintf("trapped nr %d, want sysinfo", n.Nr))
			}
			r := seccompResp{ID: n.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r))); e != 0 {
				if e == unix.ENOENT {
					continue // the caller was interrupted; it comes back
				}
				report("send: " + e.Error())
				return
			}
			report("ok")
		}
	}()
	var si unix.Sysinfo_t
	err := unix.Sysinfo(&si)
	close(stop)
	if err != nil {
		return "sysinfo: " + err.Error()
	}
	if si.Totalram == 0 {
		return "sysinfo returned no RAM"
	}
	// The answer is reported right after the SEND that released us.
	select {
	case s := <-result:
		return s
	case <-time.After(5 * time.Second):
		return "the listener never saw the call"
	}
}

// runInChild runs req in a re-executed test binary and returns its result
// and, for Exec, the exec'd program's output.
func runInChild(t testing.TB, req childRequest) (childResult, string) {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A child stuck in a trapped syscall must not hang the test: after a
	// minute it dumps its goroutines (SIGQUIT) and is killed.
	timer := time.AfterFunc(time.Minute, func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
	})
	err = cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("child hung; killed. stderr:\n%s", stderr.String())
	}
	line, rest, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	var res childResult
	if jerr := json.Unmarshal(line, &res); jerr != nil {
		t.Fatalf("child: %v; stdout %q; stderr %q; exit %v", jerr, stdout.String(), stderr.String(), err)
	}
	if err != nil {
		t.Fatalf("child exited with %v; result %+v; stderr %q; output %q", err, res, stderr.String(), rest)
	}
	return res, string(rest)
}
