package seccomp

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultProfileJSON is corral's default seccomp profile: Docker's default
// profile (moby's profiles/seccomp, the syscall lists as of Docker 27/28,
// written out here in Docker's JSON format by hand): an allow list with
// EPERM for everything else, personality(2) limited to its harmless
// values, and rules that open a syscall only with the capability that
// makes it meaningful (mount, unshare, setns, bpf... with CAP_SYS_ADMIN;
// ptrace's extra relatives with CAP_SYS_PTRACE; ...). Without
// CAP_SYS_ADMIN clone(2) may not create namespaces and clone3(2) gets
// ENOSYS (its flags are behind a pointer a filter cannot read; libc then
// falls back to clone). keyctl, add_key, request_key, io_uring_* and
// userfaultfd are on no list, so they get EPERM.
//
// It is embedded so the binary never depends on a host file.
//
//go:embed default.json
var defaultProfileJSON []byte

// Profile is a seccomp profile in Docker's format (also podman's
// seccomp.json and what `corral run --security-opt seccomp=FILE` reads):
// an OCI policy whose rules may apply only with some capabilities, on some
// architectures or from some kernel version on. A plain OCI
// linux.seccomp object is a Profile without conditions.
type Profile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []ArchMap                `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []ProfileSyscall         `json:"syscalls"`
}

// ArchMap is Docker's architecture list: the native one and the
// sub-architectures whose programs it also runs.
type ArchMap struct {
	Arch specs.Arch   `json:"architecture"`
	Sub  []specs.Arch `json:"subArchitectures"`
}

// ProfileSyscall is one rule; Name is the old single-name form.
type ProfileSyscall struct {
	specs.LinuxSyscall
	Name     string  `json:"name,omitempty"`
	Comment  string  `json:"comment,omitempty"`
	Includes *Filter `json:"includes,omitempty"`
	Excludes *Filter `json:"excludes,omitempty"`
}

// Filter is a rule's condition. Includes: every listed capability present,
// the architecture listed, the kernel at least MinKernel. Excludes: none
// of the capabilities, not the architecture, a kernel older than MinKernel.
type Filter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// ParseProfile reads a profile (Docker's format or a plain OCI seccomp
// object) and checks what can be checked before resolving it.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a seccomp profile (Docker or OCI JSON): %w", err)
	}
	if p.DefaultAction == "" {
		return nil, errors.New("no defaultAction: not a seccomp profile")
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return nil, errors.New("both architectures and archMap are set: use one")
	}
	for i, sc := range p.Syscalls {
		if sc.Name != "" && len(sc.Names) > 0 {
			return nil, fmt.Errorf("syscalls[%d]: both name and names are set: use one", i)
		}
		if sc.Name == "" && len(sc.Names) == 0 {
			return nil, fmt.Errorf("syscalls[%d]: no syscall names", i)
		}
		for _, f := range []*Filter{sc.Includes, sc.Excludes} {
			if f != nil && f.MinKernel != "" {
				if _, err := parseKernel(f.MinKernel); err != nil {
					return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
				}
			}
		}
	}
	return &p, nil
}

// LoadProfile reads a profile file; errors name the file.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

var (
	defaultOnce sync.Once
	defaultProf *Profile
)

// DefaultProfile is the embedded default profile (shared: do not modify).
func DefaultProfile() *Profile {
	defaultOnce.Do(func() {
		p, err := ParseProfile(defaultProfileJSON)
		if err != nil {
			panic("seccomp: the embedded default profile does not parse: " + err.Error())
		}
		defaultProf = p
	})
	return defaultProf
}

// DefaultPolicy is the default profile resolved for a process whose
// bounding capability set is caps, on this machine. Unlike Resolve it does
// not compile the result to check it: the embedded profile compiles for
// every capability set (TestDefaultPolicyCompiles), and the runtime
// compiles a container's policy anyway (compiling it twice was 6% of a
// `corral run`'s CPU time, perf).
func DefaultPolicy(caps []string) *specs.LinuxSeccomp {
	kernel, err := kernelVersion()
	if err == nil {
		var out *specs.LinuxSeccomp
		if out, err = DefaultProfile().resolve(caps, goArchName(), kernel); err == nil {
			return out
		}
	}
	panic("seccomp: the embedded default profile does not resolve: " + err.Error())
}

// Resolve turns the profile into the OCI policy for a process with the
// bounding capability set caps on this architecture and kernel, as Docker
// does when it writes config.json (the capabilities are those the process
// can ever have, so a rule meant for CAP_SYS_ADMIN never opens for a
// container that cannot get it). The result is compiled once to catch a
// bad action, operator or flag here rather than at container start.
func (p *Profile) Resolve(caps []string) (*specs.LinuxSeccomp, error) {
	kernel, err := kernelVersion()
	if err != nil {
		return nil, err
	}
	out, err := p.resolve(caps, goArchName(), kernel)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *Profile) resolve(caps []string, arch string, kernel [2]int) (*specs.LinuxSeccomp, error) {
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		Architectures:    slices.Clone(p.Architectures),
		Flags:            slices.Clone(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	native := specArch(arch)
	for _, a := range p.ArchMap {
		if a.Arch == native {
			out.Architectures = append([]specs.Arch{a.Arch}, a.Sub...)
		}
	}
	for _, sc := range p.Syscalls {
		if !sc.Includes.matches(caps, arch, kernel, true) || !sc.Excludes.matches(caps, arch, kernel, false) {
			continue
		}
		s := sc.LinuxSyscall
		if sc.Name != "" {
			s.Names = []string{sc.Name}
		}
		s.Names = slices.Clone(s.Names)
		s.Args = slices.Clone(s.Args)
		out.Syscalls = append(out.Syscalls, s)
	}
	return out, nil
}

// matches reports whether the rule applies: for includes, every condition
// holds; for excludes, none does. A nil filter always matches.
func (f *Filter) matches(caps []string, arch string, kernel [2]int, include bool) bool {
	if f == nil {
		return true
	}
	if include {
		if len(f.Arches) > 0 && !slices.Contains(f.Arches, arch) {
			return false
		}
		for _, c := range f.Caps {
			if !slices.Contains(caps, c) {
				return false
			}
		}
		if f.MinKernel != "" {
			min, _ := parseKernel(f.MinKernel) // checked by ParseProfile
			return !kernelLess(kernel, min)
		}
		return true
	}
	if slices.Contains(f.Arches, arch) {
		return false
	}
	for _, c := range f.Caps {
		if slices.Contains(caps, c) {
			return false
		}
	}
	if f.MinKernel != "" {
		min, _ := parseKernel(f.MinKernel)
		return kernelLess(kernel, min)
	}
	return true
}

// goArchName is the architecture name profiles use (Go's, as in Docker).
func goArchName() string { return goruntime.GOARCH }

// specArch maps a Go architecture name to the profile's native arch.
func specArch(goarch string) specs.Arch {
	switch goarch {
	case "amd64":
		return specs.ArchX86_64
	case "386":
		return specs.ArchX86
	case "arm64":
		return specs.ArchAARCH64
	case "arm":
		return specs.ArchARM
	case "s390x":
		return specs.ArchS390X
	case "riscv64":
		return specs.ArchRISCV64
	case "loong64":
		return specs.ArchLOONGARCH64
	}
	return specs.Arch("SCMP_ARCH_" + strings.ToUpper(goarch))
}

// parseKernel reads "MAJOR.MINOR" (more parts are ignored).
func parseKernel(s string) ([2]int, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, fmt.Errorf("minKernel %q: want MAJOR.MINOR", s)
	}
	var v [2]int
	for i := 0; i < 2; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return [2]int{}, fmt.Errorf("minKernel %q: want MAJOR.MINOR", s)
		}
		v[i] = n
	}
	return v, nil
}

func kernelLess(a, b [2]int) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// kernelVersion is this kernel's MAJOR.MINOR from uname(2).
func kernelVersion() ([2]int, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}, fmt.Errorf("uname: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	// "6.1.0-28-amd64": cut the minor at its first non-digit.
	major, rest, _ := strings.Cut(rel, ".")
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	v, err := parseKernel(major + "." + minor)
	if err != nil {
		return [2]int{}, fmt.Errorf("kernel release %q: %w", rel, err)
	}
	return v, nil
}
