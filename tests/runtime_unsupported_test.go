package tests

import (
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeRefusesWhatHostCannotApply: a field this host cannot apply
// fails the create with an error naming it (runc 1.1 fails these too)
// instead of a container started without the limit or confinement, and
// nothing is left behind.
func TestRuntimeRefusesWhatHostCannotApply(t *testing.T) {
	hostHas := func(ctrl string) bool {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			data, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
			return strings.Contains(" "+string(data)+" ", " "+ctrl+" ")
		}
		data, _ := os.ReadFile("/proc/self/mountinfo")
		return strings.Contains(string(data), ","+ctrl) || strings.Contains(string(data), " "+ctrl+",")
	}
	_, selinuxErr := os.Stat("/sys/fs/selinux/enforce")
	classID := uint32(0x100001)
	cases := []struct {
		name, field string
		skip        bool // the host can apply it
		set         func(*specs.Spec)
	}{
		{"hugetlb", "hugepageLimits", hostHas("hugetlb"), func(s *specs.Spec) {
			s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}
		}},
		{"net_cls", "network.classID", hostHas("net_cls"), func(s *specs.Spec) {
			s.Linux.Resources.Network = &specs.LinuxNetwork{ClassID: &classID}
		}},
		{"net_prio", "network.priorities", hostHas("net_prio"), func(s *specs.Spec) {
			s.Linux.Resources.Network = &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 1}}}
		}},
		{"mountLabel", "linux.mountLabel", false, func(s *specs.Spec) {
			s.Linux.MountLabel = "system_u:object_r:container_file_t:s0"
		}},
		{"selinuxLabel", "process.selinuxLabel", selinuxErr == nil, func(s *specs.Spec) {
			s.Process.SelinuxLabel = "system_u:system_r:container_t:s0"
		}},
		// Where AppArmor is enabled (the VM's kernel), the profile is
		// applied, and one that is not loaded fails the create as well.
		{"apparmor", "process.apparmorProfile", false, func(s *specs.Spec) {
			s.Process.ApparmorProfile = "corral-test-profile"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip && c.name == "hugetlb" {
				testHugetlbApplied(t, c.set) // the pure cgroup v2 VM has hugetlb
				return
			}
			if c.skip {
				t.Skipf("this host can apply %s", c.field)
			}
			e := rtNewEnv(t)
			id := rtID("unsupported")
			s := rtSpec(id, "true")
			c.set(s)
			r := e.corral("create", "--bundle", e.bundle(id, s), id)
			t.Logf("create with %s: %s", c.name, strings.TrimSpace(r.stderr))
			if r.code == 0 || !strings.Contains(r.stderr, c.field) {
				t.Errorf("create with %s: %v; want an error naming %s", c.name, r, c.field)
			}
		})
	}
}

// testHugetlbApplied: where the host has the hugetlb controller, the limit
// is applied, not refused.
func testHugetlbApplied(t *testing.T, set func(*specs.Spec)) {
	e := rtNewEnv(t)
	id := rtID("hugetlb")
	s := rtSpec(id, "sleep", "1000")
	set(s)
	e.create(id, e.bundle(id, s))
	got := strings.TrimSpace(rtRead(t, rtCgroupFile(id, "hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max")))
	if got != "2097152" {
		t.Errorf("hugetlb 2MB limit in the container's cgroup: %q, want 2097152", got)
	}
	e.must("delete", "--force", id)
}
