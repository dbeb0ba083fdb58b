package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestPodmanCorralRuntime: podman, through conmon, drives bin/corral as
// its OCI runtime: create/start (run), exit status, the memory limit in
// the container's cgroup, exec, pause/unpause, kill, stop, rm -f, and a
// pty through the console socket (run -t).
func TestPodmanCorralRuntime(t *testing.T) {
	e := newPodmanEnv(t, testutil.Binary(t, "corral"))

	if out := e.must(e.runArgs("--rm", e.image, "echo", "hello from corral")...); strings.TrimSpace(out) != "hello from corral" {
		t.Errorf("podman run --rm echo: %q", out)
	}
	out, err := e.podmanCmd(60*time.Second, nil, e.runArgs("--rm", e.image, "sh", "-c", "exit 7")...)
	if exitCode(err) != 7 {
		t.Errorf("podman run sh -c 'exit 7': exit %d (%v), want 7\n%s", exitCode(err), err, out)
	}

	// A pty: conmon passes --console-socket and gets the master back.
	out = e.must(e.runArgs("--rm", "-t", e.image, "sh", "-c", "tty; stty size")...)
	if !strings.HasPrefix(strings.TrimSpace(out), "/dev/pts/") {
		t.Errorf("podman run -t: tty says %q, want /dev/pts/N", out)
	}

	// A long-running container: its cgroup limit, exec, pause/unpause, kill.
	id := strings.TrimSpace(e.must(e.runArgs("-d", "--memory", "256m", e.image, "sleep", "600")...))
	pid, err := strconv.Atoi(strings.TrimSpace(e.must("inspect", "--format", "{{.State.Pid}}", id)))
	if err != nil {
		t.Fatal(err)
	}
	if got := hostMemoryLimit(t, pid); got != strconv.Itoa(256<<20) {
		t.Errorf("memory limit of the container's cgroup: %q, want %d", got, 256<<20)
	}
	if out := e.must("exec", id, "sh", "-c", "echo $$ ; ps -o pid,comm"); !strings.Contains(out, "sleep") {
		t.Errorf("podman exec: ps inside does not show the container's sleep:\n%s", out)
	}
	e.must("pause", id)
	if st := e.status(id); st != "paused" {
		t.Errorf("after podman pause: status %q", st)
	}
	e.must("unpause", id)
	if st := e.status(id); st != "running" {
		t.Errorf("after podman unpause: status %q", st)
	}
	if out := e.must("exec", id, "echo", "still here"); strings.TrimSpace(out) != "still here" {
		t.Errorf("podman exec after unpause: %q", out)
	}
	e.must("kill", id)
	e.waitExited(id, 137)
	e.must("rm", id)

	// stop: SIGTERM (ignored by a PID 1 without a handler), then SIGKILL.
	id = strings.TrimSpace(e.must(e.runArgs("-d", e.image, "sleep", "600")...))
	e.must("stop", "--time", "1", id)
	e.waitExited(id, 137)
	// A shell that traps SIGTERM exits by itself on stop.
	id2 := strings.TrimSpace(e.must(e.runArgs("-d", e.image, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done")...))
	time.Sleep(300 * time.Millisecond) // the trap is set before the shell loops
	e.must("stop", "--time", "10", id2)
	e.waitExited(id2, 42)

	// rm -f of a running container.
	id3 := strings.TrimSpace(e.must(e.runArgs("-d", e.image, "sleep", "600")...))
	e.must("rm", "--force", id3)
	if out := e.must("ps", "--all", "--quiet", "--no-trunc"); strings.Contains(out, id3) {
		t.Errorf("podman rm -f left %s behind:\n%s", id3, out)
	}
}

// hostMemoryLimit reads, from the host, the memory limit of pid's cgroup
// (memory.limit_in_bytes on v1/hybrid, memory.max on v2). Read from the
// host: podman on cgroup v1 gives the container no cgroup namespace.
func hostMemoryLimit(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case testutil.DetectCgroupMode() == testutil.CgroupModeV2 && parts[0] == "0":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "memory.max")
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			file = filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes")
		default:
			continue
		}
		v, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(v))
	}
	t.Fatalf("no memory cgroup for pid %d:\n%s", pid, raw)
	return ""
}

// status is podman's view of the container's state.
func (e *podmanEnv) status(id string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must("inspect", "--format", "{{.State.Status}}", id))
}

// waitExited waits until the container exited with code.
func (e *podmanEnv) waitExited(id string, code int) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := strings.TrimSpace(e.must("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", id))
		if out == "exited "+strconv.Itoa(code) {
			return
		}
		if strings.HasPrefix(out, "exited") || time.Now().After(deadline) {
			e.t.Fatalf("container %s: %q, want exited %d", id, out, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
