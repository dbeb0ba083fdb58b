package cgroupreader_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

func pathsOf(t *testing.T, r cgroupreader.Reader, pid int) cgroupreader.Paths {
	t.Helper()
	p, err := r.PathsOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// v1dir / v2dir locate a fixture cgroup's directory in a materialized tree.
func v1dir(cfg cgroupreader.Config, ctrl string, c fixtures.Case) string {
	return filepath.Join(cfg.CgroupRoot, ctrl, c.Path)
}

func v2dir(cfg cgroupreader.Config, c fixtures.Case) string {
	return filepath.Join(cfg.CgroupRoot, c.Path)
}

func TestModeDetection(t *testing.T) {
	for layout, want := range map[string]cgroupreader.Mode{fixtures.V1: cgroupreader.ModeHybrid, fixtures.V2: cgroupreader.ModeV2} {
		if r, _ := newReader(t, layout); r.Mode() != want {
			t.Errorf("%s: Mode = %v, want %v", layout, r.Mode(), want)
		}
	}
	// Without the cgroup2 at unified/, the v1 tree is plain v1.
	cfg := fixtures.Materialize(t, fixtures.V1)
	remove(t, filepath.Join(cfg.CgroupRoot, "unified"))
	r, err := cgroupreader.New(cfg)
	if err != nil || r.Mode() != cgroupreader.ModeV1 {
		t.Fatalf("no unified/: %v, %v", r, err)
	}
	// On plain v1 there is no PSI to read at all, and that is not an error.
	s, err := r.Snapshot(pathsOf(t, r, fixtures.NoLimit.Pid), cgroupreader.DefaultParts|cgroupreader.PartPSI)
	if err != nil || !errors.Is(s.Missing[cgroupreader.GroupPSI], cgroupreader.ErrUnavailable) || s.Memory.Usage != 100*mib {
		t.Errorf("plain v1 snapshot: %v, missing %v", err, s.Missing)
	}
	// A directory with no hierarchy at all is refused.
	if _, err := cgroupreader.New(cgroupreader.Config{CgroupRoot: t.TempDir()}); err == nil {
		t.Error("New accepted an empty directory")
	}
	if _, err := cgroupreader.New(cgroupreader.Config{CgroupRoot: filepath.Join(t.TempDir(), "nope")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New(missing root) = %v", err)
	}
}

// The usual co-mount: one "cpu,cpuacct" hierarchy with cpu and cpuacct
// symlinks to it, and /proc/PID/cgroup naming both on one line.
func TestV1CoMountedCPU(t *testing.T) {
	cfg := fixtures.Materialize(t, fixtures.V1)
	root := cfg.CgroupRoot
	co := filepath.Join(root, "cpu,cpuacct")
	if err := os.Rename(filepath.Join(root, "cpu"), co); err != nil {
		t.Fatal(err)
	}
	// Merge cpuacct's files into the co-mounted directory tree.
	acct := filepath.Join(root, "cpuacct")
	err := filepath.WalkDir(acct, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(acct, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(co, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	remove(t, acct)
	for _, l := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(cfg.ProcRoot, "104", "cgroup"), "4:memory:/cpusetquota\n3:cpuset:/cpusetquota\n2:cpu,cpuacct:/cpusetquota\n8:pids:/cpusetquota\n0::/\n")
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Snapshot(pathsOf(t, r, fixtures.CpusetQuota.Pid), cgroupreader.DefaultParts)
	if err != nil || got.Missing != nil {
		t.Fatalf("Snapshot: %v, missing %v", err, got.Missing)
	}
	want := expected(fixtures.V1, fixtures.CpusetQuota)
	if !reflect.DeepEqual(got.CPU, want.CPU) {
		t.Errorf("CPU = %+v\nwant %+v", got.CPU, want.CPU)
	}
}

// A cgroup that vanished (the container exited) is an error that callers
// can test with errors.Is(err, fs.ErrNotExist); it never panics.
func TestVanishedCgroup(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) {
			r, cfg := newReader(t, layout)
			p := pathsOf(t, r, fixtures.Swap.Pid)
			if layout == fixtures.V1 {
				for _, ctrl := range []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"} {
					remove(t, v1dir(cfg, ctrl, fixtures.Swap))
				}
			} else {
				remove(t, v2dir(cfg, fixtures.Swap))
			}
			for _, opt := range []cgroupreader.Part{0, all, cgroupreader.PartMemory, cgroupreader.PartCpuset,
				cgroupreader.PartCPUQuota, cgroupreader.PartCPUUsage, cgroupreader.PartPids, cgroupreader.PartIO} {
				_, err := r.Snapshot(p, opt)
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Snapshot(%+v) err = %v, want ErrNotExist", opt, err)
				}
			}
			// The pid is gone as well.
			remove(t, filepath.Join(cfg.ProcRoot, "105"))
			if _, err := r.PathsOf(fixtures.Swap.Pid); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("PathsOf(gone) = %v", err)
			}
			// A path that never existed.
			gone := cgroupreader.Paths{Unified: "/nope/x", V1: map[string]string{"memory": "/nope/x", "cpu": "/nope/x", "cpuacct": "/nope/x", "cpuset": "/nope/x", "pids": "/nope/x"}}
			if _, err := r.Snapshot(gone, cgroupreader.DefaultParts); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Snapshot(never existed) = %v", err)
			}
		})
	}
}

