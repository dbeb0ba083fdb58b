package tests

// Helpers of the `corral run` integration tests (run_*_test.go). They drive
// the real bin/corral and bin/corralfs as a user would: every container is
// a real one (namespaces, cgroups, pivot_root) and the views come from a
// real FUSE mount.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// runEnv is one test's corral: its own state root (so parallel tests and a
// real /run/corral never see each other's containers) and optionally a
// corralfs mount of its own.
type runEnv struct {
	corral string
	root   string // --root
	views  string // the corralfs mount, "" without
}

// runNewEnv needs root and the built binaries; withViews starts a corralfs
// on a fresh mount point, stopped (and checked unmounted) when the test ends.
func runNewEnv(t *testing.T, withViews bool) *runEnv {
	t.Helper()
	testutil.RequireRoot(t)
	e := &runEnv{corral: testutil.Binary(t, "corral"), root: t.TempDir()}
	t.Cleanup(func() { e.checkNoLeftovers(t) })
	if withViews {
		testutil.RequireFUSE(t)
		e.views = runStartCorralfs(t)
	}
	return e
}

// runStartCorralfs starts bin/corralfs on a new directory and waits until
// the mount answers. It returns the mount point.
func runStartCorralfs(t *testing.T) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "corralfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "corralfs.pid")
	var log bytes.Buffer
	// No control socket and no sysinfo agent: their default paths belong
	// to a real daemon (and to TestSysinfoCorralRun, which skips or fails
	// while a keeper serves the default socket).
	cmd := exec.Command(testutil.Binary(t, "corralfs"), "--pidfile", pidfile, "--control-socket", "", "--seccomp-socket=", mnt)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("corralfs did not exit within 10 s of SIGTERM; log:\n%s", log.String())
		}
		if runIsMounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Errorf("corralfs exited but %s is still mounted", mnt)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(pidfile); err == nil && runIsMounted(mnt) {
			return mnt
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("corralfs exited early (%v):\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("corralfs did not mount %s within 10 s:\n%s", mnt, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runIsMounted reports whether a FUSE filesystem is mounted at dir.
func runIsMounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir && strings.Contains(sc.Text(), " - fuse") {
			return true
		}
	}
	return false
}

// runResult is what a `corral run` printed and returned.
type runResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// run executes `corral --root ROOT ARGS...` with a 60 s limit.
func (e *runEnv) run(t *testing.T, args ...string) runResult {
	t.Helper()
	return e.runStdin(t, nil, args...)
}

func (e *runEnv) runStdin(t *testing.T, stdin []byte, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(e.corral, append([]string{"--root", e.root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	r := runResult{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ee.ExitCode() < 0 {
			r.code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
	default:
		t.Fatalf("corral %v: %v", args, err)
	}
	return r
}

// runFlags returns the flags every container of this env gets: --rm, and
// the views (or --views none).
func (e *runEnv) runFlags() []string {
	v := "none"
	if e.views != "" {
		v = e.views
	}
	// --sysinfo off: the sysinfo(2) agent is issue 4's test subject; a
	// corralfs started by another test must not change these containers.
	return []string{"run", "--rm", "--views", v, "--sysinfo", "off"}
}

// sh runs `sh -c script` in a fresh --rm container with extra flags (e.g.
// --rootfs DIR, limits) and fails the test unless it exits 0. It returns
// stdout with the trailing newline trimmed.
func (e *runEnv) sh(t *testing.T, flags []string, script string) string {
	t.Helper()
	args := append(append(e.runFlags(), "--name", runName("sh")), flags...)
	args = append(args, "--", "sh", "-c", script)
	r := e.run(t, args...)
	if r.code != 0 {
		t.Fatalf("corral %s\nexit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return strings.TrimRight(r.stdout, "\n")
}

// exec runs argv directly (no shell) in a fresh --rm container with extra
// flags and fails the test unless it exits 0. It returns stdout.
func (e *runEnv) exec(t *testing.T, flags []string, argv ...string) string {
	t.Helper()
	args := append(append(e.runFlags(), "--name", runName("exec")), flags...)
	args = append(append(args, "--"), argv...)
	r := e.run(t, args...)
	if r.code != 0 {
		t.Fatalf("corral %s\nexit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return strings.TrimRight(r.stdout, "\n")
}

// checkNoLeftovers fails the test when a container of this env left state,
// a cgroup or a mount behind (every container here runs with --rm or is
// deleted by its test).
func (e *runEnv) checkNoLeftovers(t *testing.T) {
	ents, _ := os.ReadDir(e.root)
	for _, ent := range ents {
		t.Errorf("leftover in the state root: %s", filepath.Join(e.root, ent.Name()))
		// Reported; now clean it, so one failure (say a corral run killed
		// at its time limit) does not leave a cgroup on the machine.
		if ent.IsDir() {
			exec.Command(e.corral, "--root", e.root, "delete", "--force", ent.Name()).Run()
		}
	}
	for _, dir := range runCgroupParents() {
		kids, _ := os.ReadDir(dir)
		for _, k := range kids {
			if k.IsDir() && strings.HasPrefix(k.Name(), runNamePrefix()) {
				t.Errorf("leftover cgroup %s", filepath.Join(dir, k.Name()))
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(b, []byte(e.root)) {
		t.Errorf("a mount below the state root %s is left on the host", e.root)
	}
}

// runCgroupParents lists the directories of corral's default cgroup parent
// (/corral) in every mounted hierarchy, v1 or v2.
func runCgroupParents() []string {
	var out []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup/corral"}
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		out = append(out, filepath.Join("/sys/fs/cgroup", e.Name(), "corral"))
	}
	return out
}

// runSeq numbers the containers of this test binary.
var runSeq atomic.Int64

// runName returns a container name unique to this test binary, with a
// prefix (runNamePrefix) that checkNoLeftovers looks for among cgroups.
func runName(what string) string {
	return fmt.Sprintf("%s%s-%d", runNamePrefix(), what, runSeq.Add(1))
}

// runNamePrefix is shared by every container this test binary names;
// other packages' tests (run in parallel by go test) use other names.
func runNamePrefix() string { return fmt.Sprintf("run-%d-", os.Getpid()) }

// runNeedTool needs a host program that the default root exposes. In the
// cgroup v2 VM, whose small image has no JDK and only some procps tools, a
// missing one skips (the host run, where CI=true, covers it); everywhere
// else testutil.RequireCommand decides (skip on a laptop, fail in CI).
func runNeedTool(t *testing.T, name string) {
	t.Helper()
	if testutil.InVM() {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s is not in the VM image; the host run covers this", name)
		}
		return
	}
	testutil.RequireCommand(t, name)
}

// runBusybox returns a busybox rootfs for --rootfs.
func runBusybox(t *testing.T) string {
	t.Helper()
	return testutil.BusyboxRootfs(t)
}

// runHostMemTotalKB reads the host's MemTotal in kB.
func runHostMemTotalKB(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kb uint64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kb)
		}
	}
	if kb == 0 {
		t.Fatal("no MemTotal in /proc/meminfo")
	}
	return kb
}
