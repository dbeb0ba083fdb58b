package fusefs

import (
	"bytes"
	"os"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/tests/testutil"
)

func newTestHandleStore(t *testing.T) (*HandleStore, *os.File) {
	return newTestShared(t, NewHandleStoreFile, OpenHandleStore)
}

// newTestShared makes a shared memory file and maps it.
func newTestShared[T any](t *testing.T, make func() (*os.File, error), open func(*os.File) (T, error)) (T, *os.File) {
	t.Helper()
	f, err := make()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := open(f)
	if err != nil {
		t.Fatal(err)
	}
	return m, f
}

func TestHandleStoreKeepsContentAcrossMappings(t *testing.T) {
	a, f := newTestHandleStore(t)
	b, err := OpenHandleStore(f) // the successor worker's mapping
	if err != nil {
		t.Fatal(err)
	}
	fh := uint64(1_700_000_000_000) << 20
	a.Put(fh, 0, []byte("0.08 0.02 0.01 1/6 9\n"))
	if c, n, _, ok := b.Get(fh); !ok || n != 21 || string(c) != "0.08 0.02 0.01 1/6 9\n" {
		t.Errorf("successor: %q, %d, %v", c, n, ok)
	}
	if _, _, _, ok := b.Get(fh + 1); ok {
		t.Error("an unknown handle is known")
	}
	b.Clear(fh)
	if _, _, _, ok := a.Get(fh); ok {
		t.Error("a released handle is still known")
	}
	// A later handle with the same home slot takes the next free one:
	// both stay known, and clearing one leaves the other alone.
	a.Put(fh, 0, []byte("x"))
	a.Put(fh+storeSlots, 0, []byte("yy"))
	if c, _, _, ok := b.Get(fh); !ok || string(c) != "x" {
		t.Errorf("the first handle of a home slot: %q, %v", c, ok)
	}
	b.Clear(fh)
	if c, _, _, ok := b.Get(fh + storeSlots); !ok || string(c) != "yy" {
		t.Errorf("the second handle of a home slot: %q, %v", c, ok)
	}
	if _, _, _, ok := b.Get(fh); ok {
		t.Error("a released handle is still known")
	}
	var none *HandleStore // a worker without one behaves as before
	none.Put(fh, 0, []byte("z"))
	if _, _, _, ok := none.Get(fh); ok {
		t.Error("a nil store knows something")
	}
}

// Content overwritten in the ring since (a megabyte of later opens) is not
// served; its length still is, so end of file stays exact.
func TestHandleStoreRingOverwrite(t *testing.T) {
	s, _ := newTestHandleStore(t)
	fh := uint64(1_700_000_000_000) << 20
	s.Put(fh, 0, bytes.Repeat([]byte("a"), 100))
	big := bytes.Repeat([]byte("b"), 4000)
	for i := uint64(1); i <= storeRing/4000+2; i++ {
		s.Put(fh+i, 0, big)
	}
	c, n, _, ok := s.Get(fh)
	if c != nil || n != 100 || !ok {
		t.Errorf("overwritten content: %d bytes, length %d, %v; want no content, length 100", len(c), n, ok)
	}
	if c, _, _, _ := s.Get(fh + storeRing/4000 + 2); !bytes.Equal(c, big) {
		t.Errorf("the latest content: %d bytes", len(c))
	}
	huge := bytes.Repeat([]byte("c"), storeRing/2)
	s.Put(fh+5000, 0, huge)
	if c, n, _, ok := s.Get(fh + 5000); c != nil || n != len(huge) || !ok {
		t.Errorf("content too big for the ring: %d bytes, length %d, %v; want its length only", len(c), n, ok)
	}
}

// A handle opened by an earlier worker: its successor goes on with the
// very bytes the reader started on; without them (overwritten), reads at
// or past the old length are end of file and earlier ones never run past
// it (loadavg's "1/6 9" may have become "1/6 10"); a read from 0 starts a
// new generation, as on a handle the worker opened itself.
func TestReadOfPredecessorsHandle(t *testing.T) {
	testutil.RequireRoot(t)
	store, _ := newTestHandleStore(t)
	old := newTestFS(t, Config{HandleStore: store})
	node := nodeID("proc/meminfo")
	var out fuse.OpenOut
	if st := old.Open(nil, &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: node, Unique: 1, Caller: fuse.Caller{Pid: uint32(os.Getpid())}}}, &out); !st.Ok() {
		t.Fatal(st)
	}
	successor := newTestFS(t, Config{HandleStore: store})
	unique := uint64(1)
	read := func(off uint64) []byte {
		unique++
		return readAs(t, successor, node, out.Fh, unique, off)
	}
	opened, _, _, _ := store.Get(out.Fh)
	if got := read(10); !bytes.Equal(got, opened[10:]) {
		t.Errorf("successor's read at 10: %q, want the opened content's %q", got, opened[10:])
	}
	// The content overwritten: only its length is left, for a worker
	// that has not read the handle yet.
	successor = newTestFS(t, Config{HandleStore: store})
	const oldLen = 100
	store.Put(out.Fh, 0, bytes.Repeat([]byte("x"), storeRing/2)) // too big for the ring
	tag, _, _ := store.slot(out.Fh)
	tag.Store(storeTag(out.Fh)<<storeLenBits | oldLen)
	if b := read(oldLen); len(b) != 0 {
		t.Errorf("read at the old end of file: %q, want nothing", b)
	}
	// A read from 0 starts a new generation, whole, and the store
	// follows it.
	fresh := read(0)
	if len(fresh) <= oldLen || !bytes.HasPrefix(fresh, []byte("MemTotal:")) {
		t.Errorf("read from 0: %d bytes %q, want a whole fresh meminfo", len(fresh), fresh)
	}
	if kept, _, _, _ := store.Get(out.Fh); !bytes.Equal(kept, fresh) {
		t.Errorf("the store keeps %q, want the new generation", kept)
	}
	successor.Release(nil, &fuse.ReleaseIn{Fh: out.Fh})
	if _, _, _, ok := store.Get(out.Fh); ok {
		t.Error("a released handle is still known")
	}
}

// A handle held open keeps its index entry however many handles are opened
// and released after it (the index used to give its slot to the 16,384th),
// so a successor still continues its generation. (24,576 opens of small
// contents: more than the index's slots, less than the ring's bytes.)
func TestHandleStoreKeepsLongHeldHandles(t *testing.T) {
	store, _ := newTestHandleStore(t)
	held := uint64(1_700_000_000_000) << 20
	store.Put(held, 7, []byte("held open\n"))
	for fh := held + 1; fh <= held+storeSlots+storeSlots/2; fh++ {
		store.Put(fh, fh, []byte("short-lived\n"))
		if fh%5 != 0 { // most are released at once, some stay open
			store.Clear(fh)
		}
	}
	if c, _, unique, ok := store.Get(held); !ok || string(c) != "held open\n" || unique != 7 {
		t.Fatalf("after %d more opens: %q (request %d, known %v), want the held handle's content", storeSlots+storeSlots/2, c, unique, ok)
	}
	store.Clear(held)
	if _, _, _, ok := store.Get(held); ok {
		t.Error("a released handle is still known")
	}
}
