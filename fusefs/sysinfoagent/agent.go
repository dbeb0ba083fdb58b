package sysinfoagent

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	// SocketPath is the OCI listener socket (the keeper's control socket
	// is ControlPath(SocketPath)).
	SocketPath string
	Answerer   Answerer
	// KeeperCommand is the argv that starts a keeper for SocketPath when
	// none answers (corralfs: corralfs-keeper next to it). Nil: wait
	// for a keeper someone else starts.
	KeeperCommand []string
	Log           *slog.Logger
	// AnswerTTL: a thread asking again within this time gets the same
	// answer without the Answerer being asked (default 50ms, negative:
	// always ask). The views' own cgroup readings live 100ms.
	AnswerTTL time.Duration
}

// ErrReplaced is returned by Run when another agent attached to the keeper.
var ErrReplaced = errors.New("seccomp agent: replaced by another agent")

// Agent answers the notifications its keeper forwards.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger

	mu   sync.Mutex
	held map[uint64]*heldFd // the keeper's entries, by id
	// orphans are fds kept from a keeper that died, to hand to the next.
	orphans []*heldFd

	// wake (an eventfd) tells the session that StoreFd/DropFd queued work.
	wake  int
	drops []uint64

	answered, continued, vanished, failed atomic.Uint64
	sessions                              atomic.Uint64
	lastErrLog                            atomic.Int64
}

type heldFd struct {
	id     uint64
	info   entryInfo
	fd     int
	slot   uint32
	direct bool // in the session's epoll set: we receive on it
	cache  answerCache
	sent   bool // an orphan already handed to the current keeper
}

// newRef returns a token for a msgStore, unique enough that no other
// agent's stored entry carries it.
func newRef() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// Stats are the agent's counters since it started.
type Stats struct {
	Answered, Continued, Vanished, Failed uint64
	Listeners                             int
	Sessions                              uint64 // keeper connections made
}

// NewAgent checks cfg and returns an agent; Run starts it.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.SocketPath == "" {
		return nil, errors.New("seccomp agent: no socket path")
	}
	if cfg.Answerer == nil {
		return nil, errors.New("seccomp agent: no answerer")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.AnswerTTL == 0 {
		cfg.AnswerTTL = 50 * time.Millisecond
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("seccomp agent: %w", err)
	}
	return &Agent{cfg: cfg, log: cfg.Log.With("component", "seccomp-agent"), held: map[uint64]*heldFd{}, wake: wake}, nil
}

// Stats returns the counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	n := 0
	for _, h := range a.held {
		if h.info.Kind == KindSeccomp {
			n++
		}
	}
	a.mu.Unlock()
	return Stats{Answered: a.answered.Load(), Continued: a.continued.Load(), Vanished: a.vanished.Load(), Failed: a.failed.Load(), Listeners: n, Sessions: a.sessions.Load()}
}

// Run attaches to the keeper (starting one if needed) and answers until
// stop is closed. If the keeper dies, Run starts a new one and hands it
// every fd it holds, so the containers' listeners survive that too.
func (a *Agent) Run(stop <-chan struct{}) error {
	defer a.closeAll()
	for {
		conn, err := a.connect(stop)
		if err != nil {
			return err
		}
		if conn == nil {
			return nil // stopped
		}
		a.sessions.Add(1)
		a.log.Info("attached to the seccomp keeper", "socket", a.cfg.SocketPath)
		err = a.session(conn, stop)
		switch {
		case errors.Is(err, errStopped):
			return nil
		case errors.Is(err, ErrReplaced):
			a.log.Info("another agent took over")
			return ErrReplaced
		}
		// The keeper went away (or dropped us): hand our copies to
		// the keeper we reach next. If it is the same one, it already
		// has them and recognises the files (Keeper.sameFile).
		a.log.Warn("lost the keeper; reconnecting", "err", err)
		a.mu.Lock()
		for _, h := range a.held {
			a.orphans = append(a.orphans, h)
		}
		for _, h := range a.orphans {
			h.sent = false // to be handed to the next keeper
		}
		a.held = map[uint64]*heldFd{}
		a.mu.Unlock()
	}
}

var errStopped = errors.New("stopped")

