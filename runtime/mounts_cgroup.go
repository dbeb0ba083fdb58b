package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountCgroup gives the container the cgroup filesystem, showing the
// container's own cgroup at the top, so the JVM and Go's runtime read the
// container's limits there (memory.limit_in_bytes, memory.max, cpu.max).
// On v2 that is one cgroup2 mount; on v1 a tmpfs with one mount per
// hierarchy, as the host has them (cpu and cpuacct separate here,
// co-mounted elsewhere).
//
// With its own cgroup namespace (what `corral run` asks for) a fresh mount
// is already rooted at the container's cgroup. Without one (podman on v1
// asks for none) a fresh mount would show the hierarchy's root, i.e. the
// host's unlimited values; then, as runc does, each mount is narrowed to
// the init's cgroup of that hierarchy (see mountCgroupSubtree).
func (rc *rootfsCtx) mountCgroup(m specs.Mount, po parsedMount) error {
	dest, err := rc.openDest(m.Destination, true)
	if err != nil {
		return err
	}
	defer dest.Close()
	if cgroupsV2() {
		cgPath, err := ownV2CgroupPath()
		if err != nil {
			return err
		}
		reopen := func() (*os.File, error) { return pathrs.OpenatInRoot(rc.root, m.Destination) }
		if err := mountCgroupSubtree(dest, reopen, "cgroup2", "", po.flags, cgPath, v2Root); err != nil {
			return err
		}
		return rc.finishMount(m.Destination, parsedMount{rro: false, propagation: po.propagation}, false)
	}
	rw := po.flags &^ unix.MS_RDONLY
	if err := unix.Mount("tmpfs", procFdPath(dest), "tmpfs", rw, "mode=755"); err != nil {
		return err
	}
	tmpfs, err := pathrs.OpenatInRoot(rc.root, m.Destination)
	if err != nil {
		return err
	}
	defer tmpfs.Close()
	base := procFdPath(tmpfs)
	hier, err := v1Hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hier {
		dir := filepath.Join(base, h.dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		// dir is in our own fresh tmpfs: nothing in the image can
		// redirect it, so plain opens are safe here.
		openDir := func() (*os.File, error) { return os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) }
		target, err := openDir()
		if err != nil {
			return err
		}
		err = mountCgroupSubtree(target, openDir, "cgroup", h.data, po.flags, h.path, filepath.Join(v1Root, h.dir))
		target.Close()
		if err != nil {
			return fmt.Errorf("cgroup hierarchy %s: %w", h.data, err)
		}
		for _, link := range h.links {
			if err := os.Symlink(h.dir, filepath.Join(base, link)); err != nil {
				return err
			}
		}
	}
	if po.flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", base, "", po.flags|unix.MS_REMOUNT, "mode=755"); err != nil {
			return fmt.Errorf("remount cgroup tmpfs read-only: %w", err)
		}
	}
	return nil
}

