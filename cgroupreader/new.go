package cgroupreader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	defaultCgroupRoot = "/sys/fs/cgroup"
	defaultProcRoot   = "/proc"
)

// New detects the layout under cfg.CgroupRoot and returns the reader for
// it. Detection looks at files, not filesystem magic, so it works the same
// on the real /sys/fs/cgroup and on a fixture tree of plain directories:
//
//	ROOT/cgroup.controllers exists           -> v2 (unified)
//	ROOT/unified/cgroup.controllers exists   -> hybrid (v1 + empty cgroup2)
//	otherwise, v1 controller directories     -> v1
func New(cfg Config) (Reader, error) {
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = defaultCgroupRoot
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = defaultProcRoot
	}
	cfg.CgroupRoot = filepath.Clean(cfg.CgroupRoot)
	cfg.ProcRoot = filepath.Clean(cfg.ProcRoot)
	if isFile(filepath.Join(cfg.CgroupRoot, "cgroup.controllers")) {
		// The real v2 root has no limit files (CFTYPE_NOT_ON_ROOT), so walks
		// up the tree can stop below it. Mounted inside a cgroup
		// namespace, the hierarchy "root" is an ordinary cgroup that may
		// have limits: then the walks read it too.
		rootLimits := false
		for _, f := range []string{"memory.max", "cpu.max", "pids.max", "memory.swap.max"} {
			rootLimits = rootLimits || isFile(filepath.Join(cfg.CgroupRoot, f))
		}
		return &v2Reader{cfg: cfg, skipRoot: !rootLimits}, nil
	}
	mounts, err := scanV1Mounts(cfg.CgroupRoot)
	if err != nil {
		return nil, err
	}
	r := &v1Reader{cfg: cfg, mode: ModeV1, mounts: mounts, skipRoot: len(mounts) > 0}
	// release_agent exists only in the real root of a v1 hierarchy
	// (CFTYPE_ONLY_ON_ROOT). Mounted inside a cgroup namespace, the mount
	// shows an ordinary cgroup, whose limits count.
	for _, dir := range mounts {
		r.skipRoot = r.skipRoot && isFile(filepath.Join(dir, "release_agent"))
	}
	if unified := filepath.Join(cfg.CgroupRoot, "unified"); isFile(filepath.Join(unified, "cgroup.controllers")) {
		r.mode, r.unified = ModeHybrid, unified
	}
	if len(mounts) == 0 {
		return nil, fmt.Errorf("cgroupreader: no cgroup hierarchy found under %s", cfg.CgroupRoot)
	}
	return r, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// scanV1Mounts maps each v1 controller to its hierarchy's directory under
// root, once, from the directory names: "cpu,cpuacct" serves both cpu and
// cpuacct (the usual co-mount, with cpu and cpuacct symlinks next to it),
// while this project's dev host mounts cpu and cpuacct separately. A named
// hierarchy ("systemd") is registered as "name=systemd" too, the way
// /proc/PID/cgroup spells it. A real directory wins over a symlink to it.
func scanV1Mounts(root string) (map[string]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cgroupreader: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	mounts := map[string]string{}
	viaLink := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if name == "unified" {
			continue
		}
		dir := filepath.Join(root, name)
		isLink := e.Type()&os.ModeSymlink != 0
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue // a dangling link or a plain file
		}
		for _, ctrl := range strings.Split(name, ",") {
			if ctrl == "" {
				continue
			}
			for _, key := range []string{ctrl, "name=" + ctrl} {
				if _, have := mounts[key]; have && (isLink || !viaLink[key]) {
					continue
				}
				mounts[key], viaLink[key] = dir, isLink
			}
		}
	}
	return mounts, nil
}

// errNoPath is recorded when a process has no cgroup in a controller's hierarchy.
func errNoPath(ctrl string) error {
	return fmt.Errorf("no %s cgroup: %w", ctrl, ErrUnavailable)
}

// errBadPath refuses a cgroup path we will not follow.
func errBadPath(p string) error {
	return fmt.Errorf("cgroup path %q outside the hierarchy: %w", p, ErrUnavailable)
}

var errNoMount = errors.New("hierarchy not mounted")
