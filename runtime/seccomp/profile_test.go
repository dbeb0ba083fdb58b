package seccomp

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// containersProfile is the "seccomp.json" format of containers-common
// (podman's default profile): an OCI policy plus per-rule includes and
// excludes on capabilities and architectures, resolved by the engine.
type containersProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet"`
	ArchMap         []struct {
		Arch specs.Arch   `json:"architecture"`
		Sub  []specs.Arch `json:"subArchitectures"`
	} `json:"archMap"`
	Syscalls []struct {
		specs.LinuxSyscall
		Includes profileFilter `json:"includes"`
		Excludes profileFilter `json:"excludes"`
	} `json:"syscalls"`
}

type profileFilter struct {
	Caps   []string `json:"caps"`
	Arches []string `json:"arches"`
}

// podmanDefaultCaps is podman's default capability set.
var podmanDefaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"}

// resolve turns the profile into the OCI policy podman would hand to the
// runtime on amd64 with the default capabilities.
func (p *containersProfile) resolve() *specs.LinuxSeccomp {
	has := func(list []string, x string) bool {
		for _, y := range list {
			if y == x {
				return true
			}
		}
		return false
	}
	out := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet}
	for _, a := range p.ArchMap {
		if a.Arch == specs.ArchX86_64 {
			out.Architectures = append([]specs.Arch{a.Arch}, a.Sub...)
		}
	}
	for _, sc := range p.Syscalls {
		ok := len(sc.Includes.Arches) == 0 || has(sc.Includes.Arches, "amd64")
		for _, c := range sc.Includes.Caps {
			ok = ok && has(podmanDefaultCaps, c)
		}
		for _, c := range sc.Excludes.Caps {
			ok = ok && !has(podmanDefaultCaps, c)
		}
		ok = ok && !has(sc.Excludes.Arches, "amd64")
		if ok {
			out.Syscalls = append(out.Syscalls, sc.LinuxSyscall)
		}
	}
	return out
}

// podmanLikePolicy is built here so the VM (without containers-common) runs
// the same shape: default ERRNO(EPERM), an allow list of every x86_64
// syscall but a deny list, personality/socket/clone with conditions.
func podmanLikePolicy() *specs.LinuxSeccomp {
	deny := map[string]bool{}
	for _, n := range []string{"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "move_pages", "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open", "personality", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "socket", "clone", "swapon", "swapoff", "sysfs", "_sysctl", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old", "tuxcall"} {
		deny[n] = true
	}
	var allow []string
	for n := range syscallsX86_64 {
		if !deny[n] {
			allow = append(allow, n)
		}
	}
	sort.Strings(allow)
	allow = append(allow, "_llseek", "_newselect", "socketcall", "waitpid") // i386 names
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: specs.OpEqualTo}
	}
	const cloneNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: allow, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(0, 0)}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(0, 8)}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(0, 0x20000)}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(0, 0xffffffff)}},
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EINVAL)), Args: []specs.LinuxSeccompArg{eq(0, unix.AF_NETLINK), eq(2, unix.NETLINK_AUDIT)}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: unix.NETLINK_AUDIT, Op: specs.OpNotEqual}}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_NETLINK, Op: specs.OpNotEqual}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: cloneNS, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOSYS))},
		},
	}
}

func loadContainersProfile(t *testing.T) *specs.LinuxSeccomp {
	const path = "/usr/share/containers/seccomp.json"
	testutil.RequireFile(t, path, "apt-get install golang-github-containers-common")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p containersProfile
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p.resolve()
}

