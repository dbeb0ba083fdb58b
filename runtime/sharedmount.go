package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A spec without a mount namespace puts the container in the caller's
// (runc accepts this). Its mounts (proc, dev, the spec's) are then made in
// the caller's namespace, so they must not stay behind: the runtime binds
// the rootfs at STATEDIR/rootfs, private (nothing propagates to or from
// the rest of the host's tree below it), the init mounts below that bind
// and chroots into it, and delete (or a failed create) detaches the bind
// with everything below it. A path of the runtime's own is never another
// program's mount point, so detaching it cannot remove someone else's.

const sharedRootfsDir = "rootfs"

func sharesMountNS(spec *specs.Spec) bool {
	if spec == nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			return false
		}
	}
	return true
}

// bindSharedRootfs binds rootfs at stateDir/rootfs and returns that path.
func bindSharedRootfs(stateDir, rootfs string) (string, error) {
	bind := filepath.Join(stateDir, sharedRootfsDir)
	if err := os.Mkdir(bind, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(rootfs, bind, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		os.Remove(bind)
		return "", fmt.Errorf("bind rootfs %s: %w", rootfs, err)
	}
	if err := unix.Mount("", bind, "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		releaseSharedRootfs(stateDir)
		return "", fmt.Errorf("make rootfs bind private: %w", err)
	}
	return bind, nil
}

// releaseSharedRootfs detaches stateDir/rootfs and removes the directory;
// nothing to do when it does not exist. An error means the directory is
// still there (a mount point): the caller must not remove stateDir then.
func releaseSharedRootfs(stateDir string) error {
	bind := filepath.Join(stateDir, sharedRootfsDir)
	if err := unix.Unmount(bind, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("detach rootfs bind %s: %w", bind, err)
	}
	if err := unix.Rmdir(bind); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove rootfs bind %s: %w", bind, err)
	}
	return nil
}
