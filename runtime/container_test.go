package runtime_test

// In-process tests of the API that `corral run` uses: Create(Foreground) +
// Start + Wait + Delete, with this test binary re-executed as the
// container init (TestMain calls MaybeInit).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/runtime"
	_ "github.com/corral-dev/corral/runtime/cgroupdriver"
	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	runtime.MaybeInit()
	os.Exit(m.Run())
}

var testSeq atomic.Int64

func testID(what string) string {
	return fmt.Sprintf("rtpkg-%d-%s-%d", os.Getpid(), what, testSeq.Add(1))
}

// testRuntime is a runtime.Runtime with a private state root; on cleanup it checks
// that nothing of the test's containers is left.
func testRuntime(t *testing.T) *runtime.Runtime {
	t.Helper()
	testutil.RequireRoot(t)
	r := &runtime.Runtime{Root: t.TempDir()}
	t.Cleanup(func() {
		cs, _ := r.List()
		for _, c := range cs {
			c.Delete(true)
			t.Errorf("container %s left behind", c.ID())
		}
	})
	return r
}

// testSpec: the default spec on a busybox rootfs, no terminal, cgroup under
// /corral-test.
func testSpec(t *testing.T, id string, args ...string) *specs.Spec {
	t.Helper()
	s := runtime.DefaultSpec()
	s.Root.Path = testutil.BusyboxRootfs(t)
	s.Root.Readonly = false
	s.Process.Terminal = false
	s.Process.Args = args
	s.Linux.CgroupsPath = "/corral-test/" + id
	return s
}

// checkGone fails when the container's state or cgroup still exists.
func checkGone(t *testing.T, r *runtime.Runtime, id string) {
	t.Helper()
	if _, err := r.Load(id); !errors.Is(err, runtime.ErrNotExist) {
		t.Errorf("container %s still loadable: %v", id, err)
	}
	if runtime.CgroupExists("/corral-test/" + id) {
		t.Errorf("cgroup /corral-test/%s left behind", id)
	}
}

// runForeground is `corral run` in miniature; it returns the exit status,
// the output and the final state.
func runForeground(t *testing.T, r *runtime.Runtime, id string, s *specs.Spec) (int, string, *runtime.State) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Create(id, runtime.CreateOpts{Spec: s, Foreground: true, Stdout: pw, Stderr: pw})
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("create: %v", err)
	}
	outc := make(chan string)
	go func() { b, _ := io.ReadAll(pr); pr.Close(); outc <- string(b) }()
	if err := c.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	code, err := c.Wait()
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	out := <-outc
	st, err := c.State()
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if err := c.Delete(false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	checkGone(t, r, id)
	return code, out, st
}

func TestForegroundExitStatus(t *testing.T) {
	r := testRuntime(t)
	id := testID("exit")
	code, out, st := runForeground(t, r, id, testSpec(t, id, "sh", "-c", "echo hi; exit 3"))
	if code != 3 || out != "hi\n" || st.Status != specs.StateStopped || st.OOMKilled {
		t.Errorf("exit %d, output %q, state %+v", code, out, st)
	}
}

func TestForegroundKilledBySignal(t *testing.T) {
	r := testRuntime(t)
	id := testID("sig")
	c, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "sleep", "100"), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(unix.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(); code != 137 || err != nil {
		t.Errorf("wait after SIGKILL: %d, %v; want 137", code, err)
	}
	if st, _ := c.State(); st.OOMKilled {
		t.Error("a plain SIGKILL reported as an OOM kill")
	}
	if err := c.Delete(false); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, id)
}

func TestForegroundOOM(t *testing.T) {
	r := testRuntime(t)
	id := testID("oom")
	s := testSpec(t, id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	lim := int64(32 << 20)
	s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim, Swap: &lim}}
	code, _, st := runForeground(t, r, id, s)
	if code != 137 || !st.OOMKilled {
		t.Errorf("memory hog: exit %d, OOMKilled %v; want 137, true", code, st.OOMKilled)
	}
}

