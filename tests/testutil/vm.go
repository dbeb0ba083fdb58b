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
