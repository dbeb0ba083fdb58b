package survival

import (
	"os"
	"sync/atomic"
	"unsafe"
)

// HandleStore keeps, across workers, the content of each open file handle.
// A READ of a handle an earlier worker opened (after that worker's death
// or an upgrade) must go on with the very bytes the reader started on:
// content computed afresh differs ("... 1/6 9\n" became "... 1/6 10\n"),
// so the reader's final READ at the old end of file got a stray "\n", and
// a long stat read in two READs got two halves of different files.
//
// A memfd the supervisor keeps and hands to every worker (and to systemd's
// fd store). The worker copies each content into a ring (storeRing bytes)
// at OPEN, and again whenever a READ at offset 0 computes a new generation
// (fusefs/server_read.go), and notes where in an index slot chosen by handle
// number, with the request that computed it; a successor (or, during an
// upgrade, the other worker) serves the handle from there. A content
// overwritten since (the ring holds the last ~1 MiB of generations) is
// detected by the handle number in its header; the successor then knows at
// most its length (end of file stays exact) and recomputes the rest. Cost
// per generation: a copy of the content and a few atomic stores, no
// system call.
//
// The index is open-addressed: a handle takes the first free slot of the
// storeProbe slots from its home slot (handle number mod storeSlots) and
// keeps it until released. A direct-mapped index gave a handle held open
// for long (top, a monitoring agent: the keep-open survive readers) to the
// 16,384th handle opened after it; a successor then did not know it and
// started a new generation in the middle of the reader's read.
type HandleStore struct {
	mem []byte
}

const (
	storeSlots    = 1 << 14
	storeSlotSize = 16 // tag word (probe distance | handle bits 14-49 | length), ring offset
	storeHdr      = 64 // ring cursor, padding
	storeRing     = 1 << 20
	storeIndex    = storeHdr
	storeRingOff  = storeHdr + storeSlots*storeSlotSize
	storeSize     = storeRingOff + storeRing
	storeLenBits  = 24
	storeLenMax   = 1<<storeLenBits - 1
	storeTagBits  = 36 // handle bits 14-49; the top 4 bits are the probe distance
	blockHdr      = 24 // handle number, length, unique of the request that computed it
	// storeProbe: slots a handle may take from its home slot on. Handles
	// are numbered in opening order and most are released within
	// milliseconds, so a window full of open handles takes 16 held open
	// at once among 16 consecutive opens.
	storeProbe = 16
	// storeWriting in a slot's length field: the slot is taken and its
	// entry is being written (readers treat it as unknown meanwhile).
	storeWriting = storeLenMax
)

// NewHandleStoreFile makes the shared memory of a HandleStore.
func NewHandleStoreFile() (*os.File, error) { return newSharedFile("corralfs-handles", storeSize) }

// OpenHandleStore maps f (from NewHandleStoreFile).
func OpenHandleStore(f *os.File) (*HandleStore, error) {
	mem, err := mapSharedFile(f, storeSize)
	if err != nil {
		return nil, err
	}
	return &HandleStore{mem: mem}, nil
}

func (h *HandleStore) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&h.mem[off]))
}

func (h *HandleStore) slotAt(i uint64) (tag, ring *atomic.Uint64) {
	off := storeIndex + int(i%storeSlots)*storeSlotSize
	return h.word(off), h.word(off + 8)
}

// slot returns fh's slot and its tag word's value, or nil when fh has none
// (never stored, released, or evicted from a full window).
func (h *HandleStore) slot(fh uint64) (tag, ring *atomic.Uint64, t uint64) {
	for i := uint64(0); i < storeProbe; i++ {
		tag, ring := h.slotAt(fh + i)
		if t := tag.Load(); t != 0 && t&^storeLenMax == slotTag(fh, i, 0) {
			return tag, ring, t
		}
	}
	return nil, nil, 0
}

// claim takes a slot for fh and marks it being written: fh's own slot, else
// the first free one of its window, else (a window of 16 handles all held
// open) its home slot, whose holder then loses its entry.
func (h *HandleStore) claim(fh uint64) (tag, ring *atomic.Uint64, dist uint64) {
	if tag, ring, t := h.slot(fh); tag != nil {
		dist = t >> (storeLenBits + storeTagBits)
		tag.Store(slotTag(fh, dist, storeWriting)) // nobody takes the old entry meanwhile
		return tag, ring, dist
	}
	for i := uint64(0); i < storeProbe; i++ {
		if tag, ring := h.slotAt(fh + i); tag.CompareAndSwap(0, slotTag(fh, i, storeWriting)) {
			return tag, ring, i
		}
	}
	tag, ring = h.slotAt(fh)
	tag.Store(slotTag(fh, 0, storeWriting))
	return tag, ring, 0
}

func storeTag(fh uint64) uint64 { return (fh >> 14) & (1<<storeTagBits - 1) }

