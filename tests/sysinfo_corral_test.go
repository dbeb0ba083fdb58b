package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/sysinfoagent"
	"github.com/corral-dev/corral/tests/testutil"
)

// The same checks through `corral run --memory 256m`, which adds the
// sysinfo rule itself (--sysinfo=auto) when the agent's socket exists.
// auto looks only at the default socket, so these tests use it, to prove
// what a user gets without flags: they are the only ones here that do
// (others name a socket of their own: --sysinfo SOCKET).

// corralSysinfoEnv starts corralfs with its agent on the default socket and
// returns a corral run environment using its views.
func corralSysinfoEnv(t *testing.T) *runEnv {
	t.Helper()
	e := runNewEnv(t, false)
	out, err := exec.Command(e.corral, "features").Output()
	if err != nil {
		t.Fatalf("corral features: %v", err)
	}
	var f struct {
		Linux struct {
			Seccomp *struct {
				Enabled *bool `json:"enabled"`
			} `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("corral features: %v", err)
	}
	if s := f.Linux.Seccomp; s == nil || s.Enabled == nil || !*s.Enabled {
		t.Fatalf("corral features says seccomp is not supported: corral run cannot trap sysinfo(2)")
	}
	sock := facts.SeccompSocket
	if pid, err := sysinfoagent.KeeperPid(sock); err == nil && syscall.Kill(pid, 0) == nil {
		// A corralfs serves this host: the test would take its
		// containers' sysinfo over and kill its keeper at the end.
		msg := fmt.Sprintf("a seccomp keeper (pid %d) already serves %s, the only socket corral run knows", pid, sock)
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if pid, err := sysinfoagent.KeeperPid(sock); err == nil && isKeeperOf(pid, sock) {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	d := startSysinfoCorralfs(t, sock)
	e.views = d.mp
	return e
}

func TestSysinfoCorralRun(t *testing.T) {
	testutil.RequireRoot(t)
	e := corralSysinfoEnv(t)
	probeDir := filepath.Dir(sysinfoProbe(t))
	t.Run("probe", func(t *testing.T) {
		r := e.run(t, "run", "--rm", "--memory", "256m", "--views", e.views, "-v", probeDir+":/probe:ro", "--", "/probe/sysinfoprobe")
		if r.code != 0 {
			t.Fatalf("corral run: %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		p := parseProbe[probeResult](t, r.stdout)
		if p.Errno != 0 || p.TotalBytes != sysinfoTotalRAM {
			t.Fatalf("sysinfo in corral run --memory 256m: %+v", p)
		}
		up, err := strconv.ParseFloat(strings.Fields(p.ProcUptime)[0], 64)
		if err != nil || math.Abs(float64(p.Uptime)-up) > 1 {
			t.Errorf("sysinfo uptime %d s, /proc/uptime %q", p.Uptime, p.ProcUptime)
		}
		if p.ThreadsBefore == p.ThreadsAfter && int(p.Procs) != p.ThreadsBefore {
			t.Errorf("procs %d, the container has the probe's %d threads", p.Procs, p.ThreadsBefore)
		}
		if p.LoadavgBefore == p.LoadavgAfter {
			if view := strings.Join(strings.Fields(p.LoadavgBefore)[:3], " "); view != p.LoadsText {
				t.Errorf("sysinfo loads %s, /proc/loadavg %s", p.LoadsText, view)
			}
		}
	})
	t.Run("busybox-free", func(t *testing.T) {
		rootfs := testutil.BusyboxRootfs(t)
		r := e.run(t, "run", "--rm", "--memory", "256m", "--views", e.views, "--rootfs", rootfs, "--", "free")
		if m := regexp.MustCompile(`(?m)^Mem:\s+(\d+)`).FindStringSubmatch(r.stdout); r.code != 0 || m == nil || m[1] != sysinfoTotalKiB {
			t.Fatalf("busybox free in corral run --memory 256m (exit %d):\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("java", func(t *testing.T) {
		if testutil.InVM() {
			t.Skip("the VM has no java")
		}
		testutil.RequireCommand(t, "java")
		r := e.run(t, "run", "--rm", "--memory", "256m", "--views", e.views, "--", "java", "-XX:-UseContainerSupport", "-XX:+PrintFlagsFinal", "-version")
		m := regexp.MustCompile(`MaxHeapSize\s*=\s*(\d+)`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("java in corral run (exit %d):\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if heap, _ := strconv.ParseUint(m[1], 10, 64); heap > sysinfoMemLimit/2 {
			t.Errorf("MaxHeapSize %d MiB in a 256 MiB container", heap>>20)
		}
	})
	// Issue 12: the JDK compares the cgroup limit with the "physical"
	// memory it gets from sysinfo(2); equal counted as no limit.
	t.Run("java-memory-limit", func(t *testing.T) {
		if testutil.InVM() {
			t.Skip("the VM has no java")
		}
		testutil.RequireCommand(t, "java")
		r := e.run(t, "run", "--rm", "--memory", "256m", "--views", e.views, "--", "java", "-XshowSettings:system", "-version")
		if r.code != 0 || !strings.Contains(r.stderr, "Memory Limit: 256.00M") {
			t.Errorf("java -XshowSettings:system in corral run --memory 256m (exit %d), want \"Memory Limit: 256.00M\":\n%s", r.code, r.stderr)
		}
	})
}
