package sysinfoagent

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// pump receives the notifications of every listener the keeper holds, on
// one OS thread blocked in epoll_wait: a trapped task wakes exactly one
// thread, with no Go scheduler hop in between (it halves the latency of a
// forwarded sysinfo compared with one goroutine per listener on the Go
// poller). Level-triggered: a listener with more pending notifications is
// reported again.
type pump struct {
	k    *Keeper
	epfd int
	wake int           // eventfd: makes epoll_wait return for stop
	done chan struct{} // closed when run has returned
}

// wakeID is the epoll data of the eventfd; entry ids start at 1.
const wakeID = 0

func newPump(k *Keeper) (*pump, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &pump{k: k, epfd: epfd, wake: wake, done: make(chan struct{})}, nil
}

// add starts watching e. Entry ids fit the 32-bit epoll data we use.
func (p *pump) add(e *entry) error {
	var err error
	cerr := e.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(e.id)}
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	return errors.Join(cerr, err)
}

// setEvents changes what e is polled for: EPOLLIN, or 0 while the agent
// receives on it (hang-ups are reported either way).
func (p *pump) setEvents(e *entry, events uint32) error {
	var err error
	cerr := e.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: events, Fd: int32(e.id)}
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
	return errors.Join(cerr, err)
}

func (p *pump) remove(e *entry) {
	_ = e.rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// stop makes run return.
func (p *pump) stop() {
	select {
	case <-p.done: // already returned (and closed the eventfd)
	default:
		var one = [8]byte{1}
		_, _ = unix.Write(p.wake, one[:])
	}
}

func (p *pump) run() {
	runtime.LockOSThread()
	defer close(p.done)
	defer unix.Close(p.epfd)
	defer unix.Close(p.wake)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.k.log.Error("epoll_wait", "err", err)
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd))
			if id == wakeID {
				return
			}
			p.k.mu.Lock()
			e := p.k.entries[id]
			p.k.mu.Unlock()
			if e == nil {
				continue // removed meanwhile
			}
			if ev.Events&unix.EPOLLIN != 0 {
				p.receive(e)
			} else if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				// No task is left under the filter: the container
				// ended. (A listener with pending work reports
				// EPOLLIN, never only HUP.)
				p.k.removeEntry(e, "container ended")
			}
		}
	}
}

func (p *pump) receive(e *entry) {
	var n Notif
	var rerr error
	if err := e.rc.Control(func(fd uintptr) { rerr = recvNotif(int(fd), &n) }); err != nil {
		return // closed meanwhile
	}
	switch {
	case rerr == nil:
		p.k.dispatch(e, &n)
	case errors.Is(rerr, unix.ENOENT), errors.Is(rerr, unix.EINTR):
		// The task was interrupted before we got to it.
	default:
		p.k.log.Warn("receiving a notification", "entry", e.id, "err", rerr)
	}
}
