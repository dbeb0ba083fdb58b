package cgroupreader_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/tests/testutil"
)

// sleeperEnv makes the test binary act as the child process of
// TestRealHost: re-executing ourselves works inside the cgroup v2 VM where
// only the static test binary exists.
const sleeperEnv = "CGROUPREADER_TEST_SLEEPER"

// sleeper waits for "go" on stdin, then (now inside the test cgroup)
// touches 16 MiB and burns ~50 ms of CPU so the cgroup has usage to show,
// answers "done", and exits when stdin closes (the test ended or died).
func sleeper() {
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(0)
	}
	mem := make([]byte, 16<<20)
	for i := range mem {
		mem[i] = byte(i)
	}
	// 50 ms of CPU time, not of wall time: on a loaded machine the
	// cgroup must still have something to count.
	start := cpuTime()
	for deadline := time.Now().Add(10 * time.Second); cpuTime()-start < 50*time.Millisecond && time.Now().Before(deadline); {
	}
	os.Stdout.WriteString("done\n")
	io.Copy(io.Discard, in)
	_ = mem[len(mem)-1]
	os.Exit(0)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestRealHost reads a real cgroup on this machine (v1/hybrid here, v2 in
// the VM): /corral-test/cgroupreader-host carries the limits, the process
// sits in its child "inner" whose own limits are looser, so the effective
// limits must come from walking up the real hierarchy.
func TestRealHost(t *testing.T) {
	testutil.RequireRoot(t)
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Mode().String(), testutil.DetectCgroupMode().String(); got != want {
		t.Fatalf("Mode = %s, the filesystem says %s", got, want)
	}
	cg := testutil.NewCgroup(t, "cgroupreader-host", testutil.CgroupLimits{
		MemoryBytes: 300 << 20, CPUQuotaUs: 150000, CPUPeriodUs: 100000, Cpus: "0", PidsMax: 64,
	})
	v2 := r.Mode() == cgroupreader.ModeV2
	// No swap for the parent, where the kernel accounts swap.
	swapFile, swapVal := "memory.memsw.limit_in_bytes", strconv.Itoa(300<<20)
	if v2 {
		swapFile, swapVal = "memory.swap.max", "0"
	}
	_, err = os.Stat(filepath.Join(cg.Dir("memory"), swapFile))
	swapAccounting := err == nil
	if swapAccounting {
		cgWrite(t, filepath.Join(cg.Dir("memory"), swapFile), swapVal)
	}

	inner := makeInner(t, cg, v2)
	// inner's own limits are looser than the parent's; the effective ones
	// are the parent's. (v1 refuses a child quota above its parent's, so
	// there inner has none.)
	if v2 {
		cgWrite(t, filepath.Join(inner["memory"], "memory.max"), "1073741824")
		cgWrite(t, filepath.Join(inner["pids"], "pids.max"), "1000")
		cgWrite(t, filepath.Join(inner["cpu"], "cpu.max"), "400000 100000")
	} else {
		cgWrite(t, filepath.Join(inner["memory"], "memory.limit_in_bytes"), "1073741824")
		cgWrite(t, filepath.Join(inner["pids"], "pids.max"), "1000")
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe)
	child.Env = append(os.Environ(), sleeperEnv+"=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after NewCgroup's cleanup, so it runs first: the child
	// is gone before the cgroups are removed.
	t.Cleanup(func() {
		stdin.Close()
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
	})
	pid := child.Process.Pid
	for _, d := range uniq(inner) {
		cgWrite(t, filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid))
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("child: %q, %v", line, err)
	}

	innerPath := cg.Path + "/inner"
	paths, err := r.PathsOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	if v2 {
		if paths.Unified != innerPath {
			t.Errorf("PathsOf: Unified = %q, want %q", paths.Unified, innerPath)
		}
	} else {
		for ctrl := range inner {
			if paths.V1[ctrl] != innerPath {
				t.Errorf("PathsOf: V1[%s] = %q, want %q (all: %v)", ctrl, paths.V1[ctrl], innerPath, paths.V1)
			}
		}
	}

	s, err := r.Snapshot(paths, cgroupreader.DefaultParts|cgroupreader.PartIO|cgroupreader.PartPSI|cgroupreader.PartTasks)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot of %s: %+v", innerPath, s)
	if s.Mode != r.Mode() {
		t.Errorf("Mode = %v", s.Mode)
	}
	m := s.Memory
	if m.Limit != set(300<<20) || m.Usage < 16<<20 || m.Usage > 300<<20 {
		t.Errorf("memory: limit %+v usage %d", m.Limit, m.Usage)
	}
	if m.Stat.Anon+m.Stat.File == 0 || m.Stat.Anon > m.Usage {
		t.Errorf("memory.stat: %+v", m.Stat)
	}
	if m.SwapAccounting != swapAccounting || (swapAccounting && m.SwapLimit != set(0)) {
		t.Errorf("swap: accounting %v limit %+v (files: %v)", m.SwapAccounting, m.SwapLimit, swapAccounting)
	}
	c := s.CPU
	if c.Quota != set(150000) || c.Period != 100000 {
		t.Errorf("quota %+v/%d, want 150000/100000", c.Quota, c.Period)
	}
	if !reflect.DeepEqual(c.Cpuset, []int{0}) {
		t.Errorf("cpuset %v, want [0]", c.Cpuset)
	}
	if c.UsageUser+c.UsageSystem < uint64(20*time.Millisecond) || c.UsageUser+c.UsageSystem > uint64(10*time.Second) {
		t.Errorf("cpu usage user %d sys %d ns", c.UsageUser, c.UsageSystem)
	}
	if v2 {
		if c.Weight == 0 || c.PerCPU != nil {
			t.Errorf("v2 cpu: weight %d percpu %v", c.Weight, c.PerCPU)
		}
	} else {
		var sum uint64
		for _, p := range c.PerCPU {
			sum += p.User + p.System
		}
		if c.Shares == 0 || len(c.PerCPU) == 0 || sum != c.UsageUser+c.UsageSystem {
			t.Errorf("v1 cpu: shares %d, percpu %v sums to %d, total %d", c.Shares, c.PerCPU, sum, c.UsageUser+c.UsageSystem)
		}
	}
	if s.Pids.Limit != set(64) || s.Pids.Current < 1 {
		t.Errorf("pids %+v", s.Pids)
	}
	if !reflect.DeepEqual(s.Tasks, []int{pid}) {
		t.Errorf("tasks %v, want [%d]", s.Tasks, pid)
	}
	for g, err := range s.Missing {
		switch {
		case g == cgroupreader.GroupIO && errors.Is(err, cgroupreader.ErrUnavailable):
			// no io controller offered by this kernel
		case g == cgroupreader.GroupPSI && paths.Unified == "/" && errors.Is(err, cgroupreader.ErrRootPSI):
			// hybrid: our unified cgroup is the root
		case g == cgroupreader.GroupPSI && !exists("/proc/pressure/cpu"):
			// kernel without PSI
		default:
			t.Errorf("Missing[%s] = %v", g, err)
		}
	}
	if v2 && exists("/proc/pressure/cpu") && !strings.HasPrefix(string(s.PSI.CPU), "some avg10=") {
		t.Errorf("PSI.CPU = %q", s.PSI.CPU)
	}

	// The parent sees the child's task; the cgroup goes away -> ErrNotExist.
	parent := cgroupreader.Paths{Unified: cg.Path, V1: map[string]string{}}
	for ctrl := range inner {
		parent.V1[ctrl] = cg.Path
	}
	ps, err := r.Snapshot(parent, cgroupreader.PartTasks|cgroupreader.PartMemory)
	if err != nil || !reflect.DeepEqual(ps.Tasks, []int{pid}) || ps.Memory.Usage < 16<<20 { // not >= the child: two reads at two moments
		t.Errorf("parent: tasks %v usage %d, %v", ps.Tasks, ps.Memory.Usage, err)
	}
	stdin.Close()
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	for _, d := range uniq(inner) {
		rmdirRetry(t, d)
	}
	if _, err := r.Snapshot(paths, cgroupreader.DefaultParts); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Snapshot after rmdir: %v, want ErrNotExist", err)
	}
}

