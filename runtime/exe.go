package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// protectExe returns the path the child must be executed from (corral-init
// beside our binary when it is of our build, openInitBinary; else our own
// binary) such that the file cannot be overwritten from inside the
// container (CVE-2019-5736: a container process opens /proc/PID/exe of an
// init or exec init running it, and writes to it once it is not busy).
//
// Default: a read-only bind mount of the file over itself, made in a
// private mount namespace of the spawning thread T. The child's
// /proc/self/exe then lives on a read-only mount; reopening it for writing
// fails with EROFS, and the mount exists only in namespaces the container
// cannot enter. It costs an unshare and two mounts, no copy.
//
// CORRAL_EXE_PROTECT=memfd, or a child that must stay in the caller's
// mount namespace (callerMountNS), instead executes a sealed memfd copy
// (runc's classic fix; costs a copy of the binary per container, see the
// bench). Called on T only.
func protectExe(callerMountNS bool) (path string, done func(), err error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", nil, fmt.Errorf("find own executable: %w", err)
	}
	// Replaced on disk (upgrade while running): the path is gone, and a
	// corral-init beside it is of the new build; the memfd copy of
	// /proc/self/exe still works.
	deleted := strings.HasSuffix(exe, " (deleted)")
	src := (*os.File)(nil)
	if !deleted {
		src = openInitBinary(exe)
	}
	if src == nil {
		if src, err = os.Open("/proc/self/exe"); err != nil {
			return "", nil, fmt.Errorf("open own executable: %w", err)
		}
	} else {
		exe = filepath.Join(filepath.Dir(exe), InitBinaryName)
	}
	defer src.Close()
	// Rootless: an unprivileged caller cannot unshare a mount namespace
	// outside a user namespace of its own, so it takes the copy.
	if os.Getenv("CORRAL_EXE_PROTECT") == "memfd" || callerMountNS || Rootless() || deleted {
		return memfdExe(src)
	}
	nothing := func() {}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return "", nil, fmt.Errorf("protect executable: unshare mount namespace: %w", err)
	}
	// Our bind must not propagate back into the host's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", nil, fmt.Errorf("protect executable: make mounts private: %w", err)
	}
	// The source must be the path: /proc/self/exe resolves to a mount of
	// the original namespace, which mount(2) refuses (EINVAL). The inode
	// check makes sure the path still is the file checked and opened.
	if err := unix.Mount(exe, exe, "", unix.MS_BIND, ""); err != nil {
		return "", nil, fmt.Errorf("protect executable: bind %s: %w", exe, err)
	}
	if !sameFile(exe, fmt.Sprintf("/proc/self/fd/%d", src.Fd())) {
		return memfdExe(src)
	}
	if err := unix.Mount("", exe, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return "", nil, fmt.Errorf("protect executable: remount %s read-only: %w", exe, err)
	}
	return exe, nothing, nil
}

// memfdExe copies src (the binary to execute) into a sealed memfd and
// returns a /proc/self/fd path to it. The fd sits on a high number that
// the child's fd shuffling (dup2 onto 0..n) never touches, and is
// CLOEXEC; done closes it once the child has started.
func memfdExe(src *os.File) (string, func(), error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", nil, err
	}
	fd, err := unix.MemfdCreate("corral", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return "", nil, fmt.Errorf("memfd: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "corral-memfd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", nil, fmt.Errorf("copy executable to memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return "", nil, fmt.Errorf("seal memfd: %w", err)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 1000)
	dst.Close()
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("/proc/self/fd/%d", high), func() { unix.Close(high) }, nil
}

func sameFile(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
