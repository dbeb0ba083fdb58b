package sysinfoagent

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Answerer computes the sysinfo(2) answer for a trapped task. pid is the
// task's thread id as the host sees it. An error makes the agent let the
// real syscall run (the host's values), never fail the caller.
type Answerer interface {
	Sysinfo(pid int) (unix.Sysinfo_t, error)
}

// AnswererFunc adapts a function to Answerer.
type AnswererFunc func(pid int) (unix.Sysinfo_t, error)

// Sysinfo calls f.
func (f AnswererFunc) Sysinfo(pid int) (unix.Sysinfo_t, error) { return f(pid) }

// sysinfoSize is sizeof(struct sysinfo) on x86_64: what the kernel writes.
const sysinfoSize = int(unsafe.Sizeof(unix.Sysinfo_t{}))

// outcome of one notification, for the counters.
type outcome int

const (
	answered  outcome = iota // our values written and returned
	continued                // the real syscall ran (not ours to answer, or a failure)
	vanished                 // the task left the syscall before we answered
)

// answer handles one notification on listener fd:
//
//  1. only x86_64 sysinfo is ours; anything else runs for real;
//  2. ID_VALID: the task still waits, so n.Pid is still that task;
//  3. compute the answer; write it at args[0] with process_vm_writev, which
//     honours page protections like the kernel's copy_to_user (a bad
//     pointer fails here, and the real syscall then reports EFAULT);
//  4. ID_VALID again: if the task left meanwhile (killed) the pid may name
//     another process by now; we never tell anyone it worked;
//  5. respond 0.
//
// Every failure path answers CONTINUE.
func answer(fd int, n *Notif, ans Answerer) (outcome, error) {
	if n.Arch != unix.AUDIT_ARCH_X86_64 || n.Nr != int32(unix.SYS_SYSINFO) {
		return continued, respondContinue(fd, n.ID)
	}
	if idValid(fd, n.ID) != nil {
		return vanished, nil
	}
	si, err := ans.Sysinfo(int(n.Pid))
	if err != nil {
		return continued, errors.Join(fmt.Errorf("computing sysinfo for pid %d: %w", n.Pid, err), respondContinue(fd, n.ID))
	}
	if err := writeSysinfo(int(n.Pid), n.Args[0], &si); err != nil {
		return continued, errors.Join(err, respondContinue(fd, n.ID))
	}
	if idValid(fd, n.ID) != nil {
		return vanished, nil
	}
	if err := respondValue(fd, n.ID, 0); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return vanished, nil
		}
		return continued, fmt.Errorf("responding: %w", err)
	}
	return answered, nil
}

func writeSysinfo(pid int, addr uint64, si *unix.Sysinfo_t) error {
	if addr == 0 {
		return errors.New("sysinfo(NULL)")
	}
	local := []unix.Iovec{{Base: (*byte)(unsafe.Pointer(si)), Len: uint64(sysinfoSize)}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: sysinfoSize}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("writing the answer into pid %d: %w", pid, err)
	}
	if n != sysinfoSize {
		return fmt.Errorf("writing the answer into pid %d: %d of %d bytes", pid, n, sysinfoSize)
	}
	return nil
}

// answerCache remembers the last answer on one listener: a task calling
// sysinfo in a loop (the JVM's and glibc's habits are bursts) is answered
// from it for ttl without asking the Answerer again. Keyed by thread id;
// the listener already pins the container, and a thread id is not reused
// within milliseconds. Used by the agent's session thread only.
type answerCache struct {
	ttl time.Duration
	pid int
	at  time.Time
	si  unix.Sysinfo_t
}

func (c *answerCache) answerer(inner Answerer) Answerer {
	return AnswererFunc(func(pid int) (unix.Sysinfo_t, error) {
		now := time.Now()
		if c.ttl > 0 && pid == c.pid && now.Sub(c.at) < c.ttl {
			return c.si, nil
		}
		si, err := inner.Sysinfo(pid)
		if err != nil {
			c.pid = 0
			return si, err
		}
		c.pid, c.at, c.si = pid, now, si
		return si, nil
	})
}
