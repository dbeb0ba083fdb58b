package tests

// Issue 5: containers reading their views never see an error while the
// process serving the mount is killed with SIGKILL or upgraded in place.

import (
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/corral-dev/corral/tests/viewreader/reader"
)

// The test binary is viewreader too when run under that name (see
// sysinfo_helpers_test.go for why: the VM and containers need no second
// binary).
func init() {
	if filepath.Base(os.Args[0]) == "viewreader" {
		os.Exit(reader.Main(os.Args[1:]))
	}
}

var (
	viewReaderOnce sync.Once
	viewReaderPath string
	viewReaderErr  error
)

// viewReader returns a static viewreader in a world-readable directory of
// its own (containers bind it at /probe).
func viewReader(t *testing.T) string {
	t.Helper()
	viewReaderOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			viewReaderErr = err
			return
		}
		dir, err := os.MkdirTemp("", "viewreader")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			viewReaderErr = err
			return
		}
		viewReaderPath = filepath.Join(dir, "viewreader")
		if root := testutil.ModuleRoot(); root != "" && !isStatic(self) {
			cmd := exec.Command("go", "build", "-o", viewReaderPath, "./tests/viewreader")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				viewReaderErr = fmt.Errorf("building a static viewreader: %v\n%s", err, out)
			}
			return
		}
		viewReaderErr = copyFile(self, viewReaderPath, 0o755)
	})
	if viewReaderErr != nil {
		t.Fatalf("viewreader: %v", viewReaderErr)
	}
	return viewReaderPath
}

// surviveContainer is one `corral run` container running viewreader.
type surviveContainer struct {
	name string
	cmd  *exec.Cmd
	dir  string        // stdout and stderr files: no copying goroutine for Wait to wait for
	done chan struct{} // closed once corral run exited
	err  error
}

func (c *surviveContainer) output(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name))
	return string(b)
}

// startSurviveReaders starts two containers with different limits (so a
// view of the wrong container shows), each running three reader loops for
// the given time: two open, read and close; one keeps the files open and
// re-reads them from offset 0, as top does (issue 12's generation rule,
// across kills and upgrades).
func startSurviveReaders(t *testing.T, e *runEnv, readFor time.Duration) []*surviveContainer {
	t.Helper()
	probeDir := filepath.Dir(viewReader(t))
	hostCPUs, _ := strconv.Atoi(runCountProcessors(runReadFile(t, "/proc/cpuinfo")))
	// The first reads its bound views (its own files, page cache), the
	// second the shared LXCFS-style files (caller-dependent, direct I/O,
	// the seq_file generation rule) through the whole mount at /shared.
	limits := []struct {
		flags  []string
		reader []string
		memKB  int
		cpus   int
	}{
		{[]string{"--memory", "256m", "--cpuset-cpus", "0"}, []string{"-bound"}, 256 * 1024, 1},
		{[]string{"--memory", "192m", "-v", e.views + "/proc:/shared:ro"}, []string{"-dir", "/shared"}, 192 * 1024, hostCPUs},
	}
	var cs []*surviveContainer
	for _, l := range limits {
		c := &surviveContainer{name: runName("survive"), dir: t.TempDir(), done: make(chan struct{})}
		args := append([]string{"-v", probeDir + ":/probe:ro"}, l.flags...)
		args = append(args, "--", "/probe/viewreader", "-for", readFor.String(), "-loops", "3", "-keep-open", "1",
			"-mem-kb", strconv.Itoa(l.memKB), "-cpus", strconv.Itoa(l.cpus))
		args = append(args, l.reader...)
		startContainer(t, e, c, args...)
		cs = append(cs, c)
	}
	return cs
}

