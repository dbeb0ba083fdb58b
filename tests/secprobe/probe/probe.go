// Package probe is secprobe: raw syscalls a container's default seccomp
// profile and its own session keyring must refuse or hide (issue 11).
//
//	secprobe escapes          one line per refused-by-default operation:
//	                          userns (unshare CLONE_NEWUSER), clone-userns
//	                          (clone with CLONE_NEWUSER), clone3 (ENOSYS when
//	                          filtered, EINVAL from the kernel otherwise: the
//	                          probe passes a too-short argument so nothing is
//	                          ever forked), keyctl, add_key, request_key,
//	                          io_uring_setup, bpf, and getpid (must be ok)
//	secprobe keyring          the session keyring's description
//	secprobe keyread ID       read key ID's payload ("read <payload>" or errno)
//	secprobe plant DESC       add a user key DESC to the session keyring
//	secprobe exit0            exit 0 (the child of clone-userns)
//
// Used by tests/runtime_security_*_test.go; the test binary is also secprobe
// when run under that name.
package probe

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Main runs one command and returns the exit status.
func Main(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: secprobe escapes|keyring|keyread ID|plant DESC|exit0")
		return 2
	}
	switch args[0] {
	case "exit0":
		return 0
	case "escapes":
		escapes()
	case "keyring":
		desc, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, unix.KEY_SPEC_SESSION_KEYRING)
		report("keyring", err, desc)
	case "keyread":
		if len(args) != 2 {
			return 2
		}
		id, err := strconv.Atoi(args[1])
		if err != nil {
			return 2
		}
		buf := make([]byte, 256)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if err == nil && n <= len(buf) {
			report("read", nil, string(buf[:n]))
		} else {
			report("read", err, "")
		}
	case "plant":
		if len(args) != 2 {
			return 2
		}
		id, err := unix.AddKey("user", args[1], []byte("planted"), unix.KEY_SPEC_SESSION_KEYRING)
		report("plant", err, strconv.Itoa(id))
	default:
		fmt.Fprintf(os.Stderr, "secprobe: unknown command %q\n", args[0])
		return 2
	}
	return 0
}

func report(name string, err error, ok string) {
	if err != nil {
		if e, isErrno := err.(syscall.Errno); isErrno {
			fmt.Printf("%s %s\n", name, unix.ErrnoName(e))
			return
		}
		fmt.Printf("%s %v\n", name, err)
		return
	}
	if ok == "" {
		ok = "ok"
	} else {
		ok = "ok " + ok
	}
	fmt.Println(name, ok)
}

func errno(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func escapes() {
	_, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", errno(e), "")

	// A multi-threaded process cannot unshare a user namespace (EINVAL),
	// so both tries happen in a forked child running "secprobe exit0":
	// unshare(CLONE_NEWUSER) after the fork, and clone(CLONE_NEWUSER)
	// (Go forks with clone, not clone3, without a cgroup fd).
	report("userns", forkExit0(&syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWUSER}), "")
	report("clone-userns", forkExit0(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}), "")

	// clone3 with a size below CLONE_ARGS_SIZE_VER0: the kernel says
	// EINVAL without forking; Docker's profile answers ENOSYS first.
	var args [64]byte
	_, _, e = unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args[0])), 8, 0)
	report("clone3", errno(e), "")

	_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	report("keyctl", err, "")
	_, err = unix.AddKey("user", "secprobe", []byte("x"), unix.KEY_SPEC_SESSION_KEYRING)
	report("add_key", err, "")
	_, err = unix.RequestKey("user", "secprobe-none", "", unix.KEY_SPEC_SESSION_KEYRING)
	report("request_key", err, "")

	var params [120]byte // struct io_uring_params
	fd, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if e == 0 {
		unix.Close(int(fd))
	}
	report("io_uring_setup", errno(e), "")

	// BPF_PROG_LOAD with an empty attr: EINVAL (or EPERM without
	// privileges) from the kernel, EPERM from the filter first.
	var attr [128]byte
	_, _, e = unix.RawSyscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	report("bpf", errno(e), "")
}

// forkExit0 starts "secprobe exit0" with attr and returns the error of the
// fork (or of the child's setup, which ForkExec reports) or of its exit.
func forkExit0(attr *syscall.SysProcAttr) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pid, err := syscall.ForkExec(self, []string{self, "exit0"}, &syscall.ProcAttr{Sys: attr})
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	if ws.ExitStatus() != 0 {
		return fmt.Errorf("child exited %d", ws.ExitStatus())
	}
	return nil
}
