package fusefs

import (
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/corral-dev/corral/tests/testutil"
)

// BenchmarkOpenContent is the daemon's own work per open of a view, for a
// caller in its own pid namespace: caller lookup (cache hit), host file
// and cgroup reads, render. The FUSE transport is not included.
func BenchmarkOpenContent(b *testing.B) {
	testutil.RequireRoot(b)
	cg := testutil.NewCgroup(b, "fusefs-bench", testutil.CgroupLimits{MemoryBytes: 300 << 20, CPUQuotaUs: 150000, Cpus: "0"})
	cmd := testutil.StartInPidNS(b, cg, "/bin/sh", "-c", "sleep 600")
	time.Sleep(50 * time.Millisecond)
	for _, ttl := range []time.Duration{-1, inputs.DefaultSnapshotTTL} {
		fs, err := New(Config{Reader: mustReader(b), Log: quietLog(), SnapshotTTL: ttl, Options: render.Options{CPUQuotaView: true, SwapReporting: true}})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range []string{"proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/loadavg", "proc/uptime", "sys/devices/system/cpu/online"} {
			n := fs.tree.lookupPath(p)
			name := p + "/ttl=" + ttl.String()
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, errno := fs.content(n, cmd.Process.Pid); errno != 0 {
						b.Fatal(errno)
					}
				}
			})
		}
		if fs.Stats.Fallbacks.Load() != 0 {
			b.Errorf("%d fallbacks", fs.Stats.Fallbacks.Load())
		}
	}
}

// BenchmarkOpenReadRelease is one open+read+close as the kernel forwards
// it (OPEN, READ at 0, READ at EOF, RELEASE) through the FS's methods, for
// a caller in its own pid namespace, with the handle store: what issue 12's
// regeneration rule must not make slower than computing once at OPEN.
func BenchmarkOpenReadRelease(b *testing.B) {
	testutil.RequireRoot(b)
	cg := testutil.NewCgroup(b, "fusefs-bench-orr", testutil.CgroupLimits{MemoryBytes: 300 << 20, CPUQuotaUs: 150000, Cpus: "0"})
	cmd := testutil.StartInPidNS(b, cg, "/bin/sh", "-c", "sleep 600")
	f, err := survival.NewHandleStoreFile()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	store, err := survival.OpenHandleStore(f)
	if err != nil {
		b.Fatal(err)
	}
	fs, err := New(Config{Reader: mustReader(b), Log: quietLog(), HandleStore: store, Options: render.Options{CPUQuotaView: true, SwapReporting: true}})
	if err != nil {
		b.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	buf := make([]byte, 128<<10)
	for _, p := range []string{"proc/meminfo", "proc/stat", "proc/loadavg"} {
		node := fs.tree.lookupPath(p).id
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			unique := uint64(0)
			for i := 0; i < b.N; i++ {
				unique += 4
				h := fuse.InHeader{NodeId: node, Unique: unique, Caller: fuse.Caller{Pid: pid}}
				var out fuse.OpenOut
				if st := fs.Open(nil, &fuse.OpenIn{InHeader: h}, &out); !st.Ok() {
					b.Fatal(st)
				}
				h.Unique++
				in := fuse.ReadIn{InHeader: h, Fh: out.Fh, Size: uint32(len(buf)), ReadFlags: fuse.READ_LOCKOWNER}
				res, st := fs.Read(nil, &in, buf)
				if !st.Ok() {
					b.Fatal(st)
				}
				data, _ := res.Bytes(buf)
				in.Unique++
				in.Offset = uint64(len(data))
				if _, st := fs.Read(nil, &in, buf); !st.Ok() {
					b.Fatal(st)
				}
				fs.Release(nil, &fuse.ReleaseIn{InHeader: h, Fh: out.Fh})
			}
		})
	}
}
