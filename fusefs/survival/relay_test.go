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

// The relay passes requests to the attached worker; what a worker leaves
// unanswered when it dies goes to the next one, with what arrived between
// them. (The "device" is a SEQPACKET socket: one request per read, as
// /dev/fuse.)
func TestRelayHandsUnansweredRequestsToTheNextWorker(t *testing.T) {
	devFDs, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	kernel := os.NewFile(uintptr(devFDs[0]), "kernel")
	defer kernel.Close()
	jf, err := newJournalFile()
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	r, err := newRelay(os.NewFile(uintptr(devFDs[1]), "dev"), jf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	worker := func() (*os.File, *Journal) {
		end, w, err := newWorkerSocket()
		if err != nil {
			t.Fatal(err)
		}
		r.Attach(end)
		wj, err := openJournal(jf)
		if err != nil {
			t.Fatal(err)
		}
		return w, wj
	}
	receive := func(w *os.File, n int) []uint64 {
		t.Helper()
		var got []uint64
		buf := make([]byte, 4096)
		w.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(got) < n {
			m, err := w.Read(buf)
			if err != nil {
				t.Fatalf("worker got %v, then %v", got, err)
			}
			got = append(got, uniqueOf(buf[:m]))
		}
		sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
		return got
	}
	send := func(u uint64) {
		if _, err := kernel.Write(request(15, u, 40)); err != nil {
			t.Fatal(err)
		}
	}

	w1, j1 := worker()
	send(2)
	send(4)
	send(6)
	if got := receive(w1, 3); len(got) != 3 || got[0] != 2 {
		t.Fatalf("worker 1 got %v", got)
	}
	j1.Answered(j1.Taken(request(15, 4, 40))) // answers 4, dies with 2 and 6
	w1.Close()
	send(8) // while no worker serves
	time.Sleep(50 * time.Millisecond)
	w2, _ := worker()
	defer w2.Close()
	if got := receive(w2, 3); len(got) != 3 || got[0] != 2 || got[1] != 6 || got[2] != 8 {
		t.Errorf("worker 2 got %v, want [2 6 8]", got)
	}
	if relayed, unkept := r.Stats(); relayed != 4 || unkept != 0 {
		t.Errorf("stats: %d relayed, %d unkept; want 4, 0", relayed, unkept)
	}
	kernel.Close() // the device ends: the relay says the mount is gone
	select {
	case <-r.gone:
	case <-time.After(5 * time.Second):
		t.Error("relay did not notice the device's end")
	}
}
