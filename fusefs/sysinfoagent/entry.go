package sysinfoagent

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxEntries bounds the fds a keeper holds (one per container).
const maxEntries = 1 << 16

// entry is one fd the keeper holds.
type entry struct {
	id   uint64
	info entryInfo
	file *os.File
	rc   syscall.RawConn

	slot uint32 // in the id table (seccomp entries)

	mu      sync.Mutex
	pending []pending  // forwarded to an agent, oldest first
	direct  *agentLink // the agent receiving on it itself (direct.go)

	// Watchdog state for direct mode (watchdog goroutine only).
	watchID                 uint64
	watchSince, queuedSince time.Time
}

// pending is a notification forwarded to agent a at time at.
type pending struct {
	id uint64
	at time.Time
	a  *agentLink
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// addEntry takes ownership of fd. Seccomp listeners are served from now on.
func (k *Keeper) addEntry(info entryInfo, fd int) (*entry, error) {
	switch info.Kind {
	case KindSeccomp:
		if err := isListenerFd(fd); err != nil {
			unix.Close(fd)
			return nil, err
		}
		// Not SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: with the caller
		// woken on the answering CPU, caller and agent serialise on
		// one CPU; measured 20-25% slower here than letting the
		// scheduler spread them.
	case KindFd:
	default:
		unix.Close(fd)
		return nil, fmt.Errorf("unknown fd kind %q", info.Kind)
	}
	f := os.NewFile(uintptr(fd), info.Kind+":"+info.Name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	k.mu.Lock()
	if info.Ref != 0 {
		if e := k.sameFile(fd); e != nil {
			// An agent handing back what we hold (it took our
			// dropping it for our death): confirm, keep one copy.
			f.Close()
			if k.agent != nil {
				k.agent.queueEntryRef(e, info.Ref)
			}
			k.mu.Unlock()
			return e, nil
		}
	}
	if len(k.entries) >= maxEntries {
		k.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("already holding %d fds", maxEntries)
	}
	k.nextID++
	e := &entry{id: k.nextID, info: info, file: f, rc: rc}
	if info.Kind == KindSeccomp {
		if e.slot, err = k.ids.alloc(); err != nil {
			k.mu.Unlock()
			f.Close()
			return nil, err
		}
	}
	k.entries[e.id] = e
	if k.agent != nil {
		k.agent.queueEntry(e) // before any notification of e
	}
	e.info.Ref = 0 // echoed once, to the agent that stored it
	k.mu.Unlock()
	if info.Kind == KindSeccomp {
		if err := k.pump.add(e); err != nil {
			k.removeEntry(e, "cannot poll it")
			return nil, err
		}
	}
	return e, nil
}

// sameFile returns the entry holding the same open file as fd (k.mu held).
func (k *Keeper) sameFile(fd int) *entry {
	self := uintptr(os.Getpid())
	for _, e := range k.entries {
		same := false
		_ = e.rc.Control(func(efd uintptr) {
			r, _, errno := unix.Syscall6(unix.SYS_KCMP, self, self, kcmpFile, uintptr(fd), efd, 0)
			same = errno == 0 && r == 0
		})
		if same {
			return e
		}
	}
	return nil
}

// kcmpFile is KCMP_FILE of kcmp(2).
const kcmpFile = 0

// removeEntry forgets e, tells the agent, and closes the keeper's copy.
func (k *Keeper) removeEntry(e *entry, why string) {
	k.mu.Lock()
	if k.entries[e.id] != e {
		k.mu.Unlock()
		return
	}
	delete(k.entries, e.id)
	if k.agent != nil {
		k.agent.queue(outMsg{b: header(msgGone, e.id)})
	}
	k.mu.Unlock()
	if e.info.Kind == KindSeccomp {
		k.pump.remove(e)
		k.ids.release(e.slot)
	}
	e.file.Close()
	k.log.Debug("fd released", "entry", e.id, "kind", e.info.Kind, "name", e.info.Name, "why", why)
}

// dispatch forwards n to the agent, or continues it when none is attached
// (or the agent's queue is full: never wait for a slow agent).
func (k *Keeper) dispatch(e *entry, n *Notif) {
	k.mu.Lock()
	a := k.agent
	k.mu.Unlock()
	if a != nil {
		// Tracked before it is queued: detach drains after marking a
		// closed, so it sees every id a accepted.
		e.track(n.ID, a)
		if a.queue(outMsg{b: encodeNotify(e.id, n)}) {
			k.mu.Lock()
			k.stats.forwarded++
			k.mu.Unlock()
			if a.canDirect.Load() && e.directOwner() == nil {
				k.goDirect(e, a, n.ID)
			}
			return
		}
	}
	k.cont(e, n.ID)
}

func (e *entry) track(id uint64, a *agentLink) {
	e.mu.Lock()
	e.pending = append(e.pending, pending{id: id, at: time.Now(), a: a})
	e.mu.Unlock()
}

// takePending removes and returns the notifications forwarded to a (all
// of them when a is nil).
func (e *entry) takePending(a *agentLink) []pending {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []pending
	kept := e.pending[:0]
	for _, p := range e.pending {
		if a == nil || p.a == a {
			out = append(out, p)
		} else {
			kept = append(kept, p)
		}
	}
	e.pending = kept
	return out
}

// takeOlder removes and returns the notifications forwarded before cut.
func (e *entry) takeOlder(cut time.Time) []pending {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := 0
	for i < len(e.pending) && e.pending[i].at.Before(cut) {
		i++
	}
	if i == 0 {
		return nil
	}
	out := append([]pending(nil), e.pending[:i]...)
	e.pending = append(e.pending[:0], e.pending[i:]...)
	return out
}

// valid reports whether notification id still waits for an answer.
func (e *entry) valid(id uint64) bool {
	ok := false
	_ = e.rc.Control(func(fd uintptr) { ok = idValid(int(fd), id) == nil })
	return ok
}
