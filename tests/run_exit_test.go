package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"SIGKILL", nil, []string{"sh", "-c", "kill -9 $$"}, 137, ""},
		{"SIGTERM", nil, []string{"sh", "-c", "trap - TERM; kill -TERM $$; sleep 5"}, 143, ""},
		{"OOM", []string{"--memory", "32m", "--memory-swap", "32m"}, []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"}, 137, ""},
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
