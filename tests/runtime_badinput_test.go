package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeBadInput: each broken input is a clear error from create, and
// nothing is left behind: no state, no cgroup, no process, no mount.
func TestRuntimeBadInput(t *testing.T) {
	e := rtNewEnv(t)
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, bundle string, s *specs.Spec)
		want   string
	}{
		{"malformed config.json", func(t *testing.T, b string, s *specs.Spec) {
			os.WriteFile(filepath.Join(b, "config.json"), []byte("{\"ociVersion\": \"1.0.0\",\n \"process\": [}"), 0o644)
		}, "malformed"},
		{"missing rootfs", func(t *testing.T, b string, s *specs.Spec) {
			s.Root.Path = filepath.Join(b, "no-such-rootfs")
		}, "does not exist"},
		{"unsupported ociVersion", func(t *testing.T, b string, s *specs.Spec) {
			s.Version = "2.0.0"
		}, "unsupported ociVersion"},
		{"executable not found", func(t *testing.T, b string, s *specs.Spec) {
			s.Process.Args = []string{"no-such-program"}
		}, "not found"},
		{"bad bind source", func(t *testing.T, b string, s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/no/such/dir", Options: []string{"bind"}})
		}, "/no/such/dir"},
		{"bad cwd", func(t *testing.T, b string, s *specs.Spec) {
			s.Process.Cwd = "/no/such/dir"
		}, "cwd"},
		{"systemd cgroupsPath", func(t *testing.T, b string, s *specs.Spec) {
			s.Linux.CgroupsPath = "system.slice:corral:x"
		}, "systemd"},
		// Issue 11's low findings: refused up front, not late or with
		// gigabytes spent and "broken pipe".
		{"duplicate rlimits", func(t *testing.T, b string, s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 10})
		}, "RLIMIT_NOFILE given more than once"},
		{"rlimit soft above hard", func(t *testing.T, b string, s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Hard: 1, Soft: 2}}
		}, "above the hard limit"},
		{"unknown rlimit", func(t *testing.T, b string, s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE", Hard: 1, Soft: 1}}
		}, "unknown type"},
		{"huge config.json", func(t *testing.T, b string, s *specs.Spec) {
			s.Annotations = map[string]string{"padding": strings.Repeat("x", 17<<20)}
		}, "refuses configurations over 16 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := rtID("bad")
			s := rtSpec(id, "true")
			b := e.bundle(id, s)
			tc.mutate(t, b, s)
			if tc.name != "malformed config.json" {
				e.writeSpec(b, s)
			}
			r := e.corral("create", "--bundle", b, id)
			if r.code == 0 {
				t.Fatalf("create succeeded")
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("error %q does not mention %q", r.stderr, tc.want)
			}
			if r := e.corral("state", id); r.code == 0 {
				t.Errorf("state of the failed container exists: %v", r)
			}
			for _, d := range rtCgroupDirs(rtCgroupPath(id)) {
				if _, err := os.Stat(d); err == nil {
					t.Errorf("cgroup %s left behind", d)
				}
			}
		})
	}
}

// TestRuntimeDuplicateID: a second create with the same id fails and
// leaves the first container untouched.
func TestRuntimeDuplicateID(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("dup")
	b := e.bundle(id, rtSpec(id, "sleep", "100"))
	e.create(id, b)
	before := e.state(id)
	r := e.corral("create", "--bundle", b, id)
	if r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("duplicate create: %v", r)
	}
	after := e.state(id)
	if after.Pid != before.Pid || after.Status != "created" {
		t.Errorf("first container changed: %+v -> %+v", before, after)
	}
	e.must("delete", id)
}

