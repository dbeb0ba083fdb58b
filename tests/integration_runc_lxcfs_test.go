package tests

import (
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestLXCFSDropIn: corralfs mounted where LXCFS would be (a directory named
// lxcfs) serves an unchanged LXCFS recipe: runc binds
// LXCFS/proc/{meminfo,cpuinfo,stat,uptime,swaps,diskstats,loadavg} over
// /proc/... and LXCFS/sys/devices/system/cpu over its twin, the way
// `-v /var/lib/lxcfs/proc/meminfo:/proc/meminfo:rw` does, and the container
// sees its 256 MiB and its one CPU.
func TestLXCFSDropIn(t *testing.T) {
	testutil.RequireRoot(t)
	if testutil.InVM() {
		t.Skip("no runc in the VM; the host run covers it")
	}
	runc := testutil.RequireCommand(t, "runc")
	lxcfs := filepath.Join(t.TempDir(), "lxcfs")
	startCorralfs(t, lxcfs)

	// The paths LXCFS documents; a recipe written for LXCFS binds these.
	recipe := []string{"proc/cpuinfo", "proc/diskstats", "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime", "proc/loadavg", "sys/devices/system/cpu"}
	out, _ := runcBusybox(t, runc, "", "", func(s *specs.Spec) {
		for _, rel := range recipe {
			// LXCFS recipes bind rw (docker -v default); the FUSE mount is
			// read-only regardless.
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/" + rel, Source: filepath.Join(lxcfs, rel), Type: "bind", Options: []string{"rbind", "rw"}})
		}
	}, `echo "== meminfo"; cat /proc/meminfo; echo "== cpus"; grep -c ^processor /proc/cpuinfo; echo "== online"; cat /sys/devices/system/cpu/online; echo "== write"; echo 1 > /proc/meminfo && echo writable || echo read-only`)
	s := sections(out)
	if got := meminfoKB(t, s["meminfo"], "MemTotal"); got != hookMemLimit/1024 {
		t.Errorf("MemTotal %d kB through the LXCFS-style bind, want %d", got, hookMemLimit/1024)
	}
	if got := strings.TrimSpace(s["cpus"]); got != "1" {
		t.Errorf("%s processors in /proc/cpuinfo with cpuset 0, want 1", got)
	}
	if got := strings.TrimSpace(s["online"]); got != "0" {
		t.Errorf("/sys/devices/system/cpu/online %q, want 0", got)
	}
	if got := strings.TrimSpace(s["write"]); !strings.HasSuffix(got, "read-only") {
		t.Errorf("writing the view: %q, want it refused", got)
	}
}
