// Command corral is a container runtime: an OCI runtime with a
// runc-compatible CLI (create, start, state, kill, delete, exec, ps, list,
// spec, features, pause, resume, update) plus `corral run` and `corral
// stats` for people.
//
// Each subcommand lives in its own file and registers itself in init() with
// rootCmd.AddCommand; the runtime work is in package runtime, so these
// files stay thin.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/runtime"
	_ "github.com/corral-dev/corral/runtime/cgroupdriver" // containers' cgroups (not linked by corral-init)
	"github.com/spf13/cobra"
)

// global holds the flags every subcommand accepts (runc's global flags).
var global struct {
	root          string
	logFile       string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
	store         string // image store (images.go)
}

// logger is set up before any subcommand runs (PersistentPreRunE).
var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

var rootCmd = &cobra.Command{
	Use:           "corral",
	Short:         "corral runs containers whose /proc tells the truth about their limits",
	Version:       buildinfo.Get().Version,
	SilenceErrors: true, // main prints errors once, to stderr and the log
	SilenceUsage:  true,
	PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
		if err := checkRootless(); err != nil {
			return err
		}
		return setupLogging()
	},
}

func init() {
	rootCmd.CompletionOptions.DisableDefaultCmd = true
	f := rootCmd.PersistentFlags()
	f.StringVar(&global.root, "root", runtime.DefaultRootFor(), "directory for container state ($XDG_RUNTIME_DIR/corral when not root)")
	f.StringVar(&global.logFile, "log", "", "log file (default: stderr for warnings and errors)")
	f.StringVar(&global.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&global.debug, "debug", false, "log debug messages")
	f.BoolVar(&global.systemdCgroup, "systemd-cgroup", false, "use the systemd cgroup driver (needs systemd)")
	f.StringVar(&global.rootless, "rootless", "auto", "rootless mode: auto (rootless when not run by root), true or false (accepted for runc's callers; the effective uid decides)")
	f.StringVar(&global.criu, "criu", "", "ignored (checkpoint/restore is not supported)")
	f.MarkHidden("criu")
	// runc's --version layout, which tools that probe a runtime parse.
	bi := buildinfo.Get()
	rootCmd.SetVersionTemplate("corral version {{.Version}}\ncommit: " + bi.Commit + "\nspec: " + specVersion() + "\ngo: " + bi.GoVersion + "\n")
}

// newRuntime builds the runtime from the global flags.
func newRuntime() *runtime.Runtime {
	return &runtime.Runtime{Root: global.root, SystemdCgroup: global.systemdCgroup, Log: logger}
}

// checkRootless checks runc's --rootless flag. Whether corral runs
// rootless follows from the effective uid (runtime.Rootless), as runc's
// auto does; true and false are accepted for callers that pass them.
func checkRootless() error {
	switch global.rootless {
	case "auto", "true", "false":
		return nil
	}
	return fmt.Errorf("--rootless=%s: want auto, true or false", global.rootless)
}

// setupLogging opens --log and picks the format. JSON lines look like
// runc's logrus output, {"level":"error","msg":"...","time":"..."}, which is
// what containerd's shim and podman's conmon parse.
func setupLogging() error {
	var w io.Writer = os.Stderr
	if global.logFile != "" {
		f, err := os.OpenFile(global.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		w = f
	}
	level := slog.LevelWarn
	if global.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: runcStyle}
	switch global.logFormat {
	case "json":
		logger = slog.New(slog.NewJSONHandler(w, opts))
	case "text", "":
		logger = slog.New(slog.NewTextHandler(w, opts))
	default:
		return fmt.Errorf("unknown --log-format %q: use text or json", global.logFormat)
	}
	return nil
}

// runcStyle lower-cases levels ("error", not "ERROR"): clients compare the
// level string.
func runcStyle(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
	}
	return a
}

// ExitStatus is an error that only carries the process exit status: main
// exits with it and prints nothing (e.g. `corral run` passing on the
// container's status, or `exec` passing on the process's).
type ExitStatus int

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCodeError makes main exit with code after reporting err.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// withExitCode reports err and exits with code (e.g. 125 for `run`'s own errors).
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitCodeError{code: code, err: err}
}

func main() {
	runtime.MaybeInit() // a re-executed container init never returns from here
	if len(os.Args) > 1 && os.Args[1] == initCommand {
		// run --init's PID 1: straight to it, so that its signal
		// handlers are in place as early as they can be.
		os.Exit(initMain(os.Args[2:]))
	}
	err := rootCmd.Execute()
	if err == nil {
		return
	}
	var st ExitStatus
	if errors.As(err, &st) {
		os.Exit(int(st))
	}
	code := 1
	var ce *exitCodeError
	if errors.As(err, &ce) {
		code = ce.code
	}
	// With --log the error goes to the log (where containerd and conmon
	// look) and, readable, to stderr; without it, stderr gets one form.
	switch {
	case global.logFile != "":
		logger.Error(err.Error())
		fmt.Fprintf(os.Stderr, "corral: %v\n", err)
	case global.logFormat == "json":
		logger.Error(err.Error())
	default:
		fmt.Fprintf(os.Stderr, "corral: %v\n", err)
	}
	os.Exit(code)
}
