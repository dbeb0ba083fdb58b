package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRuntimeLifecycle drives one container through every verb as podman
// and containerd do: create (pid file), state, start, exec, ps, pause,
// resume, update, kill, delete; and checks nothing is left.
func TestRuntimeLifecycle(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("life")
	b := e.bundle(id, rtSpec(id, "sleep", "1000"))
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.create(id, b, "--pid-file", pidFile)

	st := e.state(id)
	if st.Status != "created" || st.Pid <= 0 || st.ID != id || st.Bundle != b {
		t.Fatalf("after create: %+v", st)
	}
	pidData, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(pidData)) != strconv.Itoa(st.Pid) {
		t.Errorf("pid file %q (%v), state pid %d", pidData, err, st.Pid)
	}
	// The init waits in the container already: in its cgroup, with the
	// runtime binary (not yet the user's program) as its executable.
	procs, _ := os.ReadFile(rtCgroupFile(id, "memory", "cgroup.procs", "cgroup.procs"))
	if !strings.Contains(string(procs), strconv.Itoa(st.Pid)) {
		t.Errorf("init %d not in its cgroup: %q", st.Pid, procs)
	}

	e.must("start", id)
	if st := e.state(id); st.Status != "running" {
		t.Fatalf("after start: %s", st.Status)
	}
	if r := e.corral("start", id); r.code == 0 || !strings.Contains(r.stderr, "cannot start") {
		t.Errorf("second start: %v", r)
	}

	if out := e.must("exec", id, "echo", "hello from exec"); out != "hello from exec\n" {
		t.Errorf("exec output %q", out)
	}
	if r := e.corral("exec", id, "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exec exit status: %v", r)
	}
	if r := e.corral("exec", id, "--", "sh", "-c", "ps -o pid,comm | sed -n 2p"); r.code != 0 || strings.Fields(r.stdout)[0] != "1" {
		t.Errorf("exec sees pid 1 first: %v", r)
	}

	var pids []int
	if err := json.Unmarshal([]byte(e.must("ps", "--format", "json", id)), &pids); err != nil || len(pids) != 1 || pids[0] != st.Pid {
		t.Errorf("ps --format json: %v %v (init %d)", pids, err, st.Pid)
	}
	if out := e.must("ps", id); !strings.Contains(out, "sleep 1000") || !strings.Contains(out, "PID") {
		t.Errorf("ps table: %q", out)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.must("list", "--format", "json")), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Errorf("list: %v %v", list, err)
	}
	if out := e.must("list", "-q"); out != id+"\n" {
		t.Errorf("list -q: %q", out)
	}

	e.must("pause", id)
	if st := e.state(id); st.Status != "paused" {
		t.Errorf("after pause: %s", st.Status)
	}
	if r := e.corral("exec", id, "true"); r.code == 0 || !strings.Contains(r.stderr, "paused") {
		t.Errorf("exec in paused container: %v", r)
	}
	e.must("resume", id)
	if st := e.state(id); st.Status != "running" {
		t.Errorf("after resume: %s", st.Status)
	}

	e.must("update", "--memory", "64m", "--pids-limit", "50", id)
	mem := rtCgroupFile(id, "memory", "memory.limit_in_bytes", "memory.max")
	if got := rtReadTrim(t, mem); got != strconv.Itoa(64<<20) {
		t.Errorf("%s = %s after update --memory 64m", mem, got)
	}
	if got := rtReadTrim(t, rtCgroupFile(id, "pids", "pids.max", "pids.max")); got != "50" {
		t.Errorf("pids.max = %s after update", got)
	}
	// One size grammar: update takes what `run -m` takes (1.5g, 96MiB).
	e.must("update", "--memory", "0.125g", id)
	if got := rtReadTrim(t, mem); got != strconv.Itoa(128<<20) {
		t.Errorf("%s = %s after update --memory 0.125g", mem, got)
	}
	res := filepath.Join(t.TempDir(), "res.json")
	os.WriteFile(res, []byte(`{"memory":{"limit":100663296}}`), 0o644)
	e.must("update", "--resources", res, id)
	if got := rtReadTrim(t, mem); got != "100663296" {
		t.Errorf("%s = %s after update --resources", mem, got)
	}

	if r := e.corral("delete", id); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("delete of a running container: %v", r)
	}
	e.must("kill", id, "KILL")
	e.waitStatus(id, "stopped", 10*time.Second)
	if st := e.state(id); st.Pid != 0 {
		t.Errorf("stopped container still reports pid %d", st.Pid)
	}
	e.must("delete", id)
	if r := e.corral("state", id); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("state after delete: %v", r)
	}
}

