package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs"
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

func runWorker(args []string) int {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
	var info workerInfo
	if err := json.Unmarshal([]byte(os.Getenv(envWorker)), &info); err != nil {
		fmt.Fprintf(os.Stderr, "corralfs serve-worker: started by hand? %s: %v\n", envWorker, err)
		return 2
	}
	c, mp, log, code := parseServe(args)
	if log == nil {
		return code
	}
	log = log.With("worker", os.Getpid())
	// Inherited descriptors must not leak into what we start (the sysinfo
	// keeper outlives us: holding the connection would keep a dead mount
	// alive).
	for fd := workerFuseFD; fd <= workerControlFD; fd++ {
		unix.CloseOnExec(fd)
	}
	if err := work(c, mp, info, log); err != nil {
		log.Error("worker failed", "err", err)
		return 1
	}
	return exitUnmounted
}

func work(c serveConfig, mp string, info workerInfo, log *slog.Logger) error {
	init, err := survival.DecodeInit(os.Getenv(envFuseInit))
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
	store, err := inheritedHandleStore()
	if err != nil {
		return err
	}
	counters, err := inheritedCounters()
	if err != nil {
		return err
	}
	fs, err := fusefs.New(fusefs.Config{
		HandleStore: store,
		Counters:    counters,
		Reader:      reader,
		Options:     fusefs.Options{SwapReporting: c.swap, CPUQuotaView: c.cpuQuotaView},
		Log:         log,
		SnapshotTTL: c.snapshotTTL,
		Sampler:     fusefs.SamplerConfig{Max: c.maxContainers},

		MaxHandles:             c.maxHandles,
		MaxHandlesPerContainer: c.maxHandlesPer,
	})
	if err != nil {
		return err
	}
	mc := fusefs.MountConfig{AllowOther: c.allowOther, Debug: c.debugFUSE}
	if mc.RequestSource, mc.InFlight, err = inheritedRelay(); err != nil {
		return err
	}
	srv, err := fusefs.Adopt(fs, workerFuseFD, init, mc)
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
	dc := &daemonCollector{counters: counters, fs: fs, info: info, agent: agent, socket: sysinfoConfig.socket}
	reg := newRegistry(dc)
	if info.Control {
		ln, err := net.FileListener(os.NewFile(workerControlFD, "control"))
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		serveControl(ln, func() daemonStatus { return workerStatus(info, started, dc) }, fs.Containers, reg, log) // control.go
	}
	if err := serveMetrics(reg, log); err != nil {
		return err
	}
	ready := os.NewFile(workerReadyFD, "ready")
	_, _ = ready.Write([]byte{'R'})
	ready.Close()
	// Serve only once the supervisor says so (workerProc.release).
	var b [1]byte
	if n, _ := os.NewFile(workerGoFD, "go").Read(b[:]); n != 1 || b[0] != 'G' {
		log.Error("supervisor gone before releasing this worker; exiting")
		os.Exit(1)
	}
	served := make(chan struct{})
	go func() { srv.Serve(); close(served) }()
	log.Debug("worker serving", "mountpoint", mp, "restarts", info.Restarts, "upgrades", info.Upgrades)

	supervisorGone := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = os.NewFile(workerAliveFD, "alive").Read(b[:]) // EOF: the supervisor died
		close(supervisorGone)
	}()
	select {
	case <-sigs:
		// The supervisor retires us (stop or upgrade). Requests we read
		// and did not answer are re-queued for the next worker.
		stopSysinfo()
		os.Exit(0)
	case <-supervisorGone:
		log.Error("supervisor died; exiting (the mount is gone with it unless systemd kept the connection)")
		os.Exit(1)
	case <-served:
	}
	close(stop)
	stopSysinfo()
	return nil
}

// inheritedRelay opens the request socket and the in-flight journal the
// supervisor passes on kernels without FUSE_NOTIFY_RESEND (its relay reads
// the device: fusefs/survival/relay.go); nil, nil when it passed none.
func inheritedRelay() (*os.File, *survival.Journal, error) {
	sock, err := inheritedFD(envRelayFD, "corralfs-requests")
	if err != nil {
		return nil, nil, err
	}
	jf, err := inheritedFD(envJournalFD, "corralfs-inflight")
	if err != nil || (sock == nil) != (jf == nil) {
		return nil, nil, fmt.Errorf("relay descriptors %s=%q %s=%q: want both (%v)", envRelayFD, os.Getenv(envRelayFD), envJournalFD, os.Getenv(envJournalFD), err)
	}
	if sock == nil {
		return nil, nil, nil
	}
	j, err := survival.OpenJournal(jf)
	if err != nil {
		return nil, nil, err
	}
	return sock, j, nil
}

// inheritedHandleStore maps the handle store the supervisor passes (nil
// when it passed none: an older supervisor during an upgrade).
func inheritedHandleStore() (*survival.HandleStore, error) {
	f, err := inheritedFD(envHandlesFD, "corralfs-handles")
	if f == nil || err != nil {
		return nil, err
	}
	return survival.OpenHandleStore(f)
}

// inheritedCounters maps the daemon-total counters the supervisor passes
// (nil when it passed none: an older supervisor during an upgrade).
func inheritedCounters() (*survival.Counters, error) {
	f, err := inheritedFD(envCountersFD, "corralfs-counters")
	if f == nil || err != nil {
		return nil, err
	}
	return survival.OpenCounters(f)
}

// inheritedFD is the descriptor the supervisor named in the environment
// variable env (nil when it named none), kept from what we start.
func inheritedFD(env, name string) (*os.File, error) {
	v := os.Getenv(env)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not a descriptor", env, v)
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name), nil
}