// TestRuntimeSymlinkMountDestination: a mount whose destination is a
// symlink to /etc in the rootfs lands on ROOTFS/etc, never on the host's
// /etc; and a destination with .. cannot climb out either.
func TestRuntimeSymlinkMountDestination(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("symlink")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "corral-marker"), []byte("inside\n"), 0o644)
	s := rtSpec(id, "sh", "-c", "cat /etc/corral-marker; cat /escape/corral-marker")
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/evil", Type: "bind", Source: src, Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/../../../escape", Type: "bind", Source: src, Options: []string{"bind", "ro"}},
	)
	b := e.bundle(id, s)
	// The rootfs's /evil -> /etc (absolute: on the host that is the host's /etc).
	if err := os.Symlink("/etc", filepath.Join(s.Root.Path, "evil")); err != nil {
		t.Fatal(err)
	}
	hostMounts, _ := os.ReadFile("/proc/self/mountinfo")
	out := e.runBundle(id, b)
	if out != "inside\ninside\n" {
		t.Errorf("container printed %q, want the marker through both mounts", out)
	}
	if _, err := os.Stat("/etc/corral-marker"); err == nil {
		t.Fatalf("the mount landed on the host's /etc")
	}
	if _, err := os.Stat(filepath.Join(s.Root.Path, "etc")); err != nil {
		t.Errorf("rootfs/etc: %v", err)
	}
	now, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(now), "\n") {
		if strings.Contains(l, " /etc ") && !strings.Contains(string(hostMounts), l) {
			t.Errorf("new host mount on /etc: %s", l)
		}
	}
}

// TestRuntimeSystemdCgroupFlag: --systemd-cgroup without systemd is a clear
// error that leaves nothing.
func TestRuntimeSystemdCgroupFlag(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here")
	}
	e := rtNewEnv(t)
	id := rtID("systemd")
	b := e.bundle(id, rtSpec(id, "true"))
	r := e.corral("--systemd-cgroup", "create", "--bundle", b, id)
	if r.code == 0 || !strings.Contains(r.stderr, "systemd is not running") {
		t.Errorf("--systemd-cgroup: %v", r)
	}
}

// TestRuntimeJSONLog: with --log and --log-format json (how containerd and
// conmon call runc), errors are JSON lines with level "error" in the log.
func TestRuntimeJSONLog(t *testing.T) {
	e := rtNewEnv(t)
	log := filepath.Join(t.TempDir(), "log.json")
	r := e.corral("--log", log, "--log-format", "json", "state", "rt-no-such")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var line struct{ Level, Msg, Time string }
	if err := json.Unmarshal([]byte(strings.SplitN(string(data), "\n", 2)[0]), &line); err != nil {
		t.Fatalf("log %q: %v", data, err)
	}
	if line.Level != "error" || !strings.Contains(line.Msg, "does not exist") || line.Time == "" {
		t.Errorf("log line %+v", line)
	}
	// Without --log, JSON goes to stderr.
	r = e.corral("--log-format", "json", "kill", "rt-no-such", "KILL")
	if !strings.HasPrefix(r.stderr, "{") || !strings.Contains(r.stderr, `"level":"error"`) {
		t.Errorf("stderr %q", r.stderr)
	}
}

// TestRuntimeSpecAndFeatures: `corral spec` writes a config that create
// accepts (Docker's capabilities, masked /proc/kcore); features is JSON.
func TestRuntimeSpecAndFeatures(t *testing.T) {
	e := rtNewEnv(t)
	dir := t.TempDir()
	e.must("spec", "--bundle", dir)
	var s specs.Spec
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Process.Capabilities.Bounding) != 14 || !strings.Contains(string(data), "/proc/kcore") || !strings.Contains(string(data), `"time"`) {
		t.Errorf("spec: %s", data)
	}
	// Docker's default seccomp profile (issue 11): the user-namespace
	// escape needs unshare, which no rule allows without CAP_SYS_ADMIN.
	if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) < 10 || strings.Contains(string(data), `"unshare"`) {
		t.Errorf("spec: no default seccomp profile, or one that allows unshare: %+v", sc)
	}
	if r := e.corral("spec", "--bundle", dir); r.code == 0 {
		t.Errorf("spec over an existing config.json succeeded")
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(e.must("features")), &f); err != nil || f["ociVersionMax"] == nil {
		t.Errorf("features: %v %v", f, err)
	}
}
