package survival

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The relay: on kernels without FUSE_NOTIFY_RESEND (before Linux 6.9) the
// supervisor, not the worker, reads /dev/fuse.
//
// A request a server has read stays on the kernel's processing list until
// answered, and only 6.9+ can hand it out again. A worker reading the
// device itself loses requests when it is killed: the kernel wakes every
// thread of a killed process, and each one that finds a request queued
// takes it before it dies (measured: 17% of SIGKILLs under load lost a
// request even with reads done through poll(2), 70% with blocking reads).
// Its readers then wait forever, unkillable. So here the supervisor, which
// nobody has a reason to kill, reads every request, records it in the
// in-flight journal (journal.go) and passes it to the current worker over
// a SOCK_SEQPACKET socket (go-fuse's MountOptions.RequestSource, a corral
// patch). The worker answers on /dev/fuse directly and frees the slot.
// When a worker dies, the next one is attached and first gets everything
// the journal still holds.
//
// Cost: one more hop (a wake-up and two system calls) per request, paid
// only on those kernels; see docs/benchmarks.md.

// relayPumps is how many supervisor threads wait in read(2) on the device:
// a pump's work per request is a copy and a write, so a few keep up with
// any worker.
const relayPumps = 3

// maxRequest is the largest request the kernel sends with corralfs's
// mount options (max_write 128 KiB plus headers).
const maxRequest = 128*1024 + 4096

// relay passes requests from the device to the attached worker.
type relay struct {
	dev     *os.File
	journal *Journal
	log     *slog.Logger

	mu   sync.RWMutex // write-held while a worker is attached
	sock int          // the attached worker's socket; -1 for none

	gone     chan struct{} // closed when the device says the mount is gone
	goneOnce sync.Once

	relayed, unkept atomic.Uint64
}

// newRelay starts reading requests from dev, keeping them in the journal
// file until a worker is attached.
func newRelay(dev, journalFile *os.File, log *slog.Logger) (*relay, error) {
	j, err := openJournal(journalFile)
	if err != nil {
		return nil, err
	}
	r := &relay{dev: dev, journal: j, log: log, sock: -1, gone: make(chan struct{})}
	for i := 0; i < relayPumps; i++ {
		go r.pump()
	}
	return r, nil
}

// newWorkerSocket makes the socket pair of a worker: the relay's end and
// the worker's (its go-fuse RequestSource).
func newWorkerSocket() (relayEnd int, workerEnd *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "corralfs-requests"), nil
}

// Attach makes sock (a newWorkerSocket relay end) the worker's: it first
// gets every request the journal holds (what a dead worker left, what
// arrived in between), then each new one. The previous worker's socket is
// closed. Call it once the previous worker is dead: a live one would
// answer its requests a second time (harmless, but wasted).
func (r *relay) Attach(sock int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sock >= 0 {
		unix.Close(r.sock)
	}
	r.sock = sock
	n := 0
	r.journal.each(func(raw []byte) {
		if sendRequest(sock, raw) == nil {
			n++
		}
	})
	if n > 0 {
		r.log.Info("passed the unanswered requests to the new worker", "requests", n)
	}
}

// Stats: requests relayed, and those relayed without a journal slot.
func (r *relay) Stats() (relayed, unkept uint64) { return r.relayed.Load(), r.unkept.Load() }

func (r *relay) pump() {
	buf := make([]byte, maxRequest)
	fd := int(r.dev.Fd())
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case err == nil && n > 0:
		case err == nil: // end of file: not /dev/fuse's way, but the end all the same
			r.goneOnce.Do(func() { close(r.gone) })
			return
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOENT):
			continue // interrupted before we read it
		case errors.Is(err, unix.ENODEV):
			r.goneOnce.Do(func() { close(r.gone) })
			return
		default:
			r.log.Error("reading the FUSE device", "err", err)
			r.goneOnce.Do(func() { close(r.gone) })
			return
		}
		raw := buf[:n]
		if _, wants := wantsAnswer(raw); wants && !r.journal.record(raw) {
			r.unkept.Add(1)
		}
		r.relayed.Add(1)
		r.mu.RLock()
		if r.sock >= 0 {
			// A dead worker's socket fails (EPIPE): the request stays in
			// the journal for the next one.
			_ = sendRequest(r.sock, raw)
		}
		r.mu.RUnlock()
	}
}

func sendRequest(sock int, raw []byte) error {
	for {
		_, err := unix.Write(sock, raw)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
