package survival

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The supervisor's side of the worker protocol. The supervisor (corralfs
// MOUNTPOINT, cmd/corralfs/supervisor.go) owns the mount and the /dev/fuse
// file and answers nothing: it never handles a request, so it never blocks
// and never crashes on one. A worker (corralfs serve-worker) does all the
// serving with an inherited copy of the file. Kill the worker with SIGKILL
// and the supervisor re-queues what it had read (FUSE_NOTIFY_RESEND) and
// starts another (Replace); ask for an upgrade and it starts a worker from
// the binary now at its path, then retires the old one (Upgrade). On
// kernels without RESEND the supervisor also reads the requests, keeps
// them and passes them on (relay.go): nothing else can save what a dying
// worker read.

// restartBackoffMax bounds how fast a crashing worker is restarted: at
// once after a worker that ran for a while (healthyRun), growing up to the
// maximum for one that keeps dying at start.
const (
	restartBackoffMax  = 5 * time.Second
	healthyRun         = time.Second
	defaultReadyWithin = 30 * time.Second
)

// Supervisor keeps one worker serving a connection. Set the fields, call
// ChooseRecovery once, then Start; only one goroutine (the supervisor's
// main loop) calls its methods, except Current.
type Supervisor struct {
	Exe  string   // the worker's binary: each start runs what is at this path now
	Args []string // the worker's arguments
	Conn *os.File // the /dev/fuse file every worker inherits
	Init fuse.InitIn
	// Info, if set, is the EnvInfo value of the next worker.
	Info func() string
	// Optional descriptors every worker inherits: the control and
	// metrics listeners, the handle store's and the counters' memfds.
	Control, Metrics      *os.File
	Handles, CountersFile *os.File
	Counters              *Counters // where restarts and upgrades are counted (nil: nowhere)
	Log                   *slog.Logger
	ReadyWithin           time.Duration // how long a worker may take to be ready (0: 30 s)
	Liveness              time.Duration // see CheckLiveness (0: no check)
	Probe                 func()        // see CheckLiveness
	ProbeName             string        // what Probe reads, for the log
	Restarts, Upgrades    int           // workers started after one died, by Upgrade
	Unresponsive          int           // workers killed by the liveness check
	resend, relaying      bool
	journal               *os.File // the relay's in-flight journal
	relay                 *relay
	alive, aliveR         *os.File // a pipe whose EOF tells workers we died
	exited                chan *Worker
	backoff               time.Duration
	probe                 *livenessProbe
	mu                    sync.Mutex
	worker                *Worker
}

// Recovery says how a dead worker's unanswered requests reach the next one.
type Recovery struct {
	Resend   bool // the kernel re-queues them (FUSE_NOTIFY_RESEND, Linux 6.9+)
	Relaying bool // the supervisor reads every request and keeps it (relay.go)
}

// ChooseRecovery decides how a dead worker's unanswered requests reach the
// next one: the kernel re-queues them (FUSE_NOTIFY_RESEND, probed by
// sending one now, when nothing is queued), or the supervisor relays every
// request and keeps it in journal until answered (mode "always", or
// "auto" on a kernel without RESEND; journal nil makes a fresh one).
// Mode "never" relays nothing, ever.
func (s *Supervisor) ChooseRecovery(mode string, journal *os.File) (Recovery, error) {
	const relayWhy = "the supervisor reads every request itself and keeps it until a worker has answered it, " +
		"so a killed worker loses none (one more hop per request)"
	s.init()
	switch {
	case mode == "always":
		// No probe: a RESEND would also re-queue what a dead
		// supervisor's relay had read, which its journal hands on.
		s.Log.Info("relaying FUSE requests (--relay=always): " + relayWhy)
		s.relaying = true
	default:
		switch err := Resend(s.Conn); {
		case err == nil:
			s.resend = true
		case !errors.Is(err, ErrNoResend):
			s.Log.Warn("FUSE_NOTIFY_RESEND probe failed", "err", err)
		}
		if s.resend {
			break
		}
		const noResend = "this kernel cannot re-queue requests of a killed worker (FUSE_NOTIFY_RESEND needs Linux 6.9): "
		if mode == "never" {
			s.Log.Warn(noResend + "with --relay=never, reads in flight when a worker dies wait until their reader is interrupted")
			break
		}
		s.relaying = true
		s.Log.Warn(noResend + relayWhy)
	}
	if journal != nil && !s.relaying {
		journal.Close()
		journal = nil
	}
	if s.relaying {
		var err error
		if journal == nil {
			if journal, err = newJournalFile(); err != nil {
				return Recovery{}, err
			}
		}
		s.journal = journal
		if s.relay, err = newRelay(s.Conn, journal, s.Log); err != nil {
			return Recovery{}, err
		}
	}
	return s.Recovery(), nil
}

