package fusefs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/corral-dev/corral/tests/testutil"
)

// Issue 12: a READ at offset 0 computes the content afresh (seq_file's
// rule), a READ at offset > 0 goes on with the generation the last READ at
// 0 produced, in this worker and in its successors.

// readAs is one READ of handle fh on node by this test process, through
// w's Read, as request unique.
func readAs(t *testing.T, w *FS, node, fh, unique, off uint64) []byte {
	t.Helper()
	in := &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: node, Unique: unique, Caller: fuse.Caller{Pid: uint32(os.Getpid())}},
		Fh: fh, Offset: off, Size: 4096, ReadFlags: fuse.READ_LOCKOWNER}
	res, st := w.Read(nil, in, make([]byte, 4096))
	if !st.Ok() {
		t.Fatal(st)
	}
	b, _ := res.Bytes(make([]byte, 4096))
	return append([]byte(nil), b...)
}

func pread(t *testing.T, f *os.File, off int64) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := f.ReadAt(buf, off)
	if n == 0 && err != nil && err.Error() != "EOF" {
		t.Fatalf("pread(%s, %d): %v", f.Name(), off, err)
	}
	return buf[:n]
}

// Through the kernel: one fd, re-read from offset 0, shows a new
// generation (uptime and stat change with time), and a read at offset > 0
// made after the source changed still continues the generation the reader
// started on.
func TestSameFdReadsFromZeroAreLive(t *testing.T) {
	_, mp := mountTestFS(t)
	for _, p := range []string{"proc/uptime", "proc/stat"} {
		f, err := os.Open(filepath.Join(mp, p))
		if err != nil {
			t.Fatal(err)
		}
		first := pread(t, f, 0)
		// The source changes: a fresh open says something else.
		testutil.WaitFor(t, 10*time.Second, p+" changes", func() bool {
			b, err := os.ReadFile(f.Name())
			return err == nil && !bytes.Equal(b, first)
		})
		if got := pread(t, f, 7); !bytes.Equal(got, first[7:]) {
			t.Errorf("%s: pread(7) after the source changed = %q, want the rest of the generation read at 0 %q", p, got, first[7:])
		}
		second := pread(t, f, 0)
		if bytes.Equal(second, first) {
			t.Errorf("%s: pread(0) on the same fd still says %q after a fresh open changed", p, first)
		}
		if got := pread(t, f, 3); !bytes.Equal(got, second[3:]) {
			t.Errorf("%s: pread(3) = %q, want the new generation's %q", p, got, second[3:])
		}
		f.Close()
	}
}

