package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

func TestCheckRunFlags(t *testing.T) {
	bad := map[string]runFlags{
		"no command":    {},
		"exclude":       {opts: runspec.Options{Args: []string{"x"}}, rootfs: "/a", bundle: "/b"},
		"--tty":         {opts: runspec.Options{Args: []string{"x"}, Terminal: true}, detach: true},
		"--interactive": {opts: runspec.Options{Args: []string{"x"}}, detach: true, interactive: true},
		"slashes":       {opts: runspec.Options{Args: []string{"x"}}, name: "a/b"},
	}
	for want, f := range bad {
		if err := checkRunFlags(&f); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error about %q", f, err, want)
		}
	}
	ok := []runFlags{
		{opts: runspec.Options{Args: []string{"x"}}},
		{bundle: "/b"}, // the bundle's own command
		{opts: runspec.Options{Args: []string{"x"}, Terminal: true}, interactive: true},
	}
	for _, f := range ok {
		if err := checkRunFlags(&f); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestExecErrorCode(t *testing.T) {
	cases := map[error]int{
		fmt.Errorf("x: %w", runtime.ErrExecNotFound):   127,
		fmt.Errorf("x: %w", runtime.ErrExecPermission): 126,
		fmt.Errorf("cgroup: %w", os.ErrNotExist):       125,
	}
	for err, want := range cases {
		if got := execErrorCode(err); got != want {
			t.Errorf("%v: %d, want %d", err, got, want)
		}
	}
}

// TestRunFlagsParseIntoSpec: the flags of `corral run` reach the spec
// through newRunFlagSet, specConfig and runspec.Build (the wiring cmd
// keeps).
func TestRunFlagsParseIntoSpec(t *testing.T) {
	var f runFlags
	fs := newRunFlagSet(&f, os.Stderr)
	root := t.TempDir()
	if err := fs.Parse([]string{"--rootfs", root, "--views", "none", "--sysinfo", "off", "--name", "web", "-m", "1.5g", "--pids-limit", "9", "--read-only", "--", "sh"}); err != nil {
		t.Fatal(err)
	}
	f.opts.Args = fs.Args()
	cfg, err := f.specConfig("web")
	if err != nil {
		t.Fatal(err)
	}
	res, err := runspec.Build(cfg, runspec.Host{LookupEnv: os.LookupEnv})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Spec
	if s.Hostname != "web" || *s.Linux.Resources.Memory.Limit != 3<<29 || *s.Linux.Resources.Pids.Limit != 9 || !s.Root.Readonly || s.Process.Args[0] != "sh" {
		t.Errorf("spec: host %q memory %d pids %d ro %v args %v", s.Hostname, *s.Linux.Resources.Memory.Limit, *s.Linux.Resources.Pids.Limit, s.Root.Readonly, s.Process.Args)
	}
}
