package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs"
)

const (
	defaultMountpoint    = "/var/lib/corralfs"
	defaultControlSocket = "/run/corralfs.sock"
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
	controlSocket string
	debugFUSE     bool
}

func serveFlags(c *serveConfig) *pflag.FlagSet {
	fl := pflag.NewFlagSet("corralfs", pflag.ContinueOnError)
	fl.SortFlags = false
	fl.StringVar(&c.pidfile, "pidfile", "", "write the daemon's pid to this file once the mount answers; removed on exit")
	fl.StringVar(&c.logLevel, "log-level", "info", "log verbosity: debug, info, warn or error (logs go to stderr)")
	fl.BoolVar(&c.cpuQuotaView, "cpu-quota-view", true, "let a CPU quota shrink the CPU count containers see (ceil(quota/period)); --cpu-quota-view=false shows the whole cpuset")
	fl.BoolVar(&c.swap, "swap", true, "report each container's swap limit and usage in meminfo and swaps; --swap=false reports no swap at all")
	fl.StringVar(&c.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "where the cgroup hierarchies are mounted (v1, hybrid or v2 is detected)")
	fl.BoolVar(&c.allowOther, "allow-other", true, "let every user, in every container, read the mount (FUSE allow_other)")
	fl.DurationVar(&c.snapshotTTL, "snapshot-ttl", fusefs.DefaultSnapshotTTL, "reuse a container's cgroup readings for this long (0 = default, negative = never)")
	fl.IntVar(&c.maxContainers, "max-containers", 1024, "sample the load average of at most this many containers at a time")
	fl.StringVar(&c.controlSocket, "control-socket", defaultControlSocket, "unix socket answering `corralfs status` (empty: none)")
	fl.BoolVar(&c.debugFUSE, "debug-fuse", false, "log every FUSE request and reply (very verbose)")
	addSysinfoFlags(fl) // sysinfo.go
	return fl
}

func runServe(args []string) int {
	var c serveConfig
	fl := serveFlags(&c)
	// pflag calls Usage only for --help (ContinueOnError): print it once,
	// on stdout, as --help output should be.
	fl.Usage = func() { usage(os.Stdout, fl) }
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "corralfs: %v (see corralfs --help)\n", err)
		return 2
	}
	if !validLogLevel(c.logLevel) {
		fmt.Fprintf(os.Stderr, "corralfs: --log-level %q: want one of %s\n", c.logLevel, strings.Join(logLevels, ", "))
		return 2
	}
	if fl.NArg() > 1 {
		fmt.Fprintf(os.Stderr, "corralfs: one mount point expected, got %q\n", fl.Args())
		return 2
	}
	mp := defaultMountpoint
	if fl.NArg() == 1 {
		mp = fl.Arg(0)
	}
	mp, err := filepath.Abs(mp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs: mount point: %v\n", err)
		return 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.logLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := serve(c, mp, log); err != nil {
		log.Error("corralfs failed", "err", err)
		return 1
	}
	return 0
}

func serve(c serveConfig, mp string, log *slog.Logger) error {
	reader, err := cgroupreader.New(cgroupreader.Config{CgroupRoot: c.cgroupRoot})
	if err != nil {
		return err
	}
	fs, err := fusefs.New(fusefs.Config{
		Reader:      reader,
		Options:     fusefs.Options{SwapReporting: c.swap, CPUQuotaView: c.cpuQuotaView},
		Log:         log,
		SnapshotTTL: c.snapshotTTL,
		Sampler:     fusefs.SamplerConfig{Max: c.maxContainers},
	})
	if err != nil {
		return err
	}
	if err := fusefs.PrepareMountpoint(mp, log); err != nil {
		return err
	}
	// Signals are caught from here on: a SIGTERM during startup still
	// unmounts.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)

	srv, err := fusefs.Mount(fs, mp, fusefs.MountConfig{AllowOther: c.allowOther, Debug: c.debugFUSE})
	if err != nil {
		return err
	}
	served := make(chan struct{})
	go func() { srv.Serve(); close(served) }()
	stop := make(chan struct{})
	go fs.Run(stop)

	ready := make(chan error, 1)
	go func() {
		// Not a serving goroutine: these stats go through the kernel
		// and back to the ones above.
		if err := srv.WaitMount(); err != nil {
			ready <- err
			return
		}
		ready <- fusefs.WaitAnswering(mp, 30*time.Second)
	}()

	var ctl *controlServer
	shutdown := func(why string) error {
		log.Info("stopping", "why", why, "mountpoint", mp)
		_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
		close(stop)
		uerr := fusefs.Unmount(srv, mp)
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			log.Warn("mount still in use after unmount; exiting anyway", "mountpoint", mp)
		}
		if ctl != nil {
			ctl.Close()
		}
		if c.pidfile != "" {
			_ = os.Remove(c.pidfile)
		}
		return uerr
	}

	select {
	case err := <-ready:
		if err != nil {
			_ = shutdown("mount does not answer")
			return err
		}
	case s := <-sigs:
		return shutdown(s.String())
	case <-served:
		return fmt.Errorf("%s was unmounted during startup", mp)
	}
	if c.pidfile != "" {
		if err := writePidfile(c.pidfile); err != nil {
			_ = shutdown("pidfile")
			return err
		}
	}
	if c.controlSocket != "" {
		if ctl, err = listenControl(c.controlSocket, mp, fs, log); err != nil {
			_ = shutdown("control socket")
			return err
		}
	}
	stopSysinfo, err := startSysinfo(fs, log) // sysinfo.go
	if err != nil {
		_ = shutdown("sysinfo agent")
		return err
	}
	defer stopSysinfo()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving "+mp)
	log.Info("serving", "mountpoint", mp, "cgroups", reader.Mode().String(), "pid", os.Getpid())

	select {
	case s := <-sigs:
		return shutdown(s.String())
	case <-served:
		// Someone unmounted us (umount MOUNTPOINT): nothing left to
		// serve. Exit non-zero so systemd's Restart=on-failure mounts
		// it again.
		_ = shutdown("unmounted from outside")
		return fmt.Errorf("%s was unmounted by someone else", mp)
	}
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
