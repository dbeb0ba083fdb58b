package cgroupreader

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/corral-dev/corral/fusefs/facts"
)

func TestParseNumbersAndLimits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0\n", 0, true}, {" 42 ", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"", 0, false}, {"1x", 0, false}, {"-1", 0, false},
	} {
		if got, ok := facts.ParseUint([]byte(tc.in)); got != tc.want || ok != tc.ok {
			t.Errorf("facts.ParseUint(%q) = %d, %v", tc.in, got, ok)
		}
	}
	if v, ok := parseInt([]byte("-1\n")); !ok || v != -1 {
		t.Errorf("parseInt(-1) = %d, %v", v, ok)
	}
	if _, ok := parseInt([]byte("9223372036854775808")); ok {
		t.Error("parseInt accepted 2^63")
	}
	for _, tc := range []struct {
		in   string
		want Limit
		ok   bool
	}{
		{"9223372036854771712\n", Limit{}, true}, // x86-64 "unlimited"
		{"9223372036854775807", Limit{}, true},   // other page sizes: anything >= 2^62
		{"4611686018427387904", Limit{}, true},   // exactly 2^62
		{"4611686018427387903", Limit{Value: 1<<62 - 1, Set: true}, true},
		{"268435456\n", Limit{Value: 256 << 20, Set: true}, true},
		{"0", Limit{Value: 0, Set: true}, true},
		{"-1", Limit{}, true},
		{"max", Limit{}, false},
		{"junk", Limit{}, false},
	} {
		if got, ok := parseV1Limit([]byte(tc.in)); got != tc.want || ok != tc.ok {
			t.Errorf("parseV1Limit(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want Limit
		ok   bool
	}{
		{"max\n", Limit{}, true},
		{"100\n", Limit{Value: 100, Set: true}, true},
		{"0", Limit{Value: 0, Set: true}, true},
		{"maximum", Limit{}, false},
		{"", Limit{}, false},
	} {
		if got, ok := parseMax([]byte(tc.in)); got != tc.want || ok != tc.ok {
			t.Errorf("parseMax(%q) = %+v, %v", tc.in, got, ok)
		}
	}
	for _, tc := range []struct {
		in     string
		quota  Limit
		period uint64
		ok     bool
	}{
		{"max 100000\n", Limit{}, 100000, true},
		{"150000 100000\n", Limit{Value: 150000, Set: true}, 100000, true},
		{"150000 0", Limit{}, 0, false},
		{"150000", Limit{}, 0, false},
		{"x 100000", Limit{}, 0, false},
	} {
		q, p, ok := parseCPUMax([]byte(tc.in))
		if ok != tc.ok || (ok && (q != tc.quota || p != tc.period)) {
			t.Errorf("parseCPUMax(%q) = %+v, %d, %v", tc.in, q, p, ok)
		}
	}
}

func TestLessRatio(t *testing.T) {
	for _, tc := range []struct {
		q1, p1, q2, p2 uint64
		want           bool
	}{
		{150000, 100000, 200000, 100000, true},
		{200000, 100000, 150000, 100000, false},
		{30000, 20000, 200000, 100000, true},  // 1.5 < 2
		{50000, 20000, 200000, 100000, false}, // 2.5 > 2
		{100000, 100000, 50000, 50000, false}, // equal
		{1 << 62, 1 << 62, 1<<62 + 1, 1 << 62, true},
	} {
		if got := lessRatio(tc.q1, tc.p1, tc.q2, tc.p2); got != tc.want {
			t.Errorf("lessRatio(%d/%d < %d/%d) = %v", tc.q1, tc.p1, tc.q2, tc.p2, got)
		}
	}
}

func TestCgroupPathHelpers(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "/a", "/a": "/", "/": "/", "/a/b/c": "/a/b"} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]bool{
		"/": true, "/a": true, "/a/b.scope": true, "/docker/abc": true, "/a/..b": true,
		"": false, "a": false, "/..": false, "/../../x": false, "/a/../b": false, "/a/.": false, "/a//b": false, "/a\x00b": false,
	} {
		if got := validCgroupPath(in); got != want {
			t.Errorf("validCgroupPath(%q) = %v", in, got)
		}
	}
}

