package testutil

import "os"

// InVM reports whether the test runs inside the cgroup v2 VM that
// tests/vm/run.sh boots (it sets CORRAL_IN_VM=1). The VM has a static
// busybox, the corral binaries ($CORRAL_BIN_DIR), a few host tools with
// their libraries (procps free/ps/top/vmstat/uptime, nproc) and zram swap,
// but no JDK, runc, podman or network. A test that needs one of those may
// t.Skip when InVM(): the host run of the same test (where CI=true makes
// a missing tool a failure) covers it.
func InVM() bool { return os.Getenv("CORRAL_IN_VM") == "1" }

// Repeat returns how many iterations a loop-heavy test should do: host on
// the host, vm inside the VM. The VM runs under TCG emulation, 10-20x
// slower than the host, and every test binary there shares one time
// budget; the host run keeps the full count, the VM run proves the same
// behaviour on cgroup v2 with fewer rounds.
func Repeat(host, vm int) int {
	if InVM() {
		return vm
	}
	return host
}
