package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/runtime"
)

// runcFlags are runc's own `run` flags, which only the runc form takes.
type runcFlags struct {
	pidFile       string
	consoleSocket string
	noPivot       bool
	preserveFDs   int
	keep          bool
}

// runcOnlyFlags are accepted only in runc's form (they mean nothing to a
// command run on corral's generated spec).
var runcOnlyFlags = map[string]bool{
	"pid-file": true, "console-socket": true, "no-pivot": true, "preserve-fds": true,
	"keep": true, "no-subreaper": true,
}

// runcFormFlags are the flags that make sense with runc's form.
var runcFormFlags = map[string]bool{"bundle": true, "detach": true, "no-new-keyring": true}

func addRuncFlags(fs *pflag.FlagSet, r *runcFlags) {
	fs.StringVar(&r.pidFile, "pid-file", "", "runc form: write the container's init pid to this file")
	fs.StringVar(&r.consoleSocket, "console-socket", "", "runc form: unix socket that receives the pty master (terminal: true)")
	fs.BoolVar(&r.noPivot, "no-pivot", false, "runc form: MS_MOVE and chroot instead of pivot_root")
	fs.IntVar(&r.preserveFDs, "preserve-fds", 0, "runc form: pass this many extra fds (3, 4, ...) into the container")
	fs.BoolVar(&r.keep, "keep", false, "runc form: keep the container (state, cgroup) after it exits")
	fs.Bool("no-subreaper", false, "runc form: accepted for runc compatibility (corral never becomes a subreaper)")
}

// runcFormID decides between corral's form (`run [flags] COMMAND...`) and
// runc's (`run [--bundle DIR] ID`, which scripts written for runc use). It
// is runc's form when there is exactly one argument, not after `--`, and
//   - --bundle or a runc-only flag (--pid-file, --keep, ...) is given, or
//   - the current directory holds a config.json (runc's default bundle) and
//     the argument is not a command on PATH.
//
// `corral run --bundle DIR -- CMD` runs a one-word command on a bundle.
func runcFormID(fs *pflag.FlagSet, f *runFlags) (string, bool) {
	args := fs.Args()
	if len(args) != 1 || fs.ArgsLenAtDash() == 0 || f.rootfs != "" {
		return "", false
	}
	runcOnly := false
	fs.Visit(func(fl *pflag.Flag) { runcOnly = runcOnly || runcOnlyFlags[fl.Name] })
	if f.bundle != "" || runcOnly {
		return args[0], true
	}
	if _, err := os.Stat("config.json"); err != nil {
		return "", false
	}
	if _, err := exec.LookPath(args[0]); err == nil {
		return "", false
	}
	return args[0], true
}

// checkRuncForm rejects corral-only flags in runc's form (the bundle's
// config.json runs as it is) and runc-only flags in corral's form.
func checkRuncForm(fs *pflag.FlagSet, runcForm bool) error {
	var bad []string
	fs.Visit(func(fl *pflag.Flag) {
		if rootFlag := rootCmd.PersistentFlags().Lookup(fl.Name); rootFlag != nil {
			return
		}
		if runcForm && !runcOnlyFlags[fl.Name] && !runcFormFlags[fl.Name] {
			bad = append(bad, "--"+fl.Name)
		}
		if !runcForm && runcOnlyFlags[fl.Name] {
			bad = append(bad, "--"+fl.Name)
		}
	})
	switch {
	case len(bad) == 0:
		return nil
	case runcForm:
		return fmt.Errorf("%s: not with runc's form 'corral run [--bundle DIR] ID', which runs the bundle's config.json as it is (give a COMMAND to use corral's form)", strings.Join(bad, ", "))
	default:
		return fmt.Errorf("%s: only with runc's form 'corral run [--bundle DIR] ID'", strings.Join(bad, ", "))
	}
}

// runRuncForm is `runc run`: create and start the bundle's container with
// this process's stdio, wait for it (unless --detach) and delete it (unless
// --keep); the exit status is the container's.
func runRuncForm(rt *runtime.Runtime, f *runFlags, id string) (int, error) {
	bundle := f.bundle
	if bundle == "" {
		bundle = "."
	}
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return exitRuntimeError, err
	}
	o := runtime.CreateOpts{
		Bundle: bundle, PidFile: f.runc.pidFile, ConsoleSocket: f.runc.consoleSocket, NoPivot: f.runc.noPivot,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, ExtraFiles: preservedFiles(f.runc.preserveFDs),
		Foreground: !f.detach, NoNewKeyring: f.noNewKeyring,
	}
	c, err := rt.Create(id, o)
	if err != nil {
		return execErrorCode(err), err
	}
	if f.detach {
		if err := c.Start(); err != nil {
			c.Delete(true)
			return execErrorCode(err), err
		}
		return 0, nil
	}
	return runForeground(c, c.Console(), os.Stdin, !f.runc.keep)
}

var errNoCommand = errors.New("no command given: corral run [flags] [--] COMMAND [ARG...], or runc's form corral run [--bundle DIR] ID")
