package tests

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestSysinfoContainerLimits: a container with 256 MiB calling sysinfo(2)
// gets its own memory, task count, uptime and load, the same numbers its
// corralfs views show.
func TestSysinfoContainerLimits(t *testing.T) {
	testutil.RequireRoot(t)
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	probe := sysinfoProbe(t)
	// A busy task for a while so the container's load average is not 0:
	// the sampler registers the container at its first loadavg read and
	// advances the averages every 5 s (a pass less than 2.5 s after the
	// registration does not count), so the busy loop is counted within
	// 7.5 s; then five probes.
	script := fmt.Sprintf(`cat %[1]s/proc/loadavg >/dev/null
( while :; do :; done ) & busy=$!
sleep 9
for i in 1 2 3 4 5; do %[2]s -views %[1]s; sleep 0.2; done
kill $busy`, d.mp, probe)
	out := runSysinfoContainer(t, sock, cg, script)
	var good int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		r := parseProbe[probeResult](t, line)
		if r.Errno != 0 || r.TotalBytes != sysinfoTotalRAM {
			t.Fatalf("sysinfo in a 256 MiB container: errno %d, totalram*mem_unit %d, want %d (%+v)", r.Errno, r.TotalBytes, sysinfoTotalRAM, r)
		}
		if r.Freeram > r.Totalram || r.MemUnit != 1 {
			t.Errorf("freeram %d > totalram %d, or mem_unit %d != 1", r.Freeram, r.Totalram, r.MemUnit)
		}
		viewUp, err := strconv.ParseFloat(strings.Fields(r.ProcUptime)[0], 64)
		if err != nil {
			t.Fatalf("container /proc/uptime %q: %v", r.ProcUptime, err)
		}
		if math.Abs(float64(r.Uptime)-viewUp) > 1 {
			t.Errorf("sysinfo uptime %d s, the container's /proc/uptime says %.2f s", r.Uptime, viewUp)
		}
		if viewUp > 60 {
			t.Errorf("container uptime %.2f s: that is not the container's age", viewUp)
		}
		// Counts and loads move under us; a probe whose before/after
		// readings agree is a fair comparison.
		if r.ThreadsBefore != r.ThreadsAfter || r.LoadavgBefore != r.LoadavgAfter {
			continue
		}
		good++
		// The probe is the container's only process besides the
		// shell, the busy loop and the sleep: its threads plus those.
		if int(r.Procs) < r.ThreadsBefore || int(r.Procs) > r.ThreadsBefore+3 {
			t.Errorf("procs %d; the probe has %d threads and the container 2-3 other tasks", r.Procs, r.ThreadsBefore)
		}
		view := strings.Join(strings.Fields(r.LoadavgBefore)[:3], " ")
		if r.LoadsText != view {
			t.Errorf("sysinfo loads %s, the container's /proc/loadavg says %s", r.LoadsText, view)
		}
		if r.Loads == [3]uint64{} {
			t.Errorf("load still 0 after 9 s of a busy loop: %+v", r)
		}
	}
	if good == 0 {
		t.Fatalf("no probe saw stable counts; output:\n%s", out)
	}
}

// TestSysinfoBusyboxFree: busybox free (sysinfo(2), not /proc/meminfo)
// shows the container's 256 MiB.
func TestSysinfoBusyboxFree(t *testing.T) {
	testutil.RequireRoot(t)
	sock := sysinfoSocket(t)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	d := startSysinfoCorralfs(t, sock)
	// As corral run does: the container's /proc/meminfo is the view, so
	// free's "used" (total - free - buffers - cached) is the container's.
	bb := testutil.StaticBusybox(t)
	out := runSysinfoContainer(t, sock, cg, fmt.Sprintf("%[1]s mount --make-rprivate / && %[1]s mount --bind %[2]s/proc/meminfo /proc/meminfo && %[1]s free", bb, d.mp))
	m := regexp.MustCompile(`(?m)^Mem:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] != sysinfoTotalKiB {
		t.Fatalf("busybox free in a 256 MiB container:\n%s\nwant total %s", out, sysinfoTotalKiB)
	}
}

// TestSysinfoJava: a JVM with its container support off sizes its heap
// from sysinfo(2): at most half of 256 MiB instead of a quarter of the host.
func TestSysinfoJava(t *testing.T) {
	testutil.RequireRoot(t)
	if testutil.InVM() {
		t.Skip("the VM has no java")
	}
	java := testutil.RequireCommand(t, "java")
	sock := sysinfoSocket(t)
	startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	out := runSysinfoContainer(t, sock, cg, java+" -XX:-UseContainerSupport -XX:+PrintFlagsFinal -version")
	m := regexp.MustCompile(`MaxHeapSize\s*=\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MaxHeapSize in:\n%s", out)
	}
	heap, _ := strconv.ParseUint(m[1], 10, 64)
	if heap > sysinfoMemLimit/2 {
		t.Errorf("MaxHeapSize %d MiB in a 256 MiB container (host RAM %d MiB)", heap>>20, hostTotalRAM(t)>>20)
	}
	t.Logf("MaxHeapSize %d MiB", heap>>20)
}

