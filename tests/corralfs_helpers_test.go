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

	"github.com/moby/sys/mountinfo"
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
	t.Cleanup(func() {
		d.stop()
		conn.Close()
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

// waitNotify reads sd_notify datagrams until one carries want.
func (d *corralfsDaemon) waitNotify(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		d.notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := d.notify.Read(buf)
		if err == nil {
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == want {
					return nil
				}
			}
			continue
		}
		select {
		case <-d.done:
			return fmt.Errorf("corralfs exited (%v) before sending %s", d.exitErr, want)
		default:
		}
	}
	return fmt.Errorf("timeout waiting for %s", want)
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
	FS           struct {
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
	for try := 0; try < 5 && len(raw) == 0; try++ {
		conn, err := net.Dial("unix", d.ctl)
		if err != nil {
			d.t.Fatal(err)
		}
		raw, err = io.ReadAll(conn)
		conn.Close()
		if err != nil {
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
func isCorralfsMount(t *testing.T, mp string) bool {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) { return i.Mountpoint != mp, false })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.FSType == "fuse.corralfs" {
			return true
		}
	}
	return false
}

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
