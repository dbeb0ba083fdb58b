package runtime

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Idmapped mounts (Linux 5.12+, mount_setattr(2) with MOUNT_ATTR_IDMAP)
// let a container in a user namespace see a rootfs owned by the host's
// root as owned by its own root, without a chown of the image: the mount
// translates every on-disk id through the container's mappings.
//
// Only the host's root can make one (CAP_SYS_ADMIN over the file system's
// user namespace), and only on a detached mount: the runtime clones the
// tree with open_tree(OPEN_TREE_CLONE), sets the idmap on the clone with
// the container's user namespace, and hands the clone's fd to the init,
// which attaches it with move_mount(2) inside its own mount namespace.
//
// Which file systems allow it depends on the kernel (FS_ALLOW_IDMAP):
// ext4, xfs, btrfs since 5.12-5.15, tmpfs since 6.3, overlayfs since 5.19
// for its layers and 6.x for the overlay itself, FUSE since 6.12 (when the
// daemon opts in). What this host allows is measured by TestIdmappedMount.

// ErrIdmapUnsupported: the file system (or the kernel) cannot idmap.
var ErrIdmapUnsupported = errors.New("idmapped mounts are not supported here")

// idmappedClone clones the mount tree at path (recursive: submounts too)
// as a detached mount whose ids are mapped through the user namespace
// usernsFd. The caller attaches it (move_mount) or closes it.
func idmappedClone(path string, usernsFd int, recursive bool) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	var setFlags uint = unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, flags)
	if err != nil {
		return nil, fmt.Errorf("idmapped mount of %s: open_tree: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFd)}
	if err := unix.MountSetattr(fd, "", setFlags, attr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("idmapped mount of %s (%s): %w (%v)", path, fsTypeName(path), ErrIdmapUnsupported, err)
		}
		return nil, fmt.Errorf("idmapped mount of %s: mount_setattr: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "idmapped:"+path), nil
}

// attachMount puts a detached mount (from idmappedClone) on target.
func attachMount(f *os.File, target string) error {
	if err := unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount onto %s: %w", target, err)
	}
	return nil
}

// fsTypeName names the file system path lives on, for error messages.
func fsTypeName(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "unknown file system"
	}
	if name, ok := fsMagicNames[st.Type]; ok {
		return name
	}
	return fmt.Sprintf("file system 0x%x", st.Type)
}

var fsMagicNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "ext4",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlay",
	unix.FUSE_SUPER_MAGIC:      "fuse",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.PROC_SUPER_MAGIC:      "proc",
	unix.SYSFS_MAGIC:           "sysfs",
}
