package runspec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
)

// Options are the `corral run` flags that change a spec. The zero value
// changes nothing, so a --bundle's config.json stays as written except for
// what the command line names.
type Options struct {
	Args       []string // command and arguments; nil keeps the spec's
	Hostname   string
	Env        []string // KEY=VALUE, or KEY to pass the caller's value
	Workdir    string
	User       string   // UID[:GID] or NAME[:GROUP], names from the rootfs's /etc
	Volumes    []string // SRC:DST[:ro|rw]
	ReadOnly   bool     // make the root read-only
	Net        string   // "", "none" (own namespace, lo only) or "host"
	Terminal   bool
	Memory     string // -m/--memory size ("" unset)
	MemorySwap string // --memory-swap: memory+swap size, or "-1" for unlimited swap
	CPUs       string // --cpus: fraction of CPUs ("0.5")
	CpusetCPUs string
	PidsLimit  int64 // >0 limit; 0 keeps the spec's; -1 unlimited
}

// Apply changes s as the options say. rootfs is the absolute path of the
// root (for user and group names); host gives the environment for `-e KEY`,
// swap accounting and the online CPUs.
func Apply(s *specs.Spec, o Options, rootfs string, host Host) error {
	if s.Process == nil {
		s.Process = &specs.Process{Cwd: "/"}
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	p := s.Process
	if len(o.Args) > 0 {
		p.Args = append([]string(nil), o.Args...)
	}
	if len(p.Args) == 0 {
		return errors.New("no command given: corral run [flags] [--] COMMAND [ARG...]")
	}
	if o.Terminal {
		p.Terminal = true
	}
	if o.Hostname != "" {
		if err := validHostname(o.Hostname); err != nil {
			return err
		}
		s.Hostname = o.Hostname
	}
	if o.Workdir != "" {
		if !filepath.IsAbs(o.Workdir) {
			return fmt.Errorf("--workdir %q: must be an absolute path", o.Workdir)
		}
		p.Cwd = filepath.Clean(o.Workdir)
	}
	if err := applyEnv(p, o.Env, host.LookupEnv); err != nil {
		return err
	}
	if o.User != "" {
		if err := applyUser(p, o.User, rootfs); err != nil {
			return err
		}
	}
	if o.ReadOnly {
		if s.Root == nil {
			s.Root = &specs.Root{}
		}
		s.Root.Readonly = true
	}
	if err := applyVolumes(s, o.Volumes); err != nil {
		return err
	}
	if err := applyNet(s, o.Net); err != nil {
		return err
	}
	if err := applyResources(s, o, host); err != nil {
		return err
	}
	finishEnv(s, rootfs)
	return nil
}

// validHostname accepts what sethostname(2) and RFC 1123 accept.
func validHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("--hostname %q: longer than 64 characters", h)
	}
	for _, c := range h {
		if !(c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("--hostname %q: only letters, digits, '-' and '.' are allowed", h)
		}
	}
	return nil
}

// applyEnv sets or adds each KEY=VALUE; a bare KEY takes the caller's value
// and is dropped when the caller has none (Docker's -e KEY).
func applyEnv(p *specs.Process, env []string, lookupEnv func(string) (string, bool)) error {
	for _, e := range env {
		key, val, hasVal := strings.Cut(e, "=")
		if key == "" || strings.ContainsAny(key, " \t\n") {
			return fmt.Errorf("--env %q: want KEY=VALUE or KEY", e)
		}
		if !hasVal {
			v, ok := lookupEnv(key)
			if !ok {
				continue
			}
			val = v
		}
		setEnv(p, key, val)
	}
	return nil
}

// setEnv replaces KEY in p.Env or appends it.
func setEnv(p *specs.Process, key, val string) {
	kv := key + "=" + val
	for i, e := range p.Env {
		if strings.HasPrefix(e, key+"=") {
			p.Env[i] = kv
			return
		}
	}
	p.Env = append(p.Env, kv)
}

// hasEnv reports whether KEY is set in p.Env.
func hasEnv(p *specs.Process, key string) bool {
	return slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
}

// finishEnv adds what a shell expects and nobody set: PATH, HOME (from the
// user's passwd entry), HOSTNAME and, with a terminal, TERM.
func finishEnv(s *specs.Spec, rootfs string) {
	p := s.Process
	if !hasEnv(p, "PATH") {
		p.Env = append([]string{DefaultPath}, p.Env...)
	}
	if !hasEnv(p, "HOME") {
		home := "/"
		if u, ok := lookupPasswdUID(rootfs, p.User.UID); ok && u.home != "" {
			home = u.home
		} else if p.User.UID == 0 {
			home = "/root"
		}
		setEnv(p, "HOME", home)
	}
	if !hasEnv(p, "HOSTNAME") && s.Hostname != "" {
		setEnv(p, "HOSTNAME", s.Hostname)
	}
	if p.Terminal && !hasEnv(p, "TERM") {
		setEnv(p, "TERM", "xterm")
	}
}

