package tests

import (
	"bytes"
	"crypto/sha256"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestRuntimeBinaryNotWritableFromContainer is CVE-2019-5736: a process in
// the container opens /proc/1/exe while the init still runs the runtime
// binary, waits until no process runs it any more, and reopens it for
// writing through its fd. That must fail (read-only), and the binary stay
// intact. The init runs corral-init when it is beside corral (of one
// build), else corral itself: both are attacked. The test runs copies, so
// a failure cannot damage bin/.
func TestRuntimeBinaryNotWritableFromContainer(t *testing.T) {
	for _, withInit := range []bool{true, false} {
		name := map[bool]string{true: "corral-init", false: "corral"}[withInit]
		t.Run(name, func(t *testing.T) { testBinaryNotWritable(t, withInit) })
	}
}

func testBinaryNotWritable(t *testing.T, withInit bool) {
	e := rtNewEnv(t)
	dir := t.TempDir()
	cp := filepath.Join(dir, "corral")
	rtCopyFile(t, e.bin, cp)
	if withInit {
		rtCopyFile(t, testutil.Binary(t, "corral-init"), filepath.Join(dir, "corral-init"))
		cp = filepath.Join(dir, "corral-init") // the file the init runs
	}
	e.bin = filepath.Join(dir, "corral")
	sum := rtSHA256(t, cp)

	id := rtID("cve")
	b := e.bundle(id, rtSpec(id, "sleep", "1000"))
	e.create(id, b)
	rtCheckInitRuns(t, e.state(id).Pid, cp)
	// Capability to look at the (non-dumpable) init: only the read-only
	// mount may stand in the way of the write.
	attack := `exec 3</proc/1/exe || exit 1
echo opened
while [ "$(readlink /proc/1/exe)" != /bin/busybox ]; do sleep 0.05; done
sleep 0.2
if echo pwned >> /proc/self/fd/3; then echo write-SUCCEEDED; else echo write-refused; fi`
	out := filepath.Join(t.TempDir(), "attack")
	of, _ := os.Create(out)
	defer of.Close()
	r := e.corralWith(func(c *exec.Cmd) { c.Stdout, c.Stderr = of, of },
		"exec", "-d", "--cap", "CAP_SYS_PTRACE", id, "sh", "-c", attack)
	if r.code != 0 {
		t.Fatalf("exec: %v", r)
	}
	rtWaitFile(t, out, "opened")
	e.must("start", id)
	rtWaitFile(t, out, "write-")
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "write-refused") {
		t.Errorf("attack output %q: want the write refused by the read-only mount", data)
	}
	if got := rtSHA256(t, cp); !bytes.Equal(got, sum) {
		t.Fatalf("the runtime binary was modified from inside the container")
	}
	e.must("delete", "--force", id)
}

// TestRuntimeConsoleSocket: terminal: true with --console-socket, as podman
// and containerd use it, for the container's process and for an exec with
// --tty: the pty master arrives over the socket and the process has a real
// tty as stdin/stdout.
func TestRuntimeConsoleSocket(t *testing.T) {
	e := rtNewEnv(t)
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id := rtID("tty")
	s := rtSpec(id, "sh", "-c", "tty; test -t 0 && echo stdin-is-tty; stty size; sleep 1000")
	s.Process.Terminal = true
	s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 120}
	b := e.bundle(id, s)
	got := rtAcceptPty(l)
	e.create(id, b, "--console-socket", sock)
	master := rtWaitPty(t, got)
	defer master.Close()
	e.must("start", id)
	out := rtReadPtyUntil(t, master, "40 120")
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "stdin-is-tty") {
		t.Errorf("tty output %q", out)
	}

	// exec --tty --console-socket --detach, as `podman exec -it` runs it.
	got = rtAcceptPty(l)
	if r := e.corralWith(func(c *exec.Cmd) { c.Stdout, c.Stderr = nil, nil },
		"exec", "--tty", "--detach", "--console-socket", sock, id, "sh", "-c", "tty; echo exec-tty-ok"); r.code != 0 {
		t.Fatalf("exec --tty: %v", r)
	}
	emaster := rtWaitPty(t, got)
	defer emaster.Close()
	if out := rtReadPtyUntil(t, emaster, "exec-tty-ok"); !strings.Contains(out, "/dev/pts/1") {
		t.Errorf("exec tty output %q", out)
	}
	e.must("delete", "--force", id)
}

// rtAcceptPty accepts one connection on l and delivers the fd it carries.
func rtAcceptPty(l *net.UnixListener) <-chan *os.File {
	got := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return got
}

func rtWaitPty(t *testing.T, got <-chan *os.File) *os.File {
	t.Helper()
	select {
	case m := <-got:
		if m == nil {
			t.Fatal("no pty master received on the console socket")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master received on the console socket")
	}
	return nil
}

// rtReadPtyUntil reads the pty until want shows up (or 10 s pass).
func rtReadPtyUntil(t *testing.T, master *os.File, want string) string {
	t.Helper()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 1024)
		for !strings.Contains(buf.String(), want) {
			n, err := master.Read(b)
			buf.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("pty never printed %q", want)
		master.SetReadDeadline(time.Now())
		<-done
	}
	return strings.ReplaceAll(buf.String(), "\r", "")
}

// TestRuntimeExecSharesContainer: an exec'd process is in the container's
// namespaces (pid: sees PID 1; uts; net; mount: same root) and clocks (its
// uptime is the container's, not the host's), and in its cgroup.
func TestRuntimeExecSharesContainer(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("execns")
	s := rtSpec(id, "sh", "-c", "touch /marker; sleep 1000")
	s.Hostname = "rt-exec"
	b := e.bundle(id, s)
	e.create(id, b)
	e.must("start", id)
	out := e.must("exec", "--env", "X=y", "--cwd", "/tmp", id, "sh", "-c",
		`echo "host=$(hostname) pid1=$(cat /proc/1/comm) marker=$(ls /marker) up=$(cut -d. -f1 /proc/uptime) x=$X pwd=$(pwd) cg=$(grep -m1 memory /proc/self/cgroup || sed -n 1p /proc/self/cgroup)"`)
	m := map[string]string{}
	for _, f := range strings.Fields(out) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	if m["host"] != "rt-exec" || m["pid1"] != "sleep" || m["marker"] != "/marker" || m["x"] != "y" || m["pwd"] != "/tmp" {
		t.Errorf("exec saw %q", out)
	}
	if !strings.HasSuffix(m["cg"], ":/") {
		t.Errorf("exec cgroup %q: want the container's (namespace root)", m["cg"])
	}
	var hostUp float64
	if data, err := os.ReadFile("/proc/uptime"); err == nil {
		hostUp = rtAtof(strings.Fields(string(data))[0])
	}
	if up := rtAtof(m["up"]); up > 30 || (hostUp > 60 && up > hostUp/2) {
		t.Errorf("exec uptime %s: want the container's clock (host %0.f s)", m["up"], hostUp)
	}
	if testutil.DetectCgroupMode() != testutil.CgroupModeUnknown {
		procs := rtReadTrim(t, rtCgroupFile(id, "memory", "cgroup.procs", "cgroup.procs"))
		if len(strings.Fields(procs)) != 1 {
			t.Errorf("after the exec, cgroup.procs = %q: want only the init", procs)
		}
	}
	e.must("delete", "--force", id)
}

func rtAtof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func rtCopyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func rtSHA256(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return s[:]
}
