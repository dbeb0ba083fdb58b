package render

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

func TestViewTable(t *testing.T) {
	want := []string{
		"proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/uptime", "proc/loadavg", "proc/swaps",
		"proc/diskstats", "proc/pressure/cpu", "proc/pressure/memory", "proc/pressure/io",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/possible", "sys/devices/system/cpu/present",
	}
	var got []string
	for _, v := range Views() {
		got = append(got, v.Path)
		if v.Render == nil {
			t.Errorf("%s: no Render", v.Path)
		}
		if "/"+v.Path != v.HostPath {
			t.Errorf("%s: HostPath %q is not the host file it stands for", v.Path, v.HostPath)
		}
		if w, ok := ViewByPath(v.Path); !ok || w.Path != v.Path {
			t.Errorf("ViewByPath(%q) = %v, %v", v.Path, w.Path, ok)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("views = %q\nwant %q", got, want)
	}
	if _, ok := ViewByPath("proc/nonexistent"); ok {
		t.Error("ViewByPath found a path that is not in the table")
	}
}

// TestViewsNeedWhatTheyRead renders each golden case twice: with every
// host file and Snapshot part filled in, and with only the host files the
// view declares in Needs and the cgroup parts it declares in Snap (what the
// FUSE layer will give it). Same bytes, or a view reads something it did
// not declare.
func TestViewsNeedWhatTheyRead(t *testing.T) {
	for _, name := range handCases(t) {
		for _, v := range Views() {
			full := loadCase(t, name)
			partial := loadCase(t, name)
			partial.Host = onlyNeeded(partial.Host, v.Needs)
			if !v.Load {
				partial.Container.Load = LoadAvg{}
			}
			partial.Snap = onlyParts(partial.Snap, v.Snap)
			a, b := renderForGolden(v, full), renderForGolden(v, partial)
			if !bytes.Equal(a, b) {
				t.Errorf("%s/%s reads more than it declares:\nall inputs:\n%s\ndeclared inputs only:\n%s", name, v.Path, a, b)
			}
		}
	}
}

// onlyParts keeps only the Snapshot fields a reader fills for parts p,
// as cgroupreader does when a view asks for exactly those parts.
func onlyParts(s cgroupreader.Snapshot, p cgroupreader.Part) cgroupreader.Snapshot {
	o := cgroupreader.Snapshot{Mode: s.Mode, Missing: s.Missing}
	if p&cgroupreader.PartMemory != 0 {
		o.Memory = s.Memory
	}
	if p&(cgroupreader.PartCPU|cgroupreader.PartCPUQuota) != 0 {
		o.CPU.Quota, o.CPU.Period = s.CPU.Quota, s.CPU.Period
	}
	if p&cgroupreader.PartCPU != 0 {
		o.CPU.Shares, o.CPU.Weight = s.CPU.Shares, s.CPU.Weight
		o.CPU.NrPeriods, o.CPU.NrThrottled, o.CPU.ThrottledTime = s.CPU.NrPeriods, s.CPU.NrThrottled, s.CPU.ThrottledTime
	}
	if p&cgroupreader.PartCPUUsage != 0 {
		o.CPU.UsageUser, o.CPU.UsageSystem, o.CPU.PerCPU = s.CPU.UsageUser, s.CPU.UsageSystem, s.CPU.PerCPU
	}
	if p&cgroupreader.PartCpuset != 0 {
		o.CPU.Cpuset = s.CPU.Cpuset
	}
	if p&cgroupreader.PartPids != 0 {
		o.Pids = s.Pids
	}
	if p&cgroupreader.PartIO != 0 {
		o.IO = s.IO
	}
	if p&cgroupreader.PartPSI != 0 {
		o.PSI = s.PSI
	}
	if p&cgroupreader.PartTasks != 0 {
		o.Tasks = s.Tasks
	}
	return o
}

func onlyNeeded(h Host, n HostNeeds) Host {
	var o Host
	if n&NeedMeminfo != 0 {
		o.Meminfo = h.Meminfo
	}
	if n&NeedCpuinfo != 0 {
		o.Cpuinfo = h.Cpuinfo
	}
	if n&NeedStat != 0 {
		o.Stat = h.Stat
	}
	if n&NeedUptime != 0 {
		o.Uptime = h.Uptime
	}
	if n&NeedLoadavg != 0 {
		o.Loadavg = h.Loadavg
	}
	if n&NeedSwaps != 0 {
		o.Swaps = h.Swaps
	}
	if n&NeedDiskstats != 0 {
		o.Diskstats = h.Diskstats
	}
	if n&NeedPressure != 0 {
		o.Pressure = h.Pressure
	}
	if n&NeedCPUs != 0 {
		o.CPUs = h.CPUs
	}
	return o
}

func TestVisibleCPUs(t *testing.T) {
	lim := func(v uint64) cgroupreader.Limit { return cgroupreader.Limit{Value: v, Set: true} }
	for _, tc := range []struct {
		name   string
		host   []int
		cpuset []int
		quota  cgroupreader.Limit
		period uint64
		view   bool
		want   []int
	}{
		{"no cpuset, no quota", []int{0, 1, 2, 3}, nil, cgroupreader.Limit{}, 100000, true, []int{0, 1, 2, 3}},
		{"cpuset", []int{0, 1, 2, 3}, []int{1, 3}, cgroupreader.Limit{}, 100000, true, []int{1, 3}},
		{"cpuset with an offline cpu", []int{0, 1, 3}, []int{1, 2, 3}, cgroupreader.Limit{}, 100000, true, []int{1, 3}},
		{"fractional quota rounds up", []int{0, 1, 2, 3}, nil, lim(150000), 100000, true, []int{0, 1}},
		{"quota below one cpu", []int{0, 1, 2, 3}, nil, lim(10000), 100000, true, []int{0}},
		{"quota above cpuset", []int{0, 1, 2, 3}, []int{2}, lim(400000), 100000, true, []int{2}},
		{"cpuset then quota", []int{0, 1, 2, 3}, []int{1, 2, 3}, lim(150000), 100000, true, []int{1, 2}},
		{"quota view off", []int{0, 1, 2, 3}, nil, lim(150000), 100000, false, []int{0, 1, 2, 3}},
		{"period 0 ignored", []int{0, 1}, nil, lim(150000), 0, true, []int{0, 1}},
		{"cpuset names no host cpu", []int{0, 1}, []int{7}, cgroupreader.Limit{}, 100000, true, []int{0, 1}},
		{"host unknown", nil, []int{2, 5}, cgroupreader.Limit{}, 100000, true, []int{2, 5}},
		{"nothing known", nil, nil, cgroupreader.Limit{}, 0, true, []int{0}},
	} {
		in := &Input{Host: Host{CPUs: tc.host}, Opts: Options{CPUQuotaView: tc.view}}
		in.Snap.CPU = cgroupreader.CPU{Cpuset: tc.cpuset, Quota: tc.quota, Period: tc.period}
		if got := VisibleCPUs(in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: VisibleCPUs = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCPUList(t *testing.T) {
	for n, want := range map[int]string{1: "0\n", 2: "0-1\n", 12: "0-11\n"} {
		in := &Input{}
		for i := 0; i < n; i++ {
			in.Host.CPUs = append(in.Host.CPUs, i*2)
		}
		got, err := CPUList(nil, in)
		if err != nil || string(got) != want {
			t.Errorf("%d cpus: %q, %v; want %q", n, got, err, want)
		}
	}
}

func TestPressurePassesThroughOrFallsBack(t *testing.T) {
	in := &Input{}
	in.Snap.PSI.Memory = []byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")
	if b, err := PressureMemory(nil, in); err != nil || !strings.HasSuffix(string(b), "total=1\n") {
		t.Errorf("PressureMemory = %q, %v", b, err)
	}
	if _, err := PressureCPU(nil, in); err == nil {
		t.Error("PressureCPU without PSI: no error, want fallback")
	}
}

func TestHostParseHelpers(t *testing.T) {
	if v, ok := facts.ParseUint([]byte(" 18446744073709551615 ")); !ok || v != 1<<64-1 {
		t.Errorf("max uint64: %d %v", v, ok)
	}
	for _, bad := range []string{"", "18446744073709551616", "1x", "-1"} {
		if _, ok := facts.ParseUint([]byte(bad)); ok {
			t.Errorf("facts.ParseUint(%q) accepted", bad)
		}
	}
	line := []byte(" 254       0 vda 1 2")
	if f := string(field(line, 2)); f != "vda" {
		t.Errorf("field 2 = %q", f)
	}
	if f := field(line, 5); f != nil {
		t.Errorf("field 5 = %q", f)
	}
	if n := countFields(line); n != 5 {
		t.Errorf("countFields = %d", n)
	}
	if got := string(appendPadded(nil, 42, 8)); got != "      42" {
		t.Errorf("appendPadded = %q", got)
	}
	if got := string(appendCentis(nil, 12345)); got != "123.45" {
		t.Errorf("appendCentis = %q", got)
	}
	if got := string(appendCentis(nil, 7)); got != "0.07" {
		t.Errorf("appendCentis = %q", got)
	}
}

// TestRenderOutputOwnsItsBytes: the FUSE layer recycles the Input's
// buffers as soon as Render returns, so no output may alias them.
func TestRenderOutputOwnsItsBytes(t *testing.T) {
	for _, name := range handCases(t) {
		for _, v := range Views() {
			in := loadCase(t, name)
			h := &in.Host
			for _, p := range []*[]byte{&h.Meminfo, &h.Cpuinfo, &h.Stat, &h.Uptime, &h.Loadavg, &h.Swaps, &h.Diskstats,
				&in.Snap.PSI.CPU, &in.Snap.PSI.Memory, &in.Snap.PSI.IO} {
				*p = bytes.Clone(*p) // embedded files are read-only
			}
			out, err := v.Render(nil, in)
			if err != nil {
				continue
			}
			before := bytes.Clone(out)
			for _, b := range [][]byte{h.Meminfo, h.Cpuinfo, h.Stat, h.Uptime, h.Loadavg, h.Swaps, h.Diskstats,
				in.Snap.PSI.CPU, in.Snap.PSI.Memory, in.Snap.PSI.IO} {
				for i := range b {
					b[i] = 'X'
				}
			}
			if !bytes.Equal(out, before) {
				t.Errorf("%s/%s: output changed when the input buffers were reused", name, v.Path)
			}
		}
	}
}

// TestViewsMatchFacts: the served table is exactly facts.Views (the list
// the runtime binds from), in the same order.
func TestViewsMatchFacts(t *testing.T) {
	if len(views) != len(facts.Views) {
		t.Fatalf("%d served views, facts lists %d", len(views), len(facts.Views))
	}
	for i, v := range views {
		f := facts.Views[i]
		if v.Path != f.Rel || v.HostPath != f.Kernel {
			t.Errorf("view %d serves %q (host %q); facts says %q (%q)", i, v.Path, v.HostPath, f.Rel, f.Kernel)
		}
	}
}

// Every view appends to the caller's buffer: what is there stays, the
// view follows, and a buffer with room is extended in place.
func TestRenderAppendsToDst(t *testing.T) {
	for _, name := range handCases(t) {
		for _, v := range Views() {
			alone, err := v.Render(nil, loadCase(t, name))
			if err != nil {
				continue
			}
			dst := make([]byte, 0, 64<<10)
			dst = append(dst, "kept"...)
			out, err := v.Render(dst, loadCase(t, name))
			if err != nil || string(out) != "kept"+string(alone) {
				t.Errorf("%s/%s into a buffer: %q, %v; want \"kept\" then %q", name, v.Path, out, err, alone)
				continue
			}
			if &out[0] != &dst[0] {
				t.Errorf("%s/%s: a buffer with room was not used", name, v.Path)
			}
		}
	}
}
