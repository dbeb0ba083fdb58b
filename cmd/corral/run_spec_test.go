package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

func TestCheckRunFlags(t *testing.T) {
	bad := map[string]runFlags{
		"no command":    {},
		"exclude":       {opts: runspec.Options{Args: []string{"x"}}, rootfs: "/a", bundle: "/b"},
		"--tty":         {opts: runspec.Options{Args: []string{"x"}, Terminal: true}, detach: true},
		"--interactive": {opts: runspec.Options{Args: []string{"x"}}, detach: true, interactive: true},
		"slashes":       {opts: runspec.Options{Args: []string{"x"}}, name: "a/b"},
	}
	for want, f := range bad {
		if err := checkRunFlags(&f); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error about %q", f, err, want)
		}
	}
	ok := []runFlags{
		{opts: runspec.Options{Args: []string{"x"}}},
		{bundle: "/b"}, // the bundle's own command
		{opts: runspec.Options{Args: []string{"x"}, Terminal: true}, interactive: true},
	}
	for _, f := range ok {
		if err := checkRunFlags(&f); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestExecErrorCode(t *testing.T) {
	cases := map[error]int{
		fmt.Errorf("x: %w", runtime.ErrExecNotFound):   127,
		fmt.Errorf("x: %w", runtime.ErrExecPermission): 126,
		fmt.Errorf("cgroup: %w", os.ErrNotExist):       125,
	}
	for err, want := range cases {
		if got := execErrorCode(err); got != want {
			t.Errorf("%v: %d, want %d", err, got, want)
		}
	}
}

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

func TestAddViews(t *testing.T) {
	dir := fakeViews(t)
	s := runspec.Default("/r", []string{"true"})
	// A bundle that already binds its own meminfo keeps it.
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: "/elsewhere"})
	var warn bytes.Buffer
	if err := addViews(s, dir, &warn); err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Source, dir) {
			dests = append(dests, m.Destination)
		}
	}
	if !slices.Equal(dests, []string{"/proc/cpuinfo", "/proc/uptime", "/sys/devices/system/cpu"}) {
		t.Errorf("view mounts %v", dests)
	}
	if warn.Len() != 0 {
		t.Errorf("explicit --views warned: %q", warn.String())
	}

	n := len(s.Mounts)
	if err := addViews(s, "none", &warn); err != nil || len(s.Mounts) != n || warn.Len() != 0 {
		t.Errorf("--views none: %v, mounts %d -> %d, warn %q", err, n, len(s.Mounts), warn.String())
	}
	if err := addViews(s, t.TempDir(), &warn); err == nil {
		t.Error("--views on a directory without views must fail")
	}
}

func TestAddViewsAutoWithoutCorralfs(t *testing.T) {
	if runIsLive("/var/lib/corralfs") {
		t.Skip("a corralfs serves /var/lib/corralfs on this host")
	}
	s := runspec.Default("/r", []string{"true"})
	n := len(s.Mounts)
	var warn bytes.Buffer
	if err := addViews(s, "auto", &warn); err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) != n || strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), "no corralfs mounted at /var/lib/corralfs") {
		t.Errorf("auto without corralfs: mounts %d -> %d, warn %q", n, len(s.Mounts), warn.String())
	}
}

func runIsLive(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(b), " "+dir+" ")
}

func TestAddSysinfoModes(t *testing.T) {
	s := runspec.Default("/r", []string{"true"})
	before := s.Linux.Seccomp // the default profile
	if err := addSysinfo(s, "off"); err != nil || s.Linux.Seccomp != before || s.Linux.Seccomp.ListenerPath != "" {
		t.Errorf("off: %v, the policy changed", err)
	}
	if err := addSysinfo(s, "on"); err == nil {
		t.Error("--sysinfo on: want an error (auto or off)")
	}
}

func TestBuildRunSpecOnRootfs(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	rt := &runtime.Runtime{Root: t.TempDir()}
	f := &runFlags{rootfs: root, views: "none", sysinfo: "off", name: "web",
		opts: runspec.Options{Args: []string{"sh"}, Memory: "64m", Terminal: true}}
	rs, err := buildRunSpec(rt, f, "web", os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	s := rs.spec
	if s.Root.Path != root || s.Root.Readonly || s.Hostname != "web" || !s.Process.Terminal ||
		*s.Linux.Resources.Memory.Limit != 64<<20 || !slices.Contains(s.Process.Env, "TERM=xterm") {
		t.Errorf("spec: root %+v host %q tty %v env %v", s.Root, s.Hostname, s.Process.Terminal, s.Process.Env)
	}
	if rs.bundle != filepath.Dir(root) {
		t.Errorf("bundle %q", rs.bundle)
	}
	// The default seccomp profile, resolved for the default capabilities:
	// no rule opens mount or unshare.
	if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActErrno || specAllows(sc, "unshare") || !specAllows(sc, "read") {
		t.Errorf("default seccomp profile missing or wrong: %+v", sc)
	}
	f.securityOpt = []string{"seccomp=unconfined"}
	if rs, err := buildRunSpec(rt, f, "web", os.Stderr); err != nil || rs.spec.Linux.Seccomp != nil {
		t.Errorf("--security-opt seccomp=unconfined: %v, policy %v", err, rs.spec.Linux.Seccomp != nil)
	}
	f.securityOpt = nil
	// A generated id: the hostname is the short id.
	f.name = ""
	id := strings.Repeat("0123456789abcdef", 4)
	if rs, err = buildRunSpec(rt, f, id, os.Stderr); err != nil || rs.spec.Hostname != id[:12] {
		t.Errorf("hostname %q, %v; want %s", rs.spec.Hostname, err, id[:12])
	}
	f.rootfs = filepath.Join(root, "missing")
	if _, err := buildRunSpec(rt, f, id, os.Stderr); err == nil {
		t.Error("missing rootfs: want an error")
	}
}

func TestBuildRunSpecBundle(t *testing.T) {
	bundle := t.TempDir()
	os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755)
	rt := &runtime.Runtime{Root: t.TempDir()}
	f := &runFlags{bundle: bundle, views: "none", sysinfo: "off"}
	if _, err := buildRunSpec(rt, f, "x", os.Stderr); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no config.json: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{not json"), 0o644)
	if _, err := buildRunSpec(rt, f, "x", os.Stderr); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("malformed config.json: %v", err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"hostname":"fromspec",
		"process":{"args":["sh"],"cwd":"/"},"linux":{}}`), 0o644)
	f.opts = runspec.Options{Args: []string{"echo", "hi"}, CPUs: "0.5"}
	rs, err := buildRunSpec(rt, f, "x", os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	s := rs.spec
	if rs.rootfs != filepath.Join(bundle, "rootfs") || rs.bundle != bundle || s.Hostname != "fromspec" ||
		!slices.Equal(s.Process.Args, []string{"echo", "hi"}) || *s.Linux.Resources.CPU.Quota != 50000 {
		t.Errorf("bundle spec: rootfs %q bundle %q host %q args %v", rs.rootfs, rs.bundle, s.Hostname, s.Process.Args)
	}
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

func TestDefaultHostnameLongName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"web", "web"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{strings.Repeat("a", 62) + "-.xyz", strings.Repeat("a", 62)},
	} {
		if got := defaultHostname(&runFlags{name: c.name}, c.name); got != c.want {
			t.Errorf("name of %d: hostname %q, want %q", len(c.name), got, c.want)
		}
	}
}
