package seccomp

import (
	"slices"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dockerDefaultCaps mirrors runtime.DockerDefaultCaps (this package cannot
// import runtime).
var dockerDefaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// rulesFor lists the resolved rules naming a syscall.
func rulesFor(p *specs.LinuxSeccomp, name string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, r := range p.Syscalls {
		if slices.Contains(r.Names, name) {
			out = append(out, r)
		}
	}
	return out
}

// TestResolveConditions: capability, architecture and kernel conditions
// pick the rules Docker would.
func TestResolveConditions(t *testing.T) {
	p := DefaultProfile()
	plain, err := p.resolve(dockerDefaultCaps, "amd64", [2]int{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plain.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", plain.Architectures)
	}
	for _, n := range []string{"mount", "unshare", "setns", "bpf", "keyctl", "add_key", "request_key", "io_uring_setup", "kexec_load", "reboot", "userfaultfd"} {
		if r := rulesFor(plain, n); len(r) != 0 {
			t.Errorf("default caps: %s has rules %+v, want none (default EPERM)", n, r)
		}
	}
	if r := rulesFor(plain, "clone"); len(r) != 1 || len(r[0].Args) != 1 || r[0].Args[0].Op != specs.OpMaskedEqual {
		t.Errorf("default caps: clone rules %+v, want the namespace-free mask", r)
	}
	if r := rulesFor(plain, "clone3"); len(r) != 1 || r[0].Action != specs.ActErrno || *r[0].ErrnoRet != uint(unix.ENOSYS) {
		t.Errorf("default caps: clone3 rules %+v, want ENOSYS", r)
	}
	if r := rulesFor(plain, "ptrace"); len(r) != 1 {
		t.Errorf("kernel 6.1: ptrace rules %+v, want the 4.8+ allow", r)
	}
	if r := rulesFor(plain, "s390_runtime_instr"); len(r) != 0 {
		t.Errorf("amd64 got an s390 rule")
	}
	old, _ := p.resolve(dockerDefaultCaps, "amd64", [2]int{4, 4})
	if r := rulesFor(old, "ptrace"); len(r) != 0 {
		t.Errorf("kernel 4.4: ptrace allowed without CAP_SYS_PTRACE")
	}
	admin, _ := p.resolve(append(slices.Clone(dockerDefaultCaps), "CAP_SYS_ADMIN"), "amd64", [2]int{6, 1})
	if r := rulesFor(admin, "unshare"); len(r) != 1 || r[0].Action != specs.ActAllow {
		t.Errorf("CAP_SYS_ADMIN: unshare rules %+v", r)
	}
	if r := rulesFor(admin, "clone3"); len(r) != 1 || r[0].Action != specs.ActAllow {
		t.Errorf("CAP_SYS_ADMIN: clone3 rules %+v, want only the allow", r)
	}
	s390, _ := p.resolve(nil, "s390x", [2]int{6, 1})
	if r := rulesFor(s390, "clone"); len(r) != 1 || r[0].Args[0].Index != 1 {
		t.Errorf("s390x: clone rules %+v, want the flags in argument 1", r)
	}
}

func TestParseProfileErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{`, "not a seccomp profile"},
		{`{"syscalls":[]}`, "no defaultAction"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`, "both architectures and archMap"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}`, "both name and names"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`, "no syscall names"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"six"}}]}`, "minKernel"},
	} {
		if _, err := ParseProfile([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.json, err, c.want)
		}
	}
	p, err := ParseProfile([]byte(`{"defaultAction":"SCMP_ACT_WHAT"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(nil); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("unknown action: %v", err)
	}
}

// TestDefaultProfileInKernel: the default profile, with the sysinfo rule
// merged as corral run does, loads into the kernel and answers as Docker's
// does; a shell still runs under it.
func TestDefaultProfileInKernel(t *testing.T) {
	testutil.RequireRoot(t)
	policy, added, err := AddSysinfoNotify(DefaultPolicy(dockerDefaultCaps), "/run/x.sock")
	if err != nil || !added {
		t.Fatalf("AddSysinfoNotify: added %v, %v", added, err)
	}
	busybox := testutil.RequireCommand(t, "busybox")
	res, out := runInChild(t, childRequest{
		Policy: policy, NNP: true, AnswerSysinfo: true,
		Calls: []call{
			{Nr: uintptr(unix.SYS_GETPID)},
			{Nr: uintptr(unix.SYS_UNSHARE), Args: [6]uint64{unix.CLONE_NEWUSER}},
			{Nr: uintptr(unix.SYS_CLONE3)},
			{Nr: uintptr(unix.SYS_KEYCTL), Args: [6]uint64{unix.KEYCTL_GET_KEYRING_ID, ^uint64(0) - 2 /* KEY_SPEC_SESSION_KEYRING, -3 */}},
			{Nr: uintptr(unix.SYS_IO_URING_SETUP)},
			{Nr: uintptr(unix.SYS_MOUNT)},
			{Nr: uintptr(unix.SYS_PERSONALITY), Args: [6]uint64{0xffffffff}},
			{Nr: uintptr(unix.SYS_PERSONALITY), Args: [6]uint64{0x0040000}},
			{Nr: 1000}, // newer than anything the profile names
		},
		Exec: []string{busybox, "sh", "-c", "echo shell-ok"},
	})
	if res.InstallErr != "" {
		t.Fatalf("install: %s", res.InstallErr)
	}
	want := []unix.Errno{0, unix.EPERM, unix.ENOSYS, unix.EPERM, unix.EPERM, unix.EPERM, 0, unix.EPERM, unix.ENOSYS}
	for i, w := range want {
		if got := unix.Errno(res.Errnos[i][0]); got != w {
			t.Errorf("call %d: errno %s, want %s", i, errnoName(int(got)), errnoName(int(w)))
		}
	}
	if res.Sysinfo != "ok" {
		t.Errorf("sysinfo through the listener: %s", res.Sysinfo)
	}
	if !strings.Contains(out, "shell-ok") {
		t.Errorf("a shell under the default profile: %q", out)
	}
}

// TestDefaultPolicyCompiles: DefaultPolicy skips Resolve's compile, so the
// embedded profile must compile for every capability set that changes
// its rules (none, Docker's default, each capability the profile names,
// all of them) and for old and new kernels.
func TestDefaultPolicyCompiles(t *testing.T) {
	p := DefaultProfile()
	var all []string
	for _, s := range p.Syscalls {
		for _, f := range []*Filter{s.Includes, s.Excludes} {
			if f != nil {
				all = append(all, f.Caps...)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("the default profile names no capability: the test would check nothing")
	}
	sets := [][]string{nil, dockerDefaultCaps, all}
	for _, c := range all {
		sets = append(sets, []string{c})
	}
	for _, caps := range sets {
		for _, kernel := range [][2]int{{4, 4}, {6, 1}} {
			out, err := p.resolve(caps, goArchName(), kernel)
			if err != nil {
				t.Fatalf("caps %v, kernel %v: %v", caps, kernel, err)
			}
			if _, err := Compile(out); err != nil {
				t.Errorf("caps %v, kernel %v: %v", caps, kernel, err)
			}
		}
	}
	if _, err := Compile(DefaultPolicy(dockerDefaultCaps)); err != nil {
		t.Error(err)
	}
}
