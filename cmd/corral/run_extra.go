package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// runExtras are the `corral run` flags of issue 18 that act around the
// spec assembly: --init, --env-file, -it's terminal check and an explicit
// --read-only=false.
type runExtras struct {
	init     bool
	envFiles []string
	// readOnlyGiven: --read-only was given, so --read-only=false asks
	// for a writable root (without it: the default root read only, an
	// image's or --rootfs's writable, a bundle's as its config.json says).
	readOnlyGiven bool
}

func addRunExtraFlags(fs *pflag.FlagSet, x *runExtras) {
	fs.BoolVar(&x.init, "init", false, "run a small init as PID 1 that forwards signals to COMMAND and reaps orphans (as docker --init)")
	fs.StringArrayVar(&x.envFiles, "env-file", nil, "read KEY=VALUE lines (or KEY, passed from this environment) from a file; # comments; --env wins (repeatable)")
}

// parseRunExtras completes x after parsing: the env files go before -e
// (so -e wins, as in docker), and stdin must be a terminal for -it.
func parseRunExtras(fs *pflag.FlagSet, f *runFlags) error {
	x := &f.extras
	x.readOnlyGiven = fs.Changed("read-only")
	var env []string
	for _, file := range x.envFiles {
		kv, err := readEnvFile(file)
		if err != nil {
			return err
		}
		env = append(env, kv...)
	}
	f.opts.Env = append(env, f.opts.Env...)
	// docker's check: a terminal session needs a terminal to read from;
	// piping into one never sees EOF (^D is a key, not the pipe's end).
	if f.interactive && f.opts.Terminal && !isTerminal(os.Stdin) {
		return errors.New("-it: the input device is not a terminal (drop -t to pipe into the container)")
	}
	return nil
}

// readEnvFile reads docker's env-file format: KEY=VALUE per line (the
// value verbatim, quotes included), a bare KEY for the caller's value,
// blank lines and lines starting with # skipped.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, _ := strings.Cut(line, "=")
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("--env-file %s:%d: %q is no KEY=VALUE", path, n, line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--env-file %s: %w", path, err)
	}
	return out, nil
}

// isTerminal: f is a terminal (it answers the terminal attributes ioctl).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
