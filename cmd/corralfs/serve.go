package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/cmd/internal/slogfmt"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/inputs"
)

const (
	// defaultControlSocket lives in corralfs's own runtime directory
	// (systemd's RuntimeDirectory=corralfs), beside the seccomp socket.
	defaultControlSocket = "/run/corralfs/control.sock"
	// legacyControlSocket is where corralfs before 2026-12 listened:
	// status and reload still find a daemon started by such a build.
	legacyControlSocket = "/run/corralfs.sock"
)

type serveConfig struct {
	pidfile       string
	logLevel      string
	cpuQuotaView  bool
	swap          bool
	cgroupRoot    string
	allowOther    bool
	snapshotTTL   time.Duration
	maxContainers int
	maxHandles    int
	maxHandlesPer int
	boundViews    bool // serve .bound/ (--bound-views)
	liveness      time.Duration
	controlSocket string
	metricsListen string
	logFormat     string
	debugFUSE     bool
	relay         string
}

func serveFlags(c *serveConfig) *pflag.FlagSet {
	fl := pflag.NewFlagSet("corralfs", pflag.ContinueOnError)
	fl.SortFlags = false
	fl.StringVar(&c.pidfile, "pidfile", "", "write the pid of the process that owns the mount (the supervisor, not the worker) to this file once the mount answers; removed on exit")
	fl.StringVar(&c.logLevel, "log-level", "info", "log verbosity: debug, info, warn or error (logs go to stderr)")
	fl.BoolVar(&c.cpuQuotaView, "cpu-quota-view", true, "let a CPU quota shrink the CPU count containers see (ceil(quota/period)); --cpu-quota-view=false shows the whole cpuset")
	fl.BoolVar(&c.swap, "swap", true, "report each container's swap limit and usage in meminfo and swaps; --swap=false reports no swap at all")
	fl.StringVar(&c.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "where the cgroup hierarchies are mounted (v1, hybrid or v2 is detected)")
	fl.BoolVar(&c.allowOther, "allow-other", true, "let every user, in every container, read the mount (FUSE allow_other)")
	fl.DurationVar(&c.snapshotTTL, "snapshot-ttl", inputs.DefaultSnapshotTTL, "reuse a container's cgroup readings for this long (0 = default, negative = never)")
	fl.IntVar(&c.maxContainers, "max-containers", 1024, "sample the load average of at most this many containers at a time")
	fl.IntVar(&c.maxHandles, "max-open-files", fusefs.DefaultMaxHandles, "files all containers together may hold open on the mount; beyond, opens fail with ENFILE")
	fl.IntVar(&c.maxHandlesPer, "max-open-files-per-container", fusefs.DefaultMaxHandlesPerContainer, "files one container (cgroup) may hold open on the mount; beyond, its opens fail with EMFILE")
	fl.BoolVar(&c.boundViews, "bound-views", true, "serve each container its own page-cached view files under .bound/ (what corral run and the hook bind when present); --bound-views=false serves only the shared LXCFS-style files")
	fl.DurationVar(&c.liveness, "liveness-timeout", defaultLivenessTimeout, "replace a worker that leaves a probe read of the mount unanswered this long (0: never)")
	fl.StringVar(&c.controlSocket, "control-socket", defaultControlSocket, "unix socket (root only) answering `corralfs status`, `corralfs reload`, /metrics and Go's /debug/pprof/ over HTTP (empty: none)")
	fl.StringVar(&c.metricsListen, "metrics-listen", "", "also serve Prometheus metrics at http://ADDR/metrics: HOST:PORT, or unix:PATH (empty: only on the control socket)")
	fl.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (one JSON object per line, as corral --log-format json)")
	fl.BoolVar(&c.debugFUSE, "debug-fuse", false, "log every FUSE request and reply (very verbose)")
	fl.StringVar(&c.relay, "relay", "auto", "who reads FUSE requests: auto = the supervisor relays them on kernels before 6.9, "+
		"which cannot re-queue a killed worker's (half the read speed, nothing lost); always = on any kernel; "+
		"never = the worker, also before 6.9 (reads in flight when it dies then wait until interrupted)")
	addSysinfoFlags(fl) // sysinfo.go
	return fl
}

func runServe(args []string) int {
	c, mp, log, code := parseServe(args)
	if log == nil {
		return code
	}
	if err := runSupervised(c, mp, args, log); err != nil { // supervisor.go
		log.Error("corralfs failed", "err", err)
		return 1
	}
	return 0
}

// parseServe parses the serve flags (the supervisor's and, passed on, its
// workers'). A nil logger means: exit with code (help or bad flags).
func parseServe(args []string) (serveConfig, string, *slog.Logger, int) {
	var c serveConfig
	fl := serveFlags(&c)
	// pflag calls Usage only for --help (ContinueOnError): print it once,
	// on stdout, as --help output should be.
	fl.Usage = func() { usage(os.Stdout, fl) }
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return c, "", nil, 0
		}
		fmt.Fprintf(os.Stderr, "corralfs: %v (see corralfs --help)\n", err)
		return c, "", nil, 2
	}
	if !validLogLevel(c.logLevel) {
		fmt.Fprintf(os.Stderr, "corralfs: --log-level %q: want one of %s\n", c.logLevel, strings.Join(logLevels, ", "))
		return c, "", nil, 2
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		fmt.Fprintf(os.Stderr, "corralfs: --log-format %q: want text or json\n", c.logFormat)
		return c, "", nil, 2
	}
	if c.relay != "auto" && c.relay != "always" && c.relay != "never" {
		fmt.Fprintf(os.Stderr, "corralfs: --relay %q: want auto, always or never\n", c.relay)
		return c, "", nil, 2
	}
	if fl.NArg() > 1 {
		fmt.Fprintf(os.Stderr, "corralfs: one mount point expected, got %q\n", fl.Args())
		return c, "", nil, 2
	}
	mp := facts.DefaultDir
	if fl.NArg() == 1 {
		mp = fl.Arg(0)
	}
	mp, err := filepath.Abs(mp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs: mount point: %v\n", err)
		return c, "", nil, 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.logLevel))
	return c, mp, slog.New(slogfmt.Handler(c.logFormat, os.Stderr, level)), 0
}

// writePidfile writes the pid atomically (a reader never sees it half
// written).
func writePidfile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}
