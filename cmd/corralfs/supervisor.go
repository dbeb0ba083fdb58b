package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/survival"
)

// The supervisor is the process `corralfs MOUNTPOINT` runs as (the pid in
// --pidfile, systemd's main pid). It owns the mount and the /dev/fuse file
// and answers nothing: it never handles a request, so it never blocks and
// never crashes on one. A worker (`corralfs serve-worker`, worker.go) does
// all the serving with an inherited copy of the file. Kill the worker with
// SIGKILL and the supervisor re-queues what it had read (FUSE_NOTIFY_RESEND)
// and starts another; send the supervisor SIGHUP and it starts a worker
// from the binary now at its path, then retires the old one. Containers
// reading the views notice neither (see fusefs/conn.go). On kernels without
// RESEND the supervisor also reads the requests, keeps them and passes them
// on (fusefs/survival/relay.go): nothing else can save what a dying worker read.

// restartBackoff bounds how fast a crashing worker is restarted: at once
// after a worker that ran for a while, growing up to the maximum for one
// that keeps dying at start.
const (
	restartBackoffMax = 5 * time.Second
	healthyRun        = time.Second
	workerReadyWithin = 30 * time.Second
)

type supervisor struct {
	c       serveConfig
	mp      string
	log     *slog.Logger
	args    []string // the serve flags, passed on to every worker
	exe     string   // our binary's path: SIGHUP starts whatever is there now
	started time.Time

	conn  *fusefs.Conn
	ctl   *os.File // the control socket's listening socket, served by the worker
	ctlLn *net.UnixListener
	// metrics is the --metrics-listen socket; like the control socket it
	// belongs to the supervisor, so scrapes never see a refused
	// connection while a worker is replaced.
	metrics *os.File
	alive   *os.File // write end of a pipe whose EOF tells workers we died
	aliveR  *os.File

	resend       string   // "yes", "no": does the kernel re-queue a dead worker's requests
	relaying     bool     // the supervisor reads the requests (chooseRecovery)
	journal      *os.File // the relay's in-flight journal (fusefs/survival/journal.go)
	handles      *os.File // open handles' content, for every worker (survival.HandleStore)
	countersF    *os.File // daemon-total counters, for every worker (survival.Counters)
	counters     *survival.Counters
	relay        *survival.Relay // reads the device when the kernel cannot re-queue (fusefs/survival/relay.go)
	restarts     int             // workers started after one died
	unresponsive int             // workers killed by the liveness check (supervisor_liveness.go)
	upgrades     int             // workers started by SIGHUP
	workerSeq    int
	probe        *livenessProbe // the liveness probe under way, if any

	// dead: superblocks of the mounts a dead corralfs left here, whose
	// binds in running containers get our views once we serve (rebind.go).
	dead []uint64

	mu     sync.Mutex
	worker *workerProc
}

