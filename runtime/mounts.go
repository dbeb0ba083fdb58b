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

func (rc *rootfsCtx) mountAll() error {
	for _, m := range rc.spec.Mounts {
		if err := rc.mountOne(m); err != nil {
			return fmt.Errorf("%s on %s (%s): %w", m.Source, m.Destination, m.Type, err)
		}
	}
	return nil
}

func (rc *rootfsCtx) mountOne(m specs.Mount) error {
	po := parseMountOptions(m.Options)
	if m.Type == "bind" {
		po.flags |= unix.MS_BIND
	}
	switch {
	case po.flags&unix.MS_BIND != 0:
		return rc.mountBind(m, po)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return rc.mountCgroup(m, po)
	}
	dest, err := rc.openDest(m.Destination, true)
	if err != nil {
		return err
	}
	err = unix.Mount(m.Source, procFdPath(dest), m.Type, po.flags, po.data)
	dest.Close()
	if err != nil {
		return err
	}
	return rc.finishMount(m.Destination, po, false)
}

// mountBind binds a host path. Read-only and other flags need a second,
// remount call: a bind ignores them.
func (rc *rootfsCtx) mountBind(m specs.Mount, po parsedMount) error {
	src := rc.hostPath(m.Source)
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	dest, err := rc.openDest(m.Destination, fi.IsDir())
	if err != nil {
		return err
	}
	err = unix.Mount(src, procFdPath(dest), "", po.flags&(unix.MS_BIND|unix.MS_REC), "")
	dest.Close()
	if err != nil {
		return err
	}
	return rc.finishMount(m.Destination, po, true)
}

// finishMount applies what the mount call itself could not: for binds the
// flags (remount), then recursive read-only and propagation. The
// destination is resolved again so the calls act on the new mount, not
// on the directory it covers.
func (rc *rootfsCtx) finishMount(destPath string, po parsedMount, bind bool) error {
	extra := po.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if (!bind || extra == 0) && !po.rro && len(po.propagation) == 0 {
		return nil
	}
	dest, err := pathrs.OpenatInRoot(rc.root, destPath)
	if err != nil {
		return err
	}
	defer dest.Close()
	target := procFdPath(dest)
	if bind && extra != 0 {
		if err := unix.Mount("", target, "", extra|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
			return fmt.Errorf("remount with %#x: %w", extra, err)
		}
	}
	if po.rro {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(int(dest.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("recursive read-only: %w", err)
		}
	}
	for _, p := range po.propagation {
		if err := unix.Mount("", target, "", p, ""); err != nil {
			return fmt.Errorf("propagation: %w", err)
		}
	}
	return nil
}

// openDest resolves a mount destination inside the rootfs, creating it
// (a directory, or an empty file for a file bind) when missing, and
// returns an O_PATH handle. Symlinks are followed as if the rootfs were
// "/": a link to /etc lands on ROOTFS/etc, never on the host's /etc.
func (rc *rootfsCtx) openDest(dest string, dir bool) (*os.File, error) {
	if dir {
		return pathrs.MkdirAllHandle(rc.root, dest, 0o755)
	}
	f, err := pathrs.OpenatInRoot(rc.root, dest)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	parent, err := pathrs.MkdirAllHandle(rc.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create mount point: %w", err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return pathrs.OpenatInRoot(rc.root, dest)
}

// mountCgroup gives the container the cgroup filesystem. With its own
// cgroup namespace each mount shows the container's cgroup as the root, so
// the JVM and Go's runtime read the container's limits. On v2 that is one
// cgroup2 mount; on v1 a tmpfs with one mount per hierarchy, as the host
// has them (cpu and cpuacct separate here, co-mounted elsewhere).
func (rc *rootfsCtx) mountCgroup(m specs.Mount, po parsedMount) error {
	dest, err := rc.openDest(m.Destination, true)
	if err != nil {
		return err
	}
	defer dest.Close()
	if cgroupsV2() {
		if err := unix.Mount("cgroup2", procFdPath(dest), "cgroup2", po.flags, ""); err != nil {
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
		if err := unix.Mount("cgroup", dir, "cgroup", po.flags, h.data); err != nil {
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

type v1Hierarchy struct {
	dir   string   // directory under /sys/fs/cgroup: "memory", "cpu,cpuacct", "systemd"
	data  string   // mount data: "memory", "cpu,cpuacct", "none,name=systemd"
	links []string // "cpu" and "cpuacct" -> "cpu,cpuacct" when co-mounted
}

// v1Hierarchies lists this process's v1 hierarchies from /proc/self/cgroup.
// The unified (v2) line of a hybrid host is skipped: it has no controllers
// there, and mounting it would show the caller's part of the v2 tree.
func v1Hierarchies() ([]v1Hierarchy, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []v1Hierarchy
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		ctrls := parts[1]
		h := v1Hierarchy{dir: ctrls, data: ctrls}
		if name, ok := strings.CutPrefix(ctrls, "name="); ok {
			h.dir, h.data = name, "none,"+ctrls
		} else if strings.Contains(ctrls, ",") {
			h.links = strings.Split(ctrls, ",")
		}
		out = append(out, h)
	}
	return out, sc.Err()
}