// Paths that would leave the hierarchy ("/../x" from a process outside our
// cgroup namespace) or name no cgroup are refused per group, not followed.
func TestBadPaths(t *testing.T) {
	for _, layout := range layouts {
		r, _ := sharedReader(t, layout)
		bad := cgroupreader.Paths{Unified: "/../..", V1: map[string]string{"memory": "/../..", "cpu": "/a/../..", "cpuacct": "x", "cpuset": "/..", "pids": "/../x"}}
		s, err := r.Snapshot(bad, all)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: err = %v", layout, err)
		}
		for g, e := range s.Missing {
			if !errors.Is(e, cgroupreader.ErrUnavailable) {
				t.Errorf("%s: Missing[%s] = %v", layout, g, e)
			}
		}
		if _, err := r.Snapshot(cgroupreader.Paths{}, cgroupreader.DefaultParts); err == nil {
			t.Errorf("%s: empty Paths gave no error", layout)
		}
	}
}

// Broken files land in Missing with ErrMalformed; the rest is read.
func TestMalformedFiles(t *testing.T) {
	for _, tc := range []struct {
		layout, file, content, group string
		file2, content2              string // optional second change
	}{
		{fixtures.V1, "memory/nolimit/memory.stat", "total_rss 1\nhierarchical_memory_limit lots\n", cgroupreader.GroupMemory, "", ""},
		// Without hierarchical_* in memory.stat the limit files are walked.
		{fixtures.V1, "memory/nolimit/memory.stat", "total_rss 1\n", cgroupreader.GroupMemory, "memory/nolimit/memory.limit_in_bytes", "lots\n"},
		{fixtures.V1, "memory/nolimit/memory.stat", "total_rss 1\n", cgroupreader.GroupMemory, "memory/nolimit/memory.memsw.limit_in_bytes", "-\n"},
		{fixtures.V1, "memory/nolimit/memory.stat", "total_rss -5\n", cgroupreader.GroupMemory, "", ""},
		{fixtures.V1, "memory/nolimit/memory.usage_in_bytes", "", cgroupreader.GroupMemory, "", ""},
		{fixtures.V1, "cpu/nolimit/cpu.cfs_quota_us", "1.5\n", cgroupreader.GroupCPU, "", ""},
		{fixtures.V1, "cpu/nolimit/cpu.stat", "nr_periods x\n", cgroupreader.GroupCPU, "", ""},
		{fixtures.V1, "cpuacct/nolimit/cpuacct.usage_all", "cpu user system\n0 1\n", cgroupreader.GroupCPUAcct, "", ""},
		{fixtures.V1, "cpuset/nolimit/cpuset.effective_cpus", "0-x\n", cgroupreader.GroupCpuset, "", ""},
		{fixtures.V1, "pids/nolimit/pids.max", "many\n", cgroupreader.GroupPids, "", ""},
		{fixtures.V1, "blkio/nolimit/blkio.throttle.io_serviced_recursive", "8:0 Read x\n", cgroupreader.GroupIO, "", ""},
		{fixtures.V1, "memory/nolimit/cgroup.procs", "1\nfoo\n", cgroupreader.GroupTasks, "", ""},
		{fixtures.V2, "nolimit/memory.max", "unlimited\n", cgroupreader.GroupMemory, "", ""},
		{fixtures.V2, "nolimit/memory.swap.max", "-\n", cgroupreader.GroupMemory, "", ""},
		{fixtures.V2, "nolimit/cpu.max", "max\n", cgroupreader.GroupCPU, "", ""},
		{fixtures.V2, "nolimit/cpuset.cpus.effective", "3-1\n", cgroupreader.GroupCpuset, "", ""},
		{fixtures.V2, "nolimit/pids.current", "x\n", cgroupreader.GroupPids, "", ""},
		{fixtures.V2, "nolimit/io.stat", "8:0 rbytes=1x\n", cgroupreader.GroupIO, "", ""},
		{fixtures.V2, "nolimit/io.stat", "sda rbytes=1\n", cgroupreader.GroupIO, "", ""},
	} {
		t.Run(tc.layout+"/"+tc.file, func(t *testing.T) {
			r, cfg := sharedReader(t, tc.layout)
			mutate(t, filepath.Join(cfg.CgroupRoot, tc.file), tc.content)
			if tc.file2 != "" {
				mutate(t, filepath.Join(cfg.CgroupRoot, tc.file2), tc.content2)
			}
			s, err := r.Snapshot(pathsOf(t, r, fixtures.NoLimit.Pid), all)
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(s.Missing[tc.group], cgroupreader.ErrMalformed) {
				t.Errorf("Missing[%s] = %v, want ErrMalformed (all: %v)", tc.group, s.Missing[tc.group], s.Missing)
			}
			if n := len(s.Missing); n > 2 { // the broken group, plus PSI at the v1 root
				t.Errorf("too much missing: %v", s.Missing)
			}
		})
	}
}

