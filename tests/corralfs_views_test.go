package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// viewScript reads every view the way tools do (cat, ls) and prints them
// as "== name" sections.
func viewScript(mp string) string {
	return fmt.Sprintf(`M=%s
for f in meminfo cpuinfo stat uptime loadavg swaps; do echo "== $f"; cat $M/proc/$f; done
echo "== online"; cat $M/sys/devices/system/cpu/online
echo "== possible"; cat $M/sys/devices/system/cpu/possible
echo "== cpudirs"; ls $M/sys/devices/system/cpu | grep '^cpu[0-9]'
echo "== cpu0online"; cat $M/sys/devices/system/cpu/cpu0/online
echo "== enoent"; cat $M/proc/nope 2>&1 && exit 9
echo "== erofs"; (echo x > $M/proc/meminfo) 2>&1 && exit 9
echo "== end"`, mp)
}

func hostLine(t *testing.T, file, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func cpuLines(stat string) []string {
	var out []string
	for _, l := range strings.Split(stat, "\n") {
		if strings.HasPrefix(l, "cpu") {
			out = append(out, strings.Fields(l)[0])
		}
	}
	return out
}

// A process in its own pid namespace in a cgroup with 300 MiB, a 1.5 CPU
// quota and cpuset 0 sees a 300 MiB machine with one CPU that just booted.
func TestCorralfsViewsOneCPU(t *testing.T) {
	testutil.RequireFUSE(t)
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	cg := testutil.NewCgroup(t, "corralfs-views-1cpu", testutil.CgroupLimits{
		MemoryBytes: 300 << 20, CPUQuotaUs: 150000, CPUPeriodUs: 100000, Cpus: "0"})
	out := runInCfsContainer(t, cg, viewScript(mp))
	defer func() {
		if t.Failed() {
			t.Logf("container output:\n%s", out)
		}
	}()
	s := sections(out)

	if got := lineWith(s["meminfo"], "MemTotal:"); strings.Join(strings.Fields(got), " ") != "MemTotal: 307200 kB" {
		t.Errorf("MemTotal line %q, want 307200 kB", got)
	}
	if free := meminfoKB(t, s["meminfo"], "MemFree"); free == 0 || free > 307200 {
		t.Errorf("MemFree %d kB outside (0, 307200]", free)
	}
	// Lines outside any limit are the host's.
	for _, field := range []string{"Hugepagesize:", "VmallocTotal:"} {
		if want := hostLine(t, "/proc/meminfo", field); want != "" && lineWith(s["meminfo"], field) != want {
			t.Errorf("%s %q, want the host's %q", field, lineWith(s["meminfo"], field), want)
		}
	}
	if want := hostLine(t, "/proc/stat", "btime "); lineWith(s["stat"], "btime ") != want {
		t.Errorf("stat btime %q, want the host's %q", lineWith(s["stat"], "btime "), want)
	}
	if n := strings.Count("\n"+s["cpuinfo"], "\nprocessor"); n != 1 {
		t.Errorf("cpuinfo has %d processors, want 1:\n%s", n, s["cpuinfo"])
	}
	if s["online"] != "0\n" || s["possible"] != "0\n" {
		t.Errorf("online %q possible %q, want 0", s["online"], s["possible"])
	}
	if s["cpudirs"] != "cpu0\n" {
		t.Errorf("sys/devices/system/cpu lists %q, want only cpu0", s["cpudirs"])
	}
	if s["cpu0online"] != "1\n" {
		t.Errorf("cpu0/online %q", s["cpu0online"])
	}
	if got := strings.Join(cpuLines(s["stat"]), " "); got != "cpu cpu0" {
		t.Errorf("stat cpu lines %q, want cpu and cpu0", got)
	}
	up := strings.Fields(s["uptime"])
	if len(up) != 2 {
		t.Fatalf("uptime %q", s["uptime"])
	}
	if v, err := strconv.ParseFloat(up[0], 64); err != nil || v < 0 || v > 10 {
		t.Errorf("uptime %q: the container is seconds old", s["uptime"])
	}
	la := strings.Fields(s["loadavg"])
	if len(la) != 5 || !strings.Contains(la[3], "/") {
		t.Errorf("loadavg %q", s["loadavg"])
	} else if last, _ := strconv.Atoi(la[4]); last < 1 || last > 100 {
		t.Errorf("loadavg last pid %q: want the container's own numbering", la[4])
	}
	// The reader (cat) is running, as the kernel's files show their reader.
	if len(la) == 5 && strings.HasPrefix(la[3], "0/") {
		t.Errorf("loadavg %q: the reader itself is not counted running", s["loadavg"])
	}
	if l := statLine(s["stat"], "procs_running"); l == "procs_running 0" || l == "" {
		t.Errorf("stat %q: the reader itself is not counted running", l)
	}
	if !strings.Contains(s["enoent"], "No such file") {
		t.Errorf("unknown path: %q", s["enoent"])
	}
	if !strings.Contains(s["erofs"], "Read-only") && !strings.Contains(s["erofs"], "denied") {
		t.Errorf("write: %q", s["erofs"])
	}
}

// statLine is the line of a /proc/stat text that starts with key.
func statLine(stat, key string) string {
	for _, l := range strings.Split(stat, "\n") {
		if strings.HasPrefix(l, key+" ") {
			return l
		}
	}
	return ""
}

func hostCPUCount(t *testing.T) int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if ok {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return n
}

// With cpuset 0-1 and a 1.5 CPU quota: two CPUs (ceil(1.5)).
func TestCorralfsViewsTwoCPUs(t *testing.T) {
	testutil.RequireFUSE(t)
	if hostCPUCount(t) < 2 {
		t.Skip("needs a host with 2+ CPUs")
	}
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	cg := testutil.NewCgroup(t, "corralfs-views-2cpu", testutil.CgroupLimits{
		MemoryBytes: 300 << 20, CPUQuotaUs: 150000, CPUPeriodUs: 100000, Cpus: "0-1"})
	out := runInCfsContainer(t, cg, viewScript(mp))
	defer func() {
		if t.Failed() {
			t.Logf("container output:\n%s", out)
		}
	}()
	s := sections(out)
	if n := strings.Count("\n"+s["cpuinfo"], "\nprocessor"); n != 2 {
		t.Errorf("cpuinfo has %d processors, want 2", n)
	}
	if s["online"] != "0-1\n" {
		t.Errorf("online %q, want 0-1", s["online"])
	}
	if s["cpudirs"] != "cpu0\ncpu1\n" {
		t.Errorf("cpu dirs %q, want cpu0 cpu1", s["cpudirs"])
	}
	if got := strings.Join(cpuLines(s["stat"]), " "); got != "cpu cpu0 cpu1" {
		t.Errorf("stat cpu lines %q", got)
	}
}

// Two containers in sibling cgroups reading at the same time each see
// their own numbers, every time: no answer, dentry or cached cpuN of one
// leaks to the other.
func TestCorralfsSiblingsReadConcurrently(t *testing.T) {
	testutil.RequireFUSE(t)
	if hostCPUCount(t) < 2 {
		t.Skip("needs a host with 2+ CPUs")
	}
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	small := testutil.NewCgroup(t, "corralfs-sibling-a", testutil.CgroupLimits{MemoryBytes: 300 << 20, Cpus: "0"})
	big := testutil.NewCgroup(t, "corralfs-sibling-b", testutil.CgroupLimits{MemoryBytes: 200 << 20, Cpus: "0-1"})
	rounds := 100
	if testutil.InVM() {
		rounds = 25 // every round forks 5 busybox processes; TCG is slow
	}
	loop := fmt.Sprintf(`M=%s; i=0
while [ $i -lt %d ]; do
  grep MemTotal $M/proc/meminfo
  cat $M/sys/devices/system/cpu/online
  ls $M/sys/devices/system/cpu | grep -c '^cpu[0-9]'
  if cat $M/sys/devices/system/cpu/cpu1/online >/dev/null 2>&1; then echo cpu1-yes; else echo cpu1-no; fi
  i=$((i+1))
done`, mp, rounds)
	a := startCfsContainer(t, small, loop)
	b := startCfsContainer(t, big, loop)
	a.start(t)
	b.start(t)
	outA, outB := a.wait(t, 120*time.Second), b.wait(t, 120*time.Second)
	check := func(name, out string, want []string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != rounds*len(want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", name, len(lines), rounds*len(want), out)
		}
		for i, l := range lines {
			w := want[i%len(want)]
			if strings.Join(strings.Fields(l), " ") != w {
				t.Fatalf("%s: line %d is %q, want %q", name, i, l, w)
			}
		}
	}
	check("container A", outA, []string{"MemTotal: 307200 kB", "0", "1", "cpu1-no"})
	check("container B", outB, []string{"MemTotal: 204800 kB", "0-1", "2", "cpu1-yes"})
}
