package fusefs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/tests/testutil"
)

func newTestFS(t *testing.T, cfg Config) *FS {
	t.Helper()
	if cfg.Reader == nil {
		cfg.Reader = realReader(t)
	}
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	cfg.Options = render.Options{SwapReporting: true, CPUQuotaView: true}
	fs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go fs.Run(stop)
	t.Cleanup(func() { close(stop) })
	return fs
}

// mountTestFS mounts a real corralfs in this process at a temporary
// directory and unmounts it when the test ends.
func mountTestFS(t *testing.T) (*FS, string) { return mountTestFSWith(t, Config{}) }

func mountTestFSWith(t *testing.T, cfg Config) (*FS, string) {
	t.Helper()
	testutil.RequireFUSE(t)
	fs := newTestFS(t, cfg)
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := PrepareMountpoint(mp, quietLog()); err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(fs, mp, MountConfig{AllowOther: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(srv, mp); err != nil {
			t.Error(err)
		}
	})
	return fs, mp
}

// One generation of an open file says the same bytes to 1-byte reads and
// to preads at odd offsets (a READ at offset > 0 never starts a new one).
func TestReadsAtAnyOffsetAgree(t *testing.T) {
	_, mp := mountTestFS(t)
	for _, p := range []string{"proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/uptime", "proc/loadavg",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/cpu0/topology/core_id"} {
		f, err := os.Open(filepath.Join(mp, p))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && strings.Contains(p, "topology") {
				continue // a host without topology files
			}
			t.Fatal(err)
		}
		big := make([]byte, 1<<20)
		n, err := f.ReadAt(big, 0)
		if n == 0 || (err != nil && err.Error() != "EOF") {
			t.Fatalf("%s: read %d bytes: %v", p, n, err)
		}
		big = big[:n]
		// The 1-byte loop starts at offset 0: a new generation, which
		// may differ from big's (uptime, stat) but has a length alike.
		var small []byte
		one := make([]byte, 1)
		for {
			k, err := f.Read(one)
			if k == 0 || err != nil {
				break
			}
			small = append(small, one[0])
		}
		if len(small) == 0 || small[len(small)-1] != '\n' || len(small) < len(big)-16 || len(small) > len(big)+16 {
			t.Errorf("%s: 1-byte reads gave %q, one read %q", p, small, big)
		}
		big = small // the generation the preads below continue
		for _, off := range []int{1, 3, 7, len(big) / 3, len(big) - 1, len(big), len(big) + 5} {
			for _, size := range []int{1, 2, 17, 4096} {
				buf := make([]byte, size)
				k, _ := f.ReadAt(buf, int64(off))
				want := big[min(off, len(big)):min(off+size, len(big))]
				if !bytes.Equal(buf[:k], want) {
					t.Errorf("%s: pread(%d, %d) = %q, want %q", p, off, size, buf[:k], want)
				}
			}
		}
		f.Close()
	}
}

func TestUnknownPathsAndWritesAreRefused(t *testing.T) {
	_, mp := mountTestFS(t)
	at := func(p string) string { return filepath.Join(mp, p) }
	for _, p := range []string{"nope", "proc/nope", "proc/meminfo/x", "sys/devices/system/cpu/cpu99999", "sys/devices/system/cpu/cpufreq"} {
		if _, err := os.Stat(at(p)); !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("stat %s: %v, want ENOENT", p, err)
		}
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s: %v, want EROFS or EACCES", what, err)
		}
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		f, err := os.OpenFile(at("proc/meminfo"), flag, 0)
		if err == nil {
			f.Close()
		}
		refused("open meminfo for writing", err)
	}
	_, err := os.Create(at("proc/new"))
	refused("create", err)
	refused("mkdir", os.Mkdir(at("proc/dir"), 0o755))
	refused("remove", os.Remove(at("proc/meminfo")))
	refused("rename", os.Rename(at("proc/meminfo"), at("proc/x")))
	refused("chmod", os.Chmod(at("proc/meminfo"), 0o777))
	refused("truncate", os.Truncate(at("proc/meminfo"), 0))
	refused("symlink", os.Symlink("x", at("proc/link")))
	refused("setxattr", syscall.Setxattr(at("proc/meminfo"), "user.x", []byte("y"), 0))
	// And reading still works afterwards.
	if b, err := os.ReadFile(at("proc/meminfo")); err != nil || !bytes.HasPrefix(b, []byte("MemTotal:")) {
		t.Errorf("meminfo after refused writes: %q, %v", b, err)
	}
}

