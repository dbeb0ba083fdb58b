package survival

import (
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// request builds a FUSE request: a 40-byte header and payload.
func request(opcode uint32, unique uint64, payload int) []byte {
	b := make([]byte, 40+payload)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	return b
}

func uniqueOf(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

func newTestJournal(t *testing.T) (*Journal, *os.File) {
	return newTestShared(t, newJournalFile, openJournal)
}

func kept(j *Journal) []uint64 {
	var u []uint64
	j.each(func(raw []byte) { u = append(u, uniqueOf(raw)) })
	sort.Slice(u, func(a, b int) bool { return u[a] < u[b] })
	return u
}

func TestJournalKeepsUntilAnswered(t *testing.T) {
	j, f := newTestJournal(t)
	const opRead, opLookup = 15, 1
	for u := uint64(2); u <= 8; u += 2 {
		if !j.record(request(opRead, u, 40)) {
			t.Fatalf("request %d not kept", u)
		}
	}
	if j.record(request(opForget, 10, 8)) || j.record(request(opInterrupt, 12, 8)) {
		t.Error("kept a request that wants no answer")
	}
	if j.record(request(opLookup, 14, journalSlotSize)) {
		t.Error("kept a request bigger than a slot")
	}
	// A second mapping (the worker's) sees them and frees what it answers.
	w, err := openJournal(f)
	if err != nil {
		t.Fatal(err)
	}
	slot := w.Taken(request(opRead, 4, 40))
	if slot < 0 {
		t.Fatal("worker does not find request 4")
	}
	w.Answered(slot)
	if w.Taken(request(opRead, 4, 40)) != -1 {
		t.Error("an answered request is still found")
	}
	if w.Taken(request(opRead, 99, 40)) != -1 {
		t.Error("an unknown request is found")
	}
	if got := kept(j); len(got) != 3 || got[0] != 2 || got[1] != 6 || got[2] != 8 {
		t.Errorf("kept %v, want [2 6 8]", got)
	}
}

// Requests whose home slots collide are found wherever they landed, also
// after the slot they were pushed past has been freed.
func TestJournalCollisionsAndFull(t *testing.T) {
	j, _ := newTestJournal(t)
	a, b := uint64(2), uint64(2+2*journalSlots) // same home slot
	j.record(request(15, a, 40))
	j.record(request(15, b, 40))
	j.Answered(j.Taken(request(15, a, 40)))
	if s := j.Taken(request(15, b, 40)); s < 0 {
		t.Fatal("request pushed past a since-freed slot is lost")
	} else {
		j.Answered(s)
	}
	for u := uint64(0); u < journalSlots; u++ {
		if !j.record(request(15, 1000+2*u, 40)) {
			t.Fatalf("journal full after %d requests, want %d", u, journalSlots)
		}
	}
	if j.record(request(15, 5000, 40)) {
		t.Error("kept a request in a full journal")
	}
	if n := len(kept(j)); n != journalSlots {
		t.Errorf("%d kept, want %d", n, journalSlots)
	}
}

// testRelay is a relay reading a fake device: a SEQPACKET socket whose
// other end (kernel) the test writes requests to, one per message, as
// /dev/fuse hands them out.
type testRelay struct {
	t      *testing.T
	r      *relay
	jf     *os.File
	kernel *os.File
}

func newTestRelay(t *testing.T) *testRelay {
	devFDs, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	kernel := os.NewFile(uintptr(devFDs[0]), "kernel")
	t.Cleanup(func() { kernel.Close() })
	jf, err := newJournalFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jf.Close() })
	r, err := newRelay(os.NewFile(uintptr(devFDs[1]), "dev"), jf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &testRelay{t: t, r: r, jf: jf, kernel: kernel}
}

// worker attaches a new worker's socket and maps the journal as it would.
func (tr *testRelay) worker() (*os.File, *Journal) {
	end, w, err := newWorkerSocket()
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.r.Attach(end)
	wj, err := openJournal(tr.jf)
	if err != nil {
		tr.t.Fatal(err)
	}
	return w, wj
}

// receive reads n requests from a worker's socket, sorted by unique id.
func (tr *testRelay) receive(w *os.File, n int) []uint64 {
	tr.t.Helper()
	var got []uint64
	buf := make([]byte, 4096)
	w.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		m, err := w.Read(buf)
		if err != nil {
			tr.t.Fatalf("worker got %v, then %v", got, err)
		}
		got = append(got, uniqueOf(buf[:m]))
	}
	sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
	return got
}

func (tr *testRelay) send(u uint64) {
	if _, err := tr.kernel.Write(request(15, u, 40)); err != nil {
		tr.t.Fatal(err)
	}
}

// waitRelayed waits until the relay has read n requests in all.
func (tr *testRelay) waitRelayed(n uint64) {
	tr.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if got, _ := tr.r.Stats(); got >= n {
			return
		} else if time.Now().After(deadline) {
			tr.t.Fatalf("the relay read %d requests, want %d", got, n)
		}
	}
}

// The relay passes requests to the attached worker; what a worker leaves
// unanswered when it dies goes to the next one, with what arrived between
// them.
func TestRelayHandsUnansweredRequestsToTheNextWorker(t *testing.T) {
	tr := newTestRelay(t)
	w1, j1 := tr.worker()
	tr.send(2)
	tr.send(4)
	tr.send(6)
	if got := tr.receive(w1, 3); len(got) != 3 || got[0] != 2 {
		t.Fatalf("worker 1 got %v", got)
	}
	j1.Answered(j1.Taken(request(15, 4, 40))) // answers 4, dies with 2 and 6
	w1.Close()
	tr.send(8) // while no worker serves
	tr.waitRelayed(4)
	w2, _ := tr.worker()
	defer w2.Close()
	if got := tr.receive(w2, 3); len(got) != 3 || got[0] != 2 || got[1] != 6 || got[2] != 8 {
		t.Errorf("worker 2 got %v, want [2 6 8]", got)
	}
	if relayed, unkept := tr.r.Stats(); relayed != 4 || unkept != 0 {
		t.Errorf("stats: %d relayed, %d unkept; want 4, 0", relayed, unkept)
	}
	tr.kernel.Close() // the device ends: the relay says the mount is gone
	select {
	case <-tr.r.gone:
	case <-time.After(5 * time.Second):
		t.Error("relay did not notice the device's end")
	}
}