// Recovery is what ChooseRecovery chose.
func (s *Supervisor) Recovery() Recovery { return Recovery{Resend: s.resend, Relaying: s.relaying} }

// Journal is the relay's in-flight journal file (nil without a relay),
// for systemd's fd store.
func (s *Supervisor) Journal() *os.File { return s.journal }

// RelayGone is closed when the relay finds the connection ended (never,
// without a relay).
func (s *Supervisor) RelayGone() <-chan struct{} {
	if s.relay == nil {
		return nil
	}
	return s.relay.gone
}

func (s *Supervisor) init() {
	if s.exited == nil {
		s.exited = make(chan *Worker, 4)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
}

// Exited reports every worker that ended: the current one (to Replace) as
// well as retired ones and failed candidates (to ignore: compare with
// Current).
func (s *Supervisor) Exited() <-chan *Worker {
	s.init()
	return s.exited
}

// Start starts the first worker and lets it serve.
func (s *Supervisor) Start() (*Worker, error) {
	s.init()
	if s.alive == nil {
		var err error
		if s.aliveR, s.alive, err = os.Pipe(); err != nil {
			return nil, err
		}
	}
	w, err := s.start()
	if err != nil {
		return nil, err
	}
	s.setCurrent(w)
	s.release(w)
	return w, nil
}

// Current is the worker serving now.
func (s *Supervisor) Current() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.worker
}

func (s *Supervisor) setCurrent(w *Worker) {
	s.mu.Lock()
	s.worker = w
	s.mu.Unlock()
}

// release lets w serve, once the worker before it is dead: behind the
// relay, w first gets what that one left unanswered.
func (s *Supervisor) release(w *Worker) {
	if s.relay != nil {
		s.relay.Attach(w.relayEnd)
	}
	w.release()
}

// requeue asks the kernel to hand the requests a dead worker had read to
// the next one.
func (s *Supervisor) requeue() {
	if !s.resend {
		return
	}
	if err := Resend(s.Conn); err != nil {
		s.Log.Error("FUSE_NOTIFY_RESEND failed", "err", err)
	}
}

// Replace starts a worker in place of dead, the current one, which has
// exited: its unanswered requests go to the new one. A worker that cannot
// start is retried, sooner after a worker that ran a while than after one
// that died at start; Replace returns once one serves.
func (s *Supervisor) Replace(dead *Worker) *Worker {
	s.requeue()
	if time.Since(dead.started) >= healthyRun {
		s.backoff = 0
	}
	for {
		if s.backoff > 0 {
			time.Sleep(s.backoff)
		}
		s.backoff = min(max(2*s.backoff, 100*time.Millisecond), restartBackoffMax)
		s.Restarts++
		nw, err := s.start()
		if err == nil {
			s.setCurrent(nw)
			s.release(nw)
			s.count(CounterWorkerRestarts)
			s.Log.Info("worker restarted", "worker", nw.Pid(), "restarts", s.Restarts)
			return nw
		}
		s.Log.Error("starting a worker failed; retrying", "err", err, "in", s.backoff)
	}
}

// Upgrade starts a worker from the binary now at Exe and, once it serves,
// retires the old one; a new binary that does not come up leaves the old
// worker serving (the error says why).
func (s *Supervisor) Upgrade() (*Worker, error) {
	old := s.Current()
	s.Upgrades++ // counted before: the new worker's Info reports it
	nw, err := s.start()
	if err != nil {
		s.Upgrades--
		return nil, err
	}
	s.setCurrent(nw)
	// The new worker reads nothing until released: retire the old one,
	// re-queue what it had read, then let the new one serve it all.
	// Readers wait meanwhile for a kill, a reap and a RESEND.
	if old != nil {
		old.Kill()
		<-old.done
		s.requeue()
	}
	s.release(nw)
	// Counted once the new worker serves: `corralfs reload` waits for it.
	s.count(CounterWorkerUpgrades)
	return nw, nil
}

// Stop asks the current worker to exit and kills it after grace.
func (s *Supervisor) Stop(grace time.Duration) {
	if w := s.Current(); w != nil {
		w.stop(grace)
	}
}

func (s *Supervisor) count(which int) {
	if s.Counters != nil {
		s.Counters.addDaemon(which, 1)
	}
}
