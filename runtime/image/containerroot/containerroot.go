// Package containerroot is the part of the image store that deleting a
// container needs: releasing the overlay root an image-backed container
// ran on (ROOT/containers/ID, made by image.Store.MountRoot). It is apart
// from package image so that package runtime, whose delete releases the
// root, does not link the image store's registry client (whose package
// initialization every container init would pay for).
package containerroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Files of a container's directory ROOT/containers/ID.
const (
	Marker = ".corral-image-root" // holds the image id; Release removes only a directory that has it
	Dir    = "rootfs"             // the overlay mount: the container's /
)

// Release unmounts a container's overlay root and removes its directory
// with the upper layer (what the container wrote). It refuses a directory
// MountRoot did not make.
func Release(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, Marker)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Lstat(dir); errors.Is(derr, os.ErrNotExist) {
				return nil // released already
			}
		}
		return fmt.Errorf("%s is no container root of the image store: left alone", dir)
	}
	root := filepath.Join(dir, Dir)
	if err := unix.Unmount(root, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", root, err)
	}
	// Never descend into a mount: if the root is still one, stop.
	if mounted, err := IsMountPoint(root); err != nil || mounted {
		return fmt.Errorf("%s is still mounted: not removed", root)
	}
	return os.RemoveAll(dir)
}

// IsMountPoint compares the device of path with its parent's (overlay
// gets a device of its own).
func IsMountPoint(path string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(path), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev, nil
}
