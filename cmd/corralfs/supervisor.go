package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/survival"
)

// The supervisor is the process `corralfs MOUNTPOINT` runs as (the pid in
// --pidfile, systemd's main pid). It owns the mount and the /dev/fuse file
// and answers nothing; a worker (`corralfs serve-worker`, worker.go) does
// all the serving with an inherited copy of the file. The protocol between
// the two (starting, releasing, replacing and upgrading workers, the
// liveness check, the relay on kernels without FUSE_NOTIFY_RESEND) is
// fusefs/survival's; this file is the wiring: the mount, signals, systemd
// (readiness, watchdog, fd store), the control and metrics sockets.

// workerReadyWithin is how long a starting worker may take to serve.
const workerReadyWithin = 30 * time.Second

type supervisor struct {
	c       serveConfig
	mp      string
	log     *slog.Logger
	started time.Time

	conn  *fusefs.Conn
	ctl   *os.File // the control socket's listening socket, served by the worker
	ctlLn *net.UnixListener
	// metrics is the --metrics-listen socket; like the control socket it
	// belongs to the supervisor, so scrapes never see a refused
	// connection while a worker is replaced.
	metrics   *os.File
	journal   *os.File // the relay's in-flight journal systemd kept (survival/journal.go)
	handles   *os.File // open handles' content, for every worker (survival.HandleStore)
	countersF *os.File // daemon-total counters, for every worker (survival.Counters)
	counters  *survival.Counters
	sup       *survival.Supervisor

	// dead: superblocks of the mounts a dead corralfs left here, whose
	// binds in running containers get our views once we serve (rebind.go).
	dead []uint64
}

