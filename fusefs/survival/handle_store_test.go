package survival

import (
	"bytes"
	"os"
	"testing"
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
