// Package sysinfoagent answers sysinfo(2) for containers from their own
// cgroups, through seccomp user notification, and keeps every container's
// listener fd alive when the answering process dies.
//
// Two processes share the work:
//
//	keeper  `corralfs-keeper`, tiny and never busy. It owns the OCI
//	        listener socket runtimes send listener fds to and holds every
//	        fd. It receives a listener's notifications until an agent has
//	        taken over receiving on it, and whenever none is attached it
//	        answers each one CONTINUE (the real syscall: host values). The
//	        agent starts it when missing, in its own session, so it
//	        outlives the agent.
//	agent   inside corralfs. It attaches to the keeper's control socket and
//	        gets a copy of every fd. The first notification of a listener
//	        reaches it through the keeper; after that it receives on the
//	        listener itself (direct.go). It computes the container's answer,
//	        writes it into the caller and responds.
//
// Why the keeper: the kernel fails a trapped syscall with ENOSYS once no
// process holds its listener, so the fds must live in a process that does
// not die with the agent. In-flight work: the keeper knows the id of every
// notification it forwarded, and the agent records the id of every one it
// receives itself in a table shared with the keeper; when the agent's
// connection drops (kill -9 included), the keeper answers every one still
// waiting with CONTINUE, so no task is left hanging. A live agent that
// stalls is covered too: a notification not answered within StallTimeout
// is continued, and an agent that stops receiving is dropped.
//
// If the keeper dies instead, the agent still holds a copy of every fd: it
// starts a new keeper and hands them over (only its own death together
// with the agent's loses them). The keeper also holds any other fd the
// agent hands it (KindFd, Agent.StoreFd), so the same mechanism can keep
// the /dev/fuse connection of a restarting corralfs.
package sysinfoagent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ControlPath is the keeper's socket for the agent, next to the OCI socket.
func ControlPath(socket string) string { return socket + ".ctl" }

// PidPath holds the keeper's pid while it runs.
func PidPath(socket string) string { return socket + ".pid" }

func lockPath(socket string) string { return socket + ".lock" }

// DefaultStallTimeout is how long a live agent may take over one answer
// before the keeper lets the real syscall run: long enough for a first
// answer on a loaded host (finding a new container's init scans /proc),
// short enough that the caller still has its answer within a second.
const DefaultStallTimeout = 900 * time.Millisecond

// ErrKeeperRunning is returned by RunKeeper when another keeper owns the socket.
var ErrKeeperRunning = errors.New("a keeper is already running for this socket")

// KeeperConfig configures RunKeeper.
type KeeperConfig struct {
	SocketPath string
	// StallTimeout: a notification the agent has not answered by then is
	// continued by the keeper. Default DefaultStallTimeout.
	StallTimeout time.Duration
	// IdleExit: exit when for this long no agent is attached and no fd is
	// held (0: never). The socket disappears with the keeper, which is
	// how `corral run --sysinfo=auto` knows nobody would answer.
	IdleExit time.Duration
	Log      *slog.Logger
	// Ready, if set, is called once the sockets accept connections (the
	// keeper's own systemd unit sends READY=1 from it, so corralfs.service
	// ordered after it finds the keeper and starts none of its own).
	Ready func()
}

// Keeper is a running keeper.
type Keeper struct {
	cfg     KeeperConfig
	log     *slog.Logger
	mu      sync.Mutex
	entries map[uint64]*entry
	nextID  uint64
	agent   *agentLink
	idle    time.Time // when the keeper last became idle
	// stallLog rate-limits the stall warning (watchdog goroutine only).
	stallLog    time.Time
	stallSilent int
	stats       keeperStats
	pump        *pump
	ids         *idTable
}

type keeperStats struct {
	continued, forwarded, stalled, agents uint64
}

// RunKeeper runs a keeper until stop is closed (or IdleExit). It returns
// ErrKeeperRunning when another keeper holds the socket's lock.
func RunKeeper(cfg KeeperConfig, stop <-chan struct{}) error {
	k, err := NewKeeper(cfg)
	if err != nil {
		return err
	}
	return k.Run(stop)
}

// NewKeeper checks cfg; Run starts serving.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	if cfg.SocketPath == "" {
		return nil, errors.New("keeper: no socket path")
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &Keeper{cfg: cfg, log: cfg.Log.With("component", "seccomp-keeper"), entries: map[uint64]*entry{}, idle: time.Now()}, nil
}

