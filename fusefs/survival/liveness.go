package survival

import (
	"time"
)

// The liveness check (issue 11): a worker that stops answering (SIGSTOP,
// a deadlock, a kernel wait that never ends) blocked every read of every
// container forever, since the supervisor only noticed a worker that
// exited. Now the supervisor asks something through the connection itself
// (Probe: corralfs reads a view through the mount, the way a container
// does); a probe left unanswered for Liveness means nobody is being
// answered, and the worker is killed with SIGKILL. Its death then takes
// the Replace path: its unanswered requests (the probe's among them) are
// re-queued (FUSE_NOTIFY_RESEND or the relay) and a new worker answers
// them. A probe through the mount, rather than a ping on a pipe, also
// catches a worker whose request loop is stuck while its other goroutines
// would still answer a ping.

type livenessProbe struct {
	worker  *Worker // the worker expected to answer
	started time.Time
	done    chan struct{}
}

// LivenessEvery is how often the main loop should call CheckLiveness:
// twice per timeout, so a stuck worker is replaced within 1.5 timeouts of
// its last answer.
func LivenessEvery(timeout time.Duration) time.Duration {
	return max(timeout/2, 50*time.Millisecond)
}

// CheckLiveness runs in the supervisor's main loop (only the loop changes
// the worker). It starts a probe when none is under way and kills the
// current worker when the one under way is older than Liveness.
func (s *Supervisor) CheckLiveness() {
	w := s.Current()
	if p := s.probe; p != nil {
		select {
		case <-p.done:
			s.probe = nil
		default:
			if p.worker != w {
				if !s.resend && !s.relaying {
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
			if time.Since(p.started) < s.Liveness || w.Exited() {
				return
			}
			s.Unresponsive++
			s.count(CounterWorkerUnresponsive)
			s.Log.Error("worker left a read unanswered; replacing it", "worker", w.Pid(),
				"waited", time.Since(p.started).Round(time.Millisecond), "probe", s.ProbeName, "unresponsive", s.Unresponsive)
			w.Kill() // the exit takes the Replace path (requeue, new worker)
			p.worker, p.started = nil, time.Now()
			return
		}
	}
	if w == nil || s.Probe == nil {
		return
	}
	p := &livenessProbe{worker: w, started: time.Now(), done: make(chan struct{})}
	s.probe = p
	go func() {
		defer close(p.done)
		s.Probe()
	}()
}
