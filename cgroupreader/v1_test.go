package cgroupreader_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

// One hierarchy vanishing (v1: the cgroup is per controller) fails only
// that group.
func TestV1PartialVanish(t *testing.T) {
	r, cfg := newReader(t, fixtures.V1)
	p := pathsOf(t, r, fixtures.NoSwap.Pid)
	remove(t, v1dir(cfg, "memory", fixtures.NoSwap))
	s, err := r.Snapshot(p, cgroupreader.DefaultParts)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.Missing[cgroupreader.GroupMemory], fs.ErrNotExist) || len(s.Missing) != 1 {
		t.Errorf("Missing = %v", s.Missing)
	}
	if s.CPU.Shares != 1024 || s.Pids.Current != 16 {
		t.Errorf("other groups not read: %+v %+v", s.CPU, s.Pids)
	}
}

// Files a kernel may lack: the reader falls back or reports "absent"
// without losing the rest.
func TestV1Fallbacks(t *testing.T) {
	want := expected(fixtures.V1, fixtures.Swap)
	dir := func(cfg cgroupreader.Config, ctrl string) string { return v1dir(cfg, ctrl, fixtures.Swap) }
	snap := func(t *testing.T, r cgroupreader.Reader) cgroupreader.Snapshot {
		t.Helper()
		s, err := r.Snapshot(pathsOf(t, r, fixtures.Swap.Pid), cgroupreader.DefaultParts|cgroupreader.PartIO)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("no usage_all", func(t *testing.T) {
		r, cfg := newReader(t, fixtures.V1)
		remove(t, filepath.Join(dir(cfg, "cpuacct"), "cpuacct.usage_all"))
		s := snap(t, r)
		if s.CPU.UsageUser != want.CPU.UsageUser || s.CPU.UsageSystem != want.CPU.UsageSystem || !reflect.DeepEqual(s.CPU.PerCPU, want.CPU.PerCPU) {
			t.Errorf("CPU = %+v", s.CPU)
		}
	})
	t.Run("only cpuacct.stat", func(t *testing.T) {
		r, cfg := newReader(t, fixtures.V1)
		for _, f := range []string{"cpuacct.usage_all", "cpuacct.usage_user", "cpuacct.usage_sys", "cpuacct.usage_percpu_user", "cpuacct.usage_percpu_sys"} {
			remove(t, filepath.Join(dir(cfg, "cpuacct"), f))
		}
		s := snap(t, r)
		// Ticks of 10 ms: the fixture totals are multiples of 10 ms.
		if s.CPU.UsageUser != want.CPU.UsageUser || s.CPU.UsageSystem != want.CPU.UsageSystem || s.CPU.PerCPU != nil || s.Missing != nil {
			t.Errorf("CPU = %+v, missing %v", s.CPU, s.Missing)
		}
	})
	t.Run("no swap accounting", func(t *testing.T) {
		r, cfg := newReader(t, fixtures.V1)
		// As the kernel shows it with swapaccount=0: no memsw files, no
		// swap lines in memory.stat.
		remove(t, filepath.Join(dir(cfg, "memory"), "memory.memsw.usage_in_bytes"), filepath.Join(dir(cfg, "memory"), "memory.memsw.limit_in_bytes"))
		stripLines(t, filepath.Join(dir(cfg, "memory"), "memory.stat"), "hierarchical_memsw_limit", "total_swap", "swap")
		s := snap(t, r)
		if s.Memory.SwapAccounting || s.Memory.SwapLimit.Set || s.Memory.SwapUsage != 0 || s.Memory.Limit != want.Memory.Limit || s.Missing != nil {
			t.Errorf("Memory = %+v, missing %v", s.Memory, s.Missing)
		}
	})
	t.Run("non-recursive blkio", func(t *testing.T) {
		r, cfg := newReader(t, fixtures.V1)
		d := v1dir(cfg, "blkio", fixtures.NoLimit)
		remove(t, filepath.Join(d, "blkio.throttle.io_service_bytes_recursive"), filepath.Join(d, "blkio.throttle.io_serviced_recursive"))
		s, err := r.Snapshot(pathsOf(t, r, fixtures.NoLimit.Pid), cgroupreader.PartIO)
		if err != nil || !reflect.DeepEqual(s.IO, expected(fixtures.V1, fixtures.NoLimit).IO) {
			t.Errorf("IO = %+v, %v", s.IO, err)
		}
	})
	t.Run("blkio not mounted", func(t *testing.T) {
		r, cfg := newReader(t, fixtures.V1)
		remove(t, filepath.Join(cfg.CgroupRoot, "blkio"))
		r, err := cgroupreader.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := snap(t, r)
		if !errors.Is(s.Missing[cgroupreader.GroupIO], cgroupreader.ErrUnavailable) || errors.Is(s.Missing[cgroupreader.GroupIO], fs.ErrNotExist) {
			t.Errorf("Missing = %v", s.Missing)
		}
	})
	t.Run("cpuset walks up past empty files", func(t *testing.T) {
		r, cfg := sharedReader(t, fixtures.V1)
		mutate(t, filepath.Join(cfg.CgroupRoot, "cpuset/ancestor/cpuset.effective_cpus"), "0-2,5\n")
		s, err := r.Snapshot(pathsOf(t, r, fixtures.Ancestor.Pid), cgroupreader.PartCpuset)
		if err != nil || !reflect.DeepEqual(s.CPU.Cpuset, []int{0, 1, 2, 5}) {
			t.Errorf("Cpuset = %v, %v", s.CPU.Cpuset, err)
		}
	})
}

// The effective memory limits come from memory.stat's hierarchical_*
// lines, which the kernel computes over all ancestors; the limit files
// are walked only when those lines are absent.
func TestV1MemoryLimits(t *testing.T) {
	r, cfg := sharedReader(t, fixtures.V1)
	p := pathsOf(t, r, fixtures.Ancestor.Pid)
	snap := func() cgroupreader.Memory {
		t.Helper()
		s, err := r.Snapshot(p, cgroupreader.PartMemory)
		if err != nil || s.Missing != nil {
			t.Fatalf("%v, missing %v", err, s.Missing)
		}
		return s.Memory
	}
	t.Run("memory.stat wins", func(t *testing.T) {
		mutate(t, filepath.Join(cfg.CgroupRoot, "memory/ancestor/memory.limit_in_bytes"), "1048576\n")
		if m := snap(); m.Limit != set(512*mib) || m.SwapLimit.Set {
			t.Errorf("Limit %+v SwapLimit %+v", m.Limit, m.SwapLimit)
		}
	})
	t.Run("walk", func(t *testing.T) {
		stat := filepath.Join(cfg.CgroupRoot, "memory/ancestor/child/memory.stat")
		old, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(stat, old, 0o644) })
		stripLines(t, stat, "hierarchical_", "total_swap")
		if m := snap(); m.Limit != set(512*mib) || m.SwapLimit.Set || !m.SwapAccounting || m.SwapUsage != 0 {
			t.Errorf("walked: %+v", m)
		}
		// Swap limited only above: the child may swap the ancestor's
		// memsw minus the effective memory limit.
		mutate(t, filepath.Join(cfg.CgroupRoot, "memory/ancestor/memory.memsw.limit_in_bytes"), "671088640\n") // 640 MiB
		mutate(t, filepath.Join(cfg.CgroupRoot, "memory/ancestor/child/memory.limit_in_bytes"), "268435456\n") // 256 MiB
		mutate(t, filepath.Join(cfg.CgroupRoot, "memory/ancestor/child/memory.memsw.usage_in_bytes"), itoa(150*mib+3*mib)+"\n")
		if m := snap(); m.Limit != set(256*mib) || m.SwapLimit != set(384*mib) || m.SwapUsage != 3*mib {
			t.Errorf("walked with memsw: %+v", m)
		}
	})
}