// KeeperStats are a keeper's counters.
type KeeperStats struct {
	Held           int  // fds held
	AgentAttached  bool // an agent is attached now
	Agents         uint64
	Forwarded      uint64 // notifications given to an agent
	Continued      uint64 // notifications the keeper answered CONTINUE
	StalledAnswers uint64 // of those, because the agent was too slow
}

// Stats returns the counters.
func (k *Keeper) Stats() KeeperStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return KeeperStats{Held: len(k.entries), AgentAttached: k.agent != nil, Agents: k.stats.agents,
		Forwarded: k.stats.forwarded, Continued: k.stats.continued, StalledAnswers: k.stats.stalled}
}

// Run serves until stop is closed (or IdleExit).
func (k *Keeper) Run(stop <-chan struct{}) error {
	cfg := k.cfg
	if err := os.MkdirAll(filepath.Dir(cfg.SocketPath), 0o755); err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	lock, err := os.OpenFile(lockPath(cfg.SocketPath), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrKeeperRunning
		}
		return fmt.Errorf("keeper: lock: %w", err)
	}
	// We own the lock: any socket file left is a dead keeper's.
	rt, err := listenUnix("unix", cfg.SocketPath, 0o660)
	if err != nil {
		return err
	}
	defer rt.Close()
	ctl, err := listenUnix("unixpacket", ControlPath(cfg.SocketPath), 0o600)
	if err != nil {
		return err
	}
	defer ctl.Close()
	if err := os.WriteFile(PidPath(cfg.SocketPath), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("keeper: pidfile: %w", err)
	}
	defer func() {
		// Remove the names before releasing the lock, so a new keeper
		// never sees ours vanish under it.
		os.Remove(cfg.SocketPath)
		os.Remove(ControlPath(cfg.SocketPath))
		os.Remove(PidPath(cfg.SocketPath))
	}()
	if k.ids, err = newIDTable(); err != nil {
		return fmt.Errorf("keeper: id table: %w", err)
	}
	if k.pump, err = newPump(k); err != nil {
		k.ids.close()
		return fmt.Errorf("keeper: %w", err)
	}
	go k.pump.run()
	if cfg.Ready != nil {
		cfg.Ready()
	}
	defer func() {
		// The pump may be releasing a slot: unmap the table only once
		// it has stopped.
		k.pump.stop()
		<-k.pump.done
		k.ids.close()
	}()
	k.log.Info("keeper started", "socket", cfg.SocketPath, "pid", os.Getpid())

	quit := make(chan struct{})
	var quitOnce sync.Once
	go k.acceptRuntimes(rt)
	go k.acceptAgents(ctl)
	go k.watchdog(quit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			quitOnce.Do(func() { close(quit) })
			k.shutdown("stop requested")
			return nil
		case <-tick.C:
			if k.idleFor() > cfg.IdleExit && cfg.IdleExit > 0 {
				quitOnce.Do(func() { close(quit) })
				k.shutdown("idle")
				return nil
			}
		}
	}
}

// idleFor is how long the keeper has had nothing to do (0 when busy).
func (k *Keeper) idleFor() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.agent != nil || len(k.entries) > 0 {
		k.idle = time.Time{}
		return 0
	}
	if k.idle.IsZero() {
		k.idle = time.Now()
	}
	return time.Since(k.idle)
}

func (k *Keeper) shutdown(why string) {
	k.mu.Lock()
	a := k.agent
	k.agent = nil
	es := k.sortedEntries()
	k.mu.Unlock()
	if a != nil {
		a.close()
	}
	for _, e := range es {
		// Pending notifications get the real syscall before the fds go.
		for _, p := range e.takePending(nil) {
			k.cont(e, p.id)
		}
		e.file.Close()
	}
	k.log.Info("keeper stopped", "why", why, "fds", len(es))
}

func (k *Keeper) sortedEntries() []*entry {
	es := make([]*entry, 0, len(k.entries))
	for _, e := range k.entries {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].id < es[j].id })
	return es
}

