package runspec

import (
	"errors"
	"github.com/corral-dev/corral/fusefs/facts"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime/defaultroot"
	"github.com/corral-dev/corral/runtime/views"
)

// fakeViews makes a directory laid out like a corralfs mount.
func fakeViews(t *testing.T) string {
	dir := t.TempDir()
	for _, rel := range []string{"proc/meminfo", "proc/cpuinfo", "proc/uptime"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755)
		os.WriteFile(filepath.Join(dir, rel), nil, 0o444)
	}
	os.MkdirAll(filepath.Join(dir, "sys/devices/system/cpu"), 0o755)
	return dir
}

// buildHost is testHost with the probes Build may call: no corralfs at
// the default place, and a default root in a temporary directory.
func buildHost(t *testing.T) Host {
	h := testHost
	h.ProbeViews = func(string) (bool, error) { return false, nil }
	defRoot := t.TempDir()
	h.DefaultRoot = func() (*defaultroot.Root, error) {
		return &defaultroot.Root{Path: defRoot, Mounts: []specs.Mount{{Destination: "/usr", Source: "/usr", Type: "bind"}}}, nil
	}
	return h
}

// viewDests are the destinations of the mounts bound from dir.
func viewDests(s *specs.Spec, dir string) []string {
	var dests []string
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Source, dir) {
			dests = append(dests, m.Destination)
		}
	}
	return dests
}

// specAllows reports whether some unconditional rule allows name.
func specAllows(sc *specs.LinuxSeccomp, name string) bool {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}