// profileCalls are checked under both podman profiles: the Go runtime and
// a shell keep working, denied syscalls fail, syscalls newer than anything
// the profile names get ENOSYS.
func checkProfile(t *testing.T, policy *specs.LinuxSeccomp, denied uintptr, deniedErrno unix.Errno) {
	prog, err := Compile(policy)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	t.Logf("%d syscall rules -> %d BPF instructions", len(policy.Syscalls), len(prog.Filter))
	busybox := testutil.RequireCommand(t, "busybox")
	res, out := runInChild(t, childRequest{
		Policy: policy,
		Calls: []call{
			{Nr: uintptr(unix.SYS_GETPID)},
			{Nr: denied},
			{Nr: 1000}, // newer than any syscall named
			{Nr: uintptr(unix.SYS_PERSONALITY), Args: [6]uint64{0xffffffff}},
			{Nr: uintptr(unix.SYS_SOCKET), Args: [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}},
		},
		Exec: []string{busybox, "sh", "-c", "echo shell-ok; grep '^Seccomp:' /proc/self/status; ls / >/dev/null && echo ls-ok"},
	})
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	want := []unix.Errno{0, deniedErrno, unix.ENOSYS, 0, unix.EINVAL}
	for i, w := range want {
		if got := unix.Errno(res.Errnos[i][0]); got != w {
			t.Errorf("call %d: errno %s, want %s", i, errnoName(int(got)), errnoName(int(w)))
		}
	}
	for _, line := range []string{"shell-ok", "Seccomp:\t2", "ls-ok"} {
		if !strings.Contains(out, line) {
			t.Errorf("exec'd shell output %q lacks %q", out, line)
		}
	}
}

func TestPodmanDefaultProfile(t *testing.T) {
	testutil.RequireRoot(t)
	checkProfile(t, loadContainersProfile(t), uintptr(unix.SYS_KEXEC_LOAD), unix.EPERM)
}

func TestPodmanLikeProfile(t *testing.T) {
	testutil.RequireRoot(t)
	checkProfile(t, podmanLikePolicy(), 184 /* tuxcall */, unix.EPERM)
}

// TestProfileWithSysinfoNotify: merging the sysinfo rule into podman's
// profile keeps it compiling, gives a listener, and traps sysinfo.
func TestProfileWithSysinfoNotify(t *testing.T) {
	testutil.RequireRoot(t)
	merged, added, err := AddSysinfoNotify(podmanLikePolicy(), "/run/x.sock")
	if err != nil || !added {
		t.Fatalf("AddSysinfoNotify: added %v, %v", added, err)
	}
	res, _ := runInChild(t, childRequest{Policy: merged, Calls: []call{{Nr: uintptr(unix.SYS_GETPID)}}, AnswerSysinfo: true})
	if res.InstallErr != "" || res.ListenerOK != "ok" {
		t.Fatalf("install: %q, listener %q", res.InstallErr, res.ListenerOK)
	}
	if res.Sysinfo != "ok" {
		t.Errorf("sysinfo through the listener: %s", res.Sysinfo)
	}
}

// TestFarJumps: a rule block and a dispatch tree longer than a conditional
// jump can span (255 instructions) still decide correctly in the kernel.
func TestFarJumps(t *testing.T) {
	testutil.RequireRoot(t)
	policy := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for v := uint64(0); v < 150; v++ {
		policy.Syscalls = append(policy.Syscalls, specs.LinuxSyscall{
			Names: []string{"tuxcall"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(200 + v)),
			Args: []specs.LinuxSeccompArg{{Index: 1, Value: v<<32 | v, Op: specs.OpEqualTo}},
		})
	}
	prog, err := Compile(policy)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.Filter) < 600 {
		t.Fatalf("filter has %d instructions; the test wants far jumps", len(prog.Filter))
	}
	var calls []call
	for _, v := range []uint64{0, 1, 77, 148, 149, 150} {
		calls = append(calls, call{Nr: 184, Args: [6]uint64{0, v<<32 | v}})
	}
	res, _ := runInChild(t, childRequest{Policy: policy, Calls: calls})
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	for i, v := range []uint64{0, 1, 77, 148, 149, 150} {
		want := 200 + int(v)
		if v == 150 {
			want = int(unix.ENOSYS)
		}
		if got := res.Errnos[i][0]; got != want {
			t.Errorf("value %d: errno %d, want %d", v, got, want)
		}
	}
}
