package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunRuncForm: `corral run [--bundle DIR] ID`, as scripts written for
// runc call it, runs the bundle's config.json under ID with the caller's
// stdio, returns the container's exit status and deletes it; from the
// bundle directory without --bundle too; --keep keeps it; --detach with
// --pid-file returns with it running. Corral-only flags are refused.
func TestRunRuncForm(t *testing.T) {
	e := rtNewEnv(t)

	id := rtID("runcform")
	b := e.bundle(id, rtSpec(id, "sh", "-c", "echo from-bundle; exit 3"))
	r := e.corral("run", "--bundle", b, id)
	if r.code != 3 || strings.TrimSpace(r.stdout) != "from-bundle" {
		t.Errorf("run --bundle B ID: %v; want exit 3 and from-bundle", r)
	}
	if r := e.corral("state", id); r.code == 0 {
		t.Errorf("the container is still there after run without --keep: %v", r)
	}

	// From the bundle directory, runc's default bundle.
	id2 := rtID("runcform-cwd")
	b2 := e.bundle(id2, rtSpec(id2, "sh", "-c", "echo cwd-bundle"))
	r = e.corralWith(func(c *exec.Cmd) { c.Dir = b2 }, "run", id2)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "cwd-bundle" {
		t.Errorf("run ID in the bundle directory: %v", r)
	}

	// --keep: stopped and still listed; then deleted by hand.
	id3 := rtID("runcform-keep")
	b3 := e.bundle(id3, rtSpec(id3, "true"))
	if r := e.corral("run", "--keep", "-b", b3, id3); r.code != 0 {
		t.Fatalf("run --keep: %v", r)
	}
	if st := e.state(id3); st.Status != "stopped" {
		t.Errorf("after run --keep: status %s, want stopped", st.Status)
	}
	e.must("delete", id3)

	// --detach --pid-file: returns at once with the container running.
	id4 := rtID("runcform-detach")
	b4 := e.bundle(id4, rtSpec(id4, "sleep", "1000"))
	pidFile := t.TempDir() + "/pid"
	start := time.Now()
	// The detached container keeps the stdio it was given: a file, not
	// our pipes.
	logf, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	toLog := func(c *exec.Cmd) { c.Stdout, c.Stderr = logf, logf }
	if r := e.corralWith(toLog, "run", "-d", "--pid-file", pidFile, "--bundle", b4, id4); r.code != 0 {
		t.Fatalf("run -d: %v", r)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("run -d took %v: it waited for the container", took)
	}
	st := e.state(id4)
	data, _ := os.ReadFile(pidFile)
	if st.Status != "running" || strconv.Itoa(st.Pid) != string(data) {
		t.Errorf("after run -d: status %s pid %d, pid file %q", st.Status, st.Pid, data)
	}
	e.must("delete", "--force", id4)

	// corral's own flags do not apply to a config.json run as it is.
	if r := e.corral("run", "--bundle", b, "--memory", "64m", id); r.code == 0 || !strings.Contains(r.stderr, "--memory") {
		t.Errorf("run --memory in runc's form: %v; want an error naming --memory", r)
	}
	// After `--` a single word is a command, on the bundle's spec.
	r = e.corral("run", "--rm", "--views", "none", "--sysinfo", "off", "--name", rtID("runcform-cmd"), "--bundle", b, "--", "true")
	if r.code != 0 {
		t.Errorf("run --bundle B -- true: %v", r)
	}
}
