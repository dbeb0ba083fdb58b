package fusefs

import (
	"testing"
	"time"

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
	for _, ttl := range []time.Duration{-1, DefaultSnapshotTTL} {
		fs, err := New(Config{Reader: mustReader(b), Log: quietLog(), SnapshotTTL: ttl, Options: Options{CPUQuotaView: true, SwapReporting: true}})
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
