package testutil

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RemoveEmptyTestParents removes /corral-test from every mounted cgroup
// hierarchy where it is empty. The runtimes under test (corral, podman,
// containerd) create their cgroups below it in hierarchies testutil does
// not manage itself (devices, freezer, name=systemd, the hybrid unified
// tree) and remove only their own cgroup, which left an empty
// /corral-test behind in those. rmdir removes only an empty cgroup, so a
// parent another package's test still uses stays.
func RemoveEmptyTestParents() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + TestCgroupParent)
	dirs = append(dirs, "/sys/fs/cgroup"+TestCgroupParent)
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
}
