package sysinfoagent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Epoll data of the control socket and of the agent's wake eventfd;
// entry ids start at 1.
const (
	ctlID  = 0
	wakeFd = 0xffffffff
)

// session serves one keeper connection on a thread of its own, blocked in
// epoll_wait on the control socket and on every listener the keeper let it
// receive on (direct.go); each notification is answered inline, so a
// trapped task wakes exactly this thread and nothing else.
func (a *Agent) session(conn *net.UnixConn, stop <-chan struct{}) error {
	f, err := conn.File() // a duplicate we drive with raw syscalls
	conn.Close()
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := &session{a: a, fd: fd, direct: map[uint64]*heldFd{}}
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return err
	}
	defer s.close()
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: ctlID}); err != nil {
		return err
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, a.wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		return err
	}
	if err := s.handOrphans(); err != nil {
		return err
	}
	if err := s.send(header(msgHello, 0), -1); err != nil {
		return err
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
			s.stopping.Store(true)
			// Wake epoll_wait; a notification being answered is
			// finished first.
			_ = unix.Shutdown(fd, unix.SHUT_RD)
		case <-done:
		}
	}()
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(s.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd))
			if id == wakeFd {
				if err := s.queued(); err != nil {
					return err
				}
				continue
			}
			if id != ctlID {
				s.receive(id, ev.Events)
				continue
			}
			if err := s.control(); err != nil {
				return err
			}
		}
	}
}

type session struct {
	a        *Agent
	fd, epfd int
	ids      *idTable
	direct   map[uint64]*heldFd
	stopping atomic.Bool
	buf, oob []byte
}

func (s *session) close() {
	for _, h := range s.direct {
		h.direct = false
	}
	unix.Close(s.epfd)
	s.ids.close()
}

// send writes one message, waiting for room if the socket is full.
func (s *session) send(b []byte, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for {
		err := unix.Sendmsg(s.fd, b, oob, nil, unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EAGAIN) {
			return err
		}
		p := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		_, _ = unix.Poll(p, 1000)
	}
}

// handOrphans gives the fds a dead keeper left us to this one. Our copies
// are closed only when the keeper echoes them (addHeld): one in flight to a
// keeper that dies unread would be lost with the container's listener.
func (s *session) handOrphans() error {
	a := s.a
	a.mu.Lock()
	var orphans []*heldFd
	for _, h := range a.orphans {
		if !h.sent {
			h.sent = true
			orphans = append(orphans, h)
		}
	}
	a.mu.Unlock()
	for _, h := range orphans {
		h.info.Ref = newRef()
		b, err := encodeEntry(msgStore, 0, h.info)
		if err != nil {
			return err
		}
		if err := s.send(b, h.fd); err != nil {
			return fmt.Errorf("handing fds to the new keeper: %w", err)
		}
	}
	if len(orphans) > 0 {
		a.log.Info("handing held fds to the new keeper", "fds", len(orphans))
	}
	return nil
}

// queued sends what StoreFd and DropFd asked for.
func (s *session) queued() error {
	var buf [8]byte
	_, _ = unix.Read(s.a.wake, buf[:])
	if err := s.handOrphans(); err != nil {
		return err
	}
	s.a.mu.Lock()
	drops := s.a.drops
	s.a.drops = nil
	s.a.mu.Unlock()
	for _, id := range drops {
		if err := s.send(header(msgDrop, id), -1); err != nil {
			return err
		}
	}
	return nil
}

// control handles every message waiting on the control socket.
func (s *session) control() error {
	if s.buf == nil {
		s.buf, s.oob = make([]byte, maxMessage), make([]byte, unix.CmsgSpace(4*4))
	}
	a := s.a
	for {
		m, err := readMessageFd(s.fd, s.buf, s.oob, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if s.stopping.Load() {
			closeAll(m.fds)
			_ = s.send(header(msgBye, 0), -1)
			return errStopped
		}
		if err != nil {
			return err
		}
		switch m.typ {
		case msgNotify:
			a.handle(&m)
		case msgEntry:
			a.addHeld(&m)
		case msgGone:
			a.mu.Lock()
			h := a.held[m.id]
			delete(a.held, m.id)
			a.mu.Unlock()
			if h != nil {
				s.undirect(h)
				unix.Close(h.fd)
			}
		case msgIDTable:
			if len(m.fds) != 1 {
				closeAll(m.fds)
				continue
			}
			t, err := mapIDTable(m.fds[0])
			if err != nil {
				unix.Close(m.fds[0])
				a.log.Warn("cannot map the keeper's id table; answering forwarded calls only", "err", err)
				continue
			}
			s.ids.close()
			s.ids = t
		case msgDirect:
			closeAll(m.fds)
			s.goDirect(&m)
		case msgReplaced:
			closeAll(m.fds)
			return ErrReplaced
		default:
			closeAll(m.fds)
		}
	}
}

// goDirect starts receiving on a listener ourselves (direct.go).
func (s *session) goDirect(m *message) {
	a := s.a
	a.mu.Lock()
	h := a.held[m.id]
	a.mu.Unlock()
	if h == nil || s.ids == nil || len(m.payload) != 4 {
		return // the keeper's watchdog takes it back
	}
	h.slot = binary.LittleEndian.Uint32(m.payload)
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, h.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(m.id)}); err != nil {
		a.log.Warn("cannot poll a listener", "err", err)
		return
	}
	h.direct = true
	s.direct[m.id] = h
}

func (s *session) undirect(h *heldFd) {
	if h.direct {
		_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, h.fd, nil)
		h.direct = false
		delete(s.direct, h.id)
	}
}

// receive takes one notification from a listener we receive on, records
// its id for the keeper, and answers it. A listener that only hung up (its
// container ended) is dropped from the epoll set: receiving on it would
// block forever on kernels before 6.6. The keeper's msgGone closes it.
func (s *session) receive(id uint64, events uint32) {
	h := s.direct[id]
	if h == nil {
		return
	}
	if events&unix.EPOLLIN == 0 {
		s.undirect(h)
		return
	}
	var n Notif
	if err := recvNotif(h.fd, &n); err != nil {
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINTR) {
			s.a.logRare("receiving a notification", "err", err)
		}
		return
	}
	if !testSkipIDStore.Load() {
		s.ids.store(h.slot, n.ID)
	}
	s.a.answerOne(h, &n)
}

// testSkipIDStore makes the agent record no ids, as if it always died
// between receiving and recording: tests prove the keeper still finds them.
var testSkipIDStore atomic.Bool