// TestBuild: each flag of `corral run` to the spec it makes, on a host
// described by a Host value (no root, no corralfs needed).
func TestBuild(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	viewsDir := fakeViews(t)
	profile := filepath.Join(t.TempDir(), "profile.json")
	os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	id := strings.Repeat("0123456789abcdef", 4)
	base := Config{Rootfs: root, ID: id, Views: "none", Sysinfo: "off", Options: Options{Args: []string{"sh"}}}
	cases := []struct {
		name  string
		edit  func(c *Config, h *Host)
		check func(t *testing.T, r *Result)
		err   string // want an error containing this
	}{
		{name: "defaults on --rootfs", check: func(t *testing.T, r *Result) {
			s := r.Spec
			if s.Root.Path != root || s.Root.Readonly || r.Bundle != filepath.Dir(root) || r.Rootfs != root || s.Hostname != id[:12] {
				t.Errorf("root %+v bundle %q hostname %q", s.Root, r.Bundle, s.Hostname)
			}
			// Docker's default profile for the default capabilities.
			if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActErrno || specAllows(sc, "unshare") || !specAllows(sc, "read") {
				t.Errorf("default seccomp profile missing or wrong: %+v", sc)
			}
			if len(r.Warnings) != 0 {
				t.Errorf("warnings %q", r.Warnings)
			}
		}},
		{name: "--name is the hostname", edit: func(c *Config, h *Host) { c.Name = "web" }, check: func(t *testing.T, r *Result) {
			if r.Spec.Hostname != "web" {
				t.Errorf("hostname %q", r.Spec.Hostname)
			}
		}},
		{name: "-h wins over --name", edit: func(c *Config, h *Host) { c.Name, c.Options.Hostname = "web", "box" }, check: func(t *testing.T, r *Result) {
			if r.Spec.Hostname != "box" {
				t.Errorf("hostname %q", r.Spec.Hostname)
			}
		}},
		{name: "--memory with swap accounting", edit: func(c *Config, h *Host) { c.Options.Memory = "1.5g" }, check: func(t *testing.T, r *Result) {
			m := r.Spec.Linux.Resources.Memory
			if *m.Limit != 3<<29 || *m.Swap != 3<<30 {
				t.Errorf("memory %d swap %v", *m.Limit, m.Swap)
			}
		}},
		{name: "--memory without swap accounting", edit: func(c *Config, h *Host) { c.Options.Memory = "64m"; h.SwapAccounting = false }, check: func(t *testing.T, r *Result) {
			if m := r.Spec.Linux.Resources.Memory; *m.Limit != 64<<20 || m.Swap != nil {
				t.Errorf("memory %d swap %v", *m.Limit, m.Swap)
			}
		}},
		{name: "--memory-swap without swap accounting", edit: func(c *Config, h *Host) {
			c.Options.Memory, c.Options.MemorySwap = "64m", "1g"
			h.SwapAccounting = false
		},
			err: "does not account swap"},
		{name: "--cpus", edit: func(c *Config, h *Host) { c.Options.CPUs = "1.5" }, check: func(t *testing.T, r *Result) {
			if cpu := r.Spec.Linux.Resources.CPU; *cpu.Quota != 150000 || *cpu.Period != 100000 {
				t.Errorf("cpu %+v", cpu)
			}
		}},
		{name: "--cpus above the host's", edit: func(c *Config, h *Host) { c.Options.CPUs = "3" }, err: "only 2 CPUs"},
		{name: "--cpus on a host of unknown CPUs", edit: func(c *Config, h *Host) { c.Options.CPUs = "3"; h.OnlineCPUs = nil }, check: func(t *testing.T, r *Result) {
			if *r.Spec.Linux.Resources.CPU.Quota != 300000 {
				t.Errorf("quota %d", *r.Spec.Linux.Resources.CPU.Quota)
			}
		}},
		{name: "--cpuset-cpus", edit: func(c *Config, h *Host) { c.Options.CpusetCPUs = "0-1" }, check: func(t *testing.T, r *Result) {
			if r.Spec.Linux.Resources.CPU.Cpus != "0-1" {
				t.Errorf("cpus %q", r.Spec.Linux.Resources.CPU.Cpus)
			}
		}},
		{name: "--cpuset-cpus offline", edit: func(c *Config, h *Host) { c.Options.CpusetCPUs = "2" }, err: "CPU 2 is not online"},
		{name: "--pids-limit", edit: func(c *Config, h *Host) { c.Options.PidsLimit = 7 }, check: func(t *testing.T, r *Result) {
			if *r.Spec.Linux.Resources.Pids.Limit != 7 {
				t.Errorf("pids %d", *r.Spec.Linux.Resources.Pids.Limit)
			}
		}},
		{name: "--read-only", edit: func(c *Config, h *Host) { c.Options.ReadOnly = true }, check: func(t *testing.T, r *Result) {
			if !r.Spec.Root.Readonly {
				t.Error("root writable")
			}
		}},
		{name: "--security-opt seccomp=unconfined", edit: func(c *Config, h *Host) { c.SecurityOpt = []string{"seccomp=unconfined"} }, check: func(t *testing.T, r *Result) {
			if r.Spec.Linux.Seccomp != nil {
				t.Error("a seccomp policy is left")
			}
		}},
		{name: "--security-opt seccomp=FILE", edit: func(c *Config, h *Host) { c.SecurityOpt = []string{"seccomp=" + profile} }, check: func(t *testing.T, r *Result) {
			if sc := r.Spec.Linux.Seccomp; sc == nil || !specAllows(sc, "write") || specAllows(sc, "open") {
				t.Errorf("policy %+v", sc)
			}
		}},
		{name: "--security-opt no-new-privileges", edit: func(c *Config, h *Host) { c.SecurityOpt = []string{"no-new-privileges"} }, check: func(t *testing.T, r *Result) {
			if !r.Spec.Process.NoNewPrivileges {
				t.Error("nnp off")
			}
		}},
		{name: "--security-opt unknown", edit: func(c *Config, h *Host) { c.SecurityOpt = []string{"apparmor=x"} }, err: "want seccomp=unconfined"},
		{name: "--views DIR", edit: func(c *Config, h *Host) { c.Views = viewsDir }, check: func(t *testing.T, r *Result) {
			if d := viewDests(r.Spec, viewsDir); !slices.Equal(d, []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/uptime", "/sys/devices/system/cpu"}) {
				t.Errorf("view mounts %v", d)
			}
		}},
		{name: "--views DIR, host PSI the container cannot have", edit: func(c *Config, h *Host) { c.Views = viewsDir; h.PSI = views.PSI{Host: true} }, check: func(t *testing.T, r *Result) {
			if !slices.Contains(r.Spec.Linux.MaskedPaths, "/proc/pressure") {
				t.Errorf("the host's /proc/pressure is not masked: %v", r.Spec.Linux.MaskedPaths)
			}
		}},
		{name: "--views DIR, no PSI", edit: func(c *Config, h *Host) { c.Views = viewsDir }, check: func(t *testing.T, r *Result) {
			if slices.Contains(r.Spec.Linux.MaskedPaths, "/proc/pressure") {
				t.Error("/proc/pressure masked on a kernel without PSI")
			}
		}},
		{name: "--views none, host PSI", edit: func(c *Config, h *Host) { h.PSI = views.PSI{Host: true} }, check: func(t *testing.T, r *Result) {
			if slices.Contains(r.Spec.Linux.MaskedPaths, "/proc/pressure") {
				t.Error("/proc/pressure masked without views")
			}
		}},
		{name: "--views on a directory without views", edit: func(c *Config, h *Host) { c.Views = t.TempDir() }, err: "--views"},
		{name: "--views auto without corralfs", edit: func(c *Config, h *Host) { c.Views = "auto" }, check: func(t *testing.T, r *Result) {
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "no corralfs mounted at /var/lib/corralfs") {
				t.Errorf("warnings %q", r.Warnings)
			}
		}},
		{name: "--views auto, corralfs not answering", edit: func(c *Config, h *Host) {
			c.Views = ""
			h.ProbeViews = func(string) (bool, error) { return true, errors.New("ENOTCONN") }
		}, check: func(t *testing.T, r *Result) {
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "does not answer (ENOTCONN)") {
				t.Errorf("warnings %q", r.Warnings)
			}
		}},
		{name: "--sysinfo auto with the agent", edit: func(c *Config, h *Host) { c.Sysinfo = "auto"; h.SysinfoSocket, h.Seccomp = "/run/agent.sock", true }, check: func(t *testing.T, r *Result) {
			if sc := r.Spec.Linux.Seccomp; sc.ListenerPath != "/run/agent.sock" || !slices.ContainsFunc(sc.Syscalls, func(s specs.LinuxSyscall) bool {
				return s.Action == specs.ActNotify && slices.Contains(s.Names, "sysinfo")
			}) {
				t.Errorf("listener %q, no notify rule for sysinfo", sc.ListenerPath)
			}
		}},
		{name: "--sysinfo auto without seccomp", edit: func(c *Config, h *Host) { c.Sysinfo = "auto"; h.SysinfoSocket = "/run/agent.sock" }, check: func(t *testing.T, r *Result) {
			if r.Spec.Linux.Seccomp.ListenerPath != "" {
				t.Error("a listener without seccomp support")
			}
		}},
		{name: "--sysinfo on", edit: func(c *Config, h *Host) { c.Sysinfo = "on" }, err: "want auto, off or the absolute path"},
		{name: "--sysinfo SOCKET with its agent", edit: func(c *Config, h *Host) {
			c.Sysinfo = "/tmp/x/seccomp.sock"
			h.SysinfoSocket, h.Seccomp = "/tmp/x/seccomp.sock", true
		}, check: func(t *testing.T, r *Result) {
			if sc := r.Spec.Linux.Seccomp; sc.ListenerPath != "/tmp/x/seccomp.sock" {
				t.Errorf("listener %q, want the named socket", sc.ListenerPath)
			}
		}},
		{name: "--sysinfo SOCKET without an agent", edit: func(c *Config, h *Host) { c.Sysinfo = "/tmp/x/seccomp.sock"; h.Seccomp = true }, err: "not a socket"},
		{name: "--sysinfo SOCKET without seccomp", edit: func(c *Config, h *Host) { c.Sysinfo = "/tmp/x/seccomp.sock"; h.SysinfoSocket = "/tmp/x/seccomp.sock" }, err: "cannot install seccomp filters"},
		{name: "--rootfs missing", edit: func(c *Config, h *Host) { c.Rootfs = filepath.Join(root, "missing") }, err: "not a directory"},
		{name: "default root", edit: func(c *Config, h *Host) { c.Rootfs = "" }, check: func(t *testing.T, r *Result) {
			if !r.Spec.Root.Readonly || !slices.ContainsFunc(r.Spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/usr" }) {
				t.Errorf("default root: ro %v mounts %v", r.Spec.Root.Readonly, r.Spec.Mounts)
			}
		}},
		{name: "default root fails", edit: func(c *Config, h *Host) {
			c.Rootfs = ""
			h.DefaultRoot = func() (*defaultroot.Root, error) { return nil, errors.New("disk full") }
		}, err: "disk full"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, host := base, buildHost(t)
			cfg.Options.Args = slices.Clone(base.Options.Args)
			if c.edit != nil {
				c.edit(&cfg, &host)
			}
			r, err := Build(cfg, host)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, r)
		})
	}
}

