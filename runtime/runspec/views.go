package runspec

import (
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/seccomp"
	"github.com/corral-dev/corral/runtime/views"
)

// addViews binds the corralfs views into the spec. mode is --views: ""
// or "auto" (the corralfs at facts.DefaultDir when one is live), "none",
// or a directory holding the views (a corralfs or LXCFS mount).
func addViews(res *Result, id, mode string, host Host) error {
	s := res.Spec
	dir := mode
	switch mode {
	case "none":
		return nil
	case "", "auto":
		dir = facts.DefaultDir
		live, err := host.ProbeViews(dir)
		if !live {
			res.Warnings = append(res.Warnings, fmt.Sprintf("no corralfs mounted at %s: running without views (free, top and the JVM will see the host's memory and CPUs); start corralfs or pass --views none to silence this", dir))
			return nil
		}
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("the corralfs at %s does not answer (%v): running without views", dir, err))
			return nil
		}
	}
	// The container's own view files (bound views, decision 49), named
	// by the cgroup it will get; the shared ones when it has no key.
	key := ""
	named := id != "" || (s.Linux != nil && s.Linux.CgroupsPath != "")
	if cg, err := runtime.CgroupPathFor(id, s); err == nil && named {
		key, _ = facts.BoundKeyOfCgroup(cg)
	}
	ms, err := views.MountsFor(dir, host.PSI, key)
	if err != nil {
		return fmt.Errorf("--views: %w", err)
	}
	// Where the container cannot have pressure of its own (cgroup v1 and
	// hybrid), no pressure view is bound and the kernel's, the host's,
	// is masked: the container sees what a kernel without PSI shows.
	if host.PSI.Mask(views.PresentWith(dir, host.PSI)) && s.Linux != nil && !slices.Contains(s.Linux.MaskedPaths, views.PressureDir) {
		s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, views.PressureDir)
	}
	// A view bound twice (a bundle that already binds it) would only
	// stack mounts: skip destinations the spec already has.
	for _, m := range ms {
		if !slices.ContainsFunc(s.Mounts, func(x specs.Mount) bool { return x.Destination == m.Destination }) {
			s.Mounts = append(s.Mounts, m)
		}
	}
	return nil
}

// addSysinfo wires sysinfo(2) to corralfs's agent (issue 4): a seccomp
// user-notification rule for sysinfo and the agent's socket as the
// listener. mode is --sysinfo: "auto" (the default socket, when it
// exists), "off", or the absolute path of an agent's socket (a corralfs
// started with --seccomp-socket PATH, e.g. a second daemon or a test's).
// A spec with its own seccomp policy keeps it, with the rule merged in
// (seccomp.AddSysinfoNotify never widens a policy that denies sysinfo).
func addSysinfo(s *specs.Spec, mode string, host Host) error {
	switch {
	case mode == "off":
		return nil
	case mode == "", mode == "auto":
	case filepath.IsAbs(mode):
		// The socket of a corralfs started with --seccomp-socket elsewhere
		// (a second daemon, a test's private one): the caller probed it.
		// A socket the user named is wanted: falling back to the host's
		// sysinfo(2), as auto does, would silently show the host's memory.
		if host.SysinfoSocket != mode {
			return fmt.Errorf("--sysinfo %s: not a socket (is corralfs running with --seccomp-socket %s?)", mode, mode)
		}
		if !host.Seccomp {
			return fmt.Errorf("--sysinfo %s: this runtime cannot install seccomp filters", mode)
		}
	default:
		return fmt.Errorf("--sysinfo %q: want auto, off or the absolute path of corralfs's seccomp socket", mode)
	}
	// A runtime without seccomp support would refuse the whole container;
	// auto means "when it can work", so leave sysinfo(2) alone then.
	if host.SysinfoSocket == "" || !host.Seccomp {
		return nil
	}
	out, _, err := seccomp.AddSysinfoNotify(s.Linux.Seccomp, host.SysinfoSocket)
	if err != nil {
		return fmt.Errorf("--sysinfo: %w", err)
	}
	s.Linux.Seccomp = out
	return nil
}