// TestSysinfoSurvivesCorralfs: with corralfs killed (SIGKILL) or stopped,
// sysinfo in a running container still answers within a second (the
// host's values); once corralfs is back, the same container gets its own
// values again.
func TestSysinfoSurvivesCorralfs(t *testing.T) {
	testutil.RequireRoot(t)
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	p := startServeProbe(t, sock, cg)
	own := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, _ := p.ask(2 * time.Second)
			if r.Errno == 0 && r.TotalBytes == sysinfoTotalRAM {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sysinfo still says %+v, want the container's 256 MiB", what, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	host := func(what string) {
		t.Helper()
		for i := 0; i < 20; i++ {
			r, took := p.ask(time.Second)
			if r.Errno != 0 {
				t.Fatalf("%s: sysinfo failed with errno %d", what, r.Errno)
			}
			if took > time.Second {
				t.Fatalf("%s: sysinfo took %v", what, took)
			}
		}
	}
	own("with corralfs")
	d.kill9()
	host("after SIGKILL of corralfs")
	d2 := startSysinfoCorralfs(t, sock)
	own("after corralfs restarted")
	d2.stop()
	host("with corralfs stopped")
	startSysinfoCorralfs(t, sock)
	own("after corralfs started again")
}

// TestSysinfoManyCalls: 100,000 calls from 4 threads, every answer the
// container's; the daemon's memory and goroutines stay flat.
func TestSysinfoManyCalls(t *testing.T) {
	testutil.RequireRoot(t)
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{MemoryBytes: sysinfoMemLimit})
	run := func(n int) probeSummary {
		out := runSysinfoContainer(t, sock, cg, fmt.Sprintf("%s -n %d -threads 4 -expect-total %d", sysinfoProbe(t), n, sysinfoTotalRAM))
		s := parseProbe[probeSummary](t, out)
		if s.Bad != 0 || s.Errors != 0 || s.Calls != 4*n {
			t.Fatalf("%d calls: %d wrong answers, %d errors; first wrong: %+v", s.Calls, s.Bad, s.Errors, s.FirstBd)
		}
		return s
	}
	// 100,000 calls; 3,200 under the VM's emulated CPU, where a call
	// costs some 50 times more (the host run carries the volume).
	n := testutil.Repeat(25000, 800)
	run(n / 10) // warm up: caches, threads, pools
	before := d.status()
	s := run(n)
	after := d.status()
	// Each run's container has ended: its listener must be gone from
	// corralfs (the agent's copy) too.
	listeners := listenerFds(after.Pid)
	for i := 0; i < 50 && len(listeners) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
		listeners = listenerFds(after.Pid)
	}
	t.Logf("%d calls from 4 threads in %.1f s: %.0f calls/s; corralfs RSS %d -> %d KiB, goroutines %d -> %d",
		s.Calls, s.Seconds, s.PerSec, before.RSSBytes>>10, after.RSSBytes>>10, before.Goroutines, after.Goroutines)
	if after.RSSBytes > before.RSSBytes+8<<20 {
		t.Errorf("corralfs RSS grew from %d to %d KiB over 100,000 calls", before.RSSBytes>>10, after.RSSBytes>>10)
	}
	if after.Goroutines > before.Goroutines+5 {
		t.Errorf("corralfs goroutines grew from %d to %d over 100,000 calls", before.Goroutines, after.Goroutines)
	}
	if len(listeners) > 0 {
		t.Errorf("corralfs still holds seccomp listeners of ended containers: fds %v", listeners)
	}
}

// listenerFds lists pid's fds that are seccomp listeners.
func listenerFds(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/" + e.Name()); strings.Contains(l, "seccomp notify") {
			out = append(out, e.Name())
		}
	}
	return out
}
