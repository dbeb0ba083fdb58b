package runtime

import (
	goruntime "runtime"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// BenchmarkRunTrue is `corral run --rm true` without the CLI: create (in
// the foreground), start, wait, delete, on a busybox rootfs with the
// default spec. CORRAL_EXE_PROTECT=memfd measures the memfd copy instead
// of the read-only bind.
func BenchmarkRunTrue(b *testing.B) {
	testutil.RequireRoot(b)
	r := &Runtime{Root: b.TempDir()}
	spec := DefaultSpec()
	spec.Process.Terminal = false
	spec.Process.Args = []string{"true"}
	spec.Root.Path = testutil.BusyboxRootfs(b)
	id := testID("bench")
	spec.Linux.CgroupsPath = "/corral-test/" + id
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := r.Create(id, CreateOpts{Spec: spec, Foreground: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		if code, err := c.Wait(); code != 0 || err != nil {
			b.Fatalf("exit %d %v", code, err)
		}
		if err := c.Delete(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProtectExe compares the two CVE-2019-5736 protections on the
// spawn path: a read-only bind of the binary in a private mount namespace
// (default) and a sealed memfd copy of it.
func BenchmarkProtectExe(b *testing.B) {
	testutil.RequireRoot(b)
	for _, mode := range []string{"bind", "memfd"} {
		b.Run(mode, func(b *testing.B) {
			b.Setenv("CORRAL_EXE_PROTECT", mode)
			for i := 0; i < b.N; i++ {
				done := make(chan error)
				go func() {
					goruntime.LockOSThread() // the thread dies with its namespace
					_, release, err := protectExe(false)
					if err == nil {
						release()
					}
					done <- err
				}()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