func TestParseMemoryStat(t *testing.T) {
	var st MemoryStat
	var h v1Hierarchical
	// Non-total keys must not leak into the hierarchical fields.
	ok := parseV1MemoryStat([]byte("cache 1\nrss 2\nswap 3\ntotal_cache 30\ntotal_rss 40\ntotal_rss_huge 50\nhierarchical_memory_limit 4096\n"+
		"hierarchical_memsw_limit 9223372036854771712\ntotal_swap 70\ntotal_unevictable 60\n"), &st, &h)
	want := MemoryStat{File: 30, Anon: 40, AnonTHP: 50, Unevictable: 60}
	wantH := v1Hierarchical{mem: Limit{4096, true}, swap: 70, memOK: true, memswOK: true, swapOK: true}
	if !ok || st != want || h != wantH {
		t.Errorf("v1 stat = %+v, %+v, %v; want %+v, %+v", st, h, ok, want, wantH)
	}
	for _, bad := range []string{"total_rss x\n", "hierarchical_memory_limit max\n", "total_swap -1\n"} {
		if parseV1MemoryStat([]byte(bad), &st, &h) {
			t.Errorf("v1 stat accepted %q", bad)
		}
	}
	h = v1Hierarchical{}
	if !parseV1MemoryStat([]byte("total_rss 1\n"), &st, &h) || h != (v1Hierarchical{}) {
		t.Errorf("v1 stat without hierarchical lines: %+v", h)
	}
	st = MemoryStat{}
	ok = parseV2MemoryStat([]byte("anon 1\nfile 2\nkernel 3\nslab 4\nslab_reclaimable 5\nnot_a_field zz\n"), &st)
	want = MemoryStat{Anon: 1, File: 2, Slab: 4, SlabReclaimable: 5}
	if !ok || st != want {
		t.Errorf("v2 stat = %+v, %v; want %+v", st, ok, want)
	}
}

func TestParseBlkioAndUsage(t *testing.T) {
	var list []IODevice
	in := "8:16 Read 10\n8:16 Write 20\n8:16 Sync 20\n8:16 Async 10\n8:16 Discard 5\n8:16 Total 35\n8:0 Read 1\n7:0 Read 0\nTotal 36\n"
	if !parseBlkio([]byte(in), &list, false) {
		t.Fatal("parseBlkio failed")
	}
	got := finishIO(list)
	want := []IODevice{{Major: 8, Minor: 0, ReadBytes: 1}, {Major: 8, Minor: 16, ReadBytes: 10, WriteBytes: 20, DiscardBytes: 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("blkio = %+v, want %+v", got, want)
	}
	if parseBlkio([]byte("8:x Read 1\n"), &list, false) {
		t.Error("parseBlkio accepted a bad device")
	}

	var c CPU
	if !parseUsageAll([]byte("cpu user system\n0 10 20\n1 30 40\n"), &c) {
		t.Fatal("parseUsageAll failed")
	}
	if c.UsageUser != 40 || c.UsageSystem != 60 || !reflect.DeepEqual(c.PerCPU, []CPUTime{{10, 20}, {30, 40}}) {
		t.Errorf("usage_all: %+v", c)
	}
	if parseUsageAll([]byte("cpu user system\n0 10\n"), &c) {
		t.Error("parseUsageAll accepted a short line")
	}
	var per []CPUTime
	if !parsePerCPU([]byte("1 2 3 \n"), &per, false) || !parsePerCPU([]byte("4 5 6\n"), &per, true) {
		t.Fatal("parsePerCPU failed")
	}
	if !reflect.DeepEqual(per, []CPUTime{{1, 4}, {2, 5}, {3, 6}}) {
		t.Errorf("percpu = %+v", per)
	}
}

func TestPathsOf(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:memory:/docker/a:b\n1:name=systemd:/system.slice/docker.service\n0::/\n")
	write("11", "0::/system.slice/x.service\n")
	write("12", "garbage\n")
	write("13", "")
	write("14", "3:memory:relative\n")

	got, err := pathsOf(proc, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := Paths{Unified: "/", V1: map[string]string{
		"pids": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc",
		"memory": "/docker/a:b", "name=systemd": "/system.slice/docker.service",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pathsOf(v1) = %+v\nwant %+v", got, want)
	}
	if got, err := pathsOf(proc, 11); err != nil || !reflect.DeepEqual(got, Paths{Unified: "/system.slice/x.service"}) {
		t.Errorf("pathsOf(v2) = %+v, %v", got, err)
	}
	for _, pid := range []int{12, 13, 14} {
		if _, err := pathsOf(proc, pid); !errors.Is(err, ErrMalformed) {
			t.Errorf("pathsOf(%d): err = %v, want ErrMalformed", pid, err)
		}
	}
	if _, err := pathsOf(proc, 99); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pathsOf(gone): err = %v, want ErrNotExist", err)
	}
	if _, err := pathsOf(proc, 0); err == nil || !strings.Contains(err.Error(), "invalid pid") {
		t.Errorf("pathsOf(0): err = %v", err)
	}
}

// The scratch reader must read files larger than its buffer whole.
func TestScratchReadGrows(t *testing.T) {
	big := strings.Repeat("1234567\n", 10000) // 80 KB > 16 KiB buffer
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	sc := getScratch()
	defer putScratch(sc)
	data, err := sc.read(dir, "/", "f")
	if err != nil || string(data) != big {
		t.Fatalf("read: %d bytes, %v", len(data), err)
	}
}