func TestInodeNumbersAreNodeIDs(t *testing.T) {
	fs, mp := mountTestFS(t)
	for _, p := range []string{"", "proc", "proc/meminfo", "sys/devices/system/cpu", "sys/devices/system/cpu/cpu0", "sys/devices/system/cpu/online"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(mp, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ino != nodeID(p) {
			t.Errorf("%q: inode %#x, want %#x", p, st.Ino, nodeID(p))
		}
		if n := fs.tree.lookupPath(p); n == nil || (st.Mode&syscall.S_IFDIR != 0) != n.isDir() {
			t.Errorf("%q: mode %o does not match the tree", p, st.Mode)
		}
	}
	ents, err := os.ReadDir(filepath.Join(mp, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); !strings.HasPrefix(got, "cpuinfo diskstats loadavg meminfo") || !strings.HasSuffix(got, "stat swaps uptime") {
		t.Errorf("proc lists %q", got)
	}
}

// Every open handle is freed at close (RELEASE is asynchronous).
func TestHandlesAreReleased(t *testing.T) {
	fs, mp := mountTestFS(t)
	for i := 0; i < 200; i++ {
		if _, err := os.ReadFile(filepath.Join(mp, "proc/stat")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for fs.handles.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := fs.handles.len(); n != 0 {
		t.Errorf("%d handles left open after all files were closed", n)
	}
	if st := fs.Status(); st.Opens < 200 {
		t.Errorf("counters %+v after 200 reads", st)
	}
}

// A READ for a handle this process never opened (it was opened by a
// previous daemon on the same connection) is answered from scratch.
func TestReadWithUnknownHandle(t *testing.T) {
	testutil.RequireRoot(t)
	fs := newTestFS(t, Config{})
	want, err := os.ReadFile("/sys/devices/system/cpu/kernel_max")
	if err != nil {
		t.Skip("no kernel_max on this host")
	}
	in := &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: nodeID("sys/devices/system/cpu/kernel_max"), Caller: fuse.Caller{Pid: uint32(os.Getpid())}},
		Fh: 1 << 40, Size: 4096, ReadFlags: fuse.READ_LOCKOWNER}
	res, st := fs.Read(nil, in, make([]byte, 4096))
	if !st.Ok() {
		t.Fatal(st)
	}
	got, _ := res.Bytes(make([]byte, 4096))
	if !bytes.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	in.NodeId, in.Unique = 0xdead, in.Unique+1
	if _, st := fs.Read(nil, in, nil); st != fuse.ENOENT {
		t.Errorf("unknown node: %v, want ENOENT", st)
	}
	// A page cache fill (no lock owner) is refused.
	in.NodeId, in.ReadFlags = nodeID("sys/devices/system/cpu/kernel_max"), 0
	if _, st := fs.Read(nil, in, nil); st != fuse.EINVAL {
		t.Errorf("page cache read: %v, want EINVAL", st)
	}
}

// When a view cannot be computed, the host's file is served and the
// problem logged once per container and view.
func TestFallbackToHostFile(t *testing.T) {
	testutil.RequireRoot(t)
	// A v1 layout with empty hierarchies: every cgroup path is missing,
	// as when a container's cgroup vanished.
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset"} {
		os.Mkdir(filepath.Join(root, c), 0o755)
	}
	reader, err := cgroupreader.New(cgroupreader.Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	fs := newTestFS(t, Config{Reader: reader, Log: newBufLog(&logBuf)})
	n := fs.tree.lookupPath("proc/swaps")
	want, _ := os.ReadFile("/proc/swaps")
	for i := 0; i < 3; i++ {
		got, errno := fs.content(n, os.Getpid())
		if errno != 0 || !bytes.Equal(got, want) {
			t.Fatalf("fallback gave %q, %v; want the host's %q", got, errno, want)
		}
	}
	if c := strings.Count(logBuf.String(), "serving the host's file"); c != 1 {
		t.Errorf("logged %d times, want once:\n%s", c, logBuf.String())
	}
	if fs.Stats.Fallbacks.Load() != 3 {
		t.Errorf("fallbacks = %d, want 3", fs.Stats.Fallbacks.Load())
	}
	// A request without a caller pid (from outside our pid namespace).
	if got, _ := fs.content(n, 0); !bytes.Equal(got, want) {
		t.Errorf("caller-less read gave %q", got)
	}
}

// cpuN entries follow the caller's cpuset, and the kernel may not cache
// them (entry lifetime 0).
func TestCPUDirectoryFollowsCaller(t *testing.T) {
	testutil.RequireRoot(t)
	host, _ := os.ReadFile("/sys/devices/system/cpu/online")
	if strings.TrimSpace(string(host)) == "0" {
		t.Skip("needs 2+ CPUs")
	}
	cg := testutil.NewCgroup(t, "fusefs-cpudir", testutil.CgroupLimits{Cpus: "1"})
	cmd := testutil.StartInPidNS(t, cg, "/bin/sh", "-c", "sleep 60")
	fs := newTestFS(t, Config{})
	pid := uint32(cmd.Process.Pid)
	h := &fuse.InHeader{NodeId: fs.tree.cpus.id, Caller: fuse.Caller{Pid: pid}}
	var out fuse.EntryOut
	if st := fs.Lookup(nil, h, "cpu1", &out); st != fuse.ENOENT {
		t.Errorf("cpu1 for a one-CPU container: %v, want ENOENT", st)
	}
	if st := fs.Lookup(nil, h, "cpu0", &out); !st.Ok() || out.EntryTimeout() != 0 || out.NodeId != nodeID(cpuDirRel+"/cpu0") {
		t.Errorf("cpu0: %v, %+v (want OK with entry timeout 0)", st, out)
	}
	if st := fs.Lookup(nil, h, "online", &out); !st.Ok() || out.EntryTimeout() == 0 {
		t.Errorf("online: %v, entry timeout %v (want a long one)", st, out.EntryTimeout())
	}
	list := fuse.NewDirEntryList(make([]byte, 64<<10), 0)
	if st := fs.ReadDir(nil, &fuse.ReadIn{InHeader: *h, Size: 64 << 10}, list); !st.Ok() {
		t.Fatal(st)
	}
	ents, err := fuse.ParseDirEntries(list.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var cpus []string
	for _, e := range ents {
		if isCPUDirName(e.Name) {
			cpus = append(cpus, e.Name)
		}
	}
	if strings.Join(cpus, ",") != "cpu0" {
		t.Errorf("container lists %v, want only cpu0", cpus)
	}
	// cpu0 of the container is host CPU 1: its topology is host cpu1's.
	core := fs.tree.lookupPath(cpuDirRel + "/cpu0/topology/core_id")
	if want, err := os.ReadFile("/sys/devices/system/cpu/cpu1/topology/core_id"); err == nil && core != nil {
		if got, errno := fs.content(core, int(pid)); errno != 0 || !bytes.Equal(got, want) {
			t.Errorf("container cpu0 core_id %q, want host cpu1's %q", got, want)
		}
	}
	if got, errno := fs.content(fs.tree.lookupPath(cpuDirRel+"/online"), int(pid)); errno != 0 || string(got) != "0\n" {
		t.Errorf("online = %q, want 0", got)
	}
	if _, errno := fs.content(fs.tree.lookupPath(cpuDirRel+"/cpu1/online"), int(pid)); errno != syscall.ENOENT {
		t.Errorf("open of an invisible cpu1/online: %v, want ENOENT", errno)
	}
}

// Since Linux 6.5 splice/sendfile of FOPEN_DIRECT_IO files goes through the
// inode's page cache, shared by every reader. Such reads must fail (so
// busybox cat and Python fall back to read(2)), never serve cached or cut
// content; read(2) must give content of any length whatever st_size says.
func TestSendfileFallsBackAndLongContentIsWhole(t *testing.T) {
	sys := fakeSys(t)
	long := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes > st_size
	if err := os.WriteFile(filepath.Join(sys, "devices/system/cpu/kernel_max"), long, 0o644); err != nil {
		t.Fatal(err)
	}
	_, mp := mountTestFSWith(t, Config{SysRoot: sys})
	p := filepath.Join(mp, "sys/devices/system/cpu/kernel_max")
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, long) {
		t.Fatalf("read(2) of 16000 bytes: got %d bytes, %v", len(got), err)
	}
	for _, name := range []string{"sys/devices/system/cpu/kernel_max", "proc/meminfo"} {
		in, err := os.Open(filepath.Join(mp, name))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		n, err := syscall.Sendfile(int(out.Fd()), int(in.Fd()), nil, 1<<20)
		switch {
		case err == nil:
			// A kernel with the upstream fix splices through read_iter:
			// then the whole content must arrive.
			got, _ := os.ReadFile(out.Name())
			if n != len(got) || (name == "proc/meminfo" && !bytes.HasPrefix(got, []byte("MemTotal:"))) ||
				(name != "proc/meminfo" && !bytes.Equal(got, long)) {
				t.Errorf("sendfile of %s gave %d bytes: %.60q", name, n, got)
			}
		case !errors.Is(err, syscall.EINVAL) || n > 0:
			t.Errorf("sendfile of %s: %d bytes, %v; want EINVAL (the caller then reads)", name, n, err)
		}
		// The same open file still reads whole afterwards.
		b := make([]byte, 1<<16)
		k, _ := in.ReadAt(b, 0)
		if k == 0 || (name == "sys/devices/system/cpu/kernel_max" && k != len(long)) {
			t.Errorf("%s after sendfile: read %d bytes", name, k)
		}
		in.Close()
		out.Close()
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil || st.Size != fileSize {
		t.Errorf("st_size %d, %v; want %d", st.Size, err, fileSize)
	}
}
