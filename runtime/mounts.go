package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func (rc *rootfsCtx) mountAll() error {
	for i, m := range rc.spec.Mounts {
		rc.mountIndex = i
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
	if err == unix.EINVAL && m.Type == "devpts" {
		if data, ok := devptsWithoutUnmappedIDs(rc.spec, po.data); ok {
			err = unix.Mount(m.Source, procFdPath(dest), m.Type, po.flags, data)
		}
	}
	dest.Close()
	if err != nil {
		return err
	}
	return rc.finishMount(m.Destination, po, false)
}

// mountBind binds a host path. Read-only and other flags need a second,
// remount call: a bind ignores them.
func (rc *rootfsCtx) mountBind(m specs.Mount, po parsedMount) error {
	if tree := rc.bindTree(); tree != nil {
		return rc.attachBind(m, po, tree)
	}
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
