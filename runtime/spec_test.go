package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func bundleWithRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestValidateSpecAcceptsDefault(t *testing.T) {
	b := bundleWithRootfs(t)
	rootfs, err := validateSpec(DefaultSpec(), b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(b, "rootfs"))
	if rootfs != want {
		t.Errorf("rootfs = %s, want %s", rootfs, want)
	}
	for _, v := range []string{"1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0"} {
		s := DefaultSpec()
		s.Version = v
		if _, err := validateSpec(s, b); err != nil {
			t.Errorf("ociVersion %s refused: %v", v, err)
		}
	}
}

func TestValidateSpecErrors(t *testing.T) {
	b := bundleWithRootfs(t)
	for _, tc := range []struct {
		name   string
		mutate func(*specs.Spec)
		want   string
	}{
		{"old version", func(s *specs.Spec) { s.Version = "0.9.0" }, "unsupported ociVersion"},
		{"future version", func(s *specs.Spec) { s.Version = "1.4.0" }, "unsupported ociVersion"},
		{"major 2", func(s *specs.Spec) { s.Version = "2.0.0" }, "unsupported ociVersion"},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args is empty"},
		{"no process", func(s *specs.Spec) { s.Process = nil }, "process.args is empty"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, "must be absolute"},
		{"missing rootfs", func(s *specs.Spec) { s.Root.Path = "nope" }, "does not exist"},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root.path is missing"},
		{"no linux", func(s *specs.Spec) { s.Linux = nil }, "linux section is missing"},
		{"user ns without mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "a new user namespace needs both linux.uidMappings and linux.gidMappings"},
		{"unknown ns", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}, "unknown namespace"},
		{"duplicate ns", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, "listed twice"},
		// No mount namespace is valid (the caller's is used, as runc does):
		// TestRuntimeNoMountNamespace in tests/.
		{"relative mount", func(s *specs.Spec) { s.Mounts[0].Destination = "proc" }, "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSpec()
			tc.mutate(s)
			_, err := validateSpec(s, b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// rootfs that is a file
	f := filepath.Join(b, "file")
	os.WriteFile(f, nil, 0o644)
	s := DefaultSpec()
	s.Root.Path = f
	if _, err := validateSpec(s, b); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("rootfs file: %v", err)
	}
}

func TestLoadSpecMalformed(t *testing.T) {
	b := t.TempDir()
	if _, err := LoadSpec(b); err == nil || !strings.Contains(err.Error(), "no config.json") {
		t.Errorf("missing config.json: %v", err)
	}
	os.WriteFile(filepath.Join(b, "config.json"), []byte("{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {,\n}"), 0o644)
	_, err := LoadSpec(b)
	if err == nil || !strings.Contains(err.Error(), "malformed") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("syntax error: %v", err)
	}
	os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion": 1}`), 0o644)
	if _, err := LoadSpec(b); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("type error: %v", err)
	}
}

func TestLoadBundle(t *testing.T) {
	b := t.TempDir()
	if _, _, err := LoadBundle(b); err == nil || !strings.Contains(err.Error(), "no config.json") {
		t.Errorf("missing config.json: %v", err)
	}
	os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion":"1.0.2"}`), 0o644)
	if _, _, err := LoadBundle(b); err == nil || !strings.Contains(err.Error(), "has no root.path") {
		t.Errorf("no root.path: %v", err)
	}
	for root, want := range map[string]string{"rootfs": filepath.Join(b, "rootfs"), "./r/../rootfs/": filepath.Join(b, "rootfs"), "/srv/root": "/srv/root"} {
		os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"`+root+`"}}`), 0o644)
		if _, got, err := LoadBundle(b); err != nil || got != want {
			t.Errorf("root.path %q: %q, %v; want %q", root, got, err, want)
		}
	}
}

func TestCgroupPathFor(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "/corral/c1",
		"/a/b":             "/a/b",
		"a/b":              "/a/b", // from the root, never below the caller's cgroup
		"/a/../../b":       "/b",
		"/corral-test/c1/": "/corral-test/c1",
	} {
		s := DefaultSpec()
		s.Linux.CgroupsPath = in
		got, err := cgroupPathFor("c1", s)
		if err != nil || got != want {
			t.Errorf("cgroupsPath %q -> %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/", "..", "system.slice:corral:c1"} {
		s := DefaultSpec()
		s.Linux.CgroupsPath = bad
		if got, err := cgroupPathFor("c1", s); err == nil {
			t.Errorf("cgroupsPath %q accepted as %q", bad, got)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"a", "c-1", "x_y.z", "A+B"} {
		if err := checkID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "../x", "a\n"} {
		if err := checkID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	p := parseMountOptions([]string{"nosuid", "ro", "rbind", "mode=755", "rprivate", "size=1k", "rw"})
	if p.flags&(1) != 0 { // MS_RDONLY cleared by the later "rw"
		t.Errorf("rw after ro must clear MS_RDONLY: %#x", p.flags)
	}
	if p.data != "mode=755,size=1k" || len(p.propagation) != 1 {
		t.Errorf("data %q propagation %v", p.data, p.propagation)
	}
}

func TestTimeOffsets(t *testing.T) {
	if s, ns := negate(12, 300); s != -13 || ns != 1e9-300 {
		t.Errorf("negate(12.0000003) = %d %d", s, ns)
	}
	if s, ns := negate(5, 0); s != -5 || ns != 0 {
		t.Errorf("negate(5) = %d %d", s, ns)
	}
	l := &specs.Linux{TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: -7}, "monotonic": {Secs: 3, Nanosecs: 5}}}
	o, err := specTimeOffsets(l)
	if err != nil || o.BootSec != -7 || o.MonoSec != 3 || o.MonoNsec != 5 {
		t.Errorf("specTimeOffsets = %+v, %v", o, err)
	}
	l.TimeOffsets["realtime"] = specs.LinuxTimeOffset{}
	if _, err := specTimeOffsets(l); err == nil {
		t.Error("realtime offset accepted")
	}
}