// runSupervised is the serve command: mount, start a worker, keep one
// running until SIGTERM/SIGINT.
func runSupervised(c serveConfig, mp string, args []string, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own binary: %w", err)
	}
	s := &supervisor{c: c, mp: mp, log: log, started: time.Now()}
	// Restarted by systemd after the supervisor died: the connection
	// (survival/fdstore.go) is still mounted and its queued requests
	// wait for us.
	storedF, storedInit, shared, err := survival.StoredConn()
	if err != nil {
		log.Warn("ignoring the connection systemd kept", "err", err)
	}
	if storedF != nil {
		if live, _ := fusefs.MountedAt(mp); live {
			s.conn = &fusefs.Conn{File: storedF, Init: storedInit}
			s.journal, s.handles, s.countersF = shared[survival.FDNameInFlight], shared[survival.FDNameHandles], shared[survival.FDNameCounters]
			log.Info("took over the mounted connection systemd kept", "mountpoint", mp)
		} else {
			storedF.Close()
			for _, f := range shared {
				f.Close()
			}
			survival.UnstoreConn()
		}
	}
	if s.conn == nil {
		if s.dead, err = fusefs.PrepareMountpointDead(mp, log); err != nil {
			return err
		}
	}
	// Signals are caught from here on: a SIGTERM during startup still
	// unmounts. SIGHUP is the documented upgrade signal.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	signal.Ignore(syscall.SIGPIPE)

	if s.conn == nil {
		if s.conn, err = fusefs.MountConn(mp, fusefs.MountConfig{AllowOther: c.allowOther, Debug: c.debugFUSE}, log); err != nil {
			return err
		}
		if err := survival.StoreConn(s.conn.File, s.conn.Init); err != nil {
			log.Warn("systemd cannot keep the connection: a dead supervisor will take the mount with it", "err", err)
		}
	}
	s.sup = &survival.Supervisor{
		Exe: exe, Args: append([]string{"serve-worker"}, args...),
		Conn: s.conn.File, Init: s.conn.Init, Log: log,
		ReadyWithin: workerReadyWithin, Liveness: c.liveness, Probe: s.probeMount, ProbeName: probeView,
	}
	s.sup.Info = s.workerInfo
	// Also re-queues what a dead worker of a dead supervisor had read.
	rec, err := s.sup.ChooseRecovery(c.relay, s.journal)
	if err != nil {
		return s.shutdown("startup", err)
	}
	if s.handles == nil {
		if s.handles, err = survival.NewHandleStoreFile(); err != nil {
			return s.shutdown("startup", err)
		}
	}
	survival.StoreShared(survival.FDNameHandles, s.handles, log)
	if err := s.openCounters(); err != nil {
		return s.shutdown("startup", err)
	}
	survival.StoreShared(survival.FDNameCounters, s.countersF, log)
	if rec.Relaying {
		survival.StoreShared(survival.FDNameInFlight, s.sup.Journal(), log)
	}
	if err := s.openControl(); err != nil {
		return s.shutdown("startup", err)
	}
	s.sup.Handles, s.sup.CountersFile, s.sup.Counters = s.handles, s.countersF, s.counters
	s.sup.Control, s.sup.Metrics = s.ctl, s.metrics
	w, err := s.sup.Start()
	if err != nil {
		return s.shutdown("first worker", err)
	}
	if err := s.waitAnswering(30 * time.Second); err != nil {
		return s.shutdown("mount does not answer", err)
	}
	if c.pidfile != "" {
		if err := writePidfile(c.pidfile); err != nil {
			return s.shutdown("pidfile", err)
		}
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nMAINPID="+itoa(os.Getpid())+"\nSTATUS=serving "+mp)
	log.Info("serving", "mountpoint", mp, "supervisor", os.Getpid(), "worker", w.Pid(), "resend", resendName(rec))
	s.rebindDead()

	watchdog := watchdogTicks(log)
	var liveness <-chan time.Time
	if c.liveness > 0 {
		t := time.NewTicker(survival.LivenessEvery(c.liveness))
		defer t.Stop()
		liveness = t.C
	}
	for {
		select {
		case <-watchdog:
			// Pinged from this loop, not a goroutine of its own: a
			// supervisor stuck in a restart or upgrade stops pinging,
			// and systemd's WatchdogSec= restarts it (the fd store
			// keeps the connection meanwhile).
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-liveness:
			s.sup.CheckLiveness()
		case <-s.sup.RelayGone():
			return s.shutdown("unmounted from outside", fmt.Errorf("%s was unmounted by someone else", mp))
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.upgrade()
				continue
			}
			return s.shutdown(sig.String(), nil)
		case w := <-s.sup.Exited():
			if w != s.sup.Current() {
				continue // a retired worker (after an upgrade) or a failed candidate
			}
			if w.ExitCode() == survival.ExitUnmounted {
				// Someone unmounted us (umount MOUNTPOINT): nothing left
				// to serve. Exit non-zero so systemd's Restart= mounts
				// it again.
				return s.shutdown("unmounted from outside", fmt.Errorf("%s was unmounted by someone else", mp))
			}
			log.Warn("worker died; restarting it on the same connection", "worker", w.Pid(), "status", w.State(), "ran", time.Since(w.Started()).Round(time.Millisecond))
			s.sup.Replace(w)
		}
	}
}

// resendName is the status word for who re-queues a dead worker's requests.
func resendName(r survival.Recovery) string {
	if r.Resend {
		return "yes"
	}
	return "no"
}

// workerInfo is what the next worker is told about the daemon (EnvInfo).
func (s *supervisor) workerInfo() string {
	rec := s.sup.Recovery()
	b, _ := json.Marshal(workerInfo{
		SupervisorPid: os.Getpid(), SupervisorStarted: s.started, Mountpoint: s.mp,
		Restarts: s.sup.Restarts, Upgrades: s.sup.Upgrades, Unresponsive: s.sup.Unresponsive,
		Resend: resendName(rec), Relay: rec.Relaying, Control: s.ctl != nil,
		SupervisorBuild: buildinfo.Get(),
	})
	return string(b)
}

