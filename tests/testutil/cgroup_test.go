package testutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// procCgroups parses /proc/PID/cgroup into controller -> path ("" for the
// v2 line "0::/path"); co-mounted lists ("cpu,cpuacct") yield one entry each.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			t.Fatalf("bad /proc/%d/cgroup line %q", pid, line)
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestDetectCgroupMode(t *testing.T) {
	mode := DetectCgroupMode()
	own := procCgroups(t, os.Getpid())
	switch mode {
	case CgroupModeV2:
		// A unified-only kernel lists just the "0::" line.
		if len(own) != 1 {
			t.Errorf("mode v2 but /proc/self/cgroup has v1 lines: %v", own)
		}
	case CgroupModeV1, CgroupModeHybrid:
		if _, ok := own["memory"]; !ok {
			t.Errorf("mode %s but no memory line in /proc/self/cgroup: %v", mode, own)
		}
	default:
		t.Fatalf("mode %v", mode)
	}
	if got := mode.String(); got != "v1" && got != "hybrid" && got != "v2" {
		t.Errorf("String() = %q", got)
	}
}

func TestNewCgroupWritesLimits(t *testing.T) {
	RequireRoot(t)
	cg := NewCgroup(t, "testutil-limits", CgroupLimits{
		MemoryBytes: 64 << 20,
		SwapBytes:   SwapNone,
		CPUQuotaUs:  50000,
		CPUPeriodUs: 200000,
		Cpus:        "0",
		PidsMax:     17,
	})
	want := map[string]string{}
	if cg.Mode == CgroupModeV2 {
		d := cg.Dir("")
		want[filepath.Join(d, "memory.max")] = "67108864"
		want[filepath.Join(d, "cpu.max")] = "50000 200000"
		want[filepath.Join(d, "cpuset.cpus")] = "0"
		want[filepath.Join(d, "pids.max")] = "17"
		if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
			want[filepath.Join(d, "memory.swap.max")] = "0"
		}
	} else {
		want[filepath.Join(cg.Dir("memory"), "memory.limit_in_bytes")] = "67108864"
		want[filepath.Join(cg.Dir("memory"), "memory.memsw.limit_in_bytes")] = "67108864"
		want[filepath.Join(cg.Dir("cpu"), "cpu.cfs_quota_us")] = "50000"
		want[filepath.Join(cg.Dir("cpu"), "cpu.cfs_period_us")] = "200000"
		want[filepath.Join(cg.Dir("cpuset"), "cpuset.cpus")] = "0"
		want[filepath.Join(cg.Dir("pids"), "pids.max")] = "17"
		if cg.Dir("cpuacct") == "" || cg.Dir("blkio") == "" {
			t.Errorf("cpuacct/blkio hierarchies missing: %v", cg.dirs)
		}
	}
	for path, val := range want {
		if got := readTrim(t, path); got != val {
			t.Errorf("%s = %q, want %q", path, got, val)
		}
		if !strings.Contains(path, "/corral-test/testutil-limits/") {
			t.Errorf("%s is not below /corral-test/testutil-limits", path)
		}
	}
}