// An open+read+close computes the content once (the first READ at 0
// serves what OPEN computed); each later read from 0 computes it again;
// reads at offset > 0 never do.
func TestOpenReadCloseRendersOnce(t *testing.T) {
	fs, mp := mountTestFS(t)
	path := filepath.Join(mp, "proc/meminfo")
	before := fs.Stats.Renders.Load()
	for i := 0; i < 10; i++ {
		if _, err := os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	if n := fs.Stats.Renders.Load() - before; n != 10 {
		t.Errorf("10 open+read+close computed the content %d times, want 10", n)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before = fs.Stats.Renders.Load()
	for i := 0; i < 3; i++ {
		b := pread(t, f, 0)
		pread(t, f, 5)
		pread(t, f, int64(len(b)))
	}
	// The OPEN's content served the first read at 0 (when it came
	// within reuseOpenContent); the two others computed.
	if n := fs.Stats.Renders.Load() - before; n < 2 || n > 3 {
		t.Errorf("3 reads from 0 (and reads on) after an open computed %d times, want 2 (or 3 on a slow machine)", n)
	}
}

// The OPEN's content is served by the first READ at 0 only while unread
// and recent; the READ that computed a generation, seen again, gets it.
func TestHandleStartRead(t *testing.T) {
	var tab handleTable
	fh := tab.add(handle{data: []byte("a"), unique: 7, unread: time.Second})
	if _, _, reuse := tab.startRead(fh, 8, time.Second+reuseOpenContent+1, reuseOpenContent); reuse {
		t.Error("an OPEN's content older than reuseOpenContent was reused")
	}
	fh = tab.add(handle{data: []byte("b"), unique: 9, unread: time.Second})
	if h, ok, reuse := tab.startRead(fh, 10, time.Second+time.Millisecond, reuseOpenContent); !ok || !reuse || string(h.data) != "b" {
		t.Errorf("first read of a fresh OPEN content: %q %v %v, want it reused", h.data, ok, reuse)
	}
	if _, _, reuse := tab.startRead(fh, 11, time.Second+2*time.Millisecond, reuseOpenContent); reuse {
		t.Error("the OPEN's content served a second read from 0")
	}
	tab.set(fh, handle{data: []byte("c"), unique: 11})
	if h, _, reuse := tab.startRead(fh, 11, time.Hour, reuseOpenContent); !reuse || string(h.data) != "c" {
		t.Errorf("the request that computed a generation, seen again: %q %v, want that generation", h.data, reuse)
	}
	if _, ok, _ := tab.startRead(fh+100, 1, 0, reuseOpenContent); ok {
		t.Error("an unknown handle is known")
	}
}

// Workers share the latest generation: a successor continues at offset > 0
// with the generation its predecessor produced last (not the OPEN's),
// answers a READ at 0 it is given again (journaled, answered, then the
// worker died) with the bytes already computed for it, and starts a new
// generation for any other READ at 0, which its own successor follows.
func TestSuccessorFollowsLatestGeneration(t *testing.T) {
	testutil.RequireRoot(t)
	store := newTestHandleStore(t)
	workers := []*FS{newTestFS(t, Config{HandleStore: store}), newTestFS(t, Config{HandleStore: store}), newTestFS(t, Config{HandleStore: store})}
	node := nodeID("proc/uptime")
	pid := uint32(os.Getpid())
	var out fuse.OpenOut
	if st := workers[0].Open(nil, &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: node, Unique: 100, Caller: fuse.Caller{Pid: pid}}}, &out); !st.Ok() {
		t.Fatal(st)
	}
	read := func(w *FS, unique, off uint64) []byte { return readAs(t, w, node, out.Fh, unique, off) }
	opened := read(workers[0], 101, 0)
	// A new generation in the first worker, once uptime has moved.
	var gen []byte
	unique := uint64(200)
	testutil.WaitFor(t, 10*time.Second, "uptime changes", func() bool {
		unique++
		gen = read(workers[0], unique, 0)
		return !bytes.Equal(gen, opened)
	})
	if got := read(workers[1], 900, 2); !bytes.Equal(got, gen[2:]) {
		t.Errorf("successor at offset 2: %q, want the latest generation's %q (opened: %q)", got, gen[2:], opened)
	}
	// The READ that computed gen, given again (with the RESEND flag).
	testutil.WaitFor(t, 10*time.Second, "uptime moves on", func() bool {
		b, _ := os.ReadFile("/proc/uptime")
		return !bytes.HasPrefix(b, gen[:4])
	})
	if got := read(workers[1], unique|1<<63, 0); !bytes.Equal(got, gen) {
		t.Errorf("a resent READ at 0 got %q, want the generation computed for it %q", got, gen)
	}
	newer := read(workers[1], 901, 0)
	if bytes.Equal(newer, gen) {
		t.Errorf("a new READ at 0 in the successor got the old generation %q", gen)
	}
	if got := read(workers[2], 902, 1); !bytes.Equal(got, newer[1:]) {
		t.Errorf("third worker at offset 1: %q, want the successor's generation %q", got, newer[1:])
	}
}

// twoWorkersOpenUptime: two workers sharing a handle store; the first has
// opened proc/uptime for this process (request 10).
func twoWorkersOpenUptime(t *testing.T) (a, b *FS, store *survival.HandleStore, node uint64, out fuse.OpenOut) {
	t.Helper()
	testutil.RequireRoot(t)
	store = newTestHandleStore(t)
	a, b = newTestFS(t, Config{HandleStore: store}), newTestFS(t, Config{HandleStore: store})
	node = nodeID("proc/uptime")
	if st := a.Open(nil, &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: node, Unique: 10, Caller: fuse.Caller{Pid: uint32(os.Getpid())}}}, &out); !st.Ok() {
		t.Fatal(st)
	}
	return a, b, store, node, out
}

