package subid

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func fixture(t *testing.T, subuid, subgid string) *Allocator {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "subuid"), []byte(subuid), 0o644)
	os.WriteFile(filepath.Join(dir, "subgid"), []byte(subgid), 0o644)
	return &Allocator{
		SubUIDFile: filepath.Join(dir, "subuid"), SubGIDFile: filepath.Join(dir, "subgid"),
		StateFile: filepath.Join(dir, "state", "allocations.json"),
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "subuid")
	os.WriteFile(f, []byte("# comment\nalice:100000:65536\ncontainers:200000:131072\n\n1234:500000:10\n"), 0o644)
	rs, err := Parse(f, "containers", 1234)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{200000, 131072}, {500000, 10}}
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", rs, want)
	}
	os.WriteFile(f, []byte("containers:200000\n"), 0o644)
	if _, err := Parse(f, "containers", -1); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("a malformed line must be an error naming it, got %v", err)
	}
}

// Two live containers never share a block; a dead one's block is
// reused; the blocks of uid and gid come from their own files.
func TestAllocateDistinctAndReclaimed(t *testing.T) {
	a := fixture(t, "containers:100000:196608\n", "containers:300000:131072\n")
	alive := map[string]bool{}
	a.Alive = func(al Allocation) bool { return alive[al.Owner] }
	first, err := a.Allocate("c1", 65536)
	if err != nil {
		t.Fatal(err)
	}
	alive["c1"] = true
	second, err := a.Allocate("c2", 65536)
	if err != nil {
		t.Fatal(err)
	}
	alive["c2"] = true
	if first.UID.overlaps(second.UID) || first.GID.overlaps(second.GID) {
		t.Fatalf("two live containers share ids: %+v %+v", first, second)
	}
	if first.UID.Start != 100000 || first.GID.Start != 300000 || second.GID.Start != 365536 {
		t.Fatalf("blocks not taken in order: %+v %+v", first, second)
	}
	// subgid has room for two blocks only.
	if _, err := a.Allocate("c3", 65536); err == nil || !strings.Contains(err.Error(), "no free block") {
		t.Fatalf("a third container must be refused with a clear error, got %v", err)
	}
	alive["c1"] = false // deleted: its block is free again
	third, err := a.Allocate("c3", 65536)
	if err != nil {
		t.Fatal(err)
	}
	if third.UID != first.UID || third.GID != first.GID {
		t.Fatalf("the dead container's block was not reused: %+v, want %+v", third, first)
	}
}

func TestAllocateNoRangeSaysWhatToAdd(t *testing.T) {
	a := fixture(t, "alice:100000:65536\n", "alice:100000:65536\n")
	_, err := a.Allocate("c1", 65536)
	if err == nil || !strings.Contains(err.Error(), "containers:2147483647:2147483648") {
		t.Fatalf("want an error naming the line to add, got %v", err)
	}
}

// Concurrent allocations (parallel `corral run`s) get distinct blocks:
// the flock serialises them. The default liveness (pid of the allocator
// runs) keeps every one.
func TestAllocateConcurrent(t *testing.T) {
	a := fixture(t, "containers:100000:1048576\n", "containers:100000:1048576\n")
	var wg sync.WaitGroup
	got := make([]Allocation, 16)
	errs := make([]error, 16)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], errs[i] = a.Allocate(fmt.Sprintf("/nonexistent/c%d", i), 65536)
		}(i)
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for i, al := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[al.UID.Start] {
			t.Fatalf("block %d handed out twice", al.UID.Start)
		}
		seen[al.UID.Start] = true
	}
	if err := a.Release("/nonexistent/c0"); err != nil {
		t.Fatal(err)
	}
	again, err := a.Allocate("/nonexistent/c16", 65536)
	if err != nil || again.UID != got[0].UID {
		t.Fatalf("released block not reused: %+v %v (want %+v)", again, err, got[0].UID)
	}
}
