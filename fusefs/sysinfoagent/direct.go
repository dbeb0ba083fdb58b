package sysinfoagent

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// Direct receive: the round trip of a forwarded notification wakes three
// processes (caller, keeper, agent). Once the keeper has seen one
// notification id on a listener, it lets the agent receive on that
// listener itself (msgDirect) and stops polling it for input: two wakeups
// per call instead of three.
//
// The keeper must still be able to continue whatever the agent holds when
// it dies, without having seen the ids. It can, because the kernel numbers
// a listener's notifications consecutively: the agent stores the id of
// every notification it receives in the shared id table, and on its death
// the keeper asks SECCOMP_IOCTL_NOTIF_ID_VALID about the ids around the
// last one stored, continuing every one still waiting (reclaim). An id the
// agent received but had no time to store (killed between the two) is one
// of the next few: the search covers them. The first id of a listener is
// always seen by the keeper, which is why a listener starts in forwarded
// mode: the search needs a starting point.

// reclaimBefore/After bound the id search around the last stored id: a
// few before (the agent answers one at a time, so at most the stored one
// waits), many after (ids skipped by tasks interrupted while queued).
const (
	reclaimBefore = 4
	reclaimAfter  = 1024
)

// goDirect hands receiving on e to agent a, after the notification with id
// baseline was forwarded to it. Called from the pump.
func (k *Keeper) goDirect(e *entry, a *agentLink, baseline uint64) {
	k.ids.store(e.slot, baseline)
	e.mu.Lock()
	e.direct = a
	e.mu.Unlock()
	if err := k.pump.setEvents(e, 0); err != nil {
		k.log.Warn("cannot stop polling a listener; keeping it forwarded", "entry", e.id, "err", err)
		e.mu.Lock()
		e.direct = nil
		e.mu.Unlock()
		return
	}
	b := header(msgDirect, e.id)
	b = binary.LittleEndian.AppendUint32(b, e.slot)
	if !a.queue(outMsg{b: b}) {
		k.reclaim(e, a) // the agent is gone already
	}
}

// reclaim takes receiving on e back from agent a (dead, replaced or
// stuck): every notification a may hold is continued, then the keeper
// polls e again.
func (k *Keeper) reclaim(e *entry, a *agentLink) int {
	e.mu.Lock()
	if e.direct != a {
		e.mu.Unlock()
		return 0
	}
	e.direct = nil
	e.mu.Unlock()
	last := k.ids.load(e.slot)
	n := 0
	_ = e.rc.Control(func(fd uintptr) {
		for id := last - reclaimBefore; id != last+reclaimAfter; id++ {
			if idValid(int(fd), id) == nil {
				_ = respondContinue(int(fd), id)
				n++
			}
		}
	})
	if err := k.pump.setEvents(e, unix.EPOLLIN); err != nil {
		k.log.Error("cannot poll a reclaimed listener", "entry", e.id, "err", err)
	}
	return n
}

// directOwner returns the agent receiving on e, if any.
func (e *entry) directOwner() *agentLink {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.direct
}

// watchDirect is the watchdog's check of a listener the agent receives on:
// a notification it holds too long is continued; notifications it leaves
// queued too long (the agent stopped receiving) make the keeper take the
// listener back and detach the agent.
func (k *Keeper) watchDirect(e *entry, a *agentLink, now time.Time) {
	id := k.ids.load(e.slot)
	if id != e.watchID {
		e.watchID, e.watchSince, e.queuedSince = id, now, time.Time{}
		return
	}
	if now.Sub(e.watchSince) > k.cfg.StallTimeout && e.valid(id) {
		k.cont(e, id)
		k.mu.Lock()
		k.stats.stalled++
		k.mu.Unlock()
		k.warnStall(now, 1)
	}
	queued := false
	_ = e.rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0 {
			queued = true
		}
	})
	switch {
	case !queued:
		e.queuedSince = time.Time{}
	case e.queuedSince.IsZero():
		e.queuedSince = now
	case now.Sub(e.queuedSince) > k.cfg.StallTimeout:
		k.log.Warn("agent stopped receiving; detaching it", "entry", e.id)
		k.detach(a, "stopped receiving")
	}
}