// The CPU quota is the ancestor's with the tightest quota/period ratio,
// whatever the periods.
func TestQuotaRatioSelection(t *testing.T) {
	for _, tc := range []struct {
		name          string
		quota, period uint64
		want          cgroupreader.Limit
		wantPeriod    uint64
	}{
		{"looser child", 50000, 20000, set(200000), 100000}, // 2.5 CPUs vs the ancestor's 2
		{"tighter child", 30000, 20000, set(30000), 20000},  // 1.5 CPUs
		{"equal ratio keeps the first seen", 40000, 20000, set(40000), 20000},
	} {
		for _, layout := range layouts {
			t.Run(layout+"/"+tc.name, func(t *testing.T) {
				r, cfg := sharedReader(t, layout)
				if layout == fixtures.V1 {
					d := v1dir(cfg, "cpu", fixtures.Ancestor)
					mutate(t, filepath.Join(d, "cpu.cfs_quota_us"), itoa(tc.quota)+"\n")
					mutate(t, filepath.Join(d, "cpu.cfs_period_us"), itoa(tc.period)+"\n")
				} else {
					mutate(t, filepath.Join(v2dir(cfg, fixtures.Ancestor), "cpu.max"), itoa(tc.quota)+" "+itoa(tc.period)+"\n")
				}
				s, err := r.Snapshot(pathsOf(t, r, fixtures.Ancestor.Pid), cgroupreader.PartCPU)
				if err != nil {
					t.Fatal(err)
				}
				if s.CPU.Quota != tc.want || s.CPU.Period != tc.wantPeriod {
					t.Errorf("quota %+v/%d, want %+v/%d", s.CPU.Quota, s.CPU.Period, tc.want, tc.wantPeriod)
				}
			})
		}
	}
}

// Tasks of a parent cgroup include its descendants'.
func TestTasksSubtree(t *testing.T) {
	for _, layout := range layouts {
		r, _ := sharedReader(t, layout)
		p := cgroupreader.Paths{Unified: "/ancestor", V1: map[string]string{"memory": "/ancestor"}}
		s, err := r.Snapshot(p, cgroupreader.PartTasks)
		if err != nil || !reflect.DeepEqual(s.Tasks, []int{103, 1033}) {
			t.Errorf("%s: Tasks = %v, %v", layout, s.Tasks, err)
		}
		s, err = r.Snapshot(cgroupreader.Paths{Unified: "/", V1: map[string]string{"memory": "/"}}, cgroupreader.PartTasks)
		if err != nil || !reflect.DeepEqual(s.Tasks, []int{1, 2, 101, 102, 103, 104, 105, 106, 1033}) {
			t.Errorf("%s: root Tasks = %v, %v", layout, s.Tasks, err)
		}
	}
}

func itoa(v uint64) string { return fmtUint(v) }
