package fusefs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/corral-dev/corral/tests/testutil"
)

// mountAdopted mounts a connection the way the supervisor does (MountConn:
// INIT answered, nothing served) and serves it the way a worker does
// (Adopt on a second descriptor of the same file).
func mountAdopted(t testing.TB, fs *FS) (string, *Conn) {
	t.Helper()
	return mountAdoptedWith(t, fs, MountConfig{AllowOther: true})
}

// mountAdoptedWith is mountAdopted with the mounting process's config; the
// adopting side finds the connection's size as a worker does.
func mountAdoptedWith(t testing.TB, fs *FS, mountCfg MountConfig) (string, *Conn) {
	t.Helper()
	testutil.RequireFUSE(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := PrepareMountpoint(mp, quietLog()); err != nil {
		t.Fatal(err)
	}
	conn, err := MountConn(mp, mountCfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(conn.File.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Adopt(fs, fd, conn.Init, MountConfig{AllowOther: true, MaxWrite: ConnMaxWrite(mp)})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
		conn.File.Close()
	})
	return mp, conn
}

// A connection initialised by one server is served by another that never
// saw INIT; the saved settings survive an encode/decode (the worker's
// environment); RESEND is accepted (Linux 6.9+) or reported as missing.
func TestAdoptedConnectionServes(t *testing.T) {
	fs := newTestFS(t, Config{})
	mp, conn := mountAdopted(t, fs)
	b, err := os.ReadFile(filepath.Join(mp, "proc/meminfo"))
	if err != nil || !strings.HasPrefix(string(b), "MemTotal:") {
		t.Fatalf("meminfo through the adopted connection: %q, %v", b, err)
	}
	in, err := survival.DecodeInit(survival.EncodeInit(conn.Init))
	if err != nil || in != conn.Init {
		t.Errorf("INIT settings after a round trip: %+v, %v; want %+v", in, err, conn.Init)
	}
	if _, err := survival.DecodeInit("00ff"); err == nil {
		t.Error("DecodeInit accepted garbage")
	}
	if err := survival.Resend(conn.File); err != nil && err != survival.ErrNoResend {
		t.Errorf("RESEND: %v", err)
	}
}

// A worker serves a connection with the size it was negotiated with: this
// binary's MaxWrite, or the 128 KiB of a connection an older corralfs
// mounted and kept (upgrade, fd store). A worker reading /dev/fuse into a
// buffer smaller than the connection's max_write gets EINVAL for every
// request, so ConnMaxWrite must find the mount's own value.
func TestAdoptUsesTheConnectionsMaxWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mount int
	}{{"current", 0}, {"kept from an older corralfs", legacyMaxWrite}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newTestFS(t, Config{})
			mp, _ := mountAdoptedWith(t, fs, MountConfig{AllowOther: true, MaxWrite: tc.mount})
			want := tc.mount
			if want == 0 {
				want = MaxWrite
			}
			if got := ConnMaxWrite(mp); got != want {
				t.Errorf("ConnMaxWrite = %d, want %d", got, want)
			}
			b, err := os.ReadFile(filepath.Join(mp, "proc/meminfo"))
			if err != nil || !strings.HasPrefix(string(b), "MemTotal:") {
				t.Fatalf("meminfo: %q, %v", b, err)
			}
		})
	}
	if got := ConnMaxWrite(t.TempDir()); got != legacyMaxWrite {
		t.Errorf("ConnMaxWrite of a directory that is no corralfs mount = %d, want the safe %d", got, legacyMaxWrite)
	}
}

// The connection lets MaxBackground asynchronous requests (the RELEASE of
// every close) be in flight at once, not go-fuse's 12: see MaxBackground.
func TestConnectionMaxBackground(t *testing.T) {
	testutil.RequireRoot(t)
	fs := newTestFS(t, Config{})
	mp, _ := mountAdopted(t, fs)
	got, err := testutil.FuseConnFile(mp, "max_background")
	if err != nil {
		t.Fatal(err)
	}
	if got != strconv.Itoa(MaxBackground) {
		t.Fatalf("max_background = %s, want %d", got, MaxBackground)
	}
}

// File handles of a later process never repeat an earlier one's.
func TestHandleNumbersStartAtStartTime(t *testing.T) {
	a := newTestFS(t, Config{})
	// Handle numbers start at the start time in milliseconds << 20: a
	// worker that follows another (20-90 ms after it, at least one ms
	// even on a fast machine) numbers above it. Two servers created in the
	// same millisecond are not a case the supervisor produces.
	for time.Now().UnixMilli() <= a.started.UnixMilli() {
		time.Sleep(100 * time.Microsecond)
	}
	b := newTestFS(t, Config{})
	ha := a.handles.add(handle{})
	hb := b.handles.add(handle{})
	if ha>>20 != uint64(a.started.UnixMilli()) || hb <= ha && b.started.After(a.started) {
		t.Errorf("handles %d (started %v) and %d (started %v)", ha, a.started, hb, b.started)
	}
}

// BenchmarkReadPath is open+read+close of meminfo through the kernel, on a
// connection this process mounted itself (Mount) and on one it adopted
// (MountConn + Adopt, as the supervised worker serves): the supervisor
// design must cost the read path nothing.
func BenchmarkReadPath(b *testing.B) {
	run := func(b *testing.B, mp string) {
		p := filepath.Join(mp, "proc/meminfo")
		buf := make([]byte, 8192)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			for {
				n, err := f.Read(buf)
				if n == 0 || err != nil {
					break
				}
			}
			f.Close()
		}
	}
	b.Run("mount", func(b *testing.B) {
		testutil.RequireFUSE(b)
		fs, err := New(Config{Reader: mustReader(b), Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		mp := filepath.Join(b.TempDir(), "mnt")
		if err := PrepareMountpoint(mp, quietLog()); err != nil {
			b.Fatal(err)
		}
		srv, err := Mount(fs, mp, MountConfig{AllowOther: true})
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve()
		srv.WaitMount()
		defer Unmount(srv, mp)
		run(b, mp)
	})
	b.Run("adopted", func(b *testing.B) {
		fs, err := New(Config{Reader: mustReader(b), Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		mp, _ := mountAdopted(b, fs)
		run(b, mp)
	})
}
