package cgroupreader_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

// v2: a cgroup whose parent does not enable a controller is charged to the
// nearest ancestor that has it; an absent io controller is "unavailable",
// not "vanished".
func TestV2ControllerNotEnabled(t *testing.T) {
	r, cfg := newReader(t, fixtures.V2)
	child := v2dir(cfg, fixtures.Ancestor)
	for _, f := range []string{"memory.current", "memory.max", "memory.stat", "memory.swap.current", "memory.swap.max", "pids.current", "pids.max", "cpu.max", "cpu.weight"} {
		remove(t, filepath.Join(child, f))
	}
	s, err := r.Snapshot(pathsOf(t, r, fixtures.Ancestor.Pid), all)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.Usage != 160*mib || s.Memory.Limit != set(512*mib) || s.Memory.Stat.Anon != statVal(1, 7) {
		t.Errorf("memory from the ancestor: %+v", s.Memory)
	}
	if s.Pids.Current != 17 || s.Pids.Limit != set(100) {
		t.Errorf("pids from the ancestor: %+v", s.Pids)
	}
	if s.CPU.Quota != set(200000) || s.CPU.Weight != 0 || !reflect.DeepEqual(s.CPU.Cpuset, []int{0, 1, 2, 3}) {
		t.Errorf("cpu: %+v", s.CPU)
	}
	ioErr := s.Missing[cgroupreader.GroupIO]
	if !errors.Is(ioErr, cgroupreader.ErrUnavailable) || errors.Is(ioErr, fs.ErrNotExist) || len(s.Missing) != 1 {
		t.Errorf("Missing = %v", s.Missing)
	}
	// No swap accounting (swapaccount=0): no swap, and no error.
	for _, f := range []string{"memory.swap.current", "memory.swap.max"} {
		remove(t, filepath.Join(v2dir(cfg, fixtures.Swap), f))
	}
	s, err = r.Snapshot(pathsOf(t, r, fixtures.Swap.Pid), cgroupreader.PartMemory)
	if err != nil || s.Memory.SwapAccounting || s.Memory.SwapLimit.Set || s.Missing != nil {
		t.Errorf("no swap accounting: %+v, %v, %v", s.Memory, s.Missing, err)
	}
	// The root cgroup has no memory.current: unavailable, host values apply.
	s, err = r.Snapshot(cgroupreader.Paths{Unified: "/"}, cgroupreader.PartMemory|cgroupreader.PartCPUUsage|cgroupreader.PartPSI)
	if err != nil || !errors.Is(s.Missing[cgroupreader.GroupMemory], cgroupreader.ErrUnavailable) ||
		!errors.Is(s.Missing[cgroupreader.GroupPSI], cgroupreader.ErrRootPSI) || s.CPU.UsageUser == 0 {
		t.Errorf("root: %+v, %v, %v", s.CPU, s.Missing, err)
	}
}

// Hybrid: a process in its own cgroup2 cgroup (systemd puts services
// there) gets that cgroup's PSI.
func TestHybridPSI(t *testing.T) {
	r, cfg := newReader(t, fixtures.V1)
	u := filepath.Join(cfg.CgroupRoot, "unified", "svc")
	writeFile(t, filepath.Join(u, "cpu.pressure"), "some avg10=0.50 avg60=0.25 avg300=0.10 total=77\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	writeFile(t, filepath.Join(u, "memory.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")
	p := pathsOf(t, r, fixtures.NoLimit.Pid)
	p.Unified = "/svc"
	s, err := r.Snapshot(p, cgroupreader.PartPSI)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.PSI.Memory) != "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n" || len(s.PSI.CPU) == 0 || s.PSI.IO != nil || s.Missing != nil {
		t.Errorf("PSI = %q, missing %v", s.PSI, s.Missing)
	}
}

// Mounted inside a cgroup namespace, the v2 hierarchy root is an ordinary
// cgroup whose limits count; on the real root there are none to read.
func TestV2RootWithLimits(t *testing.T) {
	cfg := fixtures.Materialize(t, fixtures.V2)
	writeFile(t, filepath.Join(cfg.CgroupRoot, "memory.max"), "104857600\n")
	writeFile(t, filepath.Join(cfg.CgroupRoot, "cpu.max"), "50000 100000\n")
	writeFile(t, filepath.Join(cfg.CgroupRoot, "pids.max"), "7\n")
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Snapshot(pathsOf(t, r, fixtures.NoLimit.Pid), cgroupreader.DefaultParts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.Limit != set(100*mib) || s.CPU.Quota != set(50000) || s.Pids.Limit != set(7) {
		t.Errorf("root limits not applied: %+v %+v %+v", s.Memory.Limit, s.CPU.Quota, s.Pids.Limit)
	}
}
