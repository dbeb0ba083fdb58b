package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Syscalls that x86_64 kernels implement as "not implemented" (ENOSYS
// whatever their arguments): the filter's decisions on them are visible
// through the errno alone, and the Go runtime never makes them.
var niSyscalls = []struct {
	name string
	nr   uintptr
}{
	{"create_module", 174}, {"get_kernel_syms", 177}, {"query_module", 178},
	{"nfsservctl", 180}, {"getpmsg", 181}, {"putpmsg", 182},
	{"afs_syscall", 183}, {"tuxcall", 184}, {"security", 185},
	{"vserver", 236}, {"epoll_ctl_old", 214}, {"epoll_wait_old", 215},
	{"uselib", 134}, {"_sysctl", 156}, {"set_thread_area", 205}, {"get_thread_area", 211},
}

func uptr(v uint) *uint { return &v }

// argValues are the 64-bit edge cases every comparison is checked on.
var argValues = []uint64{
	0, 1, 2, 7, 8, 9, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	0x100000000, 0x100000001, 0x1_0000_0007, 0x1_0000_0008, 0x1_0000_0009,
	0xffffffff_00000000, 0x7fffffff_ffffffff, 0x80000000_00000000, 0xffffffff_ffffffff,
}

// refMatch is the reference semantics of one comparison (unsigned 64-bit).
func refMatch(op specs.LinuxSeccompOperator, arg, v, v2 uint64) bool {
	switch op {
	case specs.OpEqualTo:
		return arg == v
	case specs.OpNotEqual:
		return arg != v
	case specs.OpLessThan:
		return arg < v
	case specs.OpLessEqual:
		return arg <= v
	case specs.OpGreaterThan:
		return arg > v
	case specs.OpGreaterEqual:
		return arg >= v
	case specs.OpMaskedEqual:
		return arg&v == v2
	}
	panic(op)
}

// TestArgumentComparisonsInKernel checks every operator, at every argument
// index, on 64-bit edge values, against refMatch: one rule per ENOSYS
// syscall, ERRNO(100+i) when it matches, ENOSYS (the real syscall) when not.
func TestArgumentComparisonsInKernel(t *testing.T) {
	testutil.RequireRoot(t)
	type check struct {
		op     specs.LinuxSeccompOperator
		index  uint
		v, v2  uint64
		errnum int
	}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual}
	// Two pivots per operator: one below 2^32, one with the high word set.
	pivots := [][2]uint64{{8, 8}, {0x1_0000_0008, 0x1_0000_0008}}
	var checks []check
	policy := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	i := 0
	for _, op := range ops {
		for _, p := range pivots {
			v, v2 := p[0], p[1]
			if op == specs.OpMaskedEqual {
				v, v2 = 0xffffffff_0000000f, p[1]&0xffffffff_0000000f // mask, datum
			}
			c := check{op: op, index: uint(i % 6), v: v, v2: v2, errnum: 100 + i}
			checks = append(checks, c)
			policy.Syscalls = append(policy.Syscalls, specs.LinuxSyscall{
				Names:    []string{niSyscalls[i%len(niSyscalls)].name},
				Action:   specs.ActErrno,
				ErrnoRet: uptr(uint(c.errnum)),
				Args:     []specs.LinuxSeccompArg{{Index: c.index, Value: c.v, ValueTwo: c.v2, Op: op}},
			})
			i++
		}
	}
	if len(checks) > len(niSyscalls) {
		// Each syscall carries exactly one rule, so results are unambiguous.
		t.Fatalf("need %d ENOSYS syscalls, have %d", len(checks), len(niSyscalls))
	}
	req := childRequest{Policy: policy}
	type want struct {
		c   check
		arg uint64
	}
	var wants []want
	for ci, c := range checks {
		for _, a := range append(argValues, c.v-1, c.v, c.v+1) {
			var args [6]uint64
			for k := range args {
				args[k] = ^a // other arguments must not matter
			}
			args[c.index] = a
			req.Calls = append(req.Calls, call{Nr: niSyscalls[ci%len(niSyscalls)].nr, Args: args})
			wants = append(wants, want{c, a})
		}
	}
	res, _ := runInChild(t, req)
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	for k, w := range wants {
		exp := int(unix.ENOSYS)
		if refMatch(w.c.op, w.arg, w.c.v, w.c.v2) {
			exp = w.c.errnum
		}
		if got := res.Errnos[k][0]; got != exp {
			t.Errorf("%s arg%d=%#x (value %#x, valueTwo %#x): errno %d, want %d", w.c.op, w.c.index, w.arg, w.c.v, w.c.v2, got, exp)
		}
	}
}