func (k *Keeper) attach(c *net.UnixConn) {
	a := newAgentLink(c)
	a.queue(outMsg{b: header(msgIDTable, 0), fd: k.ids.fd})
	k.mu.Lock()
	old := k.agent
	k.agent = a
	k.stats.agents++
	// Queued before any notification can be forwarded to a: dispatch
	// only sees a after this lock is released.
	for _, e := range k.sortedEntries() {
		a.queueEntry(e)
	}
	n := len(k.entries)
	k.mu.Unlock()
	if old != nil {
		// The old agent finishes what it holds and closes; then
		// detach (from readAgent) reclaims its listeners. One that does
		// not close in time is detached by force.
		old.queue(outMsg{b: header(msgReplaced, 0)})
		time.AfterFunc(2*time.Second, func() { k.detach(old, "replaced by a new agent") })
	}
	go a.writeLoop(func(err error) { k.detach(a, "write: "+err.Error()) })
	go k.readAgent(a)
	k.log.Info("agent attached", "fds", n)
}

// detach forgets an agent and continues every notification it was given
// and has not answered: it may be dead, and its tasks must not wait.
func (k *Keeper) detach(a *agentLink, why string) {
	if !a.close() {
		return
	}
	k.mu.Lock()
	if k.agent == a {
		k.agent = nil
	}
	es := k.sortedEntries()
	k.mu.Unlock()
	n := 0
	for _, e := range es {
		if e.directOwner() == a {
			n += k.reclaim(e, a)
		}
		for _, p := range e.takePending(a) {
			if e.valid(p.id) {
				n++
			}
			k.cont(e, p.id)
		}
	}
	k.log.Info("agent detached", "why", why, "continued_in_flight", n)
}

// readAgent handles what an agent sends until its connection drops.
func (k *Keeper) readAgent(a *agentLink) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		m, err := readMessage(a.conn, buf, oob)
		if err != nil {
			k.detach(a, "connection: "+err.Error())
			return
		}
		switch m.typ {
		case msgStore:
			var info entryInfo
			if len(m.fds) != 1 || jsonUnmarshal(m.payload, &info) != nil {
				closeAll(m.fds)
				k.log.Warn("malformed store message from agent")
				continue
			}
			if _, err := k.addEntry(info, m.fds[0]); err != nil {
				k.log.Warn("stored fd rejected", "name", info.Name, "err", err)
			}
		case msgDrop:
			closeAll(m.fds)
			k.mu.Lock()
			e := k.entries[m.id]
			k.mu.Unlock()
			if e != nil {
				k.removeEntry(e, "dropped by the agent")
			}
		case msgBye:
			closeAll(m.fds)
			k.log.Info("agent says goodbye")
		case msgHello:
			closeAll(m.fds)
			a.canDirect.Store(true)
		default:
			closeAll(m.fds)
			k.log.Warn("unknown message from agent", "type", string(rune(m.typ)))
		}
	}
}

// cont answers a notification with the real syscall.
func (k *Keeper) cont(e *entry, id uint64) {
	_ = e.rc.Control(func(fd uintptr) {
		if err := respondContinue(int(fd), id); err != nil {
			k.log.Debug("continue failed", "entry", e.id, "err", err)
		}
	})
	k.mu.Lock()
	k.stats.continued++
	k.mu.Unlock()
}

// watchdog continues notifications a live agent sits on for too long.
func (k *Keeper) watchdog(quit <-chan struct{}) {
	t := time.NewTicker(k.cfg.StallTimeout / 10)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		k.mu.Lock()
		es := k.sortedEntries()
		k.mu.Unlock()
		now := time.Now()
		cut := now.Add(-k.cfg.StallTimeout)
		stalled := 0
		for _, e := range es {
			if a := e.directOwner(); a != nil {
				k.watchDirect(e, a, now)
			}
			for _, p := range e.takeOlder(cut) {
				if !e.valid(p.id) {
					continue // answered long ago: the usual case
				}
				k.cont(e, p.id)
				stalled++
			}
		}
		if stalled > 0 {
			k.mu.Lock()
			k.stats.stalled += uint64(stalled)
			k.mu.Unlock()
			k.warnStall(now, stalled)
		}
	}
}

// warnStall logs continued stalls at most every 10 s, with the count of
// those not logged, so a stuck agent cannot fill the keeper's log.
func (k *Keeper) warnStall(now time.Time, n int) {
	k.stallSilent += n
	if now.Sub(k.stallLog) < 10*time.Second {
		return
	}
	k.log.Warn("agent did not answer in time; continued", "notifications", k.stallSilent, "after", k.cfg.StallTimeout)
	k.stallLog, k.stallSilent = now, 0
}
