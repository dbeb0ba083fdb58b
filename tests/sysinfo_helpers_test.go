package tests

// Helpers of the sysinfo(2) agent tests (sysinfo_*_test.go): a real
// corralfs with its agent and keeper, containers that are processes in
// their own pid and mount namespaces inside a test cgroup, started through
// sysinfoprobe -wrap (the minimal runtime: sysinfo filter, listener fd to
// the agent's socket over the OCI protocol, exec), and the probe itself.

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/fusefs/sysinfoagent"
	"github.com/corral-dev/corral/tests/sysinfoprobe/probe"
	"github.com/corral-dev/corral/tests/testutil"
)

const sysinfoMemLimit = 256 << 20

// sysinfoTotalRAM is what sysinfo(2) says in a container limited to
// sysinfoMemLimit: one page more, so that the JDK, which takes a limit at
// or above "physical" memory for none, honours it (docs/design.md 29).
var sysinfoTotalRAM = uint64(sysinfoMemLimit + os.Getpagesize())

// sysinfoTotalKiB is busybox free's total (KiB) for sysinfoTotalRAM.
var sysinfoTotalKiB = strconv.FormatUint(sysinfoTotalRAM/1024, 10)

// probeResult mirrors sysinfoprobe's JSON.
type probeResult struct {
	Errno         int       `json:"errno"`
	Uptime        int64     `json:"uptime"`
	Loads         [3]uint64 `json:"loads"`
	LoadsText     string    `json:"loads_text"`
	Totalram      uint64    `json:"totalram"`
	Freeram       uint64    `json:"freeram"`
	Totalswap     uint64    `json:"totalswap"`
	Procs         uint16    `json:"procs"`
	MemUnit       uint32    `json:"mem_unit"`
	TotalBytes    uint64    `json:"total_bytes"`
	Micros        int64     `json:"micros"`
	ProcUptime    string    `json:"proc_uptime"`
	LoadavgBefore string    `json:"loadavg_before"`
	LoadavgAfter  string    `json:"loadavg_after"`
	ThreadsBefore int       `json:"threads_before"`
	ThreadsAfter  int       `json:"threads_after"`
	InitStartTick uint64    `json:"init_start_ticks"`
}

type probeSummary struct {
	Calls   int          `json:"calls"`
	Bad     int          `json:"bad"`
	Errors  int          `json:"errors"`
	First   probeResult  `json:"first"`
	FirstBd *probeResult `json:"first_bad"`
	Seconds float64      `json:"seconds"`
	PerSec  float64      `json:"calls_per_second"`
}

// The test binary is the probe too: run under the name "sysinfoprobe" it
// is nothing else (this runs before any test). So the tests need no second
// binary, in the VM (which has test binaries, not the source) or inside a
// container's rootfs (the test binary is static).
func init() {
	if filepath.Base(os.Args[0]) == "sysinfoprobe" {
		os.Exit(probe.Main(os.Args[1:]))
	}
}

// sysinfoProbe returns the path of a static sysinfoprobe in a directory of
// the test's own (containers bind or copy it); see staticProbe.
func sysinfoProbe(t testing.TB) string {
	t.Helper()
	return staticProbe(t, "sysinfoprobe", "./tests/sysinfoprobe")
}

// isStatic reports whether an ELF executable has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// sysinfoSocket returns a seccomp socket path in a fresh short directory
// (sun_path is 108 bytes) and kills the keeper corralfs starts for it when
// the test ends.
func sysinfoSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sysi")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "seccomp.sock")
	t.Cleanup(func() {
		if log, err := os.ReadFile(sock + ".log"); err == nil && t.Failed() {
			t.Logf("keeper log:\n%s", log)
		}
		if pid, err := sysinfoagent.KeeperPid(sock); err == nil && isKeeperOf(pid, sock) {
			syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
		os.RemoveAll(dir)
	})
	return sock
}

// isKeeperOf checks the pid really is a keeper of sock before it is killed.
func isKeeperOf(pid int, sock string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && (strings.Contains(string(cmdline), "seccomp-keeper") || strings.Contains(string(cmdline), "corralfs-keeper")) && strings.Contains(string(cmdline), sock)
}

