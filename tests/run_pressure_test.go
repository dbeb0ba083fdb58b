package tests

// Issue 12: /proc/pressure/* is the container's own pressure or, where a
// container cannot have any (cgroup v1 and hybrid hosts: PSI is per cgroup2
// group, and containers sit at the root of the controller-less cgroup2
// tree), absent as on a kernel without PSI. Never the host's pressure
// presented as the container's.

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

var pressureText = regexp.MustCompile(`(?m)^some avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+$`)

func requireHostPSI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/pressure/cpu"); err != nil {
		t.Skip("this kernel has no PSI: nothing to present or hide")
	}
}

// Read through the mount (an LXCFS recipe binds these files itself): a
// container gets its cgroup's pressure on cgroup v2 and ENOENT on v1 or
// hybrid; the host's own processes get the host's pressure.
func TestCorralfsPressureIsTheContainersOrNone(t *testing.T) {
	requireHostPSI(t)
	testutil.RequireFUSE(t)
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	cg := testutil.NewCgroup(t, "corralfs-pressure", testutil.CgroupLimits{MemoryBytes: 128 << 20})
	out := runInCfsContainer(t, cg, "for f in cpu memory io; do echo \"== $f\"; cat "+mp+"/proc/pressure/$f 2>&1 || echo failed; done")
	s := sections(out)
	own := testutil.DetectCgroupMode() == testutil.CgroupModeV2
	for _, f := range []string{"cpu", "memory", "io"} {
		switch {
		case own && !pressureText.MatchString(s[f]):
			t.Errorf("pressure/%s in a cgroup v2 container: %q, want its cgroup's %s.pressure", f, s[f], f)
		case !own && (!strings.Contains(s[f], "No such file") || !strings.Contains(s[f], "failed")):
			t.Errorf("pressure/%s in a container without PSI of its own: %q, want No such file (the host's pressure is not its own)", f, s[f])
		}
	}
	host, err := os.ReadFile(mp + "/proc/pressure/cpu")
	if err != nil || !pressureText.Match(host) {
		t.Errorf("pressure/cpu read by the host: %q, %v; want the host's pressure", host, err)
	}
}

// corral run binds the pressure views only where they can be the
// container's, and otherwise masks the kernel's (the host's) files: the
// container sees an empty /proc/pressure, as under a kernel without PSI.
func TestRunPressureIsTheContainersOrNone(t *testing.T) {
	requireHostPSI(t)
	e := runNewEnv(t, true)
	out := e.sh(t, []string{"--memory", "128m"}, `echo "== list"; ls /proc/pressure
echo "== cpu"; cat /proc/pressure/cpu 2>&1 || echo failed
echo "== mount"; grep ' /proc/pressure' /proc/self/mountinfo`)
	s := sections(out + "\n")
	if testutil.DetectCgroupMode() == testutil.CgroupModeV2 {
		if !pressureText.MatchString(s["cpu"]) || !strings.Contains(s["mount"], "/proc/pressure/cpu ") || !strings.Contains(s["mount"], "fuse") {
			t.Errorf("cgroup v2: want corralfs's pressure/cpu bound and read; got\n%s", out)
		}
		return
	}
	if strings.TrimSpace(s["list"]) != "" || !strings.Contains(s["cpu"], "failed") || strings.Contains(s["mount"], "fuse") {
		t.Errorf("cgroup v1/hybrid: want an empty /proc/pressure (masked, no view bound); got\n%s", out)
	}
}
