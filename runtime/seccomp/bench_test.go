package seccomp

import (
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BenchmarkGetpid measures what a filter costs a syscall it does not trap:
// getpid in a child process with no filter, with the sysinfo-only filter
// (what every corral container gets) and with podman's profile plus the
// sysinfo rule. The child times the loop itself, so process start-up is
// not counted; the reported ns/op is per getpid, the best of 5 children
// (this VM's syscall times swing by tens of percent with the host's load;
// the minimum is what the filter itself costs).
func BenchmarkGetpid(b *testing.B) {
	testutil.RequireRoot(b)
	withSysinfo, _, err := AddSysinfoNotify(podmanLikePolicy(), "/nonexistent")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		policy *specs.LinuxSeccomp
	}{
		{"no-filter", nil},
		{"sysinfo-only", SysinfoOnly("/nonexistent")},
		{"podman-like+sysinfo", withSysinfo},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := childRequest{Bench: max(b.N, 1000)}
			if bc.policy != nil {
				req.Policy = bc.policy
			} else {
				// An ALLOW-everything policy that is never loaded:
				// runChild skips Install for a nil policy below.
				req.Policy = nil
			}
			best := 0.0
			for i := 0; i < 5; i++ {
				res, _ := runInChild(b, req)
				if bc.policy != nil && res.InstallErr != "" {
					b.Fatalf("install: %s", res.InstallErr)
				}
				if best == 0 || res.BenchNs < best {
					best = res.BenchNs
				}
			}
			b.ReportMetric(best, "ns/op")
		})
	}
}