// TestBuildViewsKeepBundleBinds: a view the bundle already binds is not
// bound twice; --views none binds nothing.
func TestBuildViewsKeepBundleBinds(t *testing.T) {
	dir := fakeViews(t)
	res := &Result{Spec: Default("/r", []string{"true"})}
	res.Spec.Mounts = append(res.Spec.Mounts, specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: "/elsewhere"})
	if err := addViews(res, "", dir, testHost); err != nil {
		t.Fatal(err)
	}
	if d := viewDests(res.Spec, dir); !slices.Equal(d, []string{"/proc/cpuinfo", "/proc/uptime", "/sys/devices/system/cpu"}) {
		t.Errorf("view mounts %v", d)
	}
	n := len(res.Spec.Mounts)
	if err := addViews(res, "", "none", testHost); err != nil || len(res.Spec.Mounts) != n || len(res.Warnings) != 0 {
		t.Errorf("--views none: %v, mounts %d -> %d, warnings %q", err, n, len(res.Spec.Mounts), res.Warnings)
	}
}

func TestBuildBundle(t *testing.T) {
	bundle := t.TempDir()
	os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755)
	cfg := Config{Bundle: bundle, ID: "x", Views: "none", Sysinfo: "off"}
	if _, err := Build(cfg, testHost); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no config.json: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{not json"), 0o644)
	if _, err := Build(cfg, testHost); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("malformed config.json: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","hostname":"fromspec","process":{"args":["sh"],"cwd":"/"},"linux":{}}`), 0o644)
	if _, err := Build(cfg, testHost); err == nil || !strings.Contains(err.Error(), "has no root.path") {
		t.Errorf("no root.path: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"hostname":"fromspec",
		"process":{"args":["sh"],"cwd":"/"},"linux":{}}`), 0o644)
	cfg.Options = Options{Args: []string{"echo", "hi"}, CPUs: "0.5"}
	r, err := Build(cfg, testHost)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Spec
	if r.Rootfs != filepath.Join(bundle, "rootfs") || r.Bundle != bundle || s.Hostname != "fromspec" ||
		!slices.Equal(s.Process.Args, []string{"echo", "hi"}) || *s.Linux.Resources.CPU.Quota != 50000 {
		t.Errorf("bundle spec: rootfs %q bundle %q host %q args %v", r.Rootfs, r.Bundle, s.Hostname, s.Process.Args)
	}
}