// TestRuntimeKillSignals: names with and without SIG and numbers reach the
// process; --all reaches every process of the container.
func TestRuntimeKillSignals(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("kill")
	// PID 1 ignores signals it has no handler for, so trap them.
	script := `trap 'echo got USR1' USR1; trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done`
	b := e.bundle(id, rtSpec(id, "sh", "-c", script))
	out := e.create(id, b)
	e.must("start", id)
	rtWaitFile(t, out, "ready")
	// One at a time: a second USR1 sent while the first is pending merges
	// with it.
	for i, name := range []string{"USR1", "SIGUSR1", "10"} {
		e.must("kill", id, name)
		rtWaitFile(t, out, strings.Repeat("got USR1\n", i+1))
	}
	if r := e.corral("kill", id, "NOSUCH"); r.code == 0 || !strings.Contains(r.stderr, "unknown signal") {
		t.Errorf("unknown signal: %v", r)
	}
	// Detached: its stdio must not be our pipes (it outlives the call).
	execPidFile := filepath.Join(t.TempDir(), "exec.pid")
	if r := e.corralWith(func(c *exec.Cmd) { c.Stdout, c.Stderr = nil, nil }, "exec", "-d", "--pid-file", execPidFile, id, "sleep", "1000"); r.code != 0 {
		t.Fatalf("exec -d: %v", r)
	}
	execPid, _ := strconv.Atoi(rtReadTrim(t, execPidFile))
	var pids []int
	json.Unmarshal([]byte(e.must("ps", "--format", "json", id)), &pids)
	if !slices.Contains(pids, execPid) || !slices.Contains(pids, e.state(id).Pid) {
		t.Fatalf("ps: want init and the detached exec %d, got %v", execPid, pids)
	}
	e.must("kill", "--all", id, "KILL")
	e.waitStatus(id, "stopped", 10*time.Second)
	if r := e.corral("kill", id, "KILL"); r.code == 0 || !strings.Contains(r.stderr, "stopped") {
		t.Errorf("kill of a stopped container: %v", r)
	}
	e.must("delete", id)
	data, _ := os.ReadFile(out)
	if n := strings.Count(string(data), "got USR1"); n != 3 {
		t.Errorf("USR1 by name, SIG name and number: %d deliveries in %q", n, data)
	}
}

// TestRuntimeDeleteForce removes a running container with everything in it.
func TestRuntimeDeleteForce(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("force")
	b := e.bundle(id, rtSpec(id, "sh", "-c", "sleep 1000 & sleep 1000"))
	e.create(id, b)
	e.must("start", id)
	e.must("pause", id)
	e.must("delete", "--force", id)
	if r := e.corral("state", id); r.code == 0 {
		t.Errorf("state after delete --force: %v", r)
	}
	// A created (never started) container is deleted without --force.
	id2 := rtID("created")
	b2 := e.bundle(id2, rtSpec(id2, "true"))
	e.create(id2, b2)
	pid := e.state(id2).Pid
	e.must("delete", id2)
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Errorf("init %d of the deleted created container still runs", pid)
		}
	}
	// delete --force of an unknown id is not an error (runc behaves so).
	e.must("delete", "--force", "rt-no-such-container")
}

func rtReadTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// rtWaitFile waits until file contains s.
func rtWaitFile(t *testing.T, file, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q: %q", file, s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
