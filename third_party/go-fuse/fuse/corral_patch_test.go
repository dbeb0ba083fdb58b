package fuse_test

// Tests of corral's two patches (see ../PATCH.md): a server that adopts a
// connection another server initialised (AdoptInit), and a server that
// reads its requests from a relay socket and reports them to an in-flight
// journal (RequestSource, InFlight). They mount real FUSE, so they need
// root: skipped on a laptop, failed under CI=true.

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

const helloText = "hello from the adopting server\n"

func requireRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CI=true: root tests must not skip)")
	}
	t.Skip("needs root")
}

// initOnly mounts a connection at a fresh directory the way corral's
// supervisor does and answers INIT with a server that is never served. It
// returns the mount point, the device file and the INIT request.
func initOnly(t *testing.T, opts fuse.MountOptions) (string, *os.File, fuse.InitIn) {
	t.Helper()
	mp := t.TempDir()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev := os.NewFile(uintptr(fd), "/dev/fuse")
	data := "fd=" + strconv.Itoa(fd) + ",rootmode=40000,user_id=0,group_id=0,max_read=131072"
	if err := unix.Mount("patchtest", mp, "fuse.patchtest", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mp, unix.MNT_DETACH)
		dev.Close()
	})
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fuse.NewServer(fuse.NewDefaultRawFileSystem(), "/dev/fd/"+strconv.Itoa(dup), &opts)
	if err != nil {
		t.Fatalf("answering INIT: %v", err)
	}
	return mp, dev, *srv.KernelSettings()
}

// helloFS is a tree with one file, served by the adopting server.
func helloFS() fuse.RawFileSystem {
	root := &fs.Inode{}
	return fs.NewNodeFS(&helloRoot{Inode: root}, &fs.Options{})
}

type helloRoot struct{ *fs.Inode }

func (r *helloRoot) EmbeddedInode() *fs.Inode { return r.Inode }

func (r *helloRoot) OnAdd(ctx context.Context) {
	f := &fs.MemRegularFile{Data: []byte(helloText), Attr: fuse.Attr{Mode: 0o444}}
	r.AddChild("hello", r.NewPersistentInode(ctx, f, fs.StableAttr{}), false)
}

var _ fs.NodeOnAdder = (*helloRoot)(nil)

// readWithin reads a file through the mount, failing the test if no server
// answers in time (a server that waits for an INIT that never comes would
// hang the reader forever).
func readWithin(t *testing.T, path string) string {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := os.ReadFile(path)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read %s: %v", path, r.err)
		}
		return string(r.b)
	case <-time.After(20 * time.Second):
		t.Fatalf("read %s: no answer in 20s (the adopting server is not serving)", path)
		return ""
	}
}

func TestCorralPatchAdoptInit(t *testing.T) {
	requireRoot(t)
	opts := fuse.MountOptions{Name: "patchtest", FsName: "patchtest"}
	mp, dev, init := initOnly(t, opts)
	if init.Major != 7 || init.Minor == 0 {
		t.Fatalf("saved INIT request %+v is not the kernel's", init)
	}
	fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	adopt := opts
	adopt.AdoptInit = &init
	srv, err := fuse.NewServer(helloFS(), "/dev/fd/"+strconv.Itoa(fd), &adopt)
	if err != nil {
		t.Fatalf("adopting: %v", err)
	}
	go srv.Serve()
	if got := readWithin(t, filepath.Join(mp, "hello")); got != helloText {
		t.Fatalf("read %q through the adopted connection, want %q", got, helloText)
	}
	if got := srv.KernelSettings(); got.Minor != init.Minor || got.Flags != init.Flags {
		t.Errorf("adopting server negotiated from %+v, not the saved request %+v", got, init)
	}
}

// journal counts what the server reports: every request taken must be
// answered, each exactly once.
type journal struct {
	mu       sync.Mutex
	next     int
	open     map[int]uint32 // token -> opcode
	answered int
	opcodes  []uint32
}

func (j *journal) Taken(raw []byte) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next++
	op := uint32(0)
	if len(raw) >= 8 {
		op = uint32(raw[4]) | uint32(raw[5])<<8 | uint32(raw[6])<<16 | uint32(raw[7])<<24
	}
	j.open[j.next] = op
	j.opcodes = append(j.opcodes, op)
	return j.next
}

func (j *journal) Answered(token int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.open[token]; !ok {
		panic("Answered with a token never taken or answered twice: " + strconv.Itoa(token))
	}
	delete(j.open, token)
	j.answered++
}

func TestCorralPatchRequestSourceAndInFlight(t *testing.T) {
	requireRoot(t)
	opts := fuse.MountOptions{Name: "patchtest", FsName: "patchtest"}
	mp, dev, init := initOnly(t, opts)

	// The relay: this test reads the device and passes each request on
	// as one SOCK_SEQPACKET message, as corral's supervisor does.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	relayEnd, serverEnd := fds[0], os.NewFile(uintptr(fds[1]), "relay")
	relayed := make(chan int, 1)
	go func() {
		buf := make([]byte, 128*1024+4096)
		n := 0
		defer func() { relayed <- n }()
		for {
			k, err := unix.Read(int(dev.Fd()), buf)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return // ENODEV once unmounted
			}
			if _, err := unix.Write(relayEnd, buf[:k]); err != nil {
				return
			}
			n++
		}
	}()

	fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{open: map[int]uint32{}}
	adopt := opts
	adopt.AdoptInit = &init
	adopt.RequestSource = serverEnd
	adopt.InFlight = j
	srv, err := fuse.NewServer(helloFS(), "/dev/fd/"+strconv.Itoa(fd), &adopt)
	if err != nil {
		t.Fatalf("adopting: %v", err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(); close(served) }()
	for i := 0; i < 3; i++ {
		if got := readWithin(t, filepath.Join(mp, "hello")); got != helloText {
			t.Fatalf("read %d: %q, want %q", i, got, helloText)
		}
	}
	// Every request was read from the socket (the server never read
	// the device: the relay saw all of them) and answered once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		j.mu.Lock()
		taken, answered, open := j.next, j.answered, len(j.open)
		j.mu.Unlock()
		if taken > 0 && open == 0 && answered == taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal: %d taken, %d answered, %d open (opcodes %v)", taken, answered, open, j.opcodes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// End of file on the request source ends the server, like ENODEV.
	unix.Close(relayEnd)
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("server still serving after its request source closed")
	}
	unix.Unmount(mp, unix.MNT_DETACH)
	if n := <-relayed; n < j.next {
		t.Errorf("relay passed %d requests, the server took %d: it read the device itself", n, j.next)
	}
}
