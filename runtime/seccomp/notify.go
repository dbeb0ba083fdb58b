package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SysinfoSyscall is the syscall the corralfs agent answers.
const SysinfoSyscall = "sysinfo"

// SysinfoOnly is the policy used when a container has no seccomp policy of
// its own: allow everything, trap sysinfo(2). Every x86 ABI is listed so
// 32-bit programs are not killed as a "bad arch" (the agent lets their
// sysinfo through unchanged). All other syscalls have a constant ALLOW
// result, which the kernel caches per syscall number: they never run the
// filter at all.
func SysinfoOnly(listenerPath string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		ListenerPath:  listenerPath,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{SysinfoSyscall}, Action: specs.ActNotify}},
	}
}

// AddSysinfoNotify returns cfg with a SCMP_ACT_NOTIFY rule for sysinfo(2)
// merged in and ListenerPath set, or SysinfoOnly when cfg is nil. cfg itself
// is not modified. added is false (and cfg returned as is) when the policy
// does not let sysinfo run (an explicit deny, or a denying default with no
// rule for it: the agent must not widen a policy) or when it already sends
// notifications to another listener.
func AddSysinfoNotify(cfg *specs.LinuxSeccomp, listenerPath string) (out *specs.LinuxSeccomp, added bool, err error) {
	if listenerPath == "" {
		return cfg, false, errors.New("seccomp: AddSysinfoNotify: empty listener path")
	}
	if cfg == nil {
		return SysinfoOnly(listenerPath), true, nil
	}
	if cfg.ListenerPath != "" && cfg.ListenerPath != listenerPath {
		return cfg, false, nil
	}
	c, err := clonePolicy(cfg)
	if err != nil {
		return cfg, false, err
	}
	// Find what the policy does with sysinfo today.
	allowed := !denies(mustAction(c.DefaultAction, c.DefaultErrnoRet))
	explicit := false
	for _, sc := range c.Syscalls {
		if !containsName(sc.Names, SysinfoSyscall) {
			continue
		}
		explicit = true
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return cfg, false, fmt.Errorf("seccomp: rule for sysinfo: %w", err)
		}
		if act == unix.SECCOMP_RET_USER_NOTIF {
			c.ListenerPath = listenerPath
			return c, true, nil // already trapped
		}
		if act != unix.SECCOMP_RET_ALLOW && act != unix.SECCOMP_RET_LOG || len(sc.Args) > 0 {
			return cfg, false, nil // denied or conditional: leave it alone
		}
	}
	if !explicit && !allowed {
		return cfg, false, nil
	}
	// Drop sysinfo from the rules that allowed it, then trap it.
	kept := c.Syscalls[:0]
	for _, sc := range c.Syscalls {
		sc.Names = removeName(sc.Names, SysinfoSyscall)
		if len(sc.Names) > 0 {
			kept = append(kept, sc)
		}
	}
	c.Syscalls = append(kept, specs.LinuxSyscall{Names: []string{SysinfoSyscall}, Action: specs.ActNotify})
	c.ListenerPath = listenerPath
	return c, true, nil
}

func mustAction(a specs.LinuxSeccompAction, ret *uint) uint32 {
	act, err := action(a, ret)
	if err != nil {
		return unix.SECCOMP_RET_KILL_PROCESS // unknown: treat as denying
	}
	return act
}

func clonePolicy(cfg *specs.LinuxSeccomp) (*specs.LinuxSeccomp, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var c specs.LinuxSeccomp
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func removeName(names []string, n string) []string {
	out := make([]string, 0, len(names))
	for _, x := range names {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// SendToListener hands a seccomp listener fd to the agent at path, as the
// OCI runtime spec describes for linux.seccomp.listenerPath: one message
// whose data is the JSON of specs.ContainerProcessState (fds:
// ["seccompFd"]) and whose SCM_RIGHTS carries fd. The caller keeps fd and
// closes it when it no longer needs it.
func SendToListener(path string, state specs.State, metadata string, fd int) error {
	msg, err := json.Marshal(specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      state.Pid,
		Metadata: metadata,
		State:    state,
	})
	if err != nil {
		return fmt.Errorf("seccomp: encoding the container state: %w", err)
	}
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("seccomp: connecting to the listener %s: %w", path, err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	n, oobn, err := uc.WriteMsgUnix(msg, unix.UnixRights(fd), nil)
	if err != nil {
		return fmt.Errorf("seccomp: sending the listener fd to %s: %w", path, err)
	}
	if n != len(msg) || oobn == 0 {
		return fmt.Errorf("seccomp: sending the listener fd to %s: short write (%d of %d bytes)", path, n, len(msg))
	}
	return nil
}

// listenerFdValid is a cheap check that fd looks like a seccomp listener
// (an anon inode named "seccomp notify").
func listenerFdValid(fd int) error {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	if target != "anon_inode:seccomp notify" {
		return fmt.Errorf("fd %d is %q, not a seccomp listener", fd, target)
	}
	return nil
}
