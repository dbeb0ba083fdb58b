package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/testutil"
)

// corralfsDaemon is a real bin/corralfs serving a temporary mount point,
// with a NOTIFY_SOCKET and a control socket owned by the test.
type corralfsDaemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	mp      string
	dir     string
	ctl     string
	pidfile string
	notify  *net.UnixConn
	notes   notifyLog // what the daemon sent to notify, drained at once as systemd does
	out     *syncBuffer
	done    chan struct{} // closed when the process has exited
	exitErr error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// launchCorralfs starts the daemon on mp without waiting for it.
func launchCorralfs(t *testing.T, mp string, args ...string) *corralfsDaemon {
	t.Helper()
	return launchCorralfsBinary(t, testutil.Binary(t, "corralfs"), mp, args...)
}

// launchCorralfsBinary is launchCorralfs with the binary at bin (the
// upgrade tests replace it while it runs).
func launchCorralfsBinary(t *testing.T, bin, mp string, args ...string) *corralfsDaemon {
	t.Helper()
	return launchCorralfsWith(t, bin, mp, false, args...)
}

// launchCorralfsFDStore is launchCorralfs with the test playing systemd's
// fd store: the descriptors the daemon stores (FDSTORE=1) are kept for
// storedFDs. Elsewhere they are dropped on arrival, as by a systemd
// without a fd store, so a killed daemon's connection dies with it.
func launchCorralfsFDStore(t *testing.T, mp string, args ...string) *corralfsDaemon {
	t.Helper()
	return launchCorralfsWith(t, testutil.Binary(t, "corralfs"), mp, true, args...)
}

func launchCorralfsWith(t *testing.T, bin, mp string, keepFDs bool, args ...string) *corralfsDaemon {
	t.Helper()
	testutil.RequireFUSE(t)
	dir := t.TempDir()
	d := &corralfsDaemon{t: t, mp: mp, dir: dir, ctl: filepath.Join(dir, "ctl.sock"), pidfile: filepath.Join(dir, "pid"),
		out: &syncBuffer{}, done: make(chan struct{})}
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d.notify = conn
	// Drain the notify socket as systemd does: a datagram socket's queue
	// holds 10 (net.unix.max_dgram_qlen), and a daemon that sends more
	// (FDSTORE=1 of each shared file, READY=1, RELOADING=1 at reloads,
	// STOPPING=1, FDSTOREREMOVE=1 at the stop) would block on a full one.
	d.notes.changed = make(chan struct{})
	go d.notes.drain(conn, keepFDs)
	// No sysinfo agent unless the test asks for one (args come later and
	// win): its keeper is shared through a host-wide socket by default.
	argv := append([]string{"--control-socket", d.ctl, "--pidfile", d.pidfile, "--log-level", "debug", "--seccomp-socket="}, args...)
	d.cmd = exec.Command(bin, append(argv, mp)...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.done)
	}()
	trackDaemon(d, true)
	t.Cleanup(func() {
		defer trackDaemon(d, false)
		d.stop()
		conn.Close()
		d.notes.closeFDs()
		if t.Failed() {
			t.Logf("corralfs output:\n%s", d.out.String())
		}
	})
	return d
}

// startCorralfs starts the daemon and waits for READY=1.
func startCorralfs(t *testing.T, mp string, args ...string) *corralfsDaemon {
	t.Helper()
	d := launchCorralfs(t, mp, args...)
	if err := d.waitNotify("READY=1", 30*time.Second); err != nil {
		t.Fatalf("no READY=1 from corralfs: %v\n%s", err, d.out.String())
	}
	return d
}

// notifyMsg is one sd_notify datagram and the descriptors it carried.
type notifyMsg struct {
	text string
	fds  []int
}

// notifyLog collects every datagram the daemon sends.
type notifyLog struct {
	mu      sync.Mutex
	msgs    []notifyMsg
	changed chan struct{} // closed and replaced at each new message
	closed  bool
	seen    int // waitNotify's cursor
}

func (l *notifyLog) drain(conn *net.UnixConn, keepFDs bool) {
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(16*4))
	if !keepFDs {
		oob = nil // the kernel closes descriptors that do not fit (MSG_CTRUNC)
	}
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			l.mu.Lock()
			l.closed = true
			close(l.changed)
			l.mu.Unlock()
			return
		}
		m := notifyMsg{text: string(buf[:n])}
		if oobn > 0 {
			if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for i := range cmsgs {
					fds, _ := unix.ParseUnixRights(&cmsgs[i])
					m.fds = append(m.fds, fds...)
				}
			}
		}
		l.mu.Lock()
		l.msgs = append(l.msgs, m)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

// takeFDs hands message i's descriptors to the caller, who closes them.
func (l *notifyLog) takeFDs(i int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	fds := l.msgs[i].fds
	l.msgs[i].fds = nil
	return fds
}

// closeFDs closes the descriptors nobody took (a socket's queue would have
// dropped them with the socket).
func (l *notifyLog) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.msgs {
		for _, fd := range l.msgs[i].fds {
			unix.Close(fd)
		}
		l.msgs[i].fds = nil
	}
}

// next returns message i when it has arrived, or a channel that is closed
// when another arrives.
func (l *notifyLog) next(i int) (*notifyMsg, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < len(l.msgs) {
		m := l.msgs[i] // a copy: the slice may grow meanwhile
		return &m, nil
	}
	if l.closed {
		return nil, nil
	}
	return nil, l.changed
}