// TestRuleSemanticsInKernel: AND across indexes, OR when one index is tested
// twice, first conditional match wins, the unconditional rule is the
// fallback, unknown names are skipped, rules equal to the default dropped.
func TestRuleSemanticsInKernel(t *testing.T) {
	testutil.RequireRoot(t)
	arg := func(i uint, v uint64, op specs.LinuxSeccompOperator) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: op}
	}
	policy := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			// tuxcall: AND of two indexes -> 101
			{Names: []string{"tuxcall"}, Action: specs.ActErrno, ErrnoRet: uptr(101), Args: []specs.LinuxSeccompArg{arg(0, 1, specs.OpEqualTo), arg(1, 2, specs.OpEqualTo)}},
			// security: index 0 tested twice -> OR -> 102
			{Names: []string{"security"}, Action: specs.ActErrno, ErrnoRet: uptr(102), Args: []specs.LinuxSeccompArg{arg(0, 1, specs.OpEqualTo), arg(0, 5, specs.OpEqualTo)}},
			// afs_syscall: first conditional match wins; fallback 105
			{Names: []string{"afs_syscall"}, Action: specs.ActErrno, ErrnoRet: uptr(103), Args: []specs.LinuxSeccompArg{arg(0, 10, specs.OpLessThan)}},
			{Names: []string{"afs_syscall"}, Action: specs.ActErrno, ErrnoRet: uptr(104), Args: []specs.LinuxSeccompArg{arg(0, 5, specs.OpLessThan)}},
			{Names: []string{"afs_syscall", "no_such_syscall_anywhere"}, Action: specs.ActErrno, ErrnoRet: uptr(105)},
			// vserver: a rule equal to the default is dropped (stays ENOSYS)
			{Names: []string{"vserver"}, Action: specs.ActAllow},
			// putpmsg: default errnoRet is EPERM
			{Names: []string{"putpmsg"}, Action: specs.ActErrno},
		},
	}
	calls := []struct {
		nr   uintptr
		args [6]uint64
		want unix.Errno
	}{
		{184, [6]uint64{1, 2}, 101},
		{184, [6]uint64{1, 3}, unix.ENOSYS},
		{184, [6]uint64{0, 2}, unix.ENOSYS},
		{185, [6]uint64{1}, 102},
		{185, [6]uint64{5}, 102},
		{185, [6]uint64{3}, unix.ENOSYS},
		{183, [6]uint64{3}, 103},
		{183, [6]uint64{9}, 103},
		{183, [6]uint64{10}, 105},
		{236, [6]uint64{}, unix.ENOSYS},
		{182, [6]uint64{}, unix.EPERM},
		{uintptr(unix.SYS_GETPID), [6]uint64{}, 0},
	}
	req := childRequest{Policy: policy}
	for _, c := range calls {
		req.Calls = append(req.Calls, call{Nr: c.nr, Args: c.args})
	}
	res, _ := runInChild(t, req)
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	for i, c := range calls {
		if got := unix.Errno(res.Errnos[i][0]); got != c.want {
			t.Errorf("syscall %d args %v: errno %d (%v), want %d (%v)", c.nr, c.args[:2], int(got), got, int(c.want), c.want)
		}
	}
}

