package tests

// Issue 11: what a `corral run` container must not be able to do. Every
// test also runs the same thing with --security-opt seccomp=unconfined and
// checks it then works: that is the state before the default profile, so
// each test is shown able to fail.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secProbeDir returns a directory holding a static secprobe, to bind at
// /probe.
func secProbeDir(t *testing.T) string {
	return filepath.Dir(staticProbe(t, "secprobe", "./tests/secprobe"))
}

// probeLines parses secprobe's "NAME RESULT" lines.
func probeLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if name, res, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[name] = res
		}
	}
	return m
}

// TestRunSeccompLimitEscape is the exact escape: a user namespace
// with root mapped, cgroup v1 mounted in a new cgroup namespace, the
// container's own memory limit rewritten. The default profile refuses the
// unshare; unconfined, the user namespace is created (the escape's first
// step), which is what the test would see without the profile.
func TestRunSeccompLimitEscape(t *testing.T) {
	e := runNewEnv(t, false)
	runNeedTool(t, "unshare")
	escape := `mount -t cgroup -o memory cgroup /tmp && echo 1073741824 >/tmp/memory.memsw.limit_in_bytes && echo 536870912 >/tmp/memory.limit_in_bytes; head -c 200m /dev/zero | tail; echo survived`
	args := append(e.runFlags(), "--name", runName("escape"), "--memory", "64m",
		"--", "unshare", "-U", "-r", "-m", "-C", "sh", "-c", escape)
	r := e.run(t, args...)
	if r.code == 0 || strings.Contains(r.stdout, "survived") || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Fatalf("the limit escape was not refused: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	out := e.exec(t, []string{"--security-opt", "seccomp=unconfined"},
		"unshare", "-U", "-r", "-m", "-C", "sh", "-c", "echo userns-ok")
	if out != "userns-ok" {
		t.Fatalf("unconfined: unshare -U -r -m -C printed %q, want userns-ok (the test could not see the escape)", out)
	}
}

// TestRunSeccompDefaultRefusals: nested user namespaces (unshare and clone
// with CLONE_NEWUSER; clone3 answers ENOSYS as under Docker), keyctl,
// add_key, request_key, io_uring and bpf are refused inside a container;
// seccomp=unconfined lets them through to the kernel.
func TestRunSeccompDefaultRefusals(t *testing.T) {
	e := runNewEnv(t, false)
	probe := []string{"-v", secProbeDir(t) + ":/probe:ro"}
	got := probeLines(e.exec(t, probe, "/probe/secprobe", "escapes"))
	want := map[string]string{
		"getpid": "ok", "userns": "EPERM", "clone-userns": "EPERM", "clone3": "ENOSYS",
		"keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
		"io_uring_setup": "EPERM", "bpf": "EPERM",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("default profile: %s = %q, want %s", k, got[k], w)
		}
	}
	got = probeLines(e.exec(t, append(probe, "--security-opt", "seccomp=unconfined"), "/probe/secprobe", "escapes"))
	want = map[string]string{
		"getpid": "ok", "userns": "ok", "clone-userns": "ok", "clone3": "EINVAL",
		"keyctl": "ok",
	}
	if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err != nil || strings.TrimSpace(string(b)) == "0" {
		want["io_uring_setup"] = "ok"
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("seccomp=unconfined: %s = %q, want %s", k, got[k], w)
		}
	}
	// No key of that name: the kernel's answer (ENOKEY, or ENOENT
	// without a request-key helper), anything but the filter's EPERM.
	if r := got["request_key"]; r == "" || r == "EPERM" {
		t.Errorf("seccomp=unconfined: request_key = %q, want the kernel's answer", r)
	}
}

// TestRunSecurityOpt: a profile FILE replaces the default (an OCI-format
// one that refuses uname with a chosen errno, and a Docker-format one
// whose rules depend on a capability), and bad values fail clearly before
// anything is created.
func TestRunSecurityOpt(t *testing.T) {
	e := runNewEnv(t, false)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// mkdir is refused in a way every mkdir (coreutils, busybox) reports.
	oci := write("oci.json", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`)
	out := e.sh(t, []string{"--security-opt", "seccomp=" + oci}, "mkdir /tmp/d 2>&1; grep '^Seccomp:' /proc/self/status")
	if !strings.Contains(out, "Permission denied") || !strings.Contains(out, "Seccomp:\t2") {
		t.Errorf("OCI profile refusing mkdir with EACCES: got %q", out)
	}
	// Docker format: mkdir refused unless the process has CAP_SYS_BOOT,
	// which the default capability set lacks; getcwd refused only with it.
	docker := write("docker.json", `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"excludes":{"caps":["CAP_SYS_BOOT"]}},
{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_BOOT"]}}]}`)
	out = e.sh(t, []string{"--security-opt", "seccomp=" + docker}, "mkdir /tmp/d 2>&1; cd /tmp && /bin/pwd")
	if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "\n/tmp") {
		t.Errorf("Docker-format profile with capability conditions: got %q", out)
	}
	for _, c := range []struct{ opt, want string }{
		{"seccomp=" + write("bad.json", `{"defaultAction":`), "not a seccomp profile"},
		{"seccomp=" + write("noaction.json", `{"syscalls":[]}`), "no defaultAction"},
		{"seccomp=" + write("badact.json", `{"defaultAction":"SCMP_ACT_NOPE"}`), "unknown action"},
		{"seccomp=" + filepath.Join(dir, "missing.json"), "no such file"},
		{"apparmor=unconfined", "want seccomp=unconfined"},
	} {
		args := append(e.runFlags(), "--name", runName("secopt"), "--security-opt", c.opt, "--", "true")
		r := e.run(t, args...)
		if r.code != 125 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("--security-opt %s: exit %d, stderr %q; want 125 and %q", c.opt, r.code, r.stderr, c.want)
		}
	}
}
