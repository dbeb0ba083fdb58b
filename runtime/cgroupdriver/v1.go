package cgroupdriver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
)

// cgroupV1 drives the container's cgroup in every mounted v1 hierarchy
// (cpu and cpuacct may be separate hierarchies, as on this machine). The
// same absolute path is used in each.
type cgroupV1 struct {
	path string
	cg   cgroup1.Cgroup
}

const v1Root = runtime.CgroupRoot

func newCgroupV1(cgPath string, res *specs.LinuxResources) (runtime.CgroupManager, error) {
	res = v1Resources(res)
	cg, err := cgroup1.New(cgroup1.StaticPath(cgPath), res)
	if err != nil {
		removeV1Dirs(cgPath) // New may have created some hierarchies before failing
		return nil, fmt.Errorf("create cgroup %s: %w", cgPath, err)
	}
	return &cgroupV1{path: cgPath, cg: cg}, nil
}

// v1Resources adapts a spec to what this kernel's v1 memory controller can
// take: without swap accounting (no memory.memsw.* files) a swap limit cannot
// be set, so it is dropped (a host without swap accounting cannot enforce
// it anyway; runc does the same).
func v1Resources(res *specs.LinuxResources) *specs.LinuxResources {
	if res.Memory == nil || res.Memory.Swap == nil {
		return res
	}
	if _, err := os.Stat(filepath.Join(v1Root, "memory", "memory.memsw.limit_in_bytes")); err == nil {
		return res
	}
	cp := *res
	mem := *res.Memory
	mem.Swap = nil
	cp.Memory = &mem
	return &cp
}

func loadCgroupV1(cgPath string) (runtime.CgroupManager, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(cgPath))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgPath, err)
	}
	return &cgroupV1{path: cgPath, cg: cg}, nil
}

// removeV1Dirs removes cgPath from every v1 hierarchy where it exists; used
// to roll back a failed create.
func removeV1Dirs(cgPath string) {
	ents, err := os.ReadDir(v1Root)
	if err != nil {
		return
	}
	for _, e := range ents {
		os.Remove(filepath.Join(v1Root, e.Name(), cgPath))
	}
}

func (c *cgroupV1) Path() string { return c.path }

func (c *cgroupV1) Join(pid int) error {
	if err := c.cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("join cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *cgroupV1) CloneFD() (*os.File, error) { return nil, nil }

func (c *cgroupV1) Update(r *specs.LinuxResources) error {
	return c.cg.Update(v1Resources(r))
}

func (c *cgroupV1) Freeze() error { return c.cg.Freeze() }
func (c *cgroupV1) Thaw() error   { return c.cg.Thaw() }

func (c *cgroupV1) Frozen() (bool, error) {
	data, err := os.ReadFile(filepath.Join(v1Root, "freezer", c.path, "freezer.state"))
	if err != nil {
		return false, err
	}
	// FREEZING counts as paused: pause returns only once FROZEN.
	return strings.TrimSpace(string(data)) != "THAWED", nil
}

// Pids reads cgroup.procs of the pids hierarchy (or freezer/memory when the
// pids controller is missing): every process joined all of them.
func (c *cgroupV1) Pids() ([]int, error) {
	for _, ctrl := range []string{"pids", "freezer", "memory", "devices"} {
		dir := filepath.Join(v1Root, ctrl, c.path)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		return readPidsRecursive(dir)
	}
	return nil, fmt.Errorf("cgroup %s: no pids, freezer or memory hierarchy", c.path)
}

func (c *cgroupV1) OOMKills() (uint64, error) {
	return readKeyedUint(filepath.Join(v1Root, "memory", c.path, "memory.oom_control"), "oom_kill")
}

// Delete removes the cgroup from every hierarchy with rmdir. (containerd's
// Delete first walks every hierarchy's tree for processes, a dozen walks
// per container; Delete's caller has already emptied the cgroup.)
func (c *cgroupV1) Delete() error {
	ents, err := os.ReadDir(v1Root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		dir := filepath.Join(v1Root, e.Name(), c.path)
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// readPidsRecursive reads cgroup.procs of dir and of every cgroup below it.
func readPidsRecursive(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range bytes.Fields(data) {
			if n, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids, err
}

// readKeyedUint finds "key N" in a flat keyed cgroup file.
func readKeyedUint(file, key string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %q line", file, key)
}
