package views

import (
	"errors"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Binding a view into another mount namespace, shared by `corral hook`
// (a container another runtime starts) and corralfs's recovery (a running
// container whose views died with an earlier corralfs):
//
//   - CloneView, in the caller's own namespace (where the corralfs mount
//     certainly is): a detached copy of the view made read-only, nosuid,
//     nodev, noexec;
//   - EnterMountNS, on a locked OS thread: setns(CLONE_NEWNS) is refused
//     for a thread sharing its fs_struct (all Go threads do), so the thread
//     unshares CLONE_FS first and is never unlocked: the Go runtime ends it
//     with its goroutine rather than reuse it in the container's namespace;
//   - Attach: the clone moved onto its destination, resolved without
//     leaving base and opened O_PATH|O_NOFOLLOW, so a symlink planted in the
//     container cannot redirect the mount.

// mountAttrs are MountOptions as mount attributes.
const mountAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// CloneView returns a detached, read-only clone of the mount at source
// (open_tree, Linux 5.2+; mount_setattr, 5.12+). The caller closes it.
func CloneView(source string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s (needs Linux 5.2+): %w", source, err)
	}
	attr := unix.MountAttr{Attr_set: mountAttrs}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("making the view %s read-only (mount_setattr needs Linux 5.12+): %w", source, err)
	}
	return fd, nil
}

// EnterMountNS moves the calling thread into the mount namespace at nsPath
// (/proc/PID/ns/mnt). The caller has locked its OS thread and never
// unlocks it.
func EnterMountNS(nsPath string) error {
	ns, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare(CLONE_FS): %w", err)
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("entering the mount namespace %s: %w", nsPath, err)
	}
	return nil
}

// ErrNoTarget: the container has no twin for a view (e.g. no sysfs):
// nothing to cover, not an error.
var ErrNoTarget = errors.New("no target")

// Attach moves the detached view tree onto dest under base. dest must be
// of the view's kind (file over file, dir over dir).
func Attach(tree int, base, dest string, dir bool) error {
	path, err := securejoin.SecureJoin(base, dest)
	if err != nil {
		return fmt.Errorf("resolving %s in the container: %w", dest, err)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return ErrNoTarget
	}
	if err != nil {
		return fmt.Errorf("opening %s in the container: %w", dest, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	isReg := st.Mode&unix.S_IFMT == unix.S_IFREG
	if (dir && !isDir) || (!dir && !isReg) {
		return fmt.Errorf("%s in the container is not a %s", dest, map[bool]string{true: "directory", false: "regular file"}[dir])
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting the view over %s: %w", dest, err)
	}
	return nil
}
