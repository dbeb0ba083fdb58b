package runtime

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeExecFrom marks every fd >= from close-on-exec, so no fd of the
// runtime leaks into the container's program. close_range(2) does it in one
// call; when it fails (kernel before 5.11: ENOSYS; a seccomp profile that
// blocks it, as older default profiles and podman's --security-opt
// seccomp=PROFILE do: EPERM or ENOSYS, and the filter may already be in
// place when no_new_privs is off) we walk /proc/self/fd instead, as runc's
// utils.CloseExecFrom does.
func closeExecFrom(from int) error {
	err := unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if werr := closeExecWalk(from); werr != nil {
		return fmt.Errorf("close_range: %v; walking /proc/self/fd: %w", err, werr)
	}
	return nil
}

func closeExecWalk(from int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	own := int(d.Fd())
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < from || fd == own {
			continue
		}
		// EBADF: the fd was the directory listing's or closed since; fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("fd %d: %w", fd, err)
		}
	}
	return nil
}
