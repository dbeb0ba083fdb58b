package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Fields corral cannot apply on this host are errors, never silently
// dropped, where runc 1.1 fails the create too: a hugetlb or network
// (net_cls/net_prio) limit without the controller, a mount or process
// SELinux label, an AppArmor profile on a host without AppArmor. The user
// asked for a limit or a confinement; a container without it must not
// start as if all were well.

// checkHostSupport is run by Create before anything is made.
func checkHostSupport(spec *specs.Spec) error {
	if spec.Linux == nil {
		return nil
	}
	if res := spec.Linux.Resources; res != nil {
		if len(res.HugepageLimits) > 0 && !hasCgroupController("hugetlb") {
			return errors.New("config: linux.resources.hugepageLimits: this host has no hugetlb cgroup controller")
		}
		if n := res.Network; n != nil {
			if n.ClassID != nil && !hasCgroupController("net_cls") {
				return errors.New("config: linux.resources.network.classID: this host has no net_cls cgroup controller")
			}
			if len(n.Priorities) > 0 && !hasCgroupController("net_prio") {
				return errors.New("config: linux.resources.network.priorities: this host has no net_prio cgroup controller")
			}
		}
	}
	if spec.Linux.MountLabel != "" {
		return fmt.Errorf("config: linux.mountLabel %q: %s", spec.Linux.MountLabel, selinuxUnsupported())
	}
	if spec.Process != nil {
		return checkProcessLSM(spec.Process)
	}
	return nil
}

// checkProcessLSM checks a process's SELinux label and AppArmor profile
// (create and exec).
func checkProcessLSM(p *specs.Process) error {
	if p.SelinuxLabel != "" {
		return fmt.Errorf("config: process.selinuxLabel %q: %s", p.SelinuxLabel, selinuxUnsupported())
	}
	if p.ApparmorProfile != "" && !apparmorEnabled() {
		return fmt.Errorf("config: process.apparmorProfile %q: AppArmor is not enabled on this host", p.ApparmorProfile)
	}
	return nil
}

// selinuxUnsupported says why a label cannot be applied: corral has no
// SELinux support, and on a host without SELinux runc fails too.
func selinuxUnsupported() string {
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err != nil {
		return "SELinux is not enabled on this host"
	}
	return "corral does not implement SELinux labels"
}

// apparmorEnabled is runc's test: the module says Y.
func apparmorEnabled() bool {
	data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && bytes.HasPrefix(data, []byte("Y"))
}

// hasCgroupController says whether this host can limit with ctrl: a
// mounted v1 hierarchy, or a controller of the v2 root.
func hasCgroupController(ctrl string) bool {
	if cgroupsV2() {
		data, err := os.ReadFile(filepath.Join(v2Root, "cgroup.controllers"))
		return err == nil && containsWord(string(data), ctrl)
	}
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return false
	}
	for _, m := range ms {
		if containsWord(strings.ReplaceAll(m.VFSOptions, ",", " "), ctrl) {
			return true
		}
	}
	return false
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// applyApparmor makes the next execve enter profile (runc writes the same
// file). Only called when checkProcessLSM found AppArmor enabled.
func applyApparmor(profile string) error {
	if profile == "" {
		return nil
	}
	file := "/proc/thread-self/attr/apparmor/exec"
	if _, err := os.Stat(file); err != nil {
		file = "/proc/thread-self/attr/exec"
	}
	if err := os.WriteFile(file, []byte("exec "+profile), 0); err != nil {
		return fmt.Errorf("process.apparmorProfile %q: %w", profile, err)
	}
	return nil
}