// runSupervised is the serve command: mount, start a worker, keep one
// running until SIGTERM/SIGINT.
func runSupervised(c serveConfig, mp string, args []string, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own binary: %w", err)
	}
	s := &supervisor{c: c, mp: mp, log: log, args: args, exe: exe, started: time.Now()}
	// Restarted by systemd after the supervisor died: the connection
	// (fdstore.go) is still mounted and its queued requests wait for us.
	stored, shared, err := storedConn()
	if err != nil {
		log.Warn("ignoring the connection systemd kept", "err", err)
	}
	if stored != nil {
		if live, _ := fusefs.MountedAt(mp); live {
			s.conn, s.journal, s.handles, s.countersF = stored, shared[fdNameInFlight], shared[fdNameHandles], shared[fdNameCounters]
			log.Info("took over the mounted connection systemd kept", "mountpoint", mp)
		} else {
			stored.File.Close()
			for _, f := range shared {
				f.Close()
			}
			unstoreConn()
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
		if err := storeConn(s.conn); err != nil {
			log.Warn("systemd cannot keep the connection: a dead supervisor will take the mount with it", "err", err)
		}
	}
	// Also re-queues what a dead worker of a dead supervisor had read.
	s.chooseRecovery()
	if s.handles == nil {
		if s.handles, err = survival.NewHandleStoreFile(); err != nil {
			return s.shutdown("startup", err)
		}
	}
	storeShared(fdNameHandles, s.handles, log)
	if err := s.openCounters(); err != nil {
		return s.shutdown("startup", err)
	}
	storeShared(fdNameCounters, s.countersF, log)
	if s.relaying {
		if s.journal == nil {
			if s.journal, err = survival.NewJournalFile(); err != nil {
				return s.shutdown("startup", err)
			}
		}
		storeShared(fdNameInFlight, s.journal, log)
		if s.relay, err = survival.NewRelay(s.conn.File, s.journal, log); err != nil {
			return s.shutdown("startup", err)
		}
	}
	if err := s.openPipesAndControl(); err != nil {
		return s.shutdown("startup", err)
	}
	exited := make(chan *workerProc, 4)
	w, err := s.startWorker(s.exe, exited)
	if err != nil {
		return s.shutdown("first worker", err)
	}
	s.setWorker(w)
	s.release(w)
	if err := fusefs.WaitAnswering(mp, 30*time.Second); err != nil {
		return s.shutdown("mount does not answer", err)
	}
	if c.pidfile != "" {
		if err := writePidfile(c.pidfile); err != nil {
			return s.shutdown("pidfile", err)
		}
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nMAINPID="+itoa(os.Getpid())+"\nSTATUS=serving "+mp)
	log.Info("serving", "mountpoint", mp, "supervisor", os.Getpid(), "worker", w.pid(), "resend", s.resend)
	s.rebindDead()

	var relayGone <-chan struct{}
	if s.relay != nil {
		relayGone = s.relay.Gone()
	}
	watchdog := watchdogTicks(log)
	liveness, stopLiveness := s.livenessTicker()
	defer stopLiveness()
	backoff := time.Duration(0)
	for {
		select {
		case <-watchdog:
			// Pinged from this loop, not a goroutine of its own: a
			// supervisor stuck in a restart or upgrade stops pinging,
			// and systemd's WatchdogSec= restarts it (the fd store
			// keeps the connection meanwhile).
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-liveness:
			s.checkLiveness()
		case <-relayGone:
			return s.shutdown("unmounted from outside", fmt.Errorf("%s was unmounted by someone else", mp))
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.upgrade(exited)
				continue
			}
			return s.shutdown(sig.String(), nil)
		case w := <-exited:
			if w != s.currentWorker() {
				continue // a retired worker (after an upgrade) or a failed candidate
			}
			if w.exitCode() == exitUnmounted {
				// Someone unmounted us (umount MOUNTPOINT): nothing left
				// to serve. Exit non-zero so systemd's Restart= mounts
				// it again.
				return s.shutdown("unmounted from outside", fmt.Errorf("%s was unmounted by someone else", mp))
			}
			log.Warn("worker died; restarting it on the same connection", "worker", w.pid(), "status", w.state(), "ran", time.Since(w.started).Round(time.Millisecond))
			s.requeue()
			if time.Since(w.started) >= healthyRun {
				backoff = 0
			}
			for {
				if backoff > 0 {
					time.Sleep(backoff)
				}
				backoff = min(max(2*backoff, 100*time.Millisecond), restartBackoffMax)
				s.restarts++
				nw, err := s.startWorker(s.exe, exited)
				if err == nil {
					s.setWorker(nw)
					s.release(nw)
					s.counters.AddDaemon(survival.CounterWorkerRestarts, 1)
					log.Info("worker restarted", "worker", nw.pid(), "restarts", s.restarts)
					break
				}
				log.Error("starting a worker failed; retrying", "err", err, "in", backoff)
			}
		}
	}
}