// During an upgrade the old and the new worker answer the connection
// together: whichever one a READ at 0 went to, the next READ at offset > 0
// continues that generation, in either worker.
func TestWorkersAnsweringTogetherShareGenerations(t *testing.T) {
	a, b, store, node, out := twoWorkersOpenUptime(t)
	unique := uint64(10)
	read := func(w *FS, off uint64) []byte {
		unique++
		return readAs(t, w, node, out.Fh, unique, off)
	}
	opened, _, _, _ := store.Get(out.Fh)
	// The first READ at 0 goes to b, once uptime has moved on: a new
	// generation, which a (holding the OPEN's, unread) must continue.
	var genB []byte
	testutil.WaitFor(t, 10*time.Second, "uptime changes", func() bool {
		genB = read(b, 0)
		return !bytes.Equal(genB, opened)
	})
	if got := read(a, 2); !bytes.Equal(got, genB[2:]) {
		t.Errorf("a at offset 2 after b's read at 0: %q, want b's generation %q (a opened %q)", got, genB[2:], opened)
	}
	// A READ at 0 in a, then b continues a's generation.
	var genA []byte
	testutil.WaitFor(t, 10*time.Second, "uptime changes again", func() bool {
		genA = read(a, 0)
		return !bytes.Equal(genA, genB)
	})
	if got := read(b, 1); !bytes.Equal(got, genA[1:]) {
		t.Errorf("b at offset 1 after a's read at 0: %q, want a's generation %q", got, genA[1:])
	}
}

// An older READ at 0 replayed after the reader moved on (the relay keeps
// an answered request until its worker frees its journal slot) must not
// start a generation: the reader is reading the newer one.
func TestReplayedOlderReadAtZeroKeepsTheGeneration(t *testing.T) {
	a, b, _, node, out := twoWorkersOpenUptime(t)
	first := readAs(t, a, node, out.Fh, 12, 0)
	var gen []byte
	unique := uint64(12)
	testutil.WaitFor(t, 10*time.Second, "uptime changes", func() bool {
		unique += 2
		gen = readAs(t, a, node, out.Fh, unique, 0)
		return !bytes.Equal(gen, first)
	})
	// a dies; b is handed READ 12 (answered long ago) again, once a new
	// generation would differ, then the reader's next READ on.
	testutil.WaitFor(t, 10*time.Second, "uptime moves on", func() bool {
		now, _ := os.ReadFile("/proc/uptime")
		return !bytes.Equal(bytes.Fields(now)[0], bytes.Fields(gen)[0])
	})
	readAs(t, b, node, out.Fh, 12, 0)
	if got := readAs(t, b, node, out.Fh, unique+2, 3); !bytes.Equal(got, gen[3:]) {
		t.Errorf("after a replayed older READ at 0: %q at offset 3, want the reader's generation %q", got, gen[3:])
	}
}

// The first READ at 0 after an OPEN serves the OPEN's content. If the
// worker dies before the relay frees that READ's slot, a successor is
// handed the READ again: it must answer the same bytes (its answer is
// dropped, the reader holds the first), and the reader's next READ on must
// continue them, not a generation the replay would otherwise start.
func TestReplayOfFirstReadKeepsTheOpensContent(t *testing.T) {
	a, b, _, node, out := twoWorkersOpenUptime(t)
	first := readAs(t, a, node, out.Fh, 11, 0) // served from the OPEN's content
	testutil.WaitFor(t, 10*time.Second, "uptime moves on", func() bool {
		now, _ := os.ReadFile("/proc/uptime")
		return !bytes.Equal(bytes.Fields(now)[0], bytes.Fields(first)[0])
	})
	// a dies; the relay replays READ 11 to b, then the reader reads on.
	if got := readAs(t, b, node, out.Fh, 11, 0); !bytes.Equal(got, first) {
		t.Errorf("replayed first READ: %q, want the OPEN's %q", got, first)
	}
	if got := readAs(t, b, node, out.Fh, 12, 3); !bytes.Equal(got, first[3:]) {
		t.Errorf("after the replay: %q at offset 3, want the reader's generation %q", got, first[3:])
	}
}
