package cgroupdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
)

// cgroupV2 drives the container's cgroup in a pure cgroup v2 tree. Device
// rules become an eBPF program attached to the cgroup (containerd/cgroups
// compiles and attaches it).
type cgroupV2 struct {
	path string
	m    *cgroup2.Manager
}

const v2Root = runtime.CgroupRoot

func newCgroupV2(cgPath string, res *specs.LinuxResources) (runtime.CgroupManager, error) {
	m, err := cgroup2.NewManager(v2Root, cgPath, v2Resources(res))
	if err != nil {
		os.Remove(filepath.Join(v2Root, cgPath))
		return nil, fmt.Errorf("create cgroup %s: %w", cgPath, err)
	}
	c := &cgroupV2{path: cgPath, m: m}
	c.enableControllers()
	if err := c.writeUnlimited(res); err != nil {
		os.Remove(filepath.Join(v2Root, cgPath))
		return nil, err
	}
	return c, nil
}

// v2Resources converts the spec (v1 semantics: swap = memory+swap, quota
// with an implied period) into cgroup v2 values. -1 ("unlimited") values
// are left out here: v2 spells them "max", written by writeUnlimited.
func v2Resources(res *specs.LinuxResources) *cgroup2.Resources {
	r := *res
	if res.Memory != nil {
		mem := *res.Memory
		if mem.Limit != nil && *mem.Limit < 0 {
			mem.Limit = nil
		}
		if mem.Swap != nil && (*mem.Swap < 0 || mem.Limit == nil) {
			mem.Swap = nil
		}
		r.Memory = &mem
	}
	if res.CPU != nil {
		cpu := *res.CPU
		if cpu.Quota != nil && *cpu.Quota > 0 && cpu.Period == nil {
			p := uint64(100000) // the kernel's default CFS period
			cpu.Period = &p
		}
		if cpu.Quota != nil && *cpu.Quota <= 0 {
			cpu.Quota = nil
		}
		r.CPU = &cpu
	}
	if res.Pids != nil && res.Pids.Limit != nil && *res.Pids.Limit <= 0 {
		r.Pids = nil
	}
	return cgroup2.ToResources(&r)
}

// writeUnlimited writes "max" where the spec asks for -1 (Update must be
// able to lift a limit).
func (c *cgroupV2) writeUnlimited(res *specs.LinuxResources) error {
	dir := filepath.Join(v2Root, c.path)
	var writes [][2]string
	if m := res.Memory; m != nil {
		if m.Limit != nil && *m.Limit < 0 {
			writes = append(writes, [2]string{"memory.max", "max"})
		}
		if m.Swap != nil && *m.Swap < 0 {
			writes = append(writes, [2]string{"memory.swap.max", "max"})
		}
	}
	if p := res.CPU; p != nil && p.Quota != nil && *p.Quota < 0 {
		writes = append(writes, [2]string{"cpu.max", "max"})
	}
	if p := res.Pids; p != nil && p.Limit != nil && *p.Limit <= 0 {
		writes = append(writes, [2]string{"pids.max", "max"})
	}
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(dir, w[0]), []byte(w[1]), 0); err != nil {
			return fmt.Errorf("cgroup %s: write %s: %w", c.path, w[0], err)
		}
	}
	return nil
}

// v2Controllers are the controllers every container cgroup gets, limits or
// not: `update` may set a limit later, and stats and views read
// memory.current, cpu.stat, pids.current and io.stat of every container.
var v2Controllers = map[string]bool{"cpu": true, "cpuset": true, "memory": true, "pids": true, "io": true, "hugetlb": true}

// enableControllers enables v2Controllers (those the root offers) in the
// subtree_control of every ancestor. NewManager enabled only those the
// initial resources needed. Best effort: an ancestor that holds processes
// cannot delegate (no internal processes), and then limits set on them fail
// with a clear error later.
func (c *cgroupV2) enableControllers() {
	avail, err := c.m.RootControllers()
	if err != nil {
		return
	}
	var want []string
	for _, ctrl := range avail {
		if v2Controllers[ctrl] {
			want = append(want, ctrl)
		}
	}
	c.m.ToggleControllers(want, cgroup2.Enable)
}

func loadCgroupV2(cgPath string) (runtime.CgroupManager, error) {
	if _, err := os.Stat(filepath.Join(v2Root, cgPath)); err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgPath, err)
	}
	m, err := cgroup2.Load(cgPath, cgroup2.WithMountpoint(v2Root))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgPath, err)
	}
	return &cgroupV2{path: cgPath, m: m}, nil
}

func (c *cgroupV2) Path() string { return c.path }

func (c *cgroupV2) Join(pid int) error {
	if err := c.m.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("join cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *cgroupV2) CloneFD() (*os.File, error) {
	fd, err := unix.Open(filepath.Join(v2Root, c.path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", c.path, err)
	}
	return os.NewFile(uintptr(fd), c.path), nil
}

func (c *cgroupV2) Update(r *specs.LinuxResources) error {
	c.enableControllers()
	if err := c.m.Update(v2Resources(r)); err != nil {
		return err
	}
	return c.writeUnlimited(r)
}

func (c *cgroupV2) Freeze() error { return c.m.Freeze() }
func (c *cgroupV2) Thaw() error   { return c.m.Thaw() }

func (c *cgroupV2) Frozen() (bool, error) {
	data, err := os.ReadFile(filepath.Join(v2Root, c.path, "cgroup.freeze"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(data)) == "1", nil
}

func (c *cgroupV2) Pids() ([]int, error) {
	return readPidsRecursive(filepath.Join(v2Root, c.path))
}

func (c *cgroupV2) OOMKills() (uint64, error) {
	return readKeyedUint(filepath.Join(v2Root, c.path, "memory.events"), "oom_kill")
}

func (c *cgroupV2) Delete() error {
	if err := c.m.Delete(); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	return nil
}
