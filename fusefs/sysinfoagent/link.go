package sysinfoagent

import (
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxQueuedNotifies bounds the notifications waiting to be written to an
// agent; beyond it the keeper continues them itself (a stuck agent must
// not make containers wait, nor the keeper grow).
const maxQueuedNotifies = 4096

// outMsg is one message for the agent; e != nil attaches e's fd.
type outMsg struct {
	b  []byte
	e  *entry
	fd int // > 0: send this fd (the id table's memfd)
}

// agentLink is the keeper's side of one agent connection. Messages are
// queued (never blocking the caller) and written by one goroutine, in
// order, so an entry always reaches the agent before its notifications.
type agentLink struct {
	conn *net.UnixConn

	mu       sync.Mutex
	closed   bool
	q        []outMsg
	notifies int
	writing  bool // writeLoop is writing a batch outside mu
	wake     chan struct{}
	// canDirect: the agent said (msgHello) it receives by itself.
	canDirect atomic.Bool
}

func newAgentLink(c *net.UnixConn) *agentLink {
	return &agentLink{conn: c, wake: make(chan struct{}, 1)}
}

// queue adds m; false when the link is closed or, for a notification,
// when too many are already waiting.
func (a *agentLink) queue(m outMsg) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	isNotify := m.b[0] == msgNotify
	if isNotify {
		// Fast path: nothing queued ahead of it, so write it now from
		// the pump's thread, without waking the writer goroutine.
		// MSG_DONTWAIT: a full socket means a slow agent, and then
		// the message is queued (or refused) instead of waiting.
		if len(a.q) == 0 && !a.writing && a.sendNow(m.b) {
			a.mu.Unlock()
			return true
		}
		if a.notifies >= maxQueuedNotifies {
			a.mu.Unlock()
			return false
		}
		a.notifies++
	}
	a.q = append(a.q, m)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

func (a *agentLink) queueEntry(e *entry) { a.queueEntryRef(e, e.info.Ref) }

// queueEntryRef sends e with ref as the Ref that confirms a msgStore.
func (a *agentLink) queueEntryRef(e *entry, ref uint64) {
	info := e.info
	info.Ref = ref
	b, err := encodeEntry(msgEntry, e.id, info)
	if err != nil {
		return // cannot happen: the info came from a message of the same bound
	}
	a.queue(outMsg{b: b, e: e})
}

// close marks the link closed and closes the connection; it reports
// whether this call did it.
func (a *agentLink) close() bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.closed = true
	a.q = nil
	a.mu.Unlock()
	a.conn.Close()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

// writeLoop writes queued messages until the link closes; onErr is called
// when a write fails.
func (a *agentLink) writeLoop(onErr func(error)) {
	for {
		a.mu.Lock()
		for len(a.q) == 0 && !a.closed {
			a.mu.Unlock()
			<-a.wake
			a.mu.Lock()
		}
		if a.closed {
			a.mu.Unlock()
			return
		}
		batch := a.q
		a.q = nil
		a.notifies = 0
		a.writing = true
		a.mu.Unlock()
		for _, m := range batch {
			if err := a.write(m); err != nil {
				onErr(err)
				return
			}
		}
		a.mu.Lock()
		a.writing = false
		a.mu.Unlock()
	}
}

// sendNow writes b without blocking; false if it could not (the caller
// queues it). Called with mu held.
func (a *agentLink) sendNow(b []byte) bool {
	rc, err := a.conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Sendmsg(int(fd), b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	}); err != nil {
		return false
	}
	return serr == nil
}

func (a *agentLink) write(m outMsg) error {
	if m.fd > 0 {
		_, _, err := a.conn.WriteMsgUnix(m.b, unix.UnixRights(m.fd), nil)
		return err
	}
	if m.e == nil {
		_, err := a.conn.Write(m.b)
		return err
	}
	var werr error
	err := m.e.rc.Control(func(fd uintptr) {
		_, _, werr = a.conn.WriteMsgUnix(m.b, unix.UnixRights(int(fd)), nil)
	})
	if err != nil {
		// The entry was closed meanwhile (its container ended); the
		// agent gets the msgGone that follows and ignores the id.
		return nil
	}
	return werr
}
