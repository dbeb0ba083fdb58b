package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunExitStatus: `corral run` exits with the container's status, and
// with docker's 125/126/127 and 128+N for its own failures and signals.
func TestRunExitStatus(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	// A file that exists but is not executable, and one that is not a
	// program at all.
	if err := os.WriteFile(filepath.Join(root, "notexec"), []byte("#!/bin/sh\necho no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "garbage"), []byte("\x00\x01\x02 not an ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := append(e.runFlags(), "--rootfs", root)
	cases := []struct {
		name   string
		flags  []string
		cmd    []string
		want   int
		stderr string // substring of stderr
	}{
		{"true", nil, []string{"true"}, 0, ""},
		{"exit 3", nil, []string{"sh", "-c", "exit 3"}, 3, ""},
		{"not found", nil, []string{"/no/such/program"}, 127, "no/such/program"},
		{"not found in PATH", nil, []string{"nosuchprogram"}, 127, "nosuchprogram"},
		{"not executable", nil, []string{"/notexec"}, 126, "notexec"},
		{"directory", nil, []string{"/tmp"}, 126, "tmp"},
		{"not a program", nil, []string{"/garbage"}, 126, "garbage"},
		// The shell (PID 1) doubles a string until the OOM killer takes it.
		{"OOM", []string{"--memory", "32m", "--memory-swap", "32m"}, []string{"sh", "-c", "a=x; while :; do a=$a$a; done"}, 137, ""},
		{"missing rootfs", []string{"--rootfs", filepath.Join(root, "nope")}, []string{"true"}, 125, "nope"},
		{"missing volume", []string{"-v", "/no/such/src:/x"}, []string{"true"}, 125, "/no/such/src"},
		{"bad memory", []string{"--memory", "lots"}, []string{"true"}, 125, "--memory"},
		{"bad flag", []string{"--no-such-flag"}, []string{"true"}, 125, "no-such-flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append(append([]string{}, base...), "--name", runName("exit")), c.flags...)
			args = append(append(args, "--"), c.cmd...)
			r := e.run(t, args...)
			if r.code != c.want {
				t.Errorf("corral %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, c.want, r.stdout, r.stderr)
			}
			if c.stderr != "" && !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("stderr %q does not name %q", r.stderr, c.stderr)
			}
		})
	}
}

// TestRunStdio: stdin only with -i, stdout and stderr kept apart.
func TestRunStdio(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	base := append(e.runFlags(), "--rootfs", root)
	r := e.runStdin(t, []byte("hello from stdin\n"), append(base, "-i", "--", "sh", "-c", "cat; echo err >&2")...)
	if r.code != 0 || r.stdout != "hello from stdin\n" || r.stderr != "err\n" {
		t.Errorf("-i: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = e.runStdin(t, []byte("must not arrive\n"), append(base, "--", "cat")...)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("without -i stdin must be empty: exit %d stdout %q", r.code, r.stdout)
	}
}

// TestRunSignals: a container killed by signal N makes `corral run` exit
// 128+N, and signals sent to `corral run` reach the container (a PID 1
// only gets the signals it handles: the kernel protects a namespace's init).
func TestRunSignals(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)

	name := runName("kill")
	res := make(chan runResult, 1)
	go func() {
		res <- e.run(t, append(e.runFlags(), "--rootfs", root, "--name", name, "--", "sleep", "30")...)
	}()
	runWaitStatus(t, e, name, "running")
	if r := e.run(t, "kill", name, "KILL"); r.code != 0 {
		t.Fatalf("corral kill: %d %s", r.code, r.stderr)
	}
	if r := <-res; r.code != 137 {
		t.Errorf("killed by SIGKILL: exit %d, want 137 (%s)", r.code, r.stderr)
	}

	// SIGTERM to `corral run` itself is forwarded to the container's init.
	name = runName("fwd")
	args := append(append([]string{"--root", e.root}, e.runFlags()...), "--rootfs", root, "--name", name, "--",
		"sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done")
	cmd := exec.Command(e.corral, args...)
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runWaitStatus(t, e, name, "running")
	time.Sleep(300 * time.Millisecond) // let the trap be set
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 || !strings.Contains(out.String(), "got-term") {
		t.Errorf("SIGTERM to corral run: %v, output %q; want exit 42 after got-term", err, out.String())
	}
}

// runWaitStatus waits until `corral state NAME` reports status.
func runWaitStatus(t *testing.T, e *runEnv, name, status string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.run(t, "state", name)
		if r.code == 0 && strings.Contains(r.stdout, `"status": "`+status+`"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s never became %s: %s%s", name, status, r.stdout, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