// applyVolumes adds a bind mount per SRC:DST[:ro|rw]. The source must exist:
// a typo would otherwise give a container an empty directory silently.
func applyVolumes(s *specs.Spec, vols []string) error {
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return fmt.Errorf("--volume %q: want SRC:DST[:ro|rw]", v)
		}
		src, dst := parts[0], parts[1]
		opts := []string{"rbind", "rprivate"}
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				opts = append(opts, "ro")
			case "rw":
			default:
				return fmt.Errorf("--volume %q: unknown mode %q (want ro or rw)", v, parts[2])
			}
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return fmt.Errorf("--volume %q: %w", v, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--volume %q: source %s does not exist or cannot be reached: %w", v, abs, err)
		}
		if !filepath.IsAbs(dst) || filepath.Clean(dst) == "/" {
			return fmt.Errorf("--volume %q: destination %q must be an absolute path other than /", v, dst)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: filepath.Clean(dst), Type: "bind", Source: abs, Options: opts})
	}
	return nil
}

// applyNet: "none" gives the container its own network namespace (the
// runtime brings its lo up); "host" shares the host's.
func applyNet(s *specs.Spec, net string) error {
	has := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	switch net {
	case "":
	case "none":
		if has < 0 {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
		} else {
			s.Linux.Namespaces[has].Path = ""
		}
	case "host":
		if has >= 0 {
			s.Linux.Namespaces = slices.Delete(s.Linux.Namespaces, has, has+1)
		}
	default:
		return fmt.Errorf("--net %q: want none or host", net)
	}
	return nil
}

// applyResources sets memory, swap, CPU quota, cpuset and pids limits.
func applyResources(s *specs.Spec, o Options, host Host) error {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	r := s.Linux.Resources
	if err := applyMemory(r, o.Memory, o.MemorySwap, host.SwapAccounting); err != nil {
		return err
	}
	if o.CPUs != "" {
		cpus, err := strconv.ParseFloat(o.CPUs, 64)
		online := host.OnlineCPUs
		if err != nil || cpus < 0.01 || math.IsNaN(cpus) || math.IsInf(cpus, 0) {
			return fmt.Errorf("--cpus %q: want a number of CPUs such as 0.5 or 2", o.CPUs)
		}
		if len(online) > 0 && cpus > float64(len(online)) {
			return fmt.Errorf("--cpus %s: this host has only %d CPUs", o.CPUs, len(online))
		}
		const period = 100000 // µs, the kernel's default CFS period
		quota := int64(math.Round(cpus * period))
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		per := uint64(period)
		r.CPU.Period, r.CPU.Quota = &per, &quota
	}
	if o.CpusetCPUs != "" {
		cpus, err := facts.ParseCPUList([]byte(o.CpusetCPUs))
		if err == nil && len(cpus) == 0 {
			err = fmt.Errorf("invalid CPU list %q: empty", o.CpusetCPUs)
		}
		if err != nil {
			return fmt.Errorf("--cpuset-cpus: %w", err)
		}
		if online := host.OnlineCPUs; online != nil {
			for _, c := range cpus {
				if !slices.Contains(online, c) {
					return fmt.Errorf("--cpuset-cpus %s: CPU %d is not online (online: %v)", o.CpusetCPUs, c, online)
				}
			}
		}
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Cpus = o.CpusetCPUs
	}
	switch {
	case o.PidsLimit > 0 || o.PidsLimit == -1:
		l := o.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &l}
	case o.PidsLimit < -1:
		return fmt.Errorf("--pids-limit %d: want a positive number, or -1 for no limit", o.PidsLimit)
	}
	return nil
}

// applyMemory implements Docker's --memory / --memory-swap semantics. In the
// OCI spec (as in Docker's API) swap is the memory+swap total:
//   - --memory M alone: M of memory and as much swap again (2M total),
//     when the kernel accounts swap;
//   - --memory-swap equal to --memory: no swap at all;
//   - --memory-swap -1: unlimited swap;
//   - --memory-swap S > M: S-M of swap.
func applyMemory(r *specs.LinuxResources, memory, memorySwap string, swapAcct bool) error {
	if memory == "" && memorySwap == "" {
		return nil
	}
	if memory == "" {
		return errors.New("--memory-swap needs --memory: the swap limit counts memory plus swap")
	}
	m, err := facts.ParseSize(memory)
	if err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	// The kernel needs some room for the process itself; Docker's minimum.
	if m < 6<<20 {
		return fmt.Errorf("--memory %s: the minimum is 6m", memory)
	}
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	r.Memory.Limit = &m
	var swap int64
	switch memorySwap {
	case "":
		if !swapAcct {
			return nil
		}
		swap = 2 * m
	case "-1":
		swap = -1
	default:
		swap, err = facts.ParseSize(memorySwap)
		if err != nil {
			return fmt.Errorf("--memory-swap: %w", err)
		}
		if swap < m {
			return fmt.Errorf("--memory-swap %s is below --memory %s: it is the total of memory and swap", memorySwap, memory)
		}
	}
	if !swapAcct && swap != m {
		return errors.New("--memory-swap: this kernel does not account swap in cgroups (boot with swapaccount=1), so swap cannot be limited")
	}
	if !swapAcct {
		return nil // equal: no swap wanted, and none can be limited: nothing to set
	}
	r.Memory.Swap = &swap
	return nil
}
