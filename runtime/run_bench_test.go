package runtime_test

import (
	"testing"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/tests/testutil"
)

// BenchmarkRunTrue is `corral run --rm true` without the CLI: create (in
// the foreground), start, wait, delete, on a busybox rootfs with the
// default spec. CORRAL_EXE_PROTECT=memfd measures the memfd copy instead
// of the read-only bind.
func BenchmarkRunTrue(b *testing.B) {
	testutil.RequireRoot(b)
	r := &runtime.Runtime{Root: b.TempDir()}
	spec := runtime.DefaultSpec()
	spec.Process.Terminal = false
	spec.Process.Args = []string{"true"}
	spec.Root.Path = testutil.BusyboxRootfs(b)
	id := testID("bench")
	spec.Linux.CgroupsPath = "/corral-test/" + id
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := r.Create(id, runtime.CreateOpts{Spec: spec, Foreground: true})
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