// connect dials the control socket, starting a keeper when nobody answers.
func (a *Agent) connect(stop <-chan struct{}) (*net.UnixConn, error) {
	path := ControlPath(a.cfg.SocketPath)
	started := time.Time{}
	for attempt := 0; ; attempt++ {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err == nil {
			return c, nil
		}
		if a.cfg.KeeperCommand != nil && (started.IsZero() || time.Since(started) > 5*time.Second) {
			if serr := startKeeper(a.cfg.KeeperCommand, a.log); serr != nil {
				a.log.Error("starting the keeper", "err", serr)
			}
			started = time.Now()
		}
		if attempt == 50 {
			a.log.Warn("no keeper answers yet", "socket", path, "err", err)
		}
		select {
		case <-stop:
			return nil, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *Agent) addHeld(m *message) {
	var info entryInfo
	if len(m.fds) != 1 || json.Unmarshal(m.payload, &info) != nil {
		closeAll(m.fds)
		a.log.Warn("malformed entry from the keeper")
		return
	}
	a.mu.Lock()
	old := a.held[m.id]
	a.held[m.id] = &heldFd{id: m.id, info: info, fd: m.fds[0]}
	if info.Ref != 0 {
		// The keeper confirms it holds an fd we handed it: our copy
		// of it can go.
		for i, o := range a.orphans {
			if o.info.Ref == info.Ref {
				unix.Close(o.fd)
				a.orphans = append(a.orphans[:i], a.orphans[i+1:]...)
				break
			}
		}
	}
	a.mu.Unlock()
	if old != nil {
		unix.Close(old.fd)
	}
}

func (a *Agent) handle(m *message) {
	closeAll(m.fds)
	n, err := decodeNotify(m.payload)
	if err != nil {
		a.failed.Add(1)
		return
	}
	a.mu.Lock()
	h := a.held[m.id]
	a.mu.Unlock()
	if h == nil {
		// Cannot happen (entries come first); the keeper's stall
		// timeout continues it.
		a.failed.Add(1)
		return
	}
	a.answerOne(h, &n)
}

func (a *Agent) answerOne(h *heldFd, n *Notif) {
	if h.cache.ttl == 0 {
		h.cache.ttl = a.cfg.AnswerTTL
	}
	out, err := answer(h.fd, n, h.cache.answerer(a.cfg.Answerer))
	switch out {
	case answered:
		a.answered.Add(1)
	case continued:
		a.continued.Add(1)
	case vanished:
		a.vanished.Add(1)
	}
	if err != nil {
		a.failed.Add(1)
		a.logRare("sysinfo answered by the host", "pid", n.Pid, "err", err)
	}
}

// logRare logs at most one failure every 10 s (a broken container calling
// sysinfo in a loop must not flood the log).
func (a *Agent) logRare(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := a.lastErrLog.Load()
	if now-last < int64(10*time.Second) || !a.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn(msg, args...)
}

// Held lists the fds of kind KindFd the keeper holds for this agent, by name.
func (a *Agent) Held(kind string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	ids := make([]uint64, 0, len(a.held))
	for id := range a.held {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if h := a.held[id]; h.info.Kind == kind {
			out[h.info.Name] = h.fd
		}
	}
	return out
}

// StoreFd asks the keeper to hold a copy of fd (of kind KindFd) under
// name, with meta, so that it outlives this process: the next agent finds
// it in Held(KindFd). This is how a restarted corralfs can get back, say,
// its /dev/fuse connection. fd stays the caller's.
func (a *Agent) StoreFd(name string, meta []byte, fd int) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.orphans = append(a.orphans, &heldFd{info: entryInfo{Kind: KindFd, Name: name, Meta: meta}, fd: dup})
	a.mu.Unlock()
	a.poke()
	return nil
}

// DropFd asks the keeper to forget the KindFd entry name.
func (a *Agent) DropFd(name string) {
	a.mu.Lock()
	for id, h := range a.held {
		if h.info.Kind == KindFd && h.info.Name == name {
			a.drops = append(a.drops, id)
		}
	}
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) poke() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.wake >= 0 {
		_, _ = unix.Write(a.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

func (a *Agent) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.held {
		unix.Close(h.fd)
	}
	for _, h := range a.orphans {
		unix.Close(h.fd)
	}
	a.held, a.orphans = map[uint64]*heldFd{}, nil
	if a.wake >= 0 {
		unix.Close(a.wake)
		a.wake = -1
	}
}
