package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/fusefs/survival"
)

// runWorker is `corralfs serve-worker FLAGS MOUNTPOINT`, started by the
// supervisor (supervisor.go) with the connection's descriptors; not meant
// to be run by hand. It serves until its connection ends (exit 3), SIGTERM
// (exit 0) or the supervisor's death (exit 1). It never unmounts: the
// connection belongs to the supervisor.
// workerMemoryLimit is the worker's soft Go memory limit, unless GOMEMLIMIT
// says otherwise. Its live heap is a few MiB (the tree, caches of a few
// hundred containers); the limit makes the collector run sooner rather
// than let garbage double the heap, and a heap that truly needs more still
// gets it. It did not measurably lower the tree's RSS at 200 containers in
// make bench (37-110 MiB across runs either way; what is retained there is
// not known yet, see docs/benchmarks.md).
const workerMemoryLimit = 24 << 20

// workerGCPercent is the worker's GOGC unless the environment sets one. The
// live heap is small (7-8 MiB at 200 containers) and what a read
// allocates is garbage at once, so go's default (collect when the heap has
// doubled) mostly holds garbage: at 50 a collection comes twice as often,
// a few milliseconds of CPU a second at 200 containers, and the heap's
// peak is a quarter lower.
const workerGCPercent = 50

func runWorker(args []string) int {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(workerGCPercent)
	}
	var info workerInfo
	if err := json.Unmarshal([]byte(os.Getenv(survival.EnvInfo)), &info); err != nil {
		fmt.Fprintf(os.Stderr, "corralfs serve-worker: started by hand? %s: %v\n", survival.EnvInfo, err)
		return 2
	}
	c, mp, log, code := parseServe(args)
	if log == nil {
		return code
	}
	log = log.With("worker", os.Getpid())
	if err := work(c, mp, info, log); err != nil {
		log.Error("worker failed", "err", err)
		return 1
	}
	return survival.ExitUnmounted
}

func work(c serveConfig, mp string, info workerInfo, log *slog.Logger) error {
	// Also keeps the inherited descriptors from what we start (the
	// sysinfo keeper outlives us: holding the connection would keep a
	// dead mount alive).
	in, err := survival.Inherit()
	if err != nil {
		return err
	}
	// Only the supervisor decides when to stop: Ctrl-C and SIGHUP are
	// its business.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)

	reader, err := cgroupreader.New(cgroupreader.Config{CgroupRoot: c.cgroupRoot})
	if err != nil {
		return err
	}
	fs, err := fusefs.New(fusefs.Config{
		HandleStore: in.Handles,
		Counters:    in.Counters,
		Reader:      reader,
		Options:     render.Options{SwapReporting: c.swap, CPUQuotaView: c.cpuQuotaView},
		Log:         log,
		SnapshotTTL: c.snapshotTTL,
		Sampler:     inputs.SamplerConfig{Max: c.maxContainers},

		MaxHandles:             c.maxHandles,
		MaxHandlesPerContainer: c.maxHandlesPer,
		// Bound views notify the kernel from an OPEN handler (their
		// page cache), which waits for other requests' answers; behind
		// the relay that wait deadlocked in the v2 VM (decision 52).
		NoBoundViews: info.Relay || !c.boundViews,
	})
	if err != nil {
		return err
	}
	mc := fusefs.MountConfig{AllowOther: c.allowOther, Debug: c.debugFUSE, RequestSource: in.Requests, InFlight: in.InFlight,
		MaxWrite: fusefs.ConnMaxWrite(mp)}
	srv, err := fusefs.Adopt(fs, in.FuseFD, in.Init, mc)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go fs.Run(stop)

	started := time.Now()
	agent, stopSysinfo, err := startSysinfo(fs, c.logFormat, log) // sysinfo.go
	if err != nil {
		return err
	}
	dc := &daemonCollector{counters: in.Counters, fs: fs, info: info, agent: agent, socket: sysinfoConfig.socket}
	reg := newRegistry(dc)
	if info.Control {
		ln, err := net.FileListener(in.ControlListener())
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		serveControl(ln, func() daemonStatus { return workerStatus(info, started, dc) }, fs.Containers, reg, log) // control.go
	}
	if err := serveMetrics(in.Metrics, reg, log); err != nil {
		return err
	}
	in.Ready()
	// Serve only once the supervisor says so.
	if !in.WaitRelease() {
		log.Error("supervisor gone before releasing this worker; exiting")
		os.Exit(1)
	}
	served := make(chan struct{})
	go func() { srv.Serve(); close(served) }()
	log.Debug("worker serving", "mountpoint", mp, "restarts", info.Restarts, "upgrades", info.Upgrades)

	select {
	case <-sigs:
		// The supervisor retires us (stop or upgrade). Requests we read
		// and did not answer are re-queued for the next worker.
		stopSysinfo()
		os.Exit(0)
	case <-in.SupervisorGone():
		log.Error("supervisor died; exiting (the mount is gone with it unless systemd kept the connection)")
		os.Exit(1)
	case <-served:
	}
	close(stop)
	stopSysinfo()
	return nil
}
