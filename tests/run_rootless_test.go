package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/tests/testutil"
)

// Rootless corral (issue 16): an unprivileged user (nobody, 65534, with no
// subordinate ids: its own uid and gid are all it maps) runs containers.
// Everything it needs lives in a world-traversable directory of its own.

const nobody = 65534

// rootlessEnv is a directory tree owned by nobody with a copy of
// bin/corral, XDG_RUNTIME_DIR and HOME.
type rootlessEnv struct {
	dir, corral string
	// cgroup, if set, is the (v2) cgroup directory corral starts in.
	cgroup string
}

func newRootlessEnv(t *testing.T) *rootlessEnv {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "corral-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &rootlessEnv{dir: dir, corral: filepath.Join(dir, "corral")}
	data, err := os.ReadFile(testutil.Binary(t, "corral"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.corral, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(dir, d), nobody, nobody)
	}
	os.Chmod(dir, 0o755)
	return e
}

// run runs corral ARGS as nobody in dir/work (cwd), returning stdout,
// stderr and the exit status.
func (e *rootlessEnv) run(t *testing.T, cwd string, args ...string) runResult {
	t.Helper()
	return e.runArgv(t, cwd, append([]string{e.corral}, args...)...)
}

// runArgv runs any program as nobody, as run does corral.
func (e *rootlessEnv) runArgv(t *testing.T, cwd string, argv ...string) runResult {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cwd
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + filepath.Join(e.dir, "run"), "HOME=" + filepath.Join(e.dir, "home")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if e.cgroup != "" {
		cg, err := os.Open(e.cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cg.Fd())
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := runResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRunRootless: nobody runs a container on the default root; inside it
// is root (its own uid mapped to 0), outside it is nobody: a root-only
// host file in reach stays unreadable. The state lives under
// $XDG_RUNTIME_DIR/corral and nothing is left there. Without a delegated
// cgroup (cgroup v1 here) it warns that no limits apply. exec works.
func TestRunRootless(t *testing.T) {
	e := newRootlessEnv(t)
	secret := filepath.Join(e.dir, "secret")
	if err := os.WriteFile(secret, []byte("host-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, e.dir, "run", "--rm", "--views", "none", "--sysinfo", "off", "-v", secret+":/secret:ro", "--",
		"sh", "-c", "id -u; cat /proc/self/uid_map; cat /secret || echo refused")
	if r.code != 0 {
		t.Fatalf("rootless corral run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 5 || f[0] != "0" || strings.Join(f[1:4], " ") != "0 65534 1" || f[len(f)-1] != "refused" || strings.Contains(r.stdout, "host-secret") {
		t.Fatalf("want root inside mapped to 65534, the secret refused; got:\n%s\n%s", r.stdout, r.stderr)
	}
	if !cgroupV2Delegable() && !strings.Contains(r.stderr, "rootless: cannot create cgroup") {
		t.Errorf("no warning that the container runs without cgroup limits:\n%s", r.stderr)
	}
	// exec joins the rootless container's namespaces from inside its
	// user namespace (its pid namespace through a second fork).
	name := runName("rootless-exec")
	if r := e.run(t, e.dir, "run", "-d", "--views", "none", "--sysinfo", "off", "--name", name, "--", "sleep", "1000"); r.code != 0 {
		t.Fatalf("rootless run -d: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = e.run(t, e.dir, "exec", name, "sh", "-c", "id -u; for f in /proc/self/ns/pid /proc/1/ns/pid /proc/self/ns/mnt /proc/1/ns/mnt; do readlink $f; done")
	e.run(t, e.dir, "delete", "--force", name)
	os.Remove(filepath.Join(e.dir, "run", "corral", name+".log")) // run -d's output
	if f := strings.Fields(r.stdout); r.code != 0 || len(f) != 5 || f[0] != "0" || f[1] != f[2] || f[3] != f[4] {
		t.Errorf("rootless exec: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if ents, err := os.ReadDir(filepath.Join(e.dir, "run", "corral")); err != nil || len(ents) != 0 {
		t.Errorf("state root $XDG_RUNTIME_DIR/corral: %v, left: %v", err, ents)
	}
}

// TestRunRootlessDelegatedCgroup (cgroup v2: the VM): root delegates a
// cgroup to nobody, as systemd's Delegate=yes does; nobody's container in
// it gets its memory limit, and /proc/meminfo inside shows it through the
// views of the host's corralfs (busybox free takes its total from
// sysinfo(2), whose agent takes listeners from root only).
func TestRunRootlessDelegatedCgroup(t *testing.T) {
	testutil.RequireRoot(t)
	if !cgroupV2Delegable() {
		t.Skip("cgroup v1/hybrid: no delegation to users (TestRunRootless checks the warning); the cgroup v2 VM runs this")
	}
	testutil.RequireFUSE(t)
	e := newRootlessEnv(t)
	cg := e.delegateCgroup(t, "tests-rootless-deleg")
	mp := filepath.Join(e.dir, "views")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	startCorralfs(t, mp)
	bundle := rootlessBundle(t, e, cg.Path+"/ctr")
	r := e.run(t, bundle, "run", "--bundle", bundle, "--memory", "256m", "--memory-swap", "256m", "--views", mp, "--sysinfo", "off", "--name", runName("rootless"), "--rm", "--", "cat", "/proc/meminfo", "/sys/fs/cgroup/memory.max")
	if r.code != 0 {
		t.Fatalf("rootless corral run in a delegated cgroup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !regexp.MustCompile(`MemTotal:\s+262144 kB`).MatchString(r.stdout) || !strings.Contains(r.stdout, "\n268435456\n") {
		t.Fatalf("want MemTotal 262144 kB from the views and memory.max 268435456 in the delegated cgroup:\n%s", r.stdout)
	}
}

// rootlessBundle is `corral spec --rootless` run by nobody on a busybox
// root, with linux.cgroupsPath set.
func rootlessBundle(t *testing.T, e *rootlessEnv, cgroupsPath string, specPrefix ...string) string {
	t.Helper()
	bundle := filepath.Join(e.dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(testutil.StaticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "free", "id", "cat"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	os.Chown(bundle, nobody, nobody)
	if r := e.runArgv(t, bundle, append(specPrefix, e.corral, "spec", "--rootless")...); r.code != 0 {
		t.Fatalf("corral spec --rootless: %d %s", r.code, r.stderr)
	}
	var s specs.Spec
	file := filepath.Join(bundle, "config.json")
	data, err = os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.UIDMappings) != 1 || (s.Linux.UIDMappings[0].HostID != nobody && len(specPrefix) == 0) {
		t.Fatalf("corral spec --rootless: uidMappings %+v, want nobody's uid as 0", s.Linux.UIDMappings)
	}
	s.Linux.CgroupsPath = cgroupsPath
	s.Process.Terminal = false
	if data, err = json.Marshal(&s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// cgroupV2Delegable: a pure cgroup v2 host, where a cgroup can be handed
// to a user.
func cgroupV2Delegable() bool {
	return testutil.DetectCgroupMode() == testutil.CgroupModeV2
}

// TestRunRootlessCorralfs: corralfs without root. The user runs it in a
// user and mount namespace of its own (`unshare -Urm`: FUSE mounts are
// allowed there) and corral in the same namespaces, where it sees the
// mount; corral is rootless there (the root of a user namespace that is
// not the host's). Its container in a delegated cgroup (v2) reads its
// memory limit in /proc/meminfo. Needs a /dev/fuse users may open (Debian
// makes it 0666; the VM's is made so here, this sandbox's host keeps it
// root's).
func TestRunRootlessCorralfs(t *testing.T) {
	testutil.RequireRoot(t)
	if !cgroupV2Delegable() {
		t.Skip("cgroup v1/hybrid: no delegation to users; the cgroup v2 VM runs this")
	}
	testutil.RequireFUSE(t)
	unshare := testutil.RequireCommand(t, "unshare")
	if testutil.InVM() {
		os.Chmod("/dev/fuse", 0o666) // a throwaway VM: as Debian's udev rule makes it
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		t.Skip("/dev/fuse is not open to users here (a sandbox's host setting, not changed by tests)")
	}
	e := newRootlessEnv(t)
	cg := e.delegateCgroup(t, "tests-rootless-cfs")
	data, err := os.ReadFile(testutil.Binary(t, "corralfs"))
	if err != nil {
		t.Fatal(err)
	}
	corralfs := filepath.Join(e.dir, "corralfs")
	if err := os.WriteFile(corralfs, data, 0o755); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(e.dir, "views")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(mp, nobody, nobody)
	// The spec made where it runs: the namespace's root (0) is the one id
	// it can map.
	bundle := rootlessBundle(t, e, cg.Path+"/ctr", unshare, "-Ur")
	script := fmt.Sprintf(`%[1]s --control-socket "" --seccomp-socket= %[2]s > %[3]s/home/corralfs.log 2>&1 &
i=0; until grep -q " %[2]s " /proc/self/mountinfo; do i=$((i+1)); [ $i -gt 300 ] && { echo no mount; exit 9; }; sleep 0.1; done
%[4]s run --bundle %[5]s --memory 256m --memory-swap 256m --views %[2]s --sysinfo off --rm -- cat /proc/meminfo /sys/fs/cgroup/memory.max
rc=$?; kill %%1; wait; exit $rc`, corralfs, mp, e.dir, e.corral, bundle)
	r := e.runArgv(t, bundle, unshare, "-Urm", "--propagation", "private", "sh", "-c", script)
	if r.code != 0 {
		log, _ := os.ReadFile(filepath.Join(e.dir, "home", "corralfs.log"))
		t.Fatalf("rootless corralfs + corral: exit %d\n%s\n%s\ncorralfs:\n%s", r.code, r.stdout, r.stderr, log)
	}
	if !regexp.MustCompile(`MemTotal:\s+262144 kB`).MatchString(r.stdout) || !strings.Contains(r.stdout, "\n268435456\n") {
		t.Fatalf("want MemTotal 262144 kB from the rootless corralfs and memory.max 268435456:\n%s", r.stdout)
	}
}

// delegateCgroup makes /corral-test/NAME nobody's, as systemd's
// Delegate=yes does, and starts nobody's processes in its leaf "caller"
// (as in a user session): moving a container's init into a sibling needs
// write access to cgroup.procs of the common ancestor.
func (e *rootlessEnv) delegateCgroup(t *testing.T, name string) *testutil.Cgroup {
	t.Helper()
	cg := testutil.NewCgroup(t, name, testutil.CgroupLimits{})
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		if err := os.Chown(filepath.Join(cg.Dir(""), f), nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	e.cgroup = filepath.Join(cg.Dir(""), "caller")
	if err := os.Mkdir(e.cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	return cg
}

// TestRunRootlessSubordinateIDs: with ranges in /etc/subuid and /etc/subgid
// (edited in the VM only: the host's are not the tests' to change),
// newuidmap/newgidmap map them behind the user's own id: --userns=auto
// makes the user root and the range ids 1...; keep-id keeps the user's
// uid inside, root being the range's first id.
func TestRunRootlessSubordinateIDs(t *testing.T) {
	testutil.RequireRoot(t)
	if !testutil.InVM() {
		t.Skip("edits /etc/subuid and /etc/subgid: the cgroup v2 VM runs this")
	}
	testutil.RequireCommand(t, "newuidmap")
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := os.WriteFile(f, []byte("nobody:200000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f)
	}
	e := newRootlessEnv(t)
	r := e.run(t, e.dir, "run", "--rm", "--views", "none", "--sysinfo", "off", "--userns", "auto", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	if got := strings.Join(strings.Fields(r.stdout), " "); r.code != 0 || got != "0 65534 1 1 200000 65536 0 65534 1 1 200000 65536" {
		t.Fatalf("--userns=auto with subordinate ids: exit %d, maps %q\n%s", r.code, got, r.stderr)
	}
	r = e.run(t, e.dir, "run", "--rm", "--views", "none", "--sysinfo", "off", "--userns", "keep-id", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
	if f := strings.Fields(r.stdout); r.code != 0 || len(f) < 1 || f[0] != "65534" || !strings.Contains(strings.Join(f, " "), "65534 65534 1") {
		t.Fatalf("--userns=keep-id: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