// startSysinfoCorralfs starts corralfs with its sysinfo agent on sock and
// waits until the agent is attached to a keeper.
func startSysinfoCorralfs(t *testing.T, sock string) *corralfsDaemon {
	t.Helper()
	args := []string{"--seccomp-socket", sock}
	if testutil.InVM() {
		// The VM's emulated CPU is some 50 times slower: an answer can
		// take longer than the default stall timeout there.
		args = append(args, "--seccomp-stall-timeout", "10s")
	}
	d := startCorralfs(t, corralfsMountpoint(t), args...)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.out.String(), "attached to the seccomp keeper") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the sysinfo agent did not attach within 10 s:\n%s", d.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// sysinfoContainer is a process tree in its own pid and mount namespaces,
// in a test cgroup, under the sysinfo filter. It runs a busybox script once
// released (on cgroup v1 it must be in its cgroup before it asks anything).
type sysinfoContainer struct {
	dir  string
	init *exec.Cmd
}

func startSysinfoContainer(t testing.TB, sock string, cg *testutil.Cgroup, script string) *sysinfoContainer {
	t.Helper()
	bb := testutil.StaticBusybox(t)
	c := &sysinfoContainer{dir: t.TempDir()}
	wrapper := fmt.Sprintf("( %s\n) > %s/out 2>&1\necho $? > %s/rc.tmp && mv %s/rc.tmp %s/rc", script, c.dir, c.dir, c.dir, c.dir)
	c.init = testutil.StartInPidNS(t, cg, sysinfoProbe(t), "-wrap", sock, "-wait-file", c.dir+"/go", "--", bb, "sh", "-c", wrapper)
	if err := os.WriteFile(filepath.Join(c.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait returns the script's output once it exited 0.
func (c *sysinfoContainer) wait(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rc, err := os.ReadFile(filepath.Join(c.dir, "rc"))
		if err == nil {
			// The init exits right after: reap it, so its listener
			// hangs up now (the kernel drops a filter's users when
			// the zombie is reaped) rather than when the test ends.
			_ = c.init.Wait()
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

func runSysinfoContainer(t testing.TB, sock string, cg *testutil.Cgroup, script string) string {
	t.Helper()
	return startSysinfoContainer(t, sock, cg, script).wait(t, 60*time.Second)
}

// parseProbe decodes the first JSON line of out.
func parseProbe[T any](t testing.TB, out string) T {
	t.Helper()
	var v T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "{") {
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("probe output %q: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("no probe output in %q", out)
	return v
}

// serveProbe is a probe in -serve mode inside a container: each ask() is
// one sysinfo call, answered through a FIFO.
type serveProbe struct {
	t    *testing.T
	in   *os.File
	out  *bufio.Reader
	outF *os.File
}

func startServeProbe(t *testing.T, sock string, cg *testutil.Cgroup) *serveProbe {
	t.Helper()
	dir := t.TempDir()
	fifoIn, fifoOut := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, f := range []string{fifoIn, fifoOut} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startSysinfoContainer(t, sock, cg, fmt.Sprintf("%s -serve < %s > %s", sysinfoProbe(t), fifoIn, fifoOut))
	in, err := os.OpenFile(fifoIn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Open(fifoOut)
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProbe{t: t, in: in, out: bufio.NewReader(out), outF: out}
	t.Cleanup(func() { in.Close(); out.Close() })
	return p
}

// ask makes one sysinfo call in the container; it fails the test when the
// answer takes longer than timeout (a hang).
func (p *serveProbe) ask(timeout time.Duration) (probeResult, time.Duration) {
	p.t.Helper()
	start := time.Now()
	if _, err := p.in.Write([]byte("x\n")); err != nil {
		p.t.Fatal(err)
	}
	p.outF.SetReadDeadline(time.Now().Add(timeout))
	line, err := p.out.ReadString('\n')
	if err != nil {
		p.t.Fatalf("no answer within %v: %v", timeout, err)
	}
	var r probeResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		p.t.Fatalf("probe line %q: %v", line, err)
	}
	return r, time.Since(start)
}

func hostTotalRAM(t *testing.T) uint64 {
	t.Helper()
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	return si.Totalram * uint64(si.Unit)
}

func cgroupName(t *testing.T) string {
	return "sysinfo-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
}
