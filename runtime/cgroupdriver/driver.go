// Package cgroupdriver creates and drives containers' cgroups with
// containerd/cgroups (cgroup v1, which includes hybrid hosts, and v2).
//
// It is a package of its own, registered with package runtime by
// importing it (as database/sql drivers are), so that a program linking
// package runtime without it does not link containerd/cgroups: the
// container init binary, corral-init, never creates a cgroup, and
// containerd/cgroups' package initialization (protobuf stats types,
// cilium/ebpf) would cost every container start ~3 ms in it. The `corral`
// command and the tests that create containers import it.
package cgroupdriver

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
)

func init() { runtime.UseCgroupDriver(driver{}) }

type driver struct{}

func (driver) New(cgPath string, res *specs.LinuxResources, v2 bool) (runtime.CgroupManager, error) {
	if v2 {
		return newCgroupV2(cgPath, res)
	}
	return newCgroupV1(cgPath, res)
}

func (driver) Load(cgPath string, v2 bool) (runtime.CgroupManager, error) {
	if v2 {
		return loadCgroupV2(cgPath)
	}
	return loadCgroupV1(cgPath)
}
