package sysinfoagent

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// idTable is a small shared memory (a memfd the keeper creates and hands
// to the agent) with one slot per listener: the id of the last
// notification the agent received on it. The agent stores it right after
// SECCOMP_IOCTL_NOTIF_RECV; when the agent dies the keeper reads it to find
// what may still wait for an answer (see Keeper.reclaim).
type idTable struct {
	mem []byte
	fd  int

	mu   sync.Mutex
	free []uint32 // keeper only
	next uint32
}

const idSlots = maxEntries

func newIDTable() (*idTable, error) {
	fd, err := unix.MemfdCreate("corral-seccomp-ids", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.Ftruncate(fd, idSlots*8); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t, err := mapIDTable(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return t, nil
}

// mapIDTable maps a table received from the keeper (the agent's side).
func mapIDTable(fd int) (*idTable, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size != idSlots*8 {
		return nil, fmt.Errorf("id table of %d bytes, want %d", st.Size, idSlots*8)
	}
	mem, err := unix.Mmap(fd, 0, idSlots*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &idTable{mem: mem, fd: fd}, nil
}

func (t *idTable) close() {
	if t == nil {
		return
	}
	_ = unix.Munmap(t.mem)
	unix.Close(t.fd)
}

func (t *idTable) slot(i uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&t.mem[int(i)*8]))
}

func (t *idTable) store(i uint32, id uint64) { atomic.StoreUint64(t.slot(i), id) }

func (t *idTable) load(i uint32) uint64 { return atomic.LoadUint64(t.slot(i)) }

var errNoSlot = errors.New("no free id slot")

// alloc and release hand out slots (keeper only).
func (t *idTable) alloc() (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.free); n > 0 {
		s := t.free[n-1]
		t.free = t.free[:n-1]
		return s, nil
	}
	if t.next >= idSlots {
		return 0, errNoSlot
	}
	t.next++
	return t.next - 1, nil
}

func (t *idTable) release(i uint32) {
	t.store(i, 0)
	t.mu.Lock()
	t.free = append(t.free, i)
	t.mu.Unlock()
}
