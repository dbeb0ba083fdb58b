package runspec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/defaultroot"
	"github.com/corral-dev/corral/runtime/views"
)

// Config is what `corral run` asks for: the flags that choose the base of
// the spec and change it.
type Config struct {
	// Bundle is --bundle (its config.json is the base), Rootfs is
	// --rootfs (the defaults on that root); neither: the default root.
	Bundle, Rootfs string
	// ID is the container's id; Name is --name. A bundle keeps its own
	// hostname; otherwise it is Name, else the short ID (-h wins).
	ID, Name string
	// Options are the flags that change the spec (Apply).
	Options Options
	// SecurityOpt is --security-opt (applySecurityOpts).
	SecurityOpt []string
	// Views is --views: "" or "auto", "none", or a directory of views.
	Views string
	// Sysinfo is --sysinfo: "" or "auto", or "off".
	Sysinfo string
	// Image, when set, is the base instead (`corral run IMAGE`): its
	// root and config; Options.Args then replace its Cmd.
	Image *Image
	// Entrypoint is --entrypoint when given ("" too): replaces the image's.
	Entrypoint *string
	// ReadOnlyGiven: --read-only was given, so Options.ReadOnly false
	// means writable rather than "as the base has it" (applyRootMode).
	ReadOnlyGiven bool
	// Init, when set, is the host path of the init `--init` binds and
	// runs in front of the command (addInit).
	Init string
}

// Host is what Build needs to know about the machine. ProbeHost fills it
// from the real one, once per `corral run`; tests give one of their own,
// so Build runs without root and without corralfs.
type Host struct {
	// DefaultRoot builds (or reuses) the shared default root.
	DefaultRoot func() (*defaultroot.Root, error)
	// SwapAccounting: the kernel limits swap per cgroup.
	SwapAccounting bool
	// OnlineCPUs are the host's online CPUs; nil: unknown, --cpus and
	// --cpuset-cpus are then not checked against them.
	OnlineCPUs []int
	// ProbeViews says whether a corralfs is mounted at dir and answers
	// (for --views auto): live false, or the error of a live mount that
	// does not answer.
	ProbeViews func(dir string) (live bool, err error)
	// PSI: whether the kernel has pressure stall information, and whether
	// a container can have its own (pure cgroup v2). Decides the pressure
	// views and the masking of the host's /proc/pressure.
	PSI views.PSI
	// SysinfoSocket is the path of corralfs's sysinfo(2) agent socket,
	// "" when no agent listens.
	SysinfoSocket string
	// Seccomp: the runtime can install seccomp filters.
	Seccomp bool
	// LookupEnv resolves `-e KEY` (os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// Result is the spec `corral run` hands to Create and where it came from.
type Result struct {
	Spec   *specs.Spec
	Bundle string // bundle dir for Create: --bundle, else the root's parent
	Rootfs string // absolute
	// Warnings are one-line notices for the user (e.g. running without
	// views); Build still succeeded.
	Warnings []string
}

// Build assembles the container's spec from the flags: the base (a
// --bundle's config.json, or the defaults on --rootfs or the default
// root), then the command-line overrides, the security options, the views
// and the sysinfo rule.
func Build(cfg Config, host Host) (*Result, error) {
	res, err := base(cfg, host)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(res.Rootfs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root filesystem %s: not a directory", res.Rootfs)
	}
	// A bundle keeps its own hostname unless -h says otherwise (it may
	// not even have a UTS namespace); otherwise --name, else the short id.
	if cfg.Bundle == "" {
		res.Spec.Hostname = DefaultHostname(cfg.Name, cfg.ID)
	}
	opts := cfg.Options
	if cfg.Image != nil {
		opts.Args = nil // imageBase made the command of them
		if opts.User == "" {
			opts.User = cfg.Image.User // names resolve in the image's /etc
		}
	}
	if err := Apply(res.Spec, opts, res.Rootfs, host); err != nil {
		return nil, err
	}
	if err := applyRootMode(res.Spec, cfg); err != nil {
		return nil, err
	}
	addInit(res.Spec, cfg.Init)
	if err := applySecurityOpts(res.Spec, cfg.SecurityOpt); err != nil {
		return nil, err
	}
	if err := addViews(res, cfg.ID, cfg.Views, host); err != nil {
		return nil, err
	}
	if err := addSysinfo(res.Spec, cfg.Sysinfo, host); err != nil {
		return nil, err
	}
	return res, nil
}

// base is the spec before the flags change it.
func base(cfg Config, host Host) (*Result, error) {
	switch {
	case cfg.Image != nil:
		return imageBase(cfg)
	case cfg.Bundle != "":
		dir, err := filepath.Abs(cfg.Bundle)
		if err != nil {
			return nil, err
		}
		spec, rootfs, err := runtime.LoadBundle(dir)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		return &Result{Spec: spec, Bundle: dir, Rootfs: rootfs}, nil
	case cfg.Rootfs != "":
		dir, err := filepath.Abs(cfg.Rootfs)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--rootfs %s: not a directory", cfg.Rootfs)
		}
		return &Result{Spec: Default(dir, cfg.Options.Args), Bundle: filepath.Dir(dir), Rootfs: dir}, nil
	default:
		root, err := host.DefaultRoot()
		if err != nil {
			return nil, err
		}
		res := &Result{Spec: Default(root.Path, cfg.Options.Args), Bundle: filepath.Dir(root.Path), Rootfs: root.Path}
		// The default root is shared by every such container: read only,
		// with the host's program directories bound in and a private /tmp.
		res.Spec.Root.Readonly = true
		res.Spec.Mounts = append(res.Spec.Mounts, root.Mounts...)
		return res, nil
	}
}

// DefaultHostname is name, else the short id (-h overrides both in
// Apply). A name longer than the kernel's 64-byte hostname is cut there
// (and of a trailing '-' or '.'), as the kubelet does with long pod names:
// the user asked for a container name, not a hostname, so a long one must
// not fail the run with "sethostname: invalid argument"; an explicit
// --hostname over 64 characters is still refused.
func DefaultHostname(name, id string) string {
	if name == "" {
		return runtime.ShortID(id)
	}
	if len(name) > maxHostname {
		name = strings.TrimRight(name[:maxHostname], "-.")
	}
	return name
}

// maxHostname is the kernel's limit (__NEW_UTS_LEN).
const maxHostname = 64
