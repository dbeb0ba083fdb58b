package fusefs

import (
	"os"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/tests/testutil"
)

func TestHandleQuotaBounds(t *testing.T) {
	q := newHandleQuota(2, 3)
	for i, key := range []string{"a", "a", "b"} {
		if errno := q.take(key); errno != 0 {
			t.Fatalf("take %d (%s): %v", i, key, errno)
		}
		q.bind(uint64(i+1), key)
	}
	if errno := q.take("a"); errno != syscall.EMFILE {
		t.Errorf("a third handle for a: %v, want EMFILE", errno)
	}
	if errno := q.take("c"); errno != syscall.ENFILE {
		t.Errorf("a fourth handle in all: %v, want ENFILE", errno)
	}
	q.release(1)
	q.release(1) // twice: the kernel never does, but nothing may go negative
	q.release(99)
	if errno := q.take("c"); errno != 0 {
		t.Errorf("after a release: %v", errno)
	}
	q.untake("c")
	if q.n != 2 || q.byKey["a"] != 1 || q.byKey["b"] != 1 || len(q.byKey) != 2 {
		t.Errorf("counts n=%d byKey=%v", q.n, q.byKey)
	}
}

// Opens beyond a container's quota fail with EMFILE and free nothing
// else; releasing a handle makes room again.
func TestOpenRefusedOverQuota(t *testing.T) {
	testutil.RequireRoot(t)
	fs := newTestFS(t, Config{MaxHandlesPerContainer: 3})
	in := &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: nodeID("proc/meminfo"), Caller: fuse.Caller{Pid: uint32(os.Getpid())}}}
	var fhs []uint64
	for i := 0; i < 3; i++ {
		var out fuse.OpenOut
		if st := fs.Open(nil, in, &out); !st.Ok() {
			t.Fatalf("open %d: %v", i, st)
		}
		fhs = append(fhs, out.Fh)
	}
	var out fuse.OpenOut
	if st := fs.Open(nil, in, &out); st != fuse.Status(syscall.EMFILE) {
		t.Fatalf("open over quota: %v, want EMFILE", st)
	}
	fs.Release(nil, &fuse.ReleaseIn{Fh: fhs[0]})
	if st := fs.Open(nil, in, &out); !st.Ok() {
		t.Fatalf("open after a release: %v", st)
	}
	if st := fs.Status(); st.Refused != 1 || st.OpenHandles != 3 {
		t.Errorf("status %+v: want 1 refused, 3 open", st)
	}
}