func TestDefaultHostnameLongName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"web", "web"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{strings.Repeat("a", 62) + "-.xyz", strings.Repeat("a", 62)},
	} {
		if got := DefaultHostname(c.name, c.name); got != c.want {
			t.Errorf("name of %d: hostname %q, want %q", len(c.name), got, c.want)
		}
	}
}

// A daemon offering bound views (a BOUND directory) gets the container's
// own files bound, named by the cgroup the container will get; the CPU
// directory stays shared; without BOUND (an older corralfs, LXCFS) the
// shared files, as before.
func TestBuildViewsBound(t *testing.T) {
	dir := fakeViews(t)
	sources := func(id string) map[string]string {
		res := &Result{Spec: Default("/r", []string{"true"})}
		if err := addViews(res, id, dir, testHost); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, mnt := range res.Spec.Mounts {
			if strings.HasPrefix(mnt.Source, dir) {
				m[mnt.Destination] = strings.TrimPrefix(mnt.Source, dir+"/")
			}
		}
		return m
	}
	if got := sources("c1")["/proc/meminfo"]; got != "proc/meminfo" {
		t.Errorf("without %s: meminfo from %q, want the shared file", facts.BoundDir, got)
	}
	os.Mkdir(filepath.Join(dir, facts.BoundDir), 0o755)
	got := sources("c1")
	if got["/proc/meminfo"] != facts.BoundDir+"/corral%2Fc1/proc/meminfo" || got["/proc/uptime"] != facts.BoundDir+"/corral%2Fc1/proc/uptime" {
		t.Errorf("with %s: %v", facts.BoundDir, got)
	}
	if got["/sys/devices/system/cpu"] != "sys/devices/system/cpu" {
		t.Errorf("the CPU directory must stay shared: %v", got)
	}
	if got := sources("")["/proc/meminfo"]; got != "proc/meminfo" {
		t.Errorf("no id (no cgroup known): meminfo from %q, want the shared file", got)
	}
}
