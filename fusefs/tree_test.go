package fusefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/fusefs/render"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Node ids are part of the kernel connection's state: a restarted or
// upgraded daemon must give every path the id the kernel already holds.
// These constants pin the derivation (FNV-1a 64 of the path); changing
// them breaks upgrades in place (issue 5).
func TestNodeIDsAreFixed(t *testing.T) {
	for path, want := range map[string]uint64{
		"":                              fuse.FUSE_ROOT_ID,
		"proc/meminfo":                  0x49865b5a0139bf53,
		"sys/devices/system/cpu/online": 0xd3134890f3505d6f,
	} {
		if got := nodeID(path); got != want {
			t.Errorf("nodeID(%q) = %#x, want %#x", path, got, want)
		}
	}
	a, err := NewTree(render.Views(), TreeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTree(render.Views(), TreeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.byID) != len(b.byID) {
		t.Fatalf("two builds differ in size: %d vs %d", len(a.byID), len(b.byID))
	}
	for id, n := range a.byID {
		if m := b.byID[id]; m == nil || m.path != n.path {
			t.Errorf("id %#x is %q in one build and %v in another", id, n.path, m)
		}
		if n.id != nodeID(n.path) {
			t.Errorf("%q has id %#x, want nodeID = %#x", n.path, n.id, nodeID(n.path))
		}
		if n.id == 0 || n.id == ^uint64(0) || (n.id == fuse.FUSE_ROOT_ID) != (n.path == "") {
			t.Errorf("%q has reserved id %#x", n.path, n.id)
		}
	}
}

func TestTreeOnRealHost(t *testing.T) {
	tr, err := NewTree(render.Views(), TreeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/uptime", "proc/loadavg", "proc/swaps", "proc/diskstats",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/possible", "sys/devices/system/cpu/present",
		"sys/devices/system/cpu/cpu0", "sys/devices/system/cpu/cpu0/online", "sys/devices/system/cpu/kernel_max",
	} {
		if tr.lookupPath(p) == nil {
			t.Errorf("%s missing from the tree", p)
		}
	}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil && tr.lookupPath("proc/pressure/cpu") == nil {
		t.Error("host has PSI but proc/pressure/cpu is missing")
	}
	for _, p := range []string{"proc/nope", "sys/devices/system/cpu/cpufreq", "sys/devices/system/cpu/cpu0/power", "sys/devices/system/cpu/cpu999"} {
		if tr.lookupPath(p) != nil {
			t.Errorf("%s should not be in the tree", p)
		}
	}
	// One cpuN per host CPU.
	ents, _ := os.ReadDir("/sys/devices/system/cpu")
	for _, e := range ents {
		if isCPUDirName(e.Name()) && tr.lookupPath(cpuDirRel+"/"+e.Name()) == nil {
			t.Errorf("host %s has no cpu directory in the tree", e.Name())
		}
	}
}

// fakeSys builds a /sys/devices/system/cpu with 4 CPUs: two cores with
// two threads each.
func fakeSys(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	cpu := filepath.Join(root, "devices/system/cpu")
	files := map[string]string{
		"online": "0-3\n", "possible": "0-3\n", "present": "0-3\n", "offline": "\n", "isolated": "2\n",
		"kernel_max": "8191\n", "modalias": "cpu:type:x86\n",
		"vulnerabilities/meltdown": "Not affected\n", "cpufreq/boost": "1\n", "power/async": "enabled\n",
	}
	for c, core := range []string{"0", "0", "1", "1"} {
		d := "cpu" + string(rune('0'+c)) + "/"
		sib := map[string]string{"0": "0-1", "1": "2-3"}[core]
		mask := map[string]string{"0": "3", "1": "c"}[core]
		files[d+"topology/core_id"] = core + "\n"
		files[d+"topology/physical_package_id"] = "0\n"
		files[d+"topology/thread_siblings_list"] = sib + "\n"
		files[d+"topology/thread_siblings"] = mask + "\n"
		files[d+"topology/core_siblings_list"] = "0-3\n"
		files[d+"topology/core_siblings"] = "f\n"
		files[d+"cache/index0/shared_cpu_list"] = sib + "\n"
		files[d+"cache/index0/shared_cpu_map"] = mask + "\n"
		files[d+"cache/index0/size"] = "32K\n"
		files[d+"power/runtime_status"] = "unsupported\n"
	}
	for name, content := range files {
		p := filepath.Join(cpu, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTreeFromFakeSys(t *testing.T) {
	tr, err := NewTree(render.Views(), TreeConfig{SysRoot: fakeSys(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]nodeKind{
		"sys/devices/system/cpu/online":                            kindView,
		"sys/devices/system/cpu/offline":                           kindCPUList,
		"sys/devices/system/cpu/isolated":                          kindCPUList,
		"sys/devices/system/cpu/kernel_max":                        kindHostFile,
		"sys/devices/system/cpu/vulnerabilities/meltdown":          kindHostFile,
		"sys/devices/system/cpu/cpu3":                              kindCPUDir,
		"sys/devices/system/cpu/cpu3/online":                       kindCPUOnline,
		"sys/devices/system/cpu/cpu3/topology":                     kindDir,
		"sys/devices/system/cpu/cpu3/topology/core_id":             kindCPUFile,
		"sys/devices/system/cpu/cpu2/cache/index0/shared_cpu_map":  kindCPUFile,
		"sys/devices/system/cpu/cpu2/cache/index0/shared_cpu_list": kindCPUFile,
	}
	for p, k := range want {
		n := tr.lookupPath(p)
		if n == nil {
			t.Errorf("%s missing", p)
			continue
		}
		if n.kind != k {
			t.Errorf("%s: kind %d, want %d", p, n.kind, k)
		}
	}
	for p, f := range map[string]cpuFormat{
		"sys/devices/system/cpu/cpu1/topology/core_id":              formatAsIs,
		"sys/devices/system/cpu/cpu1/topology/thread_siblings":      formatMask,
		"sys/devices/system/cpu/cpu1/topology/thread_siblings_list": formatList,
		"sys/devices/system/cpu/cpu1/cache/index0/shared_cpu_map":   formatMask,
		"sys/devices/system/cpu/cpu1/cache/index0/size":             formatAsIs,
	} {
		if n := tr.lookupPath(p); n == nil || n.format != f || n.cpu != 1 {
			t.Errorf("%s: %+v, want format %d on cpu 1", p, n, f)
		}
	}
	if n := tr.lookupPath("sys/devices/system/cpu/cpu2/cache/index0"); n == nil || n.cpu != 2 {
		t.Errorf("cache/index0 of cpu2 does not carry its CPU number: %+v", n)
	}
	for _, p := range []string{"sys/devices/system/cpu/cpufreq", "sys/devices/system/cpu/power", "sys/devices/system/cpu/cpu0/power"} {
		if tr.lookupPath(p) != nil {
			t.Errorf("%s should be left out", p)
		}
	}
	// Listings are sorted, so they are the same in every process.
	var names []string
	for _, c := range tr.cpus.children {
		names = append(names, c.name)
	}
	if got := strings.Join(names, " "); got != "cpu0 cpu1 cpu2 cpu3 isolated kernel_max modalias offline online possible present vulnerabilities" {
		t.Errorf("cpu dir children: %s", got)
	}
}

func TestRenumberCPUList(t *testing.T) {
	for _, c := range []struct {
		in      string
		visible []int
		format  cpuFormat
		want    string
	}{
		{"0-3\n", []int{2, 3}, formatList, "0-1\n"},
		{"2-3\n", []int{2}, formatList, "0\n"},
		{"0-1\n", []int{2, 3}, formatList, "\n"},
		{"\n", []int{0, 1}, formatList, "\n"},
		{"0,2-5,7\n", []int{0, 2, 3, 4, 7}, formatList, "0-4\n"},
		{"0,2,4\n", []int{0, 1, 2, 3, 4}, formatList, "0,2,4\n"},
		{"f\n", []int{1, 3}, formatMask, "3\n"},
		{"c\n", []int{1, 3}, formatMask, "2\n"},
		{"00000000,00000003\n", []int{0, 1}, formatMask, "3\n"},
		{"ff,ffffffff\n", []int{0, 39}, formatMask, "3\n"},
	} {
		got, errno := renumberCPUList([]byte(c.in), c.visible, c.format)
		if errno != 0 || string(got) != c.want {
			t.Errorf("renumber(%q, %v, %d) = %q, %v; want %q", c.in, c.visible, c.format, got, errno, c.want)
		}
	}
	if _, errno := renumberCPUList([]byte("zz\n"), []int{0}, formatMask); errno == 0 {
		t.Error("a malformed mask was accepted")
	}
}

// The kernel prints cpumasks as 32-bit groups, the first only as wide as
// the number of CPUs needs.
func TestAppendCPUMask(t *testing.T) {
	all := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	}
	for _, c := range []struct {
		cpus  []int
		nbits int
		want  string
	}{
		{[]int{0}, 1, "1"},
		{[]int{0, 1}, 2, "3"},
		{all(8), 8, "ff"},
		{[]int{0}, 32, "00000001"},
		{[]int{0, 39}, 40, "80,00000001"},
		{all(64), 64, "ffffffff,ffffffff"},
		{nil, 4, "0"},
	} {
		if got := string(appendCPUMask(nil, c.cpus, c.nbits)); got != c.want+"\n" {
			t.Errorf("mask(%v, %d) = %q, want %q", c.cpus, c.nbits, got, c.want)
		}
	}
}
