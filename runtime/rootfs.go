package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootfsCtx carries the container init through the rootfs steps.
type rootfsCtx struct {
	cfg    *initConfig
	spec   *specs.Spec
	rootfs string
	conn   *syncConn
	// root is an O_PATH handle on the rootfs (after it is bound onto
	// itself): every mount destination is resolved inside it.
	root *os.File
	// consoleSlave is the pty slave (terminal: true), for the process.
	consoleSlave *os.File
	warnings     []string
	// idmappedRoot: the rootfs as a detached idmapped mount, attached
	// instead of binding the rootfs onto itself (userns.go).
	idmappedRoot *os.File
	// rootfsTree keeps the rootfs mount's fd while rc.rootfs names it.
	rootfsTree *os.File
	// bindTrees: for spec.Mounts[i], the parent's detached clone of the
	// bind source, or nil (userns.go); mountIndex is the mount at hand.
	bindTrees  []*os.File
	mountIndex int
}

// rootfsSteps is the container's filesystem setup, in order. Each step is
// small and says why it exists.
var rootfsSteps = []struct {
	name string
	run  func(*rootfsCtx) error
}{
	// Our mounts must not propagate back to the host (and the host's
	// later mounts must not appear inside): make every mount private.
	{"make mounts private", (*rootfsCtx).makePrivate},
	// pivot_root needs the new root to be a mount point; a bind of the
	// rootfs onto itself makes one, and cuts it from its parent mount.
	{"bind rootfs onto itself", (*rootfsCtx).bindRootfs},
	// The spec's mounts, in order, each destination resolved inside the
	// rootfs (a symlink there must never redirect a mount to the host).
	{"mounts", (*rootfsCtx).mountAll},
	// /dev is a fresh tmpfs: give it the standard nodes and symlinks.
	{"devices", (*rootfsCtx).createDevices},
	// OCI hooks that run before pivot_root (prestart, createRuntime by the
	// parent; createContainer here), e.g. to add mounts.
	{"hooks", (*rootfsCtx).createHooks},
	// Make the rootfs "/" and drop the host's tree from the namespace, so
	// neither the host's files nor its mount table are reachable.
	{"pivot_root", (*rootfsCtx).pivotRoot},
	// Sysctls go to the container's own /proc/sys (namespaced keys only),
	// before the readonly paths make it read-only.
	{"sysctl", (*rootfsCtx).sysctls},
	// A pty from the container's own devpts, its slave at /dev/console.
	{"console", (*rootfsCtx).setupConsole},
	// Hide kernel files that leak host data or control the host.
	{"masked paths", (*rootfsCtx).maskPaths},
	// Keep /proc/sys and friends visible but read-only.
	{"readonly paths", (*rootfsCtx).readonlyPaths},
	// root.readonly: the image cannot be modified.
	{"readonly root", (*rootfsCtx).readonlyRoot},
	// linux.rootfsPropagation, if the spec asks for shared or slave.
	{"root propagation", (*rootfsCtx).rootPropagation},
}

func (rc *rootfsCtx) run() error {
	defer func() {
		if rc.root != nil {
			rc.root.Close()
		}
	}()
	for _, step := range rootfsSteps {
		if err := step.run(rc); err != nil {
			return fmt.Errorf("rootfs: %s: %w", step.name, err)
		}
	}
	return nil
}

func (rc *rootfsCtx) warn(format string, args ...any) {
	rc.warnings = append(rc.warnings, fmt.Sprintf(format, args...))
}

func (rc *rootfsCtx) makePrivate() error {
	if rc.cfg.SharedMountNS {
		return nil // the caller's namespace: its propagation is not ours to change
	}
	return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

func (rc *rootfsCtx) bindRootfs() error {
	// In the caller's mount namespace the runtime has bound it already.
	if rc.cfg.RootfsFd > 0 {
		if err := rc.attachRootfsByFd(); err != nil {
			return err
		}
	} else if !rc.cfg.SharedMountNS {
		if err := unix.Mount(rc.rootfs, rc.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", rc.rootfs, err)
		}
	}
	root, err := os.OpenFile(rc.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	rc.root = root
	return nil
}

func (rc *rootfsCtx) pivotRoot() error {
	if rc.cfg.SharedMountNS {
		// pivot_root or a move over "/" would act on the caller's root:
		// chroot, as runc does without a mount namespace.
		if err := unix.Chroot(rc.rootfs); err != nil {
			return err
		}
		return unix.Chdir("/")
	}
	if rc.cfg.NoPivot {
		return rc.moveRoot()
	}
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rc.rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	// pivot_root(".", "."): the old root ends up mounted on top of the new
	// one at "/", where it is unmounted at once; no directory for it needed.
	if err := unix.PivotRoot(".", "."); err != nil {
		if errors.Is(err, unix.EINVAL) {
			// The current root cannot be pivoted away (an initramfs rootfs).
			rc.warn("pivot_root is impossible here (%v): falling back to chroot, which is weaker isolation", err)
			return rc.moveRoot()
		}
		return fmt.Errorf("pivot_root %s: %w", rc.rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	// Slave first, so detaching the old root does not unmount the host's
	// mounts through propagation.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot is the --no-pivot path: move the rootfs over "/" and chroot.
// TODO: the host's other mounts stay in this namespace (unreachable by
// path, but listed in /proc/self/mountinfo); runc unmounts them first.
func (rc *rootfsCtx) moveRoot() error {
	if err := unix.Chdir(rc.rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rc.rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return unix.Chdir("/")
}

func (rc *rootfsCtx) sysctls() error {
	for key, val := range rc.spec.Linux.Sysctl {
		if strings.Contains(key, "/") || strings.Contains(key, "..") || key == "" {
			return fmt.Errorf("invalid sysctl key %q", key)
		}
		file := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if err := os.WriteFile(file, []byte(val), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, val, err)
		}
	}
	return nil
}

func (rc *rootfsCtx) maskPaths() error {
	for _, p := range rc.spec.Linux.MaskedPaths {
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

func (rc *rootfsCtx) readonlyPaths() error {
	for _, p := range rc.spec.Linux.ReadonlyPaths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := remountReadonly(p); err != nil {
			return err
		}
	}
	return nil
}

func (rc *rootfsCtx) readonlyRoot() error {
	if rc.spec.Root == nil || !rc.spec.Root.Readonly {
		return nil
	}
	return remountReadonly("/")
}

// remountReadonly makes the bind mount at p read-only, keeping its other
// flags (nosuid, nodev, noexec...), which a bare MS_RDONLY remount clears.
func remountReadonly(p string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	flags := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", p, "", flags|unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", p, err)
	}
	return nil
}

func (rc *rootfsCtx) rootPropagation() error {
	prop := rc.spec.Linux.RootfsPropagation
	if prop == "" {
		return nil
	}
	flag, ok := propagationTable[prop]
	if !ok {
		return fmt.Errorf("unknown rootfsPropagation %q", prop)
	}
	return unix.Mount("", "/", "", flag, "")
}

// procFdPath names an open fd through /proc, for mount(2) targets: the
// mount lands on exactly the inode that was resolved inside the rootfs.
func procFdPath(f *os.File) string {
	return "/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd()))
}

// hostPath makes a bind source absolute (relative ones are relative to the
// bundle, as runc treats them).
func (rc *rootfsCtx) hostPath(src string) string {
	if filepath.IsAbs(src) {
		return src
	}
	return filepath.Join(rc.cfg.Bundle, src)
}