// probeResend learns whether the kernel can re-queue a dead worker's
// requests by sending a RESEND now, when there is nothing to re-queue.
// chooseRecovery decides how a dead worker's unanswered requests reach
// the next one: the kernel re-queues them (FUSE_NOTIFY_RESEND, Linux 6.9+,
// probed by sending one when nothing is queued), or the supervisor relays
// every request and keeps it until answered (--relay, fusefs/survival/relay.go).
func (s *supervisor) chooseRecovery() {
	const relayWhy = "the supervisor reads every request itself and keeps it until a worker has answered it, " +
		"so a killed worker loses none (one more hop per request)"
	if s.c.relay == "always" {
		// No probe: a RESEND would also re-queue what a dead
		// supervisor's relay had read, which its journal hands on.
		s.resend, s.relaying = "no", true
		s.log.Info("relaying FUSE requests (--relay=always): " + relayWhy)
		return
	}
	switch err := survival.Resend(s.conn.File); {
	case err == nil:
		s.resend = "yes"
		return
	case !errors.Is(err, survival.ErrNoResend):
		s.log.Warn("FUSE_NOTIFY_RESEND probe failed", "err", err)
	}
	s.resend = "no"
	const noResend = "this kernel cannot re-queue requests of a killed worker (FUSE_NOTIFY_RESEND needs Linux 6.9): "
	if s.c.relay == "never" {
		s.log.Warn(noResend + "with --relay=never, reads in flight when a worker dies wait until their reader is interrupted")
		return
	}
	s.relaying = true
	s.log.Warn(noResend + relayWhy)
}

// release lets w serve, once the worker before it is dead: behind the
// relay, w first gets what that one left unanswered.
func (s *supervisor) release(w *workerProc) {
	if s.relay != nil {
		s.relay.Attach(w.relayEnd)
	}
	w.release()
}

// requeue asks the kernel to hand the requests a dead worker had read to
// the next one.
func (s *supervisor) requeue() {
	if s.resend != "yes" {
		return
	}
	if err := survival.Resend(s.conn.File); err != nil {
		s.log.Error("FUSE_NOTIFY_RESEND failed", "err", err)
	}
}

// upgrade starts a worker from the binary now at our path and, once it
// serves, retires the old one; a new binary that does not come up leaves
// the old worker serving.
func (s *supervisor) upgrade(exited chan *workerProc) {
	old := s.currentWorker()
	s.log.Info("upgrade requested (SIGHUP): starting a worker from the binary at our path", "binary", s.exe)
	// systemd 253+ (Type=notify-reload, or any notify unit that says
	// RELOADING=1) holds `systemctl reload` until READY=1.
	_, _ = daemon.SdNotify(false, "RELOADING=1\nMONOTONIC_USEC="+monotonicUsec())
	defer daemon.SdNotify(false, daemon.SdNotifyReady)
	s.upgrades++ // counted before: a new worker of an older build reports it from workerInfo
	nw, err := s.startWorker(s.exe, exited)
	if err != nil {
		s.upgrades--
		s.log.Error("upgrade failed; the old worker keeps serving", "err", err)
		return
	}
	s.setWorker(nw)
	// The new worker reads nothing until released: retire the old one,
	// re-queue what it had read, then let the new one serve it all.
	// Readers wait meanwhile for a kill, a reap and a RESEND.
	if old != nil {
		old.kill()
		<-old.done
		s.requeue()
	}
	s.release(nw)
	// Counted once the new worker serves: `corralfs reload` waits for it.
	s.counters.AddDaemon(survival.CounterWorkerUpgrades, 1)
	s.log.Info("upgraded", "worker", nw.pid(), "upgrades", s.upgrades)
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

// openPipesAndControl makes the descriptors every worker inherits besides
// the connection: the liveness pipe and the control socket.
func (s *supervisor) openPipesAndControl() error {
	var err error
	if s.aliveR, s.alive, err = os.Pipe(); err != nil {
		return err
	}
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

func (s *supervisor) setWorker(w *workerProc) {
	s.mu.Lock()
	s.worker = w
	s.mu.Unlock()
}

func (s *supervisor) currentWorker() *workerProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.worker
}

// shutdown stops the worker, unmounts and cleans up; err (if any) is
// returned so callers can `return s.shutdown(...)`.
func (s *supervisor) shutdown(why string, err error) error {
	s.log.Info("stopping", "why", why, "mountpoint", s.mp)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if w := s.currentWorker(); w != nil {
		w.stop(5 * time.Second)
	}
	var uerr error
	if s.conn != nil {
		unstoreConn()
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
