package runtime

import (
	goruntime "runtime"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

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
