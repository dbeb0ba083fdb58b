package fusefs

import (
	"bytes"
	"os"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/corral-dev/corral/tests/testutil"
)

// newTestHandleStore is the shared handle store of the workers a test
// plays (fusefs/survival/handle_store.go).
func newTestHandleStore(t *testing.T) *survival.HandleStore {
	t.Helper()
	f, err := survival.NewHandleStoreFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s, err := survival.OpenHandleStore(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A handle opened by an earlier worker: its successor goes on with the
// very bytes the reader started on; without them (overwritten), reads at
// or past the old length are end of file and earlier ones never run past
// it (loadavg's "1/6 9" may have become "1/6 10"); a read from 0 starts a
// new generation, as on a handle the worker opened itself.
func TestReadOfPredecessorsHandle(t *testing.T) {
	testutil.RequireRoot(t)
	store := newTestHandleStore(t)
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
	// Later handles' contents fill the ring (1 MiB) and overwrite it.
	oldLen := len(opened)
	for i := uint64(1); i <= 300; i++ {
		store.Put(out.Fh+i, 0, bytes.Repeat([]byte("x"), 4000))
	}
	if c, n, _, _ := store.Get(out.Fh); c != nil || n != oldLen {
		t.Fatalf("after the ring wrapped the store keeps %d bytes, length %d; want no content, length %d", len(c), n, oldLen)
	}
	if b := read(uint64(oldLen)); len(b) != 0 {
		t.Errorf("read at the old end of file: %q, want nothing", b)
	}
	// A read from 0 starts a new generation, whole, and the store
	// follows it.
	fresh := read(0)
	if len(fresh) <= 100 || !bytes.HasPrefix(fresh, []byte("MemTotal:")) {
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