// waitNotify waits until a datagram after the last one it matched carries
// want on a line of its own.
func (d *corralfsDaemon) waitNotify(want string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.notes.mu.Lock()
		i := d.notes.seen
		d.notes.mu.Unlock()
		m, more := d.notes.next(i)
		if m != nil {
			d.notes.mu.Lock()
			d.notes.seen = i + 1
			d.notes.mu.Unlock()
			for _, line := range strings.Split(m.text, "\n") {
				if line == want {
					return nil
				}
			}
			continue
		}
		if more == nil {
			return fmt.Errorf("notify socket closed before %s", want)
		}
		select {
		case <-more:
		case <-d.done:
			return fmt.Errorf("corralfs exited (%v) before sending %s", d.exitErr, want)
		case <-timer.C:
			return fmt.Errorf("timeout waiting for %s", want)
		}
	}
}

// stop sends SIGTERM (SIGKILL after 10 s) and makes sure the mount is gone.
func (d *corralfsDaemon) stop() {
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.t.Errorf("corralfs ignored SIGTERM for 10s")
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	for isCorralfsMount(d.t, d.mp) {
		if err := unix.Unmount(d.mp, unix.MNT_DETACH); err != nil {
			d.t.Errorf("cleaning up %s: %v", d.mp, err)
			return
		}
	}
}

func (d *corralfsDaemon) kill9() {
	d.cmd.Process.Kill()
	<-d.done
}

// corralfsStatus is the control socket's answer (the fields the tests use).
type corralfsStatus struct {
	Pid          int    `json:"pid"`
	WorkerPid    int    `json:"worker_pid"`
	WorkerBinary string `json:"worker_binary"`
	Restarts     int    `json:"restarts"`
	Upgrades     int    `json:"upgrades"`
	Resend       string `json:"resend"`
	Relay        bool   `json:"relay"`
	Requests     uint64 `json:"requests"`
	Goroutines   int    `json:"goroutines"`
	RSSBytes     uint64 `json:"rss_bytes"`
	Totals       struct {
		Opens     uint64 `json:"opens"`
		Reads     uint64 `json:"reads"`
		Restarts  uint64 `json:"restarts"`
		Upgrades  uint64 `json:"upgrades"`
		Fallbacks uint64 `json:"fallbacks"`
	} `json:"totals"`
	FS struct {
		Opens       uint64 `json:"opens"`
		OpenHandles int    `json:"open_handles"`
		Containers  int    `json:"containers"`
		Fallbacks   uint64 `json:"fallbacks"`
	} `json:"fs"`
}

func (d *corralfsDaemon) status() corralfsStatus {
	d.t.Helper()
	var raw []byte
	// An empty answer: the worker that took the connection was killed or
	// retired before answering (as `corralfs status` does, ask again).
	client := unixClient(d.ctl)
	for try := 0; try < 5 && len(raw) == 0; try++ {
		resp, err := client.Get("http://corralfs/status")
		if err == nil {
			raw, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil && try == 4 {
			d.t.Fatal(err)
		}
		if len(raw) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	var st corralfsStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		d.t.Fatalf("status %q: %v", raw, err)
	}
	return st
}

// isCorralfsMount reports whether a corralfs is mounted exactly at mp.
func isCorralfsMount(t *testing.T, mp string) bool { return testutil.IsCorralfsMount(t, mp) }

func corralfsMountpoint(t *testing.T) string {
	return filepath.Join(t.TempDir(), "corralfs")
}

// cfsContainer is a process in its own pid namespace inside a test cgroup
// that runs a busybox shell script once told to (so that on cgroup v1 it
// has been moved into its cgroup before it reads anything: FUSE identifies
// it by its pid namespace's init, which must be in the cgroup).
type cfsContainer struct {
	dir string
}

func startCfsContainer(t *testing.T, cg *testutil.Cgroup, script string) *cfsContainer {
	t.Helper()
	rootfs := testutil.BusyboxRootfs(t)
	c := &cfsContainer{dir: t.TempDir()}
	wrapper := fmt.Sprintf(`export PATH=%[1]s/bin
until [ -e %[2]s/go ]; do usleep 5000; done
( %[3]s
) > %[2]s/out 2>&1
echo $? > %[2]s/rc.tmp && mv %[2]s/rc.tmp %[2]s/rc`, rootfs, c.dir, script)
	testutil.StartInPidNS(t, cg, filepath.Join(rootfs, "bin", "busybox"), "sh", "-c", wrapper)
	return c
}

func (c *cfsContainer) start(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wait returns the script's output once it finished successfully.
func (c *cfsContainer) wait(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rc, err := os.ReadFile(filepath.Join(c.dir, "rc"))
		if err == nil {
			out, _ := os.ReadFile(filepath.Join(c.dir, "out"))
			if code, _ := strconv.Atoi(strings.TrimSpace(string(rc))); code != 0 {
				t.Fatalf("container script exited %d:\n%s", code, out)
			}
			return string(out)
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(c.dir, "out"))
			t.Fatalf("container script did not finish in %v (%v); output so far:\n%s", timeout, err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runInCfsContainer runs script in a fresh container in cg and returns its output.
func runInCfsContainer(t *testing.T, cg *testutil.Cgroup, script string) string {
	t.Helper()
	c := startCfsContainer(t, cg, script)
	c.start(t)
	return c.wait(t, 60*time.Second)
}

// sections splits output made of "== name" headed sections.
func sections(out string) map[string]string {
	m := map[string]string{}
	name := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			name = strings.TrimSpace(h)
			m[name] = ""
			continue
		}
		m[name] += line
	}
	return m
}

// meminfoKB returns a meminfo field in kB.
func meminfoKB(t *testing.T, meminfo, field string) uint64 {
	t.Helper()
	for _, line := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("meminfo %s: %q", field, line)
			}
			return v
		}
	}
	t.Fatalf("meminfo has no %s line:\n%s", field, meminfo)
	return 0
}