// startContainer starts `corral run` of c with args (flags, "--", the
// command), its output going to files in c.dir; the container is killed
// when the test ends.
func startContainer(t *testing.T, e *runEnv, c *surviveContainer, args ...string) {
	t.Helper()
	argv := append([]string{"--root", e.root}, e.runFlags()...)
	argv = append(append(argv, "--name", c.name), args...)
	c.cmd = exec.Command(e.corral, argv...)
	var err error
	if c.cmd.Stdout, err = os.Create(filepath.Join(c.dir, "stdout")); err != nil {
		t.Fatal(err)
	}
	if c.cmd.Stderr, err = os.Create(filepath.Join(c.dir, "stderr")); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout.(*os.File).Close()
	c.cmd.Stderr.(*os.File).Close()
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// wait returns each container's report, failing the test on any failed,
// wrong or slow (> 2 s) read.
func checkSurviveReaders(t *testing.T, cs []*surviveContainer, timeout time.Duration) {
	t.Helper()
	for _, c := range cs {
		select {
		case <-c.done:
			if c.err != nil {
				t.Fatalf("container %s: %v\nstdout: %s\nstderr: %s", c.name, c.err, c.output("stdout"), c.output("stderr"))
			}
		case <-time.After(timeout):
			t.Fatalf("container %s still running after %v", c.name, timeout)
		}
		var rep reader.Report
		if err := json.Unmarshal([]byte(c.output("stdout")), &rep); err != nil {
			t.Fatalf("container %s: report %q: %v (stderr %s)", c.name, c.output("stdout"), err, c.output("stderr"))
		}
		t.Logf("container %s: %d reads, slowest %.1f ms (%s)", c.name, rep.Reads, rep.MaxMs, rep.Slowest)
		if rep.Reads < 100 || rep.Failed != 0 || rep.Wrong != 0 || rep.MaxMs > 2000 {
			t.Errorf("container %s: %d reads, %d failed, %d wrong, slowest %.1f ms; want >= 100 reads, none failed or wrong, none slower than 2 s; examples: %q",
				c.name, rep.Reads, rep.Failed, rep.Wrong, rep.MaxMs, rep.Examples)
		}
	}
}

// surviveDaemon starts corralfs from a private copy of the binary (the
// upgrade test replaces it) and a corral env whose containers bind its
// views.
func surviveDaemon(t *testing.T, args ...string) (*corralfsDaemon, *runEnv, string) {
	t.Helper()
	e := runNewEnv(t, false)
	bin := filepath.Join(t.TempDir(), "corralfs")
	if err := copyFile(testutil.Binary(t, "corralfs"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startCorralfsBinary(t, bin, corralfsMountpoint(t), args...)
	e.views = d.mp
	return d, e, bin
}

func startCorralfsBinary(t *testing.T, bin, mp string, args ...string) *corralfsDaemon {
	t.Helper()
	d := launchCorralfsBinary(t, bin, mp, args...)
	if err := d.waitNotify("READY=1", 30*time.Second); err != nil {
		t.Fatalf("no READY=1 from corralfs: %v\n%s", err, d.out.String())
	}
	return d
}

// fdCount counts a process's open descriptors.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// recovery is a way a dead worker's unanswered requests reach the next
// worker: "resend", the kernel re-queues them (FUSE_NOTIFY_RESEND, Linux
// 6.9+), or "relay", the supervisor reads every request and keeps it
// until answered (fusefs/survival/relay.go), what older kernels rely on.
type recovery struct {
	name string
	args []string // corralfs flags that choose it
}

func (r recovery) relay() bool { return r.name == "relay" }

// forEachRecovery runs f once per recovery this kernel has: the relay
// everywhere (forced with --relay=always where the kernel could
// re-queue), resend where the kernel has it.
func forEachRecovery(t *testing.T, f func(t *testing.T, r recovery)) {
	modes := []recovery{{"relay", []string{"--relay=always"}}}
	if kernelHasResend(t) {
		modes = append([]recovery{{"resend", []string{"--relay=auto"}}}, modes...)
	} else {
		t.Logf("kernel %s has no FUSE_NOTIFY_RESEND: only the relay recovery runs here", kernelRelease(t))
	}
	for _, r := range modes {
		t.Run(r.name, func(t *testing.T) { f(t, r) })
	}
}

// checkRecovery checks that the daemon recovers the way r says, and says
// so once.
func checkRecovery(t *testing.T, d *corralfsDaemon, r recovery) {
	t.Helper()
	want := "yes"
	if r.relay() {
		want = "no"
		if n := strings.Count(d.out.String(), "the supervisor reads every request itself"); n != 1 {
			t.Errorf("the relay was announced %d times, want once:\n%s", n, d.out.String())
		}
	}
	if st := d.status(); st.Resend != want || st.Relay != r.relay() {
		t.Errorf("status resend=%q relay=%v, want %q, %v", st.Resend, st.Relay, want, r.relay())
	}
	out, err := exec.Command(d.cmd.Path, "status", "--control-socket", d.ctl).CombinedOutput()
	if wantText := map[bool]string{true: "kept by the supervisor's relay", false: "re-queued by the kernel"}[r.relay()]; err != nil || !strings.Contains(string(out), wantText) {
		t.Errorf("corralfs status does not say %q: %v\n%s", wantText, err, out)
	}
}

func kernelRelease(t *testing.T) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kernelHasResend: Linux 6.9 brought FUSE_NOTIFY_RESEND.
func kernelHasResend(t *testing.T) bool {
	var major, minor int
	fmt.Sscanf(kernelRelease(t), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 9
}

// processGone waits up to 2 s for pid to exit (a zombie counts as gone:
// reaping an orphan is its new parent's business).
func processGone(pid int) bool {
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Four reader loops in two containers, the serving process killed with
// SIGKILL five times: every read succeeds, fast, with its own container's
// numbers.
func TestSurviveWorkerKill9(t *testing.T) {
	testutil.RequireRoot(t)
	forEachRecovery(t, surviveWorkerKill9)
}

func surviveWorkerKill9(t *testing.T, r recovery) {
	d, e, _ := surviveDaemon(t, r.args...)
	checkRecovery(t, d, r)
	supervisor := d.cmd.Process.Pid
	st := d.status()
	if st.Pid != supervisor || st.WorkerPid == 0 || st.WorkerPid == supervisor {
		t.Fatalf("status: supervisor %d, worker %d; the daemon is %d", st.Pid, st.WorkerPid, supervisor)
	}
	fds := fdCount(t, supervisor)
	cs := startSurviveReaders(t, e, 10*time.Second)
	time.Sleep(1500 * time.Millisecond) // the containers are reading by now
	var killed []int
	for i := 0; i < 5; i++ {
		w := d.status().WorkerPid
		if err := syscall.Kill(w, syscall.SIGKILL); err != nil {
			t.Fatalf("kill worker %d: %v", w, err)
		}
		killed = append(killed, w)
		time.Sleep(1200 * time.Millisecond)
	}
	checkSurviveReaders(t, cs, 60*time.Second)

	st = d.status()
	if st.Pid != supervisor || st.Restarts != 5 {
		t.Errorf("after 5 kills: status %+v, want supervisor %d and 5 restarts", st, supervisor)
	}
	for _, pid := range killed {
		if pid == st.WorkerPid || !processGone(pid) {
			t.Errorf("killed worker %d still exists", pid)
		}
	}
	if n := fdCount(t, supervisor); n > fds { // fewer: a start-up fd (sd_notify socket) was still open at the first count
		t.Errorf("supervisor has %d descriptors after 5 restarts, %d before", n, fds)
	}
	if b, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil || !strings.HasPrefix(string(b), "MemTotal:") {
		t.Errorf("mount after the kills: %q, %v", b, err)
	}
	out, err := exec.Command(d.cmd.Path, "status", "--control-socket", d.ctl).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restarts 5") || !strings.Contains(string(out), fmt.Sprintf("supervisor:   pid %d", supervisor)) {
		t.Errorf("corralfs status: %v\n%s", err, out)
	}
	worker := st.WorkerPid
	d.stop()
	if !processGone(worker) {
		t.Errorf("worker %d outlived the supervisor's stop", worker)
	}
}

// Three in-place upgrades (a new binary at the daemon's path, SIGHUP)
// while the containers read: no failed read, and each upgrade serves from
// the new file.
func TestSurviveUpgrades(t *testing.T) {
	testutil.RequireRoot(t)
	forEachRecovery(t, surviveUpgrades)
}

func surviveUpgrades(t *testing.T, r recovery) {
	d, e, bin := surviveDaemon(t, r.args...)
	checkRecovery(t, d, r)
	supervisor := d.cmd.Process.Pid
	seen := map[string]bool{d.status().WorkerBinary: true}
	cs := startSurviveReaders(t, e, 8*time.Second)
	time.Sleep(1500 * time.Millisecond)
	for i := 0; i < 3; i++ {
		// Replace the file (rename: the running one stays intact), as a
		// package manager does.
		tmp := bin + ".new"
		if err := copyFile(testutil.Binary(t, "corralfs"), tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(supervisor, syscall.SIGHUP)
		deadline := time.Now().Add(20 * time.Second)
		for d.status().Upgrades != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("upgrade %d not done after 20 s:\n%s", i+1, d.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		st := d.status()
		if seen[st.WorkerBinary] || st.Pid != supervisor {
			t.Errorf("upgrade %d: worker runs %s (seen: %v), supervisor %d (want %d)", i+1, st.WorkerBinary, seen, st.Pid, supervisor)
		}
		seen[st.WorkerBinary] = true
		time.Sleep(1500 * time.Millisecond)
	}
	checkSurviveReaders(t, cs, 60*time.Second)
	if st := d.status(); st.Restarts != 0 || st.Upgrades != 3 {
		t.Errorf("after 3 upgrades: restarts %d, upgrades %d", st.Restarts, st.Upgrades)
	}
}

// The sysinfo(2) agent runs in the worker: across five SIGKILLs of the
// worker, sysinfo in a running container never fails or hangs (the keeper
// holds the listener and lets the real call run while no agent is
// attached), and each new worker's agent gives the container its own
// values again.
func TestSurviveWorkerKill9Sysinfo(t *testing.T) {
	testutil.RequireRoot(t)
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	p := startServeProbe(t, sock, cg)
	// An answer within a second: the keeper answers a call the agent has
	// not answered within its stall timeout (0.9 s) itself. Under the VM's
	// TCG emulation (10-20x slower) that second is 3.
	slow := time.Duration(testutil.Repeat(1, 3)) * time.Second
	ownValues := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, took := p.ask(2 * slow)
			if r.Errno != 0 || took > slow {
				t.Fatalf("%s: sysinfo errno %d after %v", what, r.Errno, took)
			}
			if r.TotalBytes == sysinfoTotalRAM {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sysinfo still says %+v, want the container's 256 MiB", what, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ownValues("before the kills")
	for i := 0; i < 5; i++ {
		w := d.status().WorkerPid
		if err := syscall.Kill(w, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 10; j++ { // right after the kill: host values at worst
			if r, took := p.ask(slow); r.Errno != 0 || took > slow {
				t.Fatalf("kill %d: sysinfo errno %d after %v", i+1, r.Errno, took)
			}
		}
		ownValues(fmt.Sprintf("after kill %d", i+1))
	}
	if st := d.status(); st.Restarts != 5 {
		t.Errorf("restarts %d, want 5", st.Restarts)
	}
}