// TestForegroundTerminal: terminal without a console socket gives the
// caller the pty master (what `corral run -t` proxies).
func TestForegroundTerminal(t *testing.T) {
	r := testRuntime(t)
	id := testID("tty")
	s := testSpec(t, id, "sh", "-c", "tty; stty size")
	s.Process.Terminal = true
	s.Process.ConsoleSize = &specs.Box{Height: 33, Width: 111}
	c, err := r.Create(id, runtime.CreateOpts{Spec: s, Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	master := c.Console()
	if master == nil {
		t.Fatal("no console")
	}
	defer master.Close()
	outc := make(chan string)
	go func() { b, _ := io.ReadAll(master); outc <- string(b) }()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(); code != 0 || err != nil {
		t.Errorf("wait: %d %v", code, err)
	}
	var out string
	select {
	case out = <-outc:
	case <-time.After(3 * time.Second):
		master.Close()
		out = <-outc
	}
	out = strings.ReplaceAll(out, "\r", "")
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "33 111") {
		t.Errorf("tty output %q", out)
	}
	if err := c.Delete(false); err != nil {
		t.Fatal(err)
	}
}

// TestCreateErrorKinds: a missing or non-executable program is reported by
// Create (not lost after Start), with sentinels `corral run` maps to 127
// and 126; and nothing is left.
func TestCreateErrorKinds(t *testing.T) {
	r := testRuntime(t)
	id := testID("nf")
	_, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "no-such-program"), Foreground: true})
	if !errors.Is(err, runtime.ErrExecNotFound) {
		t.Errorf("missing program: %v", err)
	}
	checkGone(t, r, id)

	id = testID("perm")
	s := testSpec(t, id, "/etc/passwd")
	_, err = r.Create(id, runtime.CreateOpts{Spec: s, Foreground: true})
	if !errors.Is(err, runtime.ErrExecPermission) {
		t.Errorf("non-executable program: %v", err)
	}
	checkGone(t, r, id)

	id = testID("dup")
	c, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "true")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "true")}); !errors.Is(err, runtime.ErrExist) {
		t.Errorf("duplicate: %v", err)
	}
	if err := c.Delete(false); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, id)
}

// TestExecAPI: Exec in the foreground returns the process's status and
// reports a missing program.
func TestExecAPI(t *testing.T) {
	r := testRuntime(t)
	id := testID("exec")
	c, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "sleep", "100"), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(true)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &specs.Process{Args: []string{"sh", "-c", "exit 5"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	if code, err := c.Exec(p, runtime.ExecOpts{}); code != 5 || err != nil {
		t.Errorf("exec exit: %d %v", code, err)
	}
	p.Args = []string{"nope"}
	if _, err := c.Exec(p, runtime.ExecOpts{}); !errors.Is(err, runtime.ErrExecNotFound) {
		t.Errorf("exec of a missing program: %v", err)
	}
	if err := c.Delete(true); err != nil {
		t.Fatal(err)
	}
	checkGone(t, r, id)
}

// TestRollbackOnInitFailure: a failure inside the init (here a mount with a
// missing source) leaves no state, cgroup or process.
func TestRollbackOnInitFailure(t *testing.T) {
	r := testRuntime(t)
	id := testID("rollback")
	s := testSpec(t, id, "true")
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: filepath.Join(t.TempDir(), "missing"), Options: []string{"bind"}})
	_, err := r.Create(id, runtime.CreateOpts{Spec: s})
	if err == nil || !strings.Contains(err.Error(), "bind source") {
		t.Errorf("create: %v", err)
	}
	checkGone(t, r, id)
}

// TestRawForkSpawn runs a container through the plain-fork spawn path that
// kernels before 6.3 need for a time namespace (spawn_rawfork.go), so it is
// covered on every kernel: exit status, stdio, a fresh uptime, and an empty
// signal mask for the container's process.
func TestRawForkSpawn(t *testing.T) {
	r := testRuntime(t)
	*runtime.RawForkForced = true
	defer func() { *runtime.RawForkForced = false }()
	id := testID("rawfork")
	// The time namespace's boottime offset is minus the host's uptime at
	// creation (so /proc/uptime starts near 0): check the offset itself,
	// and the uptime only loosely (an emulated VM under load is slow).
	s := testSpec(t, id, "sh", "-c", `echo "up=$(cut -d. -f1 /proc/uptime) blk=$(grep SigBlk /proc/self/status | cut -f2) off=$(awk '/boottime/ {print $2}' /proc/self/timens_offsets)"; exit 4`)
	code, out, _ := runForeground(t, r, id, s)
	var up, off int64
	var blk string
	if _, err := fmt.Sscanf(out, "up=%d blk=%s off=%d\n", &up, &blk, &off); err != nil || code != 4 {
		t.Fatalf("exit %d, output %q (%v)", code, out, err)
	}
	if blk != "0000000000000000" || up > 5 || off >= 0 {
		t.Errorf("want an empty signal mask, uptime near 0 and a negative boottime offset; got %q", out)
	}
	// exec goes through the same path.
	id = testID("rawforkexec")
	c, err := r.Create(id, runtime.CreateOpts{Spec: testSpec(t, id, "sleep", "100"), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(true)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &specs.Process{Args: []string{"sh", "-c", "exit 6"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	if code, err := c.Exec(p, runtime.ExecOpts{}); code != 6 || err != nil {
		t.Errorf("exec: %d %v", code, err)
	}
}
