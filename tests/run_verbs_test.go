package tests

// The lifecycle a docker user expects (issue 18): logs -f, inspect with
// the exit code of a detached container, list columns, ps without an id,
// stop -t, OOM kills recorded and reported, delete removing the log.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// inspectOne runs `corral inspect ID` and decodes its single object.
func (e *runEnv) inspectOne(t *testing.T, id string) map[string]any {
	t.Helper()
	r := e.run(t, "inspect", id)
	var out []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 {
		t.Fatalf("inspect %s: exit %d, %q %q", id, r.code, r.stdout, r.stderr)
	}
	return out[0]
}

// waitExitRecorded polls inspect until the container's exit code is
// recorded and returns the inspect object.
func (e *runEnv) waitExitRecorded(t *testing.T, id string) map[string]any {
	t.Helper()
	var info map[string]any
	testutil.WaitFor(t, 30*time.Second, "the exit of "+id+" recorded", func() bool {
		info = e.inspectOne(t, id)
		return info["exitCode"] != nil
	})
	return info
}

func TestRunDetachedLogsInspectList(t *testing.T) {
	e := runNewEnv(t, false)
	name := e.detached(t, "logs", "--memory", "64m", "--", "sh", "-c", "echo out; echo err >&2; sleep 0.5; echo late; exit 3")
	r := e.run(t, "logs", "-f", name)
	if r.code != 0 || r.stdout != "out\nerr\nlate\n" {
		t.Errorf("logs -f: exit %d, %q (stderr %q); want out, err, late and a return when the container stops", r.code, r.stdout, r.stderr)
	}
	info := e.waitExitRecorded(t, name)
	if info["exitCode"] != 3.0 || info["status"] != "stopped" || info["oomKilled"] != false || info["started"] == nil || info["finished"] == nil {
		t.Errorf("inspect of a detached container that exited 3: %v", info)
	}
	if lim, _ := info["limits"].(map[string]any); lim["memoryBytes"] != float64(64<<20) {
		t.Errorf("inspect limits: %v", info["limits"])
	}
	for _, verb := range [][]string{{"list"}, {"ps"}} {
		out := e.run(t, verb...).stdout
		row := lineWith(out, name)
		for _, want := range []string{"host (default root)", "sh -c echo out", "exited (3)", "mem=64MiB"} {
			if !strings.Contains(row, want) {
				t.Errorf("corral %s: the row of %s lacks %q:\n%s", verb[0], name, want, out)
			}
		}
	}
	if r := e.run(t, "delete", name); r.code != 0 {
		t.Fatalf("delete: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.root, name+".log")); err == nil {
		t.Errorf("delete left the container's log")
	}
}

func TestRunStop(t *testing.T) {
	e := runNewEnv(t, false)
	// sh traps SIGTERM: stop returns as soon as it exits.
	trap := e.detached(t, "stoptrap", "--", "sh", "-c", `trap "exit 7" TERM; while :; do sleep 0.1; done`)
	// sleep as PID 1 has no handler: SIGTERM never reaches it, SIGKILL does.
	deaf := e.detached(t, "stopdeaf", "--", "sleep", "600")
	deaf2 := e.detached(t, "stopdeaf", "--", "sleep", "600")
	start := time.Now()
	if r := e.run(t, "stop", "-t", "20", trap); r.code != 0 || strings.TrimSpace(r.stdout) != trap {
		t.Fatalf("stop: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stop of a container that handles SIGTERM took %v", took)
	}
	if info := e.waitExitRecorded(t, trap); info["exitCode"] != 7.0 {
		t.Errorf("exit code after stop: %v, want 7 (its TERM trap)", info["exitCode"])
	}
	// Two at once wait out one grace period, not two in a row.
	start = time.Now()
	if r := e.run(t, "stop", "--time", "2", deaf, deaf2); r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
		t.Fatalf("stop -t 2 of two containers: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if took := time.Since(start); took < 2*time.Second || took > 3500*time.Millisecond {
		t.Errorf("stop -t 2 of two containers that ignore SIGTERM took %v, want one grace period (2 s)", took)
	}
	for _, id := range []string{deaf, deaf2} {
		if info := e.waitExitRecorded(t, id); info["exitCode"] != 137.0 {
			t.Errorf("exit code of %s after SIGKILL: %v, want 137", id, info["exitCode"])
		}
	}
}

// TestRunOOMReported: an OOM kill is recorded for a detached container
// and said once on stderr by an attached run.
func TestRunOOMReported(t *testing.T) {
	e := runNewEnv(t, false)
	// tail of /dev/zero buffers one endless line: it grows until killed.
	oom := []string{"--memory", "32m", "--memory-swap", "32m", "--", "tail", "/dev/zero"}
	name := e.detached(t, "oomd", oom...)
	if info := e.waitExitRecorded(t, name); info["exitCode"] != 137.0 || info["oomKilled"] != true {
		t.Errorf("detached OOM kill: exitCode %v oomKilled %v, want 137 true", info["exitCode"], info["oomKilled"])
	}
	r := e.run(t, append(append(e.runFlags(), "--name", runName("oom")), oom...)...)
	if r.code != 137 || strings.Count(r.stderr, "OOM killer") != 1 || !strings.Contains(r.stderr, "memory limit 32MiB") {
		t.Errorf("attached OOM kill: exit %d, stderr %q; want 137 and one line naming the OOM killer and the limit", r.code, r.stderr)
	}
}