// TestCgroupLifecycle runs a process in a test cgroup inside a subtest and
// checks, after the subtest's cleanup, that the process and the cgroup
// directories are gone.
func TestCgroupLifecycle(t *testing.T) {
	RequireRoot(t)
	bb := StaticBusybox(t)
	var dirs []string
	var pid int
	t.Run("inner", func(t *testing.T) {
		cg := NewCgroup(t, "testutil-lifecycle", CgroupLimits{PidsMax: 50})
		for _, d := range cg.uniqueDirs() {
			dirs = append(dirs, d)
		}
		cmd := StartInPidNS(t, cg, bb, "sleep", "1000")
		pid = cmd.Process.Pid

		got := procCgroups(t, pid)
		paths := cg.Paths()
		if cg.Mode == CgroupModeV2 {
			if got[""] != "/corral-test/testutil-lifecycle" || paths.Unified != got[""] {
				t.Errorf("/proc/%d/cgroup = %v, Paths() = %+v", pid, got, paths)
			}
		} else {
			if len(paths.V1) == 0 {
				t.Fatalf("Paths() has no v1 paths: %+v", paths)
			}
			for ctrl, p := range paths.V1 {
				if got[ctrl] != p || p != "/corral-test/testutil-lifecycle" {
					t.Errorf("controller %s: /proc says %q, Paths() %q", ctrl, got[ctrl], p)
				}
			}
		}
		procs, err := cg.Procs()
		if err != nil || len(procs) != 1 || procs[0] != pid {
			t.Errorf("Procs() = %v, %v; want [%d]", procs, err, pid)
		}
		// A second process added by AddProc lands there too.
		second := StartInPidNS(t, nil, bb, "sleep", "1000")
		if err := cg.AddProc(second.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if procs, _ := cg.Procs(); len(procs) != 2 {
			t.Errorf("after AddProc: Procs() = %v", procs)
		}
	})
	if pid == 0 {
		t.Fatal("inner test did not start a process")
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists after cleanup (err=%v)", d, err)
		}
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("process %d still alive after cleanup: %v", pid, err)
	}
}

// TestNewCgroupReplacesLeftover: a cgroup left behind by a crashed run (with
// a child cgroup and a live process) is emptied and recreated.
func TestNewCgroupReplacesLeftover(t *testing.T) {
	RequireRoot(t)
	bb := StaticBusybox(t)
	first := NewCgroup(t, "testutil-leftover", CgroupLimits{})
	var stray []int
	for _, d := range first.uniqueDirs() {
		if err := os.Mkdir(filepath.Join(d, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		if first.Mode == CgroupModeV1 || first.Mode == CgroupModeHybrid {
			if strings.Contains(d, "cpuset") {
				if err := copyCpuset(d, filepath.Join(d, "child")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cmd := StartInPidNS(t, nil, bb, "sleep", "1000")
	for _, d := range first.uniqueDirs() {
		if err := writeFile(filepath.Join(d, "child", "cgroup.procs"), strconv.Itoa(cmd.Process.Pid)); err != nil {
			t.Fatal(err)
		}
	}
	stray = append(stray, cmd.Process.Pid)

	second := NewCgroup(t, "testutil-leftover", CgroupLimits{PidsMax: 5})
	for _, d := range second.uniqueDirs() {
		if _, err := os.Stat(filepath.Join(d, "child")); !os.IsNotExist(err) {
			t.Errorf("leftover child cgroup %s/child survived", d)
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("stray process %v exited cleanly; want it killed", stray)
	}
	if got := readTrim(t, filepath.Join(second.Dir("pids"), "pids.max")); got != "5" {
		t.Errorf("pids.max = %q", got)
	}
}

func TestRemoveRefusesForeignCgroup(t *testing.T) {
	if err := removeCgroupTree("/sys/fs/cgroup/memory/somewhere-else"); err == nil {
		t.Fatal("removeCgroupTree accepted a path outside /corral-test")
	}
}

// TestNewCgroupParallel: one test's cleanup removing the then-empty
// /corral-test must not break another creating its cgroup at that moment
// (test binaries of different packages run at the same time).
func TestNewCgroupParallel(t *testing.T) {
	RequireRoot(t)
	for w := 0; w < 4; w++ {
		t.Run(strconv.Itoa(w), func(t *testing.T) {
			t.Parallel()
			for i := 0; i < 10; i++ {
				t.Run(strconv.Itoa(i), func(t *testing.T) {
					cg := NewCgroup(t, "testutil-parallel-"+strconv.Itoa(w), CgroupLimits{PidsMax: 10, Cpus: "0"})
					if got := readTrim(t, filepath.Join(cg.Dir("pids"), "pids.max")); got != "10" {
						t.Errorf("pids.max = %q", got)
					}
				})
			}
		})
	}
}