// TestTsyncFiltersEveryThread: with SECCOMP_FILTER_FLAG_TSYNC the filter
// lands on all threads of the process, not only the caller.
func TestTsyncFiltersEveryThread(t *testing.T) {
	testutil.RequireRoot(t)
	policy := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"tuxcall"}, Action: specs.ActErrno, ErrnoRet: uptr(107)}},
	}
	res, _ := runInChild(t, childRequest{Policy: policy, NNP: true, Calls: []call{{Nr: 184, Threads: 4}}})
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	for i, e := range res.Errnos[0] {
		if e != 107 {
			t.Errorf("thread %d: errno %d, want 107", i, e)
		}
	}
}

// TestSysinfoOnlyFilterTrapsSysinfo: the no-policy filter gives a listener
// fd, sends sysinfo to it and nothing else.
func TestSysinfoOnlyFilterTrapsSysinfo(t *testing.T) {
	testutil.RequireRoot(t)
	res, _ := runInChild(t, childRequest{
		Policy:        SysinfoOnly("/nonexistent"),
		Calls:         []call{{Nr: uintptr(unix.SYS_GETPID)}, {Nr: 184}},
		AnswerSysinfo: true,
	})
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	if res.ListenerFd < 0 || res.ListenerOK != "ok" {
		t.Fatalf("listener fd %d: %s", res.ListenerFd, res.ListenerOK)
	}
	if res.Errnos[0][0] != 0 || unix.Errno(res.Errnos[1][0]) != unix.ENOSYS {
		t.Errorf("getpid/tuxcall errnos %v, want 0 and ENOSYS", res.Errnos)
	}
	if res.Sysinfo != "ok" {
		t.Errorf("sysinfo through the listener: %s", res.Sysinfo)
	}
}

// TestInstallNeedsPrivilegeOrNNP: a clear error, not a crash, when the
// policy is bad.
func TestInstallRejectsBadPolicies(t *testing.T) {
	for name, p := range map[string]*specs.LinuxSeccomp{
		"nil":          nil,
		"bad action":   {DefaultAction: "SCMP_ACT_EXPLODE"},
		"bad flag":     {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}},
		"bad operator": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ALMOST"}}}}},
		"bad index":    {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		"bad errno":    {DefaultAction: specs.ActErrno, DefaultErrnoRet: uptr(1 << 20)},
	} {
		if _, err := Compile(p); err == nil {
			t.Errorf("%s: compiled", name)
		} else if !strings.Contains(err.Error(), "seccomp") {
			t.Errorf("%s: error %q does not say where it comes from", name, err)
		}
	}
}

func errnoName(e int) string { return fmt.Sprintf("%d (%v)", e, unix.Errno(e)) }

// TestX32Numbers: on x86_64 an x32 syscall is the x86_64 audit arch with
// bit 30 set in the number. Listed, SCMP_ARCH_X32 gets its own table
// (tuxcall is a common number); not listed, such a call is a bad arch and
// kills the process, so no policy can be bypassed through x32 numbers.
func TestX32Numbers(t *testing.T) {
	testutil.RequireRoot(t)
	rule := []specs.LinuxSyscall{{Names: []string{"tuxcall"}, Action: specs.ActErrno, ErrnoRet: uptr(105)}}
	x32Tuxcall := uintptr(184 | x32SyscallBit)

	listed := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32}, Syscalls: rule}
	res, _ := runInChild(t, childRequest{Policy: listed, Calls: []call{{Nr: x32Tuxcall}, {Nr: 184}}})
	if res.Errnos[0][0] != 105 || res.Errnos[1][0] != 105 {
		t.Errorf("x32 listed: errnos %v, want 105 for both ABIs", res.Errnos)
	}

	unlisted := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rule}
	raw, err := json.Marshal(childRequest{Policy: unlisted, Calls: []call{{Nr: x32Tuxcall}}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("x32 not listed: child exited with %v, want killed by SIGSYS", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Errorf("x32 not listed: child ended with %v, want SIGSYS", ee)
	}
}