// slotTag is the tag word of fh's entry dist slots from its home slot:
// the distance, so that two handles 16,384 apart whose bits 14-49 agree
// are never taken for each other, then the handle's bits, then length.
func slotTag(fh, dist, length uint64) uint64 {
	return dist<<(storeLenBits+storeTagBits) | storeTag(fh)<<storeLenBits | length
}

// tagLength is the content length in a tag word.
func tagLength(t uint64) int { return int(t & storeLenMax) }

// Put keeps the content of a handle: the one computed at its OPEN, then
// each new generation. unique is the FUSE request that computed it: a
// successor given that very request again (answered, but its journal slot
// not yet freed when the worker died) answers it with the same bytes
// instead of a generation the reader never started on.
func (h *HandleStore) Put(fh, unique uint64, data []byte) {
	if h == nil || len(data) >= storeWriting {
		return
	}
	tag, ring, dist := h.claim(fh)
	if n := (blockHdr + len(data) + 7) &^ 7; n <= storeRing/4 {
		at := h.reserve(n)
		h.word(storeRingOff + at).Store(0) // invalid while written
		h.word(storeRingOff + at + 8).Store(uint64(len(data)))
		h.word(storeRingOff + at + 16).Store(unique)
		copy(h.mem[storeRingOff+at+blockHdr:], data)
		h.word(storeRingOff + at).Store(fh)
		ring.Store(uint64(at))
	} else {
		ring.Store(^uint64(0)) // too big for the ring: the length only
	}
	tag.Store(slotTag(fh, dist, uint64(len(data))))
}

// reserve takes n bytes of the ring (never across its end).
func (h *HandleStore) reserve(n int) int {
	cursor := h.word(0)
	for {
		cur := cursor.Load()
		start := cur
		if pos := int(cur % storeRing); pos+n > storeRing {
			start += uint64(storeRing - pos)
		}
		if cursor.CompareAndSwap(cur, start+uint64(n)) {
			return int(start % storeRing)
		}
	}
}

// Get returns what is known of a handle's latest generation: its content
// (a copy) and the request that computed it when still in the ring, else
// its length when the index still holds it.
func (h *HandleStore) Get(fh uint64) (content []byte, length int, unique uint64, known bool) {
	if h == nil {
		return nil, 0, 0, false
	}
	tag, ring, t := h.slot(fh)
	if tag == nil || t&storeLenMax == storeWriting {
		return nil, 0, 0, false
	}
	length = tagLength(t)
	at := ring.Load()
	if at >= storeRing || int(at)+blockHdr+length > storeRing {
		return nil, length, 0, true
	}
	block := storeRingOff + int(at)
	if h.word(block).Load() != fh || h.word(block+8).Load() != uint64(length) {
		return nil, length, 0, true // overwritten
	}
	unique = h.word(block + 16).Load()
	content = append([]byte(nil), h.mem[block+blockHdr:block+blockHdr+length]...)
	if h.word(block).Load() != fh || tag.Load() != t || ring.Load() != at {
		return nil, length, 0, true // overwritten (or regenerated) while we copied
	}
	return content, length, unique, true
}

// Latest returns the unique id of the request that computed fh's latest
// generation, while the store still holds that generation. Two loads, no
// copy: a worker checks it before serving its own copy of a handle, since
// during an upgrade two workers answer the same connection, and the other
// one may have started a newer generation since.
func (h *HandleStore) Latest(fh uint64) (unique uint64, ok bool) {
	if h == nil {
		return 0, false
	}
	tag, ring, t := h.slot(fh)
	if tag == nil || t&storeLenMax == storeWriting {
		return 0, false
	}
	at := ring.Load()
	if at >= storeRing || int(at)+blockHdr+tagLength(t) > storeRing {
		return 0, false
	}
	block := storeRingOff + int(at)
	unique = h.word(block + 16).Load()
	if h.word(block).Load() != fh || ring.Load() != at {
		return 0, false
	}
	return unique, true
}

// Relabel makes the generation computed by request from, still fh's
// latest in the store, the one of request to (the same bytes: the first
// READ at 0 after an OPEN serves the OPEN's content). No copy: one
// compare-and-swap of the block's request id. False when the store no
// longer holds that generation.
func (h *HandleStore) Relabel(fh, from, to uint64) bool {
	if h == nil {
		return false
	}
	tag, ring, t := h.slot(fh)
	if tag == nil || t&storeLenMax == storeWriting {
		return false
	}
	at := ring.Load()
	if at >= storeRing || int(at)+blockHdr+tagLength(t) > storeRing {
		return false
	}
	block := storeRingOff + int(at)
	if h.word(block).Load() != fh || !h.word(block+16).CompareAndSwap(from, to) {
		return false
	}
	return ring.Load() == at
}

// Clear forgets a released handle and frees its slot.
func (h *HandleStore) Clear(fh uint64) {
	if h == nil {
		return
	}
	if tag, _, t := h.slot(fh); tag != nil {
		tag.CompareAndSwap(t, 0) // unless rewritten meanwhile
	}
}
