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

// TestRunRmLeavesNothing: 50 (10 in the VM) `corral run --rm` in a row leave no state,
// cgroup or mount behind (runNewEnv's cleanup checks all three). The
// average wall time of one run is logged, not asserted.
func TestRunRmLeavesNothing(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	n := testutil.Repeat(50, 10)
	var total time.Duration
	for i := 0; i < n; i++ {
		r := e.run(t, append(e.runFlags(), "--rootfs", root, "--name", runName("rm"), "--", "true")...)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, r.code, r.stderr)
		}
		total += r.took
	}
	t.Logf("corral run --rm true (busybox rootfs): %v per run on average over %d", total/time.Duration(n), n)
	e.checkNoLeftovers(t)

	// The same on the default root.
	total = 0
	for i := 0; i < 5; i++ {
		r := e.run(t, append(e.runFlags(), "--name", runName("rmdef"), "--", "true")...)
		if r.code != 0 {
			t.Fatalf("default root run %d: exit %d: %s", i, r.code, r.stderr)
		}
		total += r.took
	}
	t.Logf("corral run --rm true (default root): %v per run on average over 5", total/5)
}

// TestRunKeepWithoutRm: without --rm the stopped container stays until
// `corral delete`, which then removes everything.
func TestRunKeepWithoutRm(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	name := runName("keep")
	r := e.run(t, "run", "--views", "none", "--sysinfo", "off", "--rootfs", root, "--name", name, "--", "sh", "-c", "exit 7")
	if r.code != 7 {
		t.Fatalf("exit %d, want 7: %s", r.code, r.stderr)
	}
	st := runState(t, e, name)
	if st["status"] != "stopped" {
		t.Errorf("state %v, want stopped", st)
	}
	// The name is taken until deleted.
	r = e.run(t, "run", "--views", "none", "--rootfs", root, "--name", name, "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("reusing a name: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run(t, "delete", name); r.code != 0 {
		t.Fatalf("delete: %d %s", r.code, r.stderr)
	}
}

// TestRunDetach: -d prints the id and returns while the container runs;
// with --rm the container is deleted once it exits, by nobody's hand.
func TestRunDetach(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	name := runName("detach")
	r := e.run(t, "run", "-d", "--rm", "--views", "none", "--sysinfo", "off", "--rootfs", root, "--name", name, "--", "sh", "-c", "echo out; sleep 1")
	if r.code != 0 || strings.TrimSpace(r.stdout) != name {
		t.Fatalf("run -d: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if st := runState(t, e, name); st["status"] != "running" {
		t.Errorf("right after run -d: %v, want running", st)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(e.root, name)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("detached --rm container %s still there 15 s later", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(e.root, name+".log")); !os.IsNotExist(err) {
		t.Errorf("the detached container's log survived --rm: %v", err)
	}
}

// TestRunBundle: --bundle takes config.json (from `corral spec`) and the
// command line's command and limits win over it.
func TestRunBundle(t *testing.T) {
	e := runNewEnv(t, false)
	bundle := t.TempDir()
	if r := e.run(t, "spec", "--bundle", bundle); r.code != 0 {
		t.Fatalf("corral spec: %d %s", r.code, r.stderr)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Rename(runBusybox(t), rootfs); err != nil {
		t.Fatal(err)
	}
	limitFile := "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		limitFile = "/sys/fs/cgroup/memory.max"
	}
	out := e.sh(t, []string{"--bundle", bundle, "--memory", "64m"}, "cat "+limitFile)
	runExpectEqual(t, out, "67108864")
	// Without a command, the bundle's own process runs: give it one that
	// needs no terminal (`corral spec` writes an interactive sh).
	cfgPath := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"sh", "-c", "echo from-bundle; exit 4"}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, append(e.runFlags(), "--name", runName("bundle"), "--bundle", bundle)...)
	if r.code != 4 || strings.TrimSpace(r.stdout) != "from-bundle" {
		t.Errorf("bundle's own command: exit %d stdout %q stderr %q; want 4 and from-bundle", r.code, r.stdout, r.stderr)
	}
}

// TestRunStats: `corral stats --no-stream` shows a running container's
// limits and usage, as a table and as JSON.
func TestRunStats(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	name := runName("stats")
	r := e.run(t, "run", "-d", "--views", "none", "--sysinfo", "off", "--rootfs", root, "--name", name,
		"--memory", "64m", "--pids-limit", "50", "--", "sh", "-c", "while :; do :; done")
	if r.code != 0 {
		t.Fatalf("run -d: %d %s", r.code, r.stderr)
	}
	defer func() {
		if r := e.run(t, "delete", "--force", name); r.code != 0 {
			t.Errorf("delete --force: %d %s", r.code, r.stderr)
		}
		os.Remove(filepath.Join(e.root, name+".log"))
	}()
	r = e.run(t, "stats", "--no-stream", "--format", "json", name)
	if r.code != 0 {
		t.Fatalf("stats: %d %s", r.code, r.stderr)
	}
	var rows []struct {
		ID         string  `json:"id"`
		CPUPercent float64 `json:"cpu_percent"`
		MemUsage   uint64  `json:"memory_usage_bytes"`
		MemLimit   uint64  `json:"memory_limit_bytes"`
		Pids       uint64  `json:"pids"`
		PidsLimit  *uint64 `json:"pids_limit"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("stats json %q: %v", r.stdout, err)
	}
	row := rows[0]
	if row.ID != name || row.MemLimit != 64<<20 || row.MemUsage == 0 || row.Pids < 1 || row.PidsLimit == nil || *row.PidsLimit != 50 {
		t.Errorf("stats row %+v", row)
	}
	// A busy loop: close to one full CPU. Only sanity is checked (some use,
	// and not more than the host's two CPUs could give: emulated clocks in
	// the VM skew a one-second reading); the share is not asserted.
	if row.CPUPercent < 5 || row.CPUPercent > 200 {
		t.Errorf("busy loop at %.1f%% CPU", row.CPUPercent)
	}
	r = e.run(t, "stats", "--no-stream", name)
	if r.code != 0 || !strings.Contains(r.stdout, "CONTAINER ID") || !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "64MiB") {
		t.Errorf("stats table: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.run(t, "stats", "--no-stream", "no-such-container"); r.code == 0 {
		t.Error("stats of an unknown container succeeded")
	}
}

// runState returns `corral state NAME` as a map.
func runState(t *testing.T, e *runEnv, name string) map[string]any {
	t.Helper()
	r := e.run(t, "state", name)
	if r.code != 0 {
		t.Fatalf("state %s: %d %s", name, r.code, r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("state json %q: %v", r.stdout, err)
	}
	return st
}
