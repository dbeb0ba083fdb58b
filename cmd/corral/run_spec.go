package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/defaultroot"
	"github.com/corral-dev/corral/runtime/runspec"
	"github.com/corral-dev/corral/runtime/seccomp"
	"github.com/corral-dev/corral/runtime/views"
)

// sysinfoSocket is where corralfs's sysinfo(2) agent listens (issue 4).
const sysinfoSocket = "/run/corralfs/seccomp.sock"

// runSpec is the spec `corral run` hands to Create and where it came from.
type runSpec struct {
	spec   *specs.Spec
	bundle string // bundle dir for Create: --bundle, else the root's parent
	rootfs string // absolute
}

// buildRunSpec assembles the container's spec from the flags: the base
// (a --bundle's config.json, or the defaults on --rootfs or the default
// root), then the command-line overrides, then the views and the sysinfo
// rule. warn prints a one-line notice on stderr.
func buildRunSpec(rt *runtime.Runtime, f *runFlags, id string, warn io.Writer) (*runSpec, error) {
	rs := &runSpec{}
	switch {
	case f.bundle != "":
		dir, err := filepath.Abs(f.bundle)
		if err != nil {
			return nil, err
		}
		spec, err := loadBundleSpec(dir)
		if err != nil {
			return nil, err
		}
		rs.spec, rs.bundle = spec, dir
		rs.rootfs = spec.Root.Path
		if !filepath.IsAbs(rs.rootfs) {
			rs.rootfs = filepath.Join(dir, rs.rootfs)
		}
	case f.rootfs != "":
		dir, err := filepath.Abs(f.rootfs)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--rootfs %s: not a directory", f.rootfs)
		}
		rs.spec, rs.rootfs, rs.bundle = runspec.Default(dir, f.opts.Args), dir, filepath.Dir(dir)
	default:
		root, err := defaultroot.Ensure(defaultroot.Config{InUse: rootInUse(rt)})
		if err != nil {
			return nil, err
		}
		rs.spec, rs.rootfs, rs.bundle = runspec.Default(root.Path, f.opts.Args), root.Path, filepath.Dir(root.Path)
		// The default root is shared by every such container: read only,
		// with the host's program directories bound in and a private /tmp.
		rs.spec.Root.Readonly = true
		rs.spec.Mounts = append(rs.spec.Mounts, root.Mounts...)
	}
	if fi, err := os.Stat(rs.rootfs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root filesystem %s: not a directory", rs.rootfs)
	}
	// A bundle keeps its own hostname unless -h says otherwise (it may
	// not even have a UTS namespace); otherwise --name, else the short id.
	if f.bundle == "" {
		rs.spec.Hostname = defaultHostname(f, id)
	}
	if err := runspec.Apply(rs.spec, f.opts, rs.rootfs, os.LookupEnv); err != nil {
		return nil, err
	}
	if err := applySecurityOpts(rs.spec, f.securityOpt); err != nil {
		return nil, err
	}
	if err := addViews(rs.spec, f.views, warn); err != nil {
		return nil, err
	}
	if err := addSysinfo(rs.spec, f.sysinfo); err != nil {
		return nil, err
	}
	return rs, nil
}

// defaultHostname is the --name, else the short id (-h overrides both in
// runspec.Apply). A name longer than the kernel's 64-byte hostname is cut
// there (and of a trailing '-' or '.'), as the kubelet does with long pod
// names: the user asked for a container name, not a hostname, so a long
// one must not fail the run with "sethostname: invalid argument"; an
// explicit --hostname over 64 characters is still refused.
func defaultHostname(f *runFlags, id string) string {
	if f.name == "" {
		return shortID(id)
	}
	h := f.name
	if len(h) > maxHostname {
		h = strings.TrimRight(h[:maxHostname], "-.")
	}
	return h
}

// maxHostname is the kernel's limit (__NEW_UTS_LEN).
const maxHostname = 64

// loadBundleSpec reads DIR/config.json.
func loadBundleSpec(dir string) (*specs.Spec, error) {
	s, err := runtime.LoadSpec(dir) // size-checked, errors with line numbers
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("--bundle %s: config.json has no root.path", dir)
	}
	return s, nil
}

// rootInUse tells the default-root builder whether a container of this
// runtime still uses an old generation, so it is not removed from under it.
func rootInUse(rt *runtime.Runtime) func(string) bool {
	return func(path string) bool {
		cs, err := rt.List()
		if err != nil {
			return true // unsure: keep it
		}
		for _, c := range cs {
			if c.Rootfs() == path {
				return true
			}
		}
		return false
	}
}

// addViews binds the corralfs views into the spec. mode is --views: ""
// (auto: the corralfs at /var/lib/corralfs when one is live), "none", or a
// directory holding the views (a corralfs or LXCFS mount).
func addViews(s *specs.Spec, mode string, warn io.Writer) error {
	dir := mode
	switch mode {
	case "none":
		return nil
	case "", "auto":
		dir = views.DefaultDir
		live, err := views.Live(dir)
		if err != nil || !live {
			fmt.Fprintf(warn, "corral: no corralfs mounted at %s: running without views (free, top and the JVM will see the host's memory and CPUs); start corralfs or pass --views none to silence this\n", dir)
			return nil
		}
		if err := views.Answers(dir, 2*time.Second); err != nil {
			fmt.Fprintf(warn, "corral: the corralfs at %s does not answer (%v): running without views\n", dir, err)
			return nil
		}
	}
	ms, err := views.Mounts(dir)
	if err != nil {
		return fmt.Errorf("--views: %w", err)
	}
	// Where the container cannot have pressure of its own (cgroup v1 and
	// hybrid), no pressure view is bound and the kernel's, the host's,
	// is masked: the container sees what a kernel without PSI shows.
	if views.PressureMask(views.Present(dir)) && s.Linux != nil && !slices.Contains(s.Linux.MaskedPaths, views.PressureDir) {
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
// listener. mode is --sysinfo: "auto" (when the socket exists) or "off".
// A spec with its own seccomp policy keeps it, with the rule merged in
// (seccomp.AddSysinfoNotify never widens a policy that denies sysinfo).
func addSysinfo(s *specs.Spec, mode string) error {
	return addSysinfoAt(s, mode, sysinfoSocket)
}

// addSysinfoAt is addSysinfo with the agent's socket at socket.
func addSysinfoAt(s *specs.Spec, mode, socket string) error {
	switch mode {
	case "off":
		return nil
	case "", "auto":
	default:
		return fmt.Errorf("--sysinfo %q: want auto or off", mode)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	// A runtime without seccomp support would refuse the whole container;
	// auto means "when it can work", so leave sysinfo(2) alone then.
	if sc := runtime.Features().Linux.Seccomp; sc == nil || sc.Enabled == nil || !*sc.Enabled {
		return nil
	}
	out, _, err := seccomp.AddSysinfoNotify(s.Linux.Seccomp, socket)
	if err != nil {
		return fmt.Errorf("--sysinfo: %w", err)
	}
	s.Linux.Seccomp = out
	return nil
}
