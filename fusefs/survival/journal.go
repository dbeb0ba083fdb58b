package survival

import (
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The in-flight journal: every request the relay (relay.go) read from
// /dev/fuse and passed to a worker, until the worker has answered it. It
// lives in a memfd the supervisor keeps (and gives systemd's fd store),
// so it outlives any worker: when one dies, the relay passes what it left
// unanswered to the next. Kernels before 6.9 cannot re-queue a dead
// server's requests (FUSE_NOTIFY_RESEND); this is what does it there.
//
// The relay records a request (Record) before passing it on; the worker
// finds it by unique id when it starts on it (Taken, through go-fuse's
// MountOptions.InFlight hook) and frees the slot once the reply is
// written (Answered). A request answered just before its worker died,
// slot not yet freed, is passed on and answered twice; the kernel refuses
// the second answer with ENOENT, harmless because every answer depends
// only on the node, the handle and the caller (fixed node ids, stateless
// handles), never on the worker.
//
// A slot's state is its length word: 0 free, slotClaimed while the relay
// copies a request in, else the request's length. The relay is the only
// writer of requests; the worker only frees.

const (
	// journalSlotSize holds any request corralfs answers: a 40-byte
	// header plus a LOOKUP name (up to 255 bytes and its NUL) or a READ's
	// 40 bytes. A bigger one (which corralfs only refuses) is passed on
	// unjournaled.
	journalSlotSize = 512
	journalSlotHdr  = 8 // uint32 length word, 4 bytes reserved
	// journalSlots bounds the requests in flight that are kept; more
	// than this at once (not seen: a handful of readers per reading
	// process) are passed on unjournaled.
	journalSlots = 128
	journalSize  = journalSlots * journalSlotSize
	slotClaimed  = ^uint32(0)
)

// FUSE opcodes that want no answer (include/uapi/linux/fuse.h): nothing
// to keep.
const (
	opForget      = 2
	opInterrupt   = 36
	opDestroy     = 38
	opBatchForget = 42
)

// newJournalFile makes the shared memory of a journal.
func newJournalFile() (*os.File, error) { return newSharedFile("corralfs-inflight", journalSize) }

// Journal is a process's mapping of a journal file. Its Taken and
// Answered make it the worker's fuse.InFlightJournal.
type Journal struct {
	mem []byte
}

var _ fuse.InFlightJournal = (*Journal)(nil)

// openJournal maps f (from newJournalFile).
func openJournal(f *os.File) (*Journal, error) {
	mem, err := mapSharedFile(f, journalSize)
	if err != nil {
		return nil, err
	}
	return &Journal{mem: mem}, nil
}

func (j *Journal) lenWord(i int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&j.mem[i*journalSlotSize]))
}

func (j *Journal) data(i int, n uint32) []byte {
	off := i*journalSlotSize + journalSlotHdr
	return j.mem[off : off+int(n)]
}

// wantsAnswer tells the requests worth keeping, and their unique id.
func wantsAnswer(raw []byte) (unique uint64, ok bool) {
	if len(raw) < int(unsafe.Sizeof(fuse.InHeader{})) || len(raw) > journalSlotSize-journalSlotHdr {
		return 0, false
	}
	h := (*fuse.InHeader)(unsafe.Pointer(&raw[0]))
	switch h.Opcode {
	case opForget, opBatchForget, opInterrupt, opDestroy:
		return 0, false
	}
	return h.Unique, true
}

// home is where a unique id's slot search starts: ids grow by 2
// (FUSE_REQ_ID_STEP), so requests in flight together sit side by side.
func home(unique uint64) int { return int(unique>>1) % journalSlots }

// record keeps a request the relay read from the device (relay only).
// False: not kept (wants no answer, too big, or the journal is full).
func (j *Journal) record(raw []byte) bool {
	unique, ok := wantsAnswer(raw)
	if !ok {
		return false
	}
	for k, h := 0, home(unique); k < journalSlots; k++ {
		i := (h + k) % journalSlots
		if l := j.lenWord(i); l.CompareAndSwap(0, slotClaimed) {
			copy(j.mem[i*journalSlotSize+journalSlotHdr:], raw)
			l.Store(uint32(len(raw))) // after the copy: readers see it whole
			return true
		}
	}
	return false
}

// each calls f with every request kept and not yet answered (relay only;
// f must not keep raw).
func (j *Journal) each(f func(raw []byte)) {
	for i := 0; i < journalSlots; i++ {
		if n := j.lenWord(i).Load(); n != 0 && n != slotClaimed {
			f(j.data(i, n))
		}
	}
}

// Taken finds the slot of a request the worker starts on (-1: not kept).
func (j *Journal) Taken(raw []byte) int {
	unique, ok := wantsAnswer(raw)
	if !ok {
		return -1
	}
	for k, h := 0, home(unique); k < journalSlots; k++ {
		i := (h + k) % journalSlots
		// No early stop at a free slot: the one Record passed over
		// may have been freed since.
		if n := j.lenWord(i).Load(); n != 0 && n != slotClaimed && (*fuse.InHeader)(unsafe.Pointer(&j.data(i, n)[0])).Unique == unique {
			return i
		}
	}
	return -1
}

// Answered frees the slot of a request whose reply was written.
func (j *Journal) Answered(slot int) {
	if slot >= 0 {
		j.lenWord(slot).Store(0)
	}
}