// upgrade starts a worker from the binary now at our path and, once it
// serves, retires the old one; a new binary that does not come up leaves
// the old worker serving.
func (s *supervisor) upgrade() {
	s.log.Info("upgrade requested (SIGHUP): starting a worker from the binary at our path", "binary", s.sup.Exe)
	// systemd 253+ (Type=notify-reload, or any notify unit that says
	// RELOADING=1) holds `systemctl reload` until READY=1.
	_, _ = daemon.SdNotify(false, "RELOADING=1\nMONOTONIC_USEC="+monotonicUsec())
	defer daemon.SdNotify(false, daemon.SdNotifyReady)
	nw, err := s.sup.Upgrade()
	if err != nil {
		s.log.Error("upgrade failed; the old worker keeps serving", "err", err)
		return
	}
	s.log.Info("upgraded", "worker", nw.Pid(), "upgrades", s.sup.Upgrades)
}

// openCounters maps the daemon-total counters: those systemd kept for a
// restarted supervisor, else fresh ones (also when the kept ones have
// another build's layout).
func (s *supervisor) openCounters() error {
	if s.countersF != nil {
		if c, err := survival.OpenCounters(s.countersF); err == nil {
			s.counters = c
			return nil
		}
		s.log.Warn("the counters systemd kept have another layout: starting from zero")
		s.countersF.Close()
	}
	f, err := survival.NewCountersFile()
	if err != nil {
		return err
	}
	c, err := survival.OpenCounters(f)
	if err != nil {
		f.Close()
		return err
	}
	s.countersF, s.counters = f, c
	return nil
}

// watchdogTicks returns a channel that ticks at half systemd's watchdog
// interval (WatchdogSec=), or nil when no watchdog is asked for.
func watchdogTicks(log *slog.Logger) <-chan time.Time {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring systemd's watchdog settings", "err", err)
	}
	if every <= 0 {
		return nil
	}
	log.Info("pinging systemd's watchdog", "every", every/2)
	return time.NewTicker(every / 2).C
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it.
func monotonicUsec() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return itoa(int(ts.Nano() / 1000))
}

// openControl makes the listening sockets every worker inherits: the
// control socket and the metrics one.
func (s *supervisor) openControl() error {
	var err error
	if s.c.controlSocket == "" {
		return nil
	}
	// A socket left by a killed daemon is in the way; a live daemon on the
	// same socket cannot exist (it would hold the mount we just made).
	if fi, err := os.Lstat(s.c.controlSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(s.c.controlSocket)
	}
	if err := s.listenMetrics(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.c.controlSocket), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.c.controlSocket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	s.ctlLn = ln
	if err := os.Chmod(s.c.controlSocket, 0o600); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// Connections wait in the listen backlog while no worker runs.
	if s.ctl, err = ln.File(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

// shutdown stops the worker, unmounts and cleans up; err (if any) is
// returned so callers can `return s.shutdown(...)`.
func (s *supervisor) shutdown(why string, err error) error {
	s.log.Info("stopping", "why", why, "mountpoint", s.mp)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if s.sup != nil {
		s.sup.Stop(5 * time.Second)
	}
	var uerr error
	if s.conn != nil {
		survival.UnstoreConn()
		uerr = unmountConn(s.mp)
		s.conn.File.Close()
	}
	if s.ctlLn != nil {
		s.ctlLn.Close()
		s.ctl.Close()
	}
	if s.c.pidfile != "" {
		_ = os.Remove(s.c.pidfile)
	}
	if path, ok := strings.CutPrefix(s.c.metricsListen, "unix:"); ok && s.metrics != nil {
		_ = os.Remove(path)
	}
	if err != nil {
		return err
	}
	return uerr
}

// unmountConn unmounts mp, waiting briefly for busy files to close, and
// detaches it lazily if it stays busy.
func unmountConn(mp string) error {
	delay := 5 * time.Millisecond
	for try := 0; try < 5; try++ {
		if err := unix.Unmount(mp, 0); err == nil || errors.Is(err, unix.EINVAL) {
			return nil
		}
		time.Sleep(delay)
		delay *= 2
	}
	if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}
