package main

import (
	"path/filepath"
	"time"

	"github.com/corral-dev/corral/fusefs/survival"
	"golang.org/x/sys/unix"
)

// The liveness check (issue 11): a worker that stops answering (SIGSTOP,
// a deadlock, a kernel wait that never ends) blocked every read of every
// container forever, since the supervisor only noticed a worker that
// exited. Now the supervisor reads a view through the mount itself, the
// way a container does; a read left unanswered for --liveness-timeout
// means nobody is being answered, and the worker is killed with SIGKILL.
// Its death then takes the kill -9 path: its unanswered requests (the
// probe's among them) are re-queued (FUSE_NOTIFY_RESEND or the relay) and
// a new worker answers them. A probe through the mount, rather than a ping
// on a pipe, also catches a worker whose request loop is stuck while its
// other goroutines would still answer a ping.

const defaultLivenessTimeout = 10 * time.Second

// probeView is what the probe reads: small, and computed by the same path
// as every view.
const probeView = "proc/uptime"

type livenessProbe struct {
	worker  *workerProc // the worker expected to answer
	started time.Time
	done    chan struct{}
}

// livenessEvery is how often the main loop checks: twice per timeout, so
// a stuck worker is replaced within 1.5 timeouts of its last answer.
func livenessEvery(timeout time.Duration) time.Duration {
	return max(timeout/2, 50*time.Millisecond)
}

// checkLiveness runs in the supervisor's main loop (no lock: only the loop
// changes the worker). It starts a probe when none is under way and kills
// the current worker when the one under way is older than the timeout.
func (s *supervisor) checkLiveness() {
	w := s.currentWorker()
	if p := s.probe; p != nil {
		select {
		case <-p.done:
			s.probe = nil
		default:
			if p.worker != w {
				if s.resend != "yes" && !s.relaying {
					// Nothing re-queues a dead worker's requests
					// (--relay=never on an old kernel): that probe is
					// lost until interrupted. Leave it; probe afresh.
					s.probe = nil
					break
				}
				// Re-queued to the new worker: it is now the one to
				// answer, from now on.
				p.worker, p.started = w, time.Now()
				return
			}
			if time.Since(p.started) < s.c.liveness || w.exited() {
				return
			}
			s.unresponsive++
			s.counters.AddDaemon(survival.CounterWorkerUnresponsive, 1)
			s.log.Error("worker left a read unanswered; replacing it", "worker", w.pid(),
				"waited", time.Since(p.started).Round(time.Millisecond), "probe", probeView, "unresponsive", s.unresponsive)
			w.kill() // the exit takes the restart path (requeue, new worker)
			p.worker, p.started = nil, time.Now()
			return
		}
	}
	if w == nil {
		return
	}
	p := &livenessProbe{worker: w, started: time.Now(), done: make(chan struct{})}
	s.probe = p
	path := filepath.Join(s.mp, probeView)
	go func() {
		defer close(p.done)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			// An error is an answer: the worker is alive.
			return
		}
		var buf [256]byte
		_, _ = unix.Read(fd, buf[:])
		unix.Close(fd)
	}()
}

// livenessTicker returns the channel the main loop checks liveness on (nil,
// never ready, when the check is off).
func (s *supervisor) livenessTicker() (<-chan time.Time, func()) {
	if s.c.liveness <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(livenessEvery(s.c.liveness))
	return t.C, t.Stop
}
