package seccompagent

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
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
	// none answers (corralfs: its own binary, "seccomp-keeper"). Nil: wait
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
	return &Agent{cfg: cfg, log: cfg.Log.With("component", "seccomp-agent"), held: map[uint64]*heldFd{}}, nil
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
	var lastKeeper int32
	for {
		conn, err := a.connect(stop)
		if err != nil {
			return err
		}
		if conn == nil {
			return nil // stopped
		}
		pid := peerPid(conn)
		if pid != 0 && pid == lastKeeper {
			// The same keeper dropped us (it judged us stuck) and took
			// our listeners back: it still holds every fd, so ours are
			// not orphans to hand over but copies to close.
			a.mu.Lock()
			for _, h := range a.orphans {
				unix.Close(h.fd)
			}
			a.orphans = nil
			a.mu.Unlock()
		}
		lastKeeper = pid
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
		// The keeper went away (or dropped us): keep its fds until we
		// know which.
		a.log.Warn("lost the keeper; reconnecting", "err", err)
		a.mu.Lock()
		for _, h := range a.held {
			a.orphans = append(a.orphans, h)
		}
		a.held = map[uint64]*heldFd{}
		a.mu.Unlock()
	}
}

var errStopped = errors.New("stopped")

// peerPid is the pid of the process at the other end of c (0 if unknown).
func peerPid(c *net.UnixConn) int32 {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var pid int32
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = cred.Pid
		}
	})
	return pid
}

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
}
