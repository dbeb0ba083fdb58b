package tests

// Helpers of the OCI runtime integration tests (runtime_*_test.go). They
// drive the real bin/corral through its runc-compatible verbs on OCI
// bundles with a busybox rootfs; every container's cgroup lives under
// /corral-test (absolute, from each hierarchy's root) and is checked gone.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rtEnv is one test's corral with its own --root.
type rtEnv struct {
	t    *testing.T
	bin  string
	root string
	ids  []string
}

func rtNewEnv(t *testing.T) *rtEnv {
	t.Helper()
	testutil.RequireRoot(t)
	e := &rtEnv{t: t, bin: testutil.Binary(t, "corral"), root: t.TempDir()}
	t.Cleanup(func() {
		for _, id := range e.ids {
			e.corral("delete", "--force", id)
		}
		e.checkNoLeftovers()
		testutil.RemoveEmptyTestParents()
	})
	return e
}

// rtResult is one corral invocation.
type rtResult struct {
	stdout, stderr string
	code           int
}

func (r rtResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// corral runs bin/corral --root ROOT ARGS with stdin from /dev/null.
func (e *rtEnv) corral(args ...string) rtResult {
	return e.corralWith(nil, args...)
}

// corralWith runs corral with cmd prepared by prep (stdio, extra files).
func (e *rtEnv) corralWith(prep func(*exec.Cmd), args ...string) rtResult {
	cmd := exec.Command(e.bin, append([]string{"--root", e.root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A detached process may inherit our output pipes: do not wait for
	// their EOF forever once corral itself has exited.
	cmd.WaitDelay = 5 * time.Second
	if prep != nil {
		prep(cmd)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatalf("corral %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return rtResult{out.String(), errb.String(), code}
}

// must runs corral and fails the test unless it exits 0.
func (e *rtEnv) must(args ...string) string {
	e.t.Helper()
	r := e.corral(args...)
	if r.code != 0 {
		e.t.Fatalf("corral %v: %v", args, r)
	}
	return r.stdout
}

var rtSeq atomic.Int64

// rtID returns a container id unique to this test binary.
func rtID(what string) string {
	return fmt.Sprintf("rt-%d-%s-%d", os.Getpid(), what, rtSeq.Add(1))
}

// rtCgroupPath is where the tests put a container's cgroup.
func rtCgroupPath(id string) string { return "/corral-test/" + id }

// rtSpec is corral's default spec for a busybox rootfs: no terminal, a
// writable root, the cgroup under /corral-test.
func rtSpec(id string, args ...string) *specs.Spec {
	s := runtime.DefaultSpec()
	s.Process.Terminal = false
	s.Process.Args = args
	s.Root.Readonly = false
	s.Linux.CgroupsPath = rtCgroupPath(id)
	return s
}

// bundle writes a bundle (busybox rootfs + config.json from spec) and
// registers id for cleanup.
func (e *rtEnv) bundle(id string, spec *specs.Spec) string {
	e.t.Helper()
	dir := e.t.TempDir()
	rootfs := testutil.BusyboxRootfs(e.t)
	spec.Root.Path = rootfs
	e.writeSpec(dir, spec)
	e.ids = append(e.ids, id)
	return dir
}

func (e *rtEnv) writeSpec(dir string, spec *specs.Spec) {
	e.t.Helper()
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// create runs `corral create` with the container's stdout and stderr going
// to a file, returned for reading later.
func (e *rtEnv) create(id, bundle string, extra ...string) string {
	e.t.Helper()
	out := filepath.Join(e.t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	args := append([]string{"create", "--bundle", bundle}, extra...)
	r := e.corralWith(func(c *exec.Cmd) { c.Stdout, c.Stderr = f, f }, append(args, id)...)
	if r.code != 0 {
		data, _ := os.ReadFile(out)
		e.t.Fatalf("create %s: exit %d: %s", id, r.code, data)
	}
	return out
}

// run creates and starts a container and waits until it stopped; it
// returns what the container printed.
func (e *rtEnv) run(id string, spec *specs.Spec) string {
	e.t.Helper()
	return e.runBundle(id, e.bundle(id, spec))
}

// runBundle is run on a bundle made already.
func (e *rtEnv) runBundle(id, b string) string {
	e.t.Helper()
	out := e.create(id, b)
	e.must("start", id)
	e.waitStatus(id, "stopped", 30*time.Second)
	data, _ := os.ReadFile(out)
	e.must("delete", id)
	return string(data)
}

// state returns `corral state ID`.
func (e *rtEnv) state(id string) runtime.State {
	e.t.Helper()
	var st runtime.State
	if err := json.Unmarshal([]byte(e.must("state", id)), &st); err != nil {
		e.t.Fatalf("state %s: %v", id, err)
	}
	return st
}

func (e *rtEnv) waitStatus(id, status string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.state(id)
		if string(st.Status) == status {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s: status %s after %v, want %s", id, st.Status, timeout, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rtCgroupDirs are the directories a cgroup path has on this host: one per
// v1 hierarchy, or one in the v2 tree.
func rtCgroupDirs(cgPath string) []string {
	if testutil.DetectCgroupMode() == testutil.CgroupModeV2 {
		return []string{filepath.Join("/sys/fs/cgroup", cgPath)}
	}
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		if e.Name() == "unified" {
			continue
		}
		out = append(out, filepath.Join("/sys/fs/cgroup", e.Name(), cgPath))
	}
	return out
}

// rtCgroupFile is a control file of a container's cgroup: the v1 file in
// the named controller's hierarchy, or the v2 file.
func rtCgroupFile(id, v1ctrl, v1file, v2file string) string {
	if testutil.DetectCgroupMode() == testutil.CgroupModeV2 {
		return filepath.Join("/sys/fs/cgroup", rtCgroupPath(id), v2file)
	}
	return filepath.Join("/sys/fs/cgroup", v1ctrl, rtCgroupPath(id), v1file)
}

// checkNoLeftovers: no state, no cgroup of ours, no mount naming our root.
func (e *rtEnv) checkNoLeftovers() {
	ents, _ := os.ReadDir(e.root)
	for _, ent := range ents {
		e.t.Errorf("leftover state: %s", filepath.Join(e.root, ent.Name()))
	}
	for _, id := range e.ids {
		for _, d := range rtCgroupDirs(rtCgroupPath(id)) {
			if _, err := os.Stat(d); err == nil {
				e.t.Errorf("leftover cgroup %s", d)
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(b, []byte("/rt-")) {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, fmt.Sprintf("rt-%d-", os.Getpid())) {
				e.t.Errorf("leftover mount: %s", l)
			}
		}
	}
}

// rtLines turns KEY=VALUE lines into a map.
func rtLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func rtRead(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
