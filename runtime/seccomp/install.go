package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Install compiles cfg and loads it into the calling thread with seccomp(2).
// When the policy has a SCMP_ACT_NOTIFY rule it asks for a listener and
// returns its fd (close-on-exec); otherwise it returns -1.
//
// The filter applies to the calling OS thread only (unless the policy sets
// SECCOMP_FILTER_FLAG_TSYNC) and is inherited across execve: call it with
// runtime.LockOSThread held, on the thread that will exec the container's
// process, as late as possible. The thread needs no_new_privs
// (prctl(PR_SET_NO_NEW_PRIVS)) or CAP_SYS_ADMIN in its user namespace.
func Install(cfg *specs.LinuxSeccomp) (listenerFd int, err error) {
	prog, err := Compile(cfg)
	if err != nil {
		return -1, err
	}
	return prog.Load()
}

// Load installs a compiled program into the calling thread (see Install).
func (p *Program) Load() (listenerFd int, err error) {
	if len(p.Filter) == 0 {
		return -1, errors.New("seccomp: empty filter")
	}
	flags := p.Flags
	if p.Notify {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		// The kernel refuses TSYNC together with NEW_LISTENER (it could
		// not say which thread failed to sync) unless TSYNC_ESRCH is set.
		if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	}
	fprog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(p.Filter)
	if errno != 0 {
		return -1, explainLoadError(errno, flags)
	}
	if !p.Notify {
		if r != 0 {
			// TSYNC without a listener reports the thread it could not
			// synchronise by returning its TID.
			return -1, fmt.Errorf("seccomp: TSYNC: thread %d could not be synchronised", r)
		}
		return -1, nil
	}
	return int(r), nil
}

func explainLoadError(errno unix.Errno, flags uint) error {
	switch {
	case errno == unix.EACCES:
		return fmt.Errorf("seccomp: loading the filter: %w (the thread needs no_new_privs or CAP_SYS_ADMIN)", errno)
	case errno == unix.EBUSY && flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0:
		return fmt.Errorf("seccomp: loading the filter: %w (a filter with a notify listener is already installed on this thread)", errno)
	case errno == unix.ESRCH:
		return fmt.Errorf("seccomp: loading the filter: TSYNC could not synchronise all threads: %w", errno)
	}
	return fmt.Errorf("seccomp: loading the filter (flags %#x): %w", flags, errno)
}