// makeInner creates CG/inner in each hierarchy (v1: controller -> dir; v2:
// every controller -> the one dir, with the parent's controllers delegated).
func makeInner(t *testing.T, cg *testutil.Cgroup, v2 bool) map[string]string {
	t.Helper()
	inner := map[string]string{}
	if v2 {
		parent := cg.Dir("")
		avail, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
		if err != nil {
			t.Fatal(err)
		}
		for _, ctrl := range strings.Fields(string(avail)) {
			if ctrl == "cpu" || ctrl == "cpuset" || ctrl == "memory" || ctrl == "pids" || ctrl == "io" {
				cgWrite(t, filepath.Join(parent, "cgroup.subtree_control"), "+"+ctrl)
			}
		}
		d := filepath.Join(parent, "inner")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, ctrl := range []string{"memory", "pids", "cpu"} {
			inner[ctrl] = d
		}
		return inner
	}
	for _, ctrl := range []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"} {
		dir := cg.Dir(ctrl)
		if dir == "" {
			continue
		}
		d := filepath.Join(dir, "inner")
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		if ctrl == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				cgWrite(t, filepath.Join(d, f), strings.TrimSpace(string(b)))
			}
		}
		inner[ctrl] = d
	}
	return inner
}

func cgWrite(t *testing.T, path, val string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(val); err != nil {
		t.Fatalf("write %q to %s: %v", val, path, err)
	}
}

func uniq(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range m {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// rmdirRetry removes an emptied cgroup; the kernel may take a moment to
// release it after its last task exited.
func rmdirRetry(t *testing.T, d string) {
	t.Helper()
	for i := 0; ; i++ {
		err := syscall.Rmdir(d)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		if i == 100 {
			t.Fatalf("rmdir %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