// mountCgroupSubtree mounts a cgroup filesystem at target showing only
// cgPath (the init's cgroup, relative to the root of its cgroup namespace,
// which is also the root of a fresh mount) and what is below it.
//
// For "/" (a cgroup namespace of its own) that is the fresh mount itself.
// Otherwise the whole hierarchy is mounted, a clone of just cgPath is
// taken with open_tree, the whole one is unmounted and the clone moved to
// target: only the container's cgroup stays in the mount table, so even a
// process that may unmount inside the container cannot uncover the
// hierarchy's root underneath (it could with a bind stacked on top). The
// clone keeps the mount's flags (ro, nosuid, ...). target is an O_PATH
// handle on the directory to mount on; reopen must return a handle on the
// new mount's root there (target's own /proc fd path resolves to the
// directory the mount covers, not to the mount).
func mountCgroupSubtree(target *os.File, reopen func() (*os.File, error), fstype, data string, flags uintptr, cgPath, hostDir string) error {
	if !strings.HasPrefix(cgPath, "/") || strings.HasPrefix(cgPath, "/..") {
		return fmt.Errorf("the init's cgroup %q is not inside its cgroup namespace: cannot show the container's cgroup", cgPath)
	}
	if err := unix.Mount(fstype, procFdPath(target), fstype, flags, data); err != nil {
		if errors.Is(err, unix.EPERM) && cgPath != "/" {
			// A user namespace without a cgroup namespace of its own
			// (podman on v1) may not mount a cgroup hierarchy: clone the
			// container's cgroup from the host's mount instead.
			return cloneHostCgroup(target, hostDir, cgPath, flags)
		}
		return err
	}
	if cgPath == "/" {
		return nil
	}
	// On failures below the init exits, and its mount namespace (with
	// whatever is half mounted here) goes with it.
	root, err := reopen()
	if err != nil {
		return err
	}
	defer root.Close()
	tree, err := unix.OpenTree(int(root.Fd()), strings.TrimPrefix(cgPath, "/"),
		unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		unix.Unmount(procFdPath(root), unix.MNT_DETACH)
		return fmt.Errorf("clone the container's cgroup %s: %w", cgPath, err)
	}
	defer unix.Close(tree)
	if err := unix.Unmount(procFdPath(root), unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount the hierarchy's root: %w", err)
	}
	// By fd, not by a /proc path: move_mount does not follow a final
	// symlink (the magic link itself would be the target: EINVAL).
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount the container's cgroup %s: %w", cgPath, err)
	}
	return nil
}

type v1Hierarchy struct {
	dir   string   // directory under /sys/fs/cgroup: "memory", "cpu,cpuacct", "systemd"
	data  string   // mount data: "memory", "cpu,cpuacct", "none,name=systemd"
	links []string // "cpu" and "cpuacct" -> "cpu,cpuacct" when co-mounted
	path  string   // this process's cgroup in the hierarchy: "/" in a cgroup namespace of its own
}

// v1Hierarchies lists this process's v1 hierarchies from /proc/self/cgroup.
// The unified (v2) line of a hybrid host is skipped: it has no controllers
// there, and mounting it would show the caller's part of the v2 tree.
func v1Hierarchies() ([]v1Hierarchy, error) {
	lines, err := ownCgroupLines()
	if err != nil {
		return nil, err
	}
	var out []v1Hierarchy
	for _, parts := range lines {
		if parts[1] == "" {
			continue
		}
		ctrls := parts[1]
		h := v1Hierarchy{dir: ctrls, data: ctrls, path: parts[2]}
		if name, ok := strings.CutPrefix(ctrls, "name="); ok {
			h.dir, h.data = name, "none,"+ctrls
		} else if strings.Contains(ctrls, ",") {
			h.links = strings.Split(ctrls, ",")
		}
		out = append(out, h)
	}
	return out, nil
}

// ownV2CgroupPath is this process's cgroup on a v2 host (the "0::" line).
func ownV2CgroupPath() (string, error) {
	lines, err := ownCgroupLines()
	if err != nil {
		return "", err
	}
	for _, parts := range lines {
		if parts[0] == "0" && parts[1] == "" {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("/proc/self/cgroup has no cgroup v2 line")
}

// ownCgroupLines splits /proc/self/cgroup into [id, controllers, path].
func ownCgroupLines() ([][3]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][3]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			out = append(out, [3]string{parts[0], parts[1], parts[2]})
		}
	}
	return out, sc.Err()
}

// cloneHostCgroup puts a clone of hostDir/cgPath (the host's mount of the
// hierarchy, still visible before pivot_root) at target, read-only when
// flags say so.
func cloneHostCgroup(target *os.File, hostDir, cgPath string, flags uintptr) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(hostDir, cgPath), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("clone the host's cgroup %s: %w", filepath.Join(hostDir, cgPath), err)
	}
	defer unix.Close(tree)
	if flags&unix.MS_RDONLY != 0 {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
			return fmt.Errorf("cgroup clone read-only: %w", err)
		}
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount the container's cgroup %s: %w", cgPath, err)
	}
	return nil
}
