package tests

import (
	"strings"
	"testing"
)

// TestRunTinyPidsLimit (issue 11): --pids-limit 1, 2 and 3 used to end in
// the Go runtime's crash dump ("failed to create new OS thread") because
// corral's init, a Go program with a few threads, started inside the
// limit. The limit now applies from the container's own process on (as in
// runc): the command runs, and at 1 it cannot fork.
func TestRunTinyPidsLimit(t *testing.T) {
	e := runNewEnv(t, false)
	for _, n := range []string{"1", "2", "3"} {
		args := append(e.runFlags(), "--name", runName("pids"), "--pids-limit", n, "--", "sh", "-c", "echo started; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true")
		r := e.run(t, args...)
		if strings.Contains(r.stderr, "fatal error") || !strings.Contains(r.stdout, "started") {
			t.Fatalf("--pids-limit %s: exit %d\nstdout: %s\nstderr: %.600s", n, r.code, r.stdout, r.stderr)
		}
		if n != "1" && !strings.Contains(r.stdout, "\n"+n+"\n") {
			t.Errorf("--pids-limit %s: the container's pids.max is not %s: %q", n, n, r.stdout)
		}
		if n == "1" && strings.TrimSpace(r.stdout) != "started" {
			t.Errorf("--pids-limit 1: the shell could fork cat: %q %q", r.stdout, r.stderr)
		}
	}
	// exec into a container at its limit: the exec init joins the cgroup
	// only just before its execve.
	name := e.detached(t, "pidsexec", "--pids-limit", "2", "--", "sleep", "1000")
	r := e.run(t, "exec", name, "echo", "exec-ok")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "exec-ok" || strings.Contains(r.stderr, "fatal error") {
		t.Fatalf("exec into a --pids-limit 2 container: exit %d\nstdout: %s\nstderr: %.600s", r.code, r.stdout, r.stderr)
	}
}

// TestRunLongName (issue 11): a --name longer than the kernel's 64-byte
// hostname used to fail the run in sethostname; the hostname is the name
// cut at 64 (the kubelet cuts long pod names the same way), the name stays
// whole. An explicit --hostname that long is refused before anything runs.
func TestRunLongName(t *testing.T) {
	e := runNewEnv(t, false)
	name := runName("long-" + strings.Repeat("n", 70))
	r := e.run(t, append(e.runFlags(), "--name", name, "--", "hostname")...)
	if want := strings.TrimRight(name[:64], "-."); r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("--name of %d characters: exit %d, hostname %q (want %q), stderr %s", len(name), r.code, r.stdout, want, r.stderr)
	}
	r = e.run(t, append(e.runFlags(), "--hostname", strings.Repeat("h", 65), "--", "true")...)
	if r.code != 125 || !strings.Contains(r.stderr, "longer than 64") {
		t.Fatalf("--hostname of 65 characters: exit %d, %s", r.code, r.stderr)
	}
}
