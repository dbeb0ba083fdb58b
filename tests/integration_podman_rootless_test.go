package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestPodmanRootless (issue 16's last criterion; cgroup v2: the VM): an
// unprivileged user (nobody, with subordinate ids) runs rootless podman
// with --runtime set to corral. Podman makes its own user namespace
// (newuidmap with nobody's ranges) and runs conmon and corral in it;
// corral is the root of a user namespace that is not the host's, so it is
// rootless, and creates the container's cgroup below the cgroup root
// delegated to nobody (--cgroup-parent). The views come from the host's
// corralfs through corral's createContainer hook (podman calls `corral
// create`, which binds no views itself: the hook is the path for every
// runtime podman drives). sysinfo(2), where both frees take the total
// from, is answered by the host's corralfs agent: podman passes the
// profile's listenerPath on, and corral, running as nobody, may connect
// because the socket's group is nobody's (as an administrator grants a
// group). What it proves: `free -m` (procps, the VM's own, bound in with
// /usr) and `busybox free -m` show the 256 MiB limit, /proc/meminfo's
// MemTotal is 262144 kB, the limit is in the container's memory.max, and
// the container's root is nobody with its subordinate range behind it.
func TestPodmanRootless(t *testing.T) {
	testutil.RequireRoot(t)
	if !cgroupV2Delegable() {
		t.Skip("cgroup v1/hybrid: no cgroup delegation to users, so no memory limit for rootless podman; the cgroup v2 VM runs this")
	}
	if !testutil.InVM() {
		t.Skip("edits /etc/subuid and /etc/subgid: the cgroup v2 VM runs this")
	}
	podman := testutil.RequireCommand(t, "podman")
	testutil.RequireCommand(t, "conmon")
	testutil.RequireCommand(t, "newuidmap")
	testutil.RequireFUSE(t)
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := os.WriteFile(f, []byte("nobody:200000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(f) })
	}
	e := newRootlessEnv(t)
	cg := e.delegateCgroup(t, "tests-podman-rootless")
	// The controllers on for the delegated cgroup's children before podman
	// starts, as a systemd user session has them (rootless podman looks at
	// the controllers of its own cgroup when it applies limits; whether it
	// would drop the limit without this was not tried).
	if err := os.WriteFile(filepath.Join(cg.Dir(""), "cgroup.subtree_control"), []byte("+memory +pids"), 0o644); err != nil {
		t.Fatal(err)
	}
	// corralfs before podman's first command: podman's pause process keeps
	// the mount namespace it copies then for every later podman command.
	mp := filepath.Join(e.dir, "views")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := sysinfoSocket(t)
	startCorralfs(t, mp, "--seccomp-socket", sock)
	hooks := rootlessHooksDir(t, e, mp)
	rootfs := usrBoundRootfs(t, e)
	profile := grantSysinfoSocket(t, e, sock)

	globals := []string{podman, "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--hooks-dir", hooks, "--runtime", e.corral}
	run := []string{"run", "--rm", "--network", "none", "--log-driver", "k8s-file",
		"--cgroup-parent", cg.Path, "--memory", "256m", "-v", "/usr:/usr:ro", "--security-opt", "seccomp=" + profile,
		"--rootfs", rootfs} // --rootfs is a switch: the root is the first argument, flags end there
	r := e.runArgv(t, e.dir, append(append(globals, run...),
		"sh", "-c", "echo '== free'; free -m; echo '== bbfree'; busybox free -m; echo '== meminfo'; cat /proc/meminfo; echo '== max'; cat /sys/fs/cgroup/memory.max; echo '== uidmap'; cat /proc/self/uid_map")...)
	if r.code != 0 {
		// The run's own output can be empty (an exit status of the
		// container's): podman's debug log of a plain run says more.
		d := e.runArgv(t, e.dir, append(append(append(globals, "--log-level", "debug"), run...), "echo", "hello")...)
		t.Fatalf("rootless podman --runtime corral: exit %d\n%s\n%s\nagain with --log-level debug: exit %d\n%s\n%s", r.code, r.stdout, r.stderr, d.code, d.stdout, d.stderr)
	}
	s := sections(r.stdout)
	for _, free := range []string{"free", "bbfree"} {
		var total string
		for _, line := range strings.Split(s[free], "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Mem:" {
				total = f[1]
			}
		}
		if total != "256" {
			t.Errorf("%s -m in a rootless podman container with --memory 256m: total %q MiB, want 256\n%s\n%s", free, total, r.stdout, r.stderr)
		}
	}
	if got := meminfoKB(t, s["meminfo"], "MemTotal"); got != 256<<10 {
		t.Errorf("MemTotal %d kB, want 262144", got)
	}
	if got := strings.TrimSpace(s["max"]); got != "268435456" {
		t.Errorf("memory.max of the container's cgroup %q, want 268435456", got)
	}
	if got := strings.Join(strings.Fields(s["uidmap"]), " "); got != "0 65534 1 1 200000 65536" {
		t.Errorf("uid_map %q, want podman's user namespace: nobody as root, its subordinate range behind", got)
	}
}

// grantSysinfoSocket opens the agent's socket (0660, root's) to nobody's
// group and writes a seccomp profile that sends sysinfo(2) to it. The
// profile allows everything else: the test is about the notification, and
// a real one adds the rule to the profile it uses.
func grantSysinfoSocket(t *testing.T, e *rootlessEnv, sock string) string {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the agent's socket "+sock, func() bool { return fileExists(sock) })
	if err := os.Chmod(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sock, 0, nobody); err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(e.dir, "sysinfo-notify.json")
	data, err := json.Marshal(map[string]any{
		"defaultAction": "SCMP_ACT_ALLOW",
		"listenerPath":  sock,
		"syscalls":      []map[string]any{{"names": []string{"sysinfo"}, "action": "SCMP_ACT_NOTIFY"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(profile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return profile
}

// rootlessHooksDir is install/hooks.d/corralfs.json pointed at nobody's
// copy of corral and the test's corralfs. Written here rather than read
// (podmanHooksDir): the VM has no source tree to read the shipped one from.
func rootlessHooksDir(t *testing.T, e *rootlessEnv, viewsDir string) string {
	t.Helper()
	hook := map[string]any{
		"version": "1.0.0",
		"hook":    map[string]any{"path": e.corral, "args": []string{"corral", "hook", "--views", viewsDir}},
		"when":    map[string]any{"always": true},
		"stages":  []string{"createContainer"},
	}
	data, err := json.Marshal(hook)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "hooks.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corralfs.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// usrBoundRootfs is an empty root, owned by nobody, laid out for the
// host's /usr bound over its usr (merged /usr, as the VM's): the VM's
// procps free and busybox with their libraries, no copy.
func usrBoundRootfs(t *testing.T, e *rootlessEnv) string {
	t.Helper()
	rootfs := filepath.Join(e.dir, "rootfs")
	for _, d := range []string{"usr", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(rootfs, l)); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(rootfs, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, nobody, nobody)
		}
		return err
	})
	return rootfs
}