// stripLines removes the lines starting with any of prefixes from a file.
func stripLines(t *testing.T, path string, prefixes ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		drop := false
		for _, p := range prefixes {
			drop = drop || strings.HasPrefix(l, p)
		}
		if !drop {
			keep = append(keep, l)
		}
	}
	writeFile(t, path, strings.Join(keep, ""))
}

// v1 at its real root (release_agent there) has no limits to read at the
// root; mounted in a cgroup namespace (no release_agent) the root is an
// ordinary cgroup whose limits count.
func TestV1RootWithLimits(t *testing.T) {
	cfg := fixtures.Materialize(t, fixtures.V1)
	writeFile(t, filepath.Join(cfg.CgroupRoot, "cpu/cpu.cfs_quota_us"), "50000\n")
	writeFile(t, filepath.Join(cfg.CgroupRoot, "pids/pids.max"), "7\n")
	p := cgroupreader.Paths{V1: map[string]string{"cpu": "/nolimit", "pids": "/nolimit"}}
	opt := cgroupreader.PartCPUQuota | cgroupreader.PartPids
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := r.Snapshot(p, opt); err != nil || s.CPU.Quota.Set || s.Pids.Limit.Set {
		t.Errorf("real root read: %+v %+v, %v", s.CPU.Quota, s.Pids.Limit, err)
	}
	matches, _ := filepath.Glob(filepath.Join(cfg.CgroupRoot, "*", "release_agent"))
	remove(t, matches...)
	if r, err = cgroupreader.New(cfg); err != nil {
		t.Fatal(err)
	}
	if s, err := r.Snapshot(p, opt); err != nil || s.CPU.Quota != set(50000) || s.CPU.Period != 100000 || s.Pids.Limit != set(7) {
		t.Errorf("namespace root not read: %+v %+v, %v", s.CPU.Quota, s.Pids.Limit, err)
	}
}
