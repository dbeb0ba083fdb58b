package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// BenchmarkSysinfoAgent: sysinfo(2) calls per second through corralfs's
// agent from one thread of a container (target: >= 20,000/s), and from 4.
// The probe times its own loop; ns/op is per call.
func BenchmarkSysinfoAgent(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFUSE(b)
	sock := sysinfoSocket(b)
	benchCorralfs(b, sock)
	cg := testutil.NewCgroup(b, "sysinfo-bench", testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	for _, threads := range []int{1, 4} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			n := max(b.N/threads, 1)
			out := runSysinfoContainer(b, sock, cg, fmt.Sprintf("%s -n %d -threads %d -expect-total %d", sysinfoProbe(b), n, threads, sysinfoTotalRAM))
			s := parseProbe[probeSummary](b, out)
			if s.Bad != 0 || s.Errors != 0 {
				b.Fatalf("%d wrong answers, %d errors: %+v", s.Bad, s.Errors, s.FirstBd)
			}
			b.ReportMetric(s.Seconds*1e9/float64(s.Calls), "ns/op")
			b.ReportMetric(s.PerSec, "calls/s")
		})
	}
}

// benchCorralfs starts bin/corralfs with its agent on sock (the tests'
// helpers need a *testing.T).
func benchCorralfs(b *testing.B, sock string) {
	mp := filepath.Join(b.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		b.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(testutil.Binary(b, "corralfs"), "--control-socket", "", "--seccomp-socket", sock, mp)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "attached to the seccomp keeper") {
		if time.Now().After(deadline) {
			b.Fatalf("corralfs's agent did not attach:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
