package sysinfoagent

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp user-notification ioctls (seccomp_unotify(2)).

// Notif mirrors struct seccomp_notif (80 bytes on every ABI).
type Notif struct {
	ID    uint64
	Pid   uint32 // thread id of the trapped task, in the receiver's pid namespace
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

const notifSize = int(unsafe.Sizeof(Notif{}))

// notifResp mirrors struct seccomp_notif_resp.
type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// recvNotif takes the oldest pending notification. It blocks when none is
// pending: poll for POLLIN first. ENOENT means the notification vanished
// (its task was interrupted) between poll and receive.
func recvNotif(fd int, n *Notif) error {
	*n = Notif{} // the kernel insists on a zeroed buffer
	return ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// idValid reports whether notification id is still pending (its task still
// waits in the trapped syscall). ENOENT = gone.
func idValid(fd int, id uint64) error {
	return ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id))
}

// respondContinue lets the trapped syscall run for real. ENOENT (already
// answered, or the task is gone) is not an error for any caller here.
func respondContinue(fd int, id uint64) error {
	r := notifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// respondValue completes the trapped syscall with return value val.
func respondValue(fd int, id uint64, val int64) error {
	r := notifResp{ID: id, Val: val}
	return ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// isListenerFd checks that fd is a seccomp listener (an anon inode named
// "seccomp notify"), so a runtime cannot make us poll anything else.
func isListenerFd(fd int) error {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	if target != "anon_inode:seccomp notify" {
		return fmt.Errorf("fd is %q, not a seccomp listener", target)
	}
	return nil
}
