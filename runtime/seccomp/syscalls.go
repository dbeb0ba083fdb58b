package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:generate go run mksyscalls.go

// x32SyscallBit marks an x32 syscall on the x86_64 audit arch: x32
// processes enter the kernel as x86_64 with this bit set in the number.
const x32SyscallBit = 0x40000000

// x86_64Only are the x86_64 syscalls whose number is "64" (not "common") in
// the kernel's syscall_64.tbl: x32 either lacks them or has its own number
// in the 512-547 block (x32Specific). Every other x86_64 number is shared
// with x32 (plus x32SyscallBit).
var x86_64Only = []string{
	"rt_sigaction", "rt_sigreturn", "ioctl", "readv", "writev", "recvfrom",
	"sendmsg", "recvmsg", "setsockopt", "getsockopt", "execve", "ptrace",
	"rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "sigaltstack",
	"uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module",
	"nfsservctl", "set_thread_area", "io_setup", "io_submit",
	"get_thread_area", "epoll_ctl_old", "epoll_wait_old", "timer_create",
	"vserver", "mq_notify", "kexec_load", "waitid", "set_robust_list",
	"get_robust_list", "vmsplice", "move_pages", "preadv", "pwritev",
	"rt_tgsigqueueinfo", "recvmmsg", "sendmmsg", "process_vm_readv",
	"process_vm_writev", "execveat", "preadv2", "pwritev2",
}

// x32Specific is the kernel's legacy x32 block (syscall_64.tbl, abi "x32").
var x32Specific = map[string]uint32{
	"rt_sigaction": 512, "rt_sigreturn": 513, "ioctl": 514, "readv": 515,
	"writev": 516, "recvfrom": 517, "sendmsg": 518, "recvmsg": 519,
	"execve": 520, "ptrace": 521, "rt_sigpending": 522,
	"rt_sigtimedwait": 523, "rt_sigqueueinfo": 524, "sigaltstack": 525,
	"timer_create": 526, "mq_notify": 527, "kexec_load": 528, "waitid": 529,
	"set_robust_list": 530, "get_robust_list": 531, "vmsplice": 532,
	"move_pages": 533, "preadv": 534, "pwritev": 535,
	"rt_tgsigqueueinfo": 536, "recvmmsg": 537, "sendmmsg": 538,
	"process_vm_readv": 539, "process_vm_writev": 540, "setsockopt": 541,
	"getsockopt": 542, "io_setup": 543, "io_submit": 544, "execveat": 545,
	"preadv2": 546, "pwritev2": 547,
}

// syscallsX32 maps names to x32 numbers, x32SyscallBit included.
var syscallsX32 = func() map[string]uint32 {
	only := map[string]bool{}
	for _, n := range x86_64Only {
		only[n] = true
	}
	t := make(map[string]uint32, len(syscallsX86_64))
	for name, nr := range syscallsX86_64 {
		if !only[name] {
			t[name] = nr | x32SyscallBit
		}
	}
	for name, nr := range x32Specific {
		t[name] = nr | x32SyscallBit
	}
	return t
}()

// abi is one syscall ABI a filter can dispatch on.
type abi struct {
	arch    specs.Arch
	audit   uint32            // seccomp_data.arch
	table   map[string]uint32 // name -> number as seen in seccomp_data.nr
	lo, hi  uint64            // the range of nr this ABI owns (hi exclusive)
	argBits int               // 64, or 32 for ABIs whose args are 32-bit
}

var (
	abiX86_64 = abi{specs.ArchX86_64, unix.AUDIT_ARCH_X86_64, syscallsX86_64, 0, x32SyscallBit, 64}
	abiX32    = abi{specs.ArchX32, unix.AUDIT_ARCH_X86_64, syscallsX32, x32SyscallBit, 1 << 32, 64}
	abiI386   = abi{specs.ArchX86, unix.AUDIT_ARCH_I386, syscallsI386, 0, 1 << 32, 32}
)

// SyscallNumber returns the x86_64 number of a syscall name, for callers
// (tests, the agent) that want to name syscalls the way the spec does.
func SyscallNumber(name string) (uint32, bool) {
	nr, ok := syscallsX86_64[name]
	return nr, ok
}
