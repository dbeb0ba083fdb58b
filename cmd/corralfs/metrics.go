package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/corral-dev/corral/fusefs/sysinfoagent"
)

// The Prometheus metrics of the daemon. Counters come from the shared
// survival.Counters, so they are daemon totals that only grow across worker
// deaths, upgrades and (under systemd, with the fd store) supervisor
// restarts; gauges describe the serving worker. Names follow Prometheus'
// rules: a corralfs_ prefix, base units (seconds), _total on counters.

var (
	descRequests  = prometheus.NewDesc("corralfs_requests_total", "FUSE requests answered, by operation and file (a view path, sys/devices/system/cpu for the CPU tree, dir for directories).", []string{"op", "file"}, nil)
	descErrors    = prometheus.NewDesc("corralfs_request_errors_total", "FUSE requests answered with an error, by operation and file.", []string{"op", "file"}, nil)
	descDuration  = prometheus.NewDesc("corralfs_request_duration_seconds", "Time the daemon spent answering a FUSE request (rendering included), by operation and file.", []string{"op", "file"}, nil)
	descFallbacks = prometheus.NewDesc("corralfs_fallbacks_total", "Views served from the host's file instead of the container's, by file and reason.", []string{"file", "reason"}, nil)
	descRestarts  = prometheus.NewDesc("corralfs_worker_restarts_total", "Workers started because the serving one died.", nil, nil)
	descUnresp    = prometheus.NewDesc("corralfs_worker_unresponsive_total", "Workers killed and replaced because they left a liveness probe unanswered (counted in the restarts too).", nil, nil)
	descUpgrades  = prometheus.NewDesc("corralfs_worker_upgrades_total", "Workers started by an in-place upgrade (SIGHUP, corralfs reload).", nil, nil)
	descContainer = prometheus.NewDesc("corralfs_containers", "Containers (pid namespaces) the serving worker knows.", nil, nil)
	descHandles   = prometheus.NewDesc("corralfs_open_handles", "Files open on the mount, in the serving worker.", nil, nil)
	descRelay     = prometheus.NewDesc("corralfs_relay_enabled", "1 when the supervisor relays every request (kernels without FUSE_NOTIFY_RESEND, or --relay=always).", nil, nil)
	descResend    = prometheus.NewDesc("corralfs_kernel_resend", "1 when the kernel re-queues a dead worker's requests (FUSE_NOTIFY_RESEND, Linux 6.9+).", nil, nil)
	descKeeperUp  = prometheus.NewDesc("corralfs_seccomp_keeper_up", "1 when the seccomp keeper (holder of the containers' sysinfo listeners) runs.", nil, nil)
	descListeners = prometheus.NewDesc("corralfs_sysinfo_listeners", "Containers' seccomp listeners the sysinfo agent answers.", nil, nil)
	descSysinfo   = prometheus.NewDesc("corralfs_sysinfo_answered_total", "sysinfo(2) calls answered with the container's values by the serving worker's agent.", nil, nil)
	descBuild     = prometheus.NewDesc("corralfs_build_info", "The serving worker's build (always 1).", []string{"version", "commit", "goversion"}, nil)
)

// daemonCollector reads everything at scrape time.
type daemonCollector struct {
	counters *survival.Counters
	fs       *fusefs.FS
	info     workerInfo
	agent    *sysinfoagent.Agent // nil without a sysinfo agent
	socket   string              // the seccomp socket ("" without)
}

func (d *daemonCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(d, ch) }

func (d *daemonCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	c := d.counters
	for fi, file := range c.Files() {
		for oi, op := range survival.CounterOps {
			s := c.Series(fi, oi)
			if s.Count == 0 {
				continue
			}
			counter(descRequests, s.Count, op, file)
			counter(descErrors, s.Errors, op, file)
			buckets := map[float64]uint64{}
			var cum uint64
			for i, le := range survival.LatencyBuckets {
				cum += s.Buckets[i]
				buckets[le] = cum
			}
			ch <- prometheus.MustNewConstHistogram(descDuration, s.Count, s.Sum.Seconds(), buckets, op, file)
		}
		for ri, reason := range survival.FallbackReasons {
			if n := c.Fallbacks(fi, ri); n > 0 {
				counter(descFallbacks, n, file, reason)
			}
		}
	}
	counter(descRestarts, c.Daemon(survival.CounterWorkerRestarts))
	counter(descUpgrades, c.Daemon(survival.CounterWorkerUpgrades))
	counter(descUnresp, c.Daemon(survival.CounterWorkerUnresponsive))
	st := d.fs.Status()
	gauge(descContainer, float64(st.Containers))
	gauge(descHandles, float64(st.OpenHandles))
	gauge(descRelay, flag(d.info.Relay))
	gauge(descResend, flag(d.info.Resend == "yes"))
	if d.socket != "" {
		gauge(descKeeperUp, flag(keeperAlive(d.socket) > 0))
	}
	if d.agent != nil {
		as := d.agent.Stats()
		gauge(descListeners, float64(as.Listeners))
		counter(descSysinfo, as.Answered)
	}
	bi := buildinfo.Get()
	gauge(descBuild, 1, bi.Version, bi.Commit, bi.GoVersion)
}

// keeperAlive is the seccomp keeper's pid when it runs, else 0.
func keeperAlive(socket string) int {
	b, err := os.ReadFile(sysinfoagent.PidPath(socket))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// newRegistry is the worker's registry: the daemon's metrics plus the Go
// runtime's and the process's of the serving worker.
func newRegistry(d *daemonCollector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(d, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// listenMetrics opens --metrics-listen (HOST:PORT or unix:PATH) for the
// workers to serve.
func (s *supervisor) listenMetrics() error {
	addr := s.c.metricsListen
	if addr == "" {
		return nil
	}
	var ln net.Listener
	var err error
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path) // a killed daemon's
		}
		var ul *net.UnixListener
		if ul, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"}); err == nil {
			ul.SetUnlinkOnClose(false) // closing our copy below must leave the name; shutdown removes it
			ln = ul
		}
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	ln.Close() // the duplicate in f stays listening
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	s.metrics = f
	return nil
}

// serveMetrics serves /metrics on the listener the supervisor passed
// (none: nothing to do).
func serveMetrics(f *os.File, reg *prometheus.Registry, log *slog.Logger) error {
	if f == nil {
		return nil
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
