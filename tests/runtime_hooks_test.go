package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeHooks: every OCI hook stage runs once, at its moment, with
// the state on stdin (status as the spec says), and createContainer runs in
// the container's mount namespace, startContainer inside the container.
func TestRuntimeHooks(t *testing.T) {
	e := rtNewEnv(t)
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook.sh")
	// $1 = stage: save the state and the mount namespace it ran in.
	os.WriteFile(hook, []byte("#!/bin/sh\ncat > \""+dir+"/$1.json\"\nreadlink /proc/self/ns/mnt > \""+dir+"/$1.mnt\"\n"), 0o755)
	h := func(stage string) []specs.Hook {
		return []specs.Hook{{Path: hook, Args: []string{"hook.sh", stage}, Env: []string{"PATH=/usr/bin:/bin"}}}
	}
	id := rtID("hooks")
	s := rtSpec(id, "sh", "-c", "cat /startcontainer; sleep 1000")
	s.Hooks = &specs.Hooks{
		Prestart: h("prestart"), CreateRuntime: h("createRuntime"), CreateContainer: h("createContainer"),
		// Runs inside the container: a path in its rootfs.
		StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /startcontainer"}}},
		Poststart:      h("poststart"), Poststop: h("poststop"),
	}
	b := e.bundle(id, s)
	out := e.create(id, b)
	pid := e.state(id).Pid
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	ctrMnt, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	for _, st := range []string{"prestart", "createRuntime", "createContainer"} {
		s := rtHookState(t, dir, st)
		if s.Status != specs.StateCreating || s.ID != id || s.Pid != pid || s.Bundle != b {
			t.Errorf("%s hook got %+v", st, s)
		}
	}
	if m := rtReadTrim(t, filepath.Join(dir, "createRuntime.mnt")); m != hostMnt {
		t.Errorf("createRuntime ran in %s, want the runtime's %s", m, hostMnt)
	}
	if m := rtReadTrim(t, filepath.Join(dir, "createContainer.mnt")); m != ctrMnt || m == hostMnt {
		t.Errorf("createContainer ran in %s, want the container's %s", m, ctrMnt)
	}
	if _, err := os.Stat(filepath.Join(dir, "poststart.json")); err == nil {
		t.Error("poststart ran before start")
	}
	e.must("start", id)
	rtWaitFile(t, out, `"status":"created"`)
	if s := rtHookState(t, dir, "poststart"); s.Status != specs.StateRunning || s.Pid != pid {
		t.Errorf("poststart hook got %+v", s)
	}
	e.must("delete", "--force", id)
	if s := rtHookState(t, dir, "poststop"); s.Status != specs.StateStopped || s.ID != id {
		t.Errorf("poststop hook got %+v", s)
	}
}

// TestRuntimeFailingHook: a createRuntime hook that fails fails create,
// with its message, and leaves nothing.
func TestRuntimeFailingHook(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("badhook")
	s := rtSpec(id, "true")
	s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no views for you >&2; exit 3"}}}}
	b := e.bundle(id, s)
	r := e.corral("create", "--bundle", b, id)
	if r.code == 0 || !strings.Contains(r.stderr, "createRuntime hook") || !strings.Contains(r.stderr, "no views for you") {
		t.Errorf("create with a failing hook: %v", r)
	}
	// A hook that hangs is killed at its timeout.
	id2 := rtID("slowhook")
	s2 := rtSpec(id2, "true")
	one := 1
	s2.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "100"}, Timeout: &one}}}
	began := time.Now()
	r = e.corral("create", "--bundle", e.bundle(id2, s2), id2)
	if r.code == 0 || !strings.Contains(r.stderr, "timed out") || time.Since(began) > 20*time.Second {
		t.Errorf("create with a hanging hook: %v after %v", r, time.Since(began))
	}
}

func rtHookState(t *testing.T, dir, stage string) specs.State {
	t.Helper()
	var s specs.State
	data, err := os.ReadFile(filepath.Join(dir, stage+".json"))
	if err != nil {
		t.Fatalf("%s hook did not run: %v", stage, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s hook state %q: %v", stage, data, err)
	}
	return s
}
