package render

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/tests/testutil"
)

// randomMemoryInput draws a container memory state, including the odd
// ones: usage above the limit, counters above the limit, limits above
// the host, swap usage above the swap limit, no swap accounting.
func randomMemoryInput(r *rand.Rand, host Host) *Input {
	in := &Input{Host: host, Opts: Options{SwapReporting: r.IntN(4) > 0, CPUQuotaView: true}}
	in.Snap.Mode = []cgroupreader.Mode{cgroupreader.ModeV1, cgroupreader.ModeHybrid, cgroupreader.ModeV2}[r.IntN(3)]
	size := func() uint64 {
		switch r.IntN(5) {
		case 0:
			return 0
		case 1:
			return r.Uint64() // absurd: must not overflow anything
		}
		return r.Uint64N(64 << 30)
	}
	limit := func() cgroupreader.Limit {
		if r.IntN(3) == 0 {
			return cgroupreader.Limit{}
		}
		return cgroupreader.Limit{Value: size(), Set: true}
	}
	m := &in.Snap.Memory
	m.Limit, m.Usage = limit(), size()
	m.SwapLimit, m.SwapUsage, m.SwapAccounting = limit(), size(), r.IntN(4) > 0
	st := &m.Stat
	for _, p := range []*uint64{&st.Anon, &st.File, &st.Shmem, &st.FileMapped, &st.FileDirty, &st.FileWriteback,
		&st.AnonTHP, &st.ActiveAnon, &st.InactiveAnon, &st.ActiveFile, &st.InactiveFile, &st.Unevictable,
		&st.Slab, &st.SlabReclaimable, &st.SlabUnreclaimable, &st.KernelStack, &st.PageTables} {
		*p = size() / 64
	}
	return in
}

func TestMemoryProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, hostDir := range []string{"host", "host4"} {
		host := loadHost(t, hostDir)
		hm, err := facts.ParseHostMemory(host.Meminfo)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < testutil.Repeat(3000, 300); i++ { // pure: the host run carries the volume
			in := randomMemoryInput(r, host)
			hostCopy := bytes.Clone(in.Host.Meminfo)
			v, err := ComputeMemory(in)
			if err != nil {
				t.Fatal(err)
			}
			m := in.Snap.Memory
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("case %d (%+v): "+format, append([]any{i, m}, args...)...)
			}
			switch {
			case v.Total > hm.Total:
				fail("MemTotal %d above host %d", v.Total, hm.Total)
			case m.Limit.Set && m.Limit.Value <= hm.Total && v.Total != m.Limit.Value:
				fail("MemTotal %d is not the limit %d", v.Total, m.Limit.Value)
			case v.Free > v.Total:
				fail("MemFree %d above MemTotal %d", v.Free, v.Total)
			case v.Available > v.Total:
				fail("MemAvailable %d above MemTotal %d", v.Available, v.Total)
			case v.Available < v.Free:
				fail("MemAvailable %d below MemFree %d", v.Available, v.Free)
			case m.Usage >= v.Total && v.Free != 0:
				fail("usage %d >= MemTotal %d but MemFree %d", m.Usage, v.Total, v.Free)
			case v.SwapFree > v.SwapTotal:
				fail("SwapFree %d above SwapTotal %d", v.SwapFree, v.SwapTotal)
			case v.SwapTotal > hm.SwapTotal:
				fail("SwapTotal %d above host swap %d", v.SwapTotal, hm.SwapTotal)
			case !in.Opts.SwapReporting && v.SwapTotal != 0:
				fail("swap reported while switched off")
			case v.Cached > v.Total || v.Active > v.Total || v.Slab > v.Total || v.Shared > v.Total:
				fail("a counter exceeds MemTotal: %+v", v)
			}
			out, err := Meminfo(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(in.Host.Meminfo, hostCopy) {
				t.Fatal("Meminfo modified the host text it was given")
			}
			// The file says what ComputeMemory says (the sysinfo agent's numbers).
			for name, want := range map[string]uint64{"MemTotal": v.Total, "MemFree": v.Free, "MemAvailable": v.Available,
				"Shmem": v.Shared, "Buffers": v.Buffers, "Cached": v.Cached, "SwapTotal": v.SwapTotal, "SwapFree": v.SwapFree} {
				if got := meminfoValue(t, out, name); got != want/1024 {
					fail("%s: file says %d kB, ComputeMemory %d B", name, got, want)
				}
			}
			checkMeminfoLikeHost(t, in.Host.Meminfo, out)
			// swaps agrees with meminfo.
			sw, err := Swaps(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			checkSwapsAgree(t, sw, v)
		}
	}
}

func checkSwapsAgree(t *testing.T, swaps []byte, v MemoryView) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(swaps), "\n"), "\n")
	if v.SwapTotal/1024 == 0 {
		if len(lines) != 1 {
			t.Fatalf("no swap but swaps has %d lines:\n%s", len(lines), swaps)
		}
		return
	}
	if len(lines) != 2 {
		t.Fatalf("swap %d B but swaps is:\n%s", v.SwapTotal, swaps)
	}
	size, _ := facts.ParseUint(field([]byte(lines[1]), 2))
	used, _ := facts.ParseUint(field([]byte(lines[1]), 3))
	if size != v.SwapTotal/1024 || used != (v.SwapTotal-v.SwapFree)/1024 {
		t.Fatalf("swaps says %d/%d kB, meminfo %d/%d B", size, used, v.SwapTotal, v.SwapFree)
	}
}

func TestMemoryNumbers(t *testing.T) {
	host := loadHost(t, "host4") // 16384000 kB RAM, 2097148 kB swap of which 1835004 free
	const mib = 1 << 20
	in := &Input{Host: host, Opts: Options{SwapReporting: true}}
	in.Snap.Mode = cgroupreader.ModeV2
	in.Snap.Memory = cgroupreader.Memory{
		Limit: cgroupreader.Limit{Value: 256 * mib, Set: true}, Usage: 100 * mib,
		SwapLimit: cgroupreader.Limit{Value: 64 * mib, Set: true}, SwapUsage: 16 * mib, SwapAccounting: true,
		Stat: cgroupreader.MemoryStat{File: 30 * mib, Shmem: 5 * mib, ActiveFile: 10 * mib, InactiveFile: 15 * mib,
			SlabReclaimable: 2 * mib, SlabUnreclaimable: 1 * mib},
	}
	v, err := ComputeMemory(in)
	if err != nil {
		t.Fatal(err)
	}
	want := MemoryView{Total: 256 * mib, Limited: true, Free: 156 * mib, Available: (156 + 10 + 15 + 2) * mib, Shared: 5 * mib,
		Cached: 30 * mib, SwapTotal: 64 * mib, SwapFree: 48 * mib, ActiveFile: 10 * mib, InactiveFile: 15 * mib,
		Active: 10 * mib, Inactive: 15 * mib, Slab: 3 * mib, SReclaimable: 2 * mib, SUnreclaim: 1 * mib,
		KReclaimable: 2 * mib, HasKernel: true}
	if v != want {
		t.Errorf("ComputeMemory =\n%+v\nwant\n%+v", v, want)
	}

	// No swap limit: the host's swap. No accounting: the host's swap too.
	in.Snap.Memory.SwapLimit = cgroupreader.Limit{}
	if v, _ := ComputeMemory(in); v.SwapTotal != 2097148*1024 || v.SwapFree != 1835004*1024 {
		t.Errorf("unlimited swap: %d/%d, want the host's", v.SwapTotal, v.SwapFree)
	}
	in.Snap.Memory.SwapLimit = cgroupreader.Limit{Value: 64 * mib, Set: true}
	in.Snap.Memory.SwapAccounting = false
	if v, _ := ComputeMemory(in); v.SwapTotal != 2097148*1024 {
		t.Errorf("no swap accounting: SwapTotal %d, want the host's", v.SwapTotal)
	}
	// A swap limit above host swap is capped.
	in.Snap.Memory.SwapAccounting = true
	in.Snap.Memory.SwapLimit = cgroupreader.Limit{Value: 1 << 40, Set: true}
	if v, _ := ComputeMemory(in); v.SwapTotal != 2097148*1024 || v.SwapFree != v.SwapTotal-16*mib {
		t.Errorf("swap limit above host: %d/%d", v.SwapTotal, v.SwapFree)
	}
	// v1 has no kernel stack counters: the host's lines stay.
	in.Snap.Mode = cgroupreader.ModeHybrid
	out, _ := Meminfo(nil, in)
	if got, want := meminfoValue(t, out, "KernelStack"), meminfoValue(t, host.Meminfo, "KernelStack"); got != want {
		t.Errorf("v1 KernelStack = %d, want the host's %d", got, want)
	}
}

// TestMeminfoBadHost: a host meminfo the render cannot trust is an error
// (the FUSE layer serves the host file), never a panic or a made-up total.
func TestMeminfoBadHost(t *testing.T) {
	for _, host := range []string{"", "garbage", "MemTotal: x kB\n", "MemFree: 1 kB\n"} {
		in := &Input{Host: Host{Meminfo: []byte(host)}}
		if out, err := Meminfo(nil, in); err == nil {
			t.Errorf("host %q: rendered %q, want an error", host, out)
		}
	}
	// A last line without a newline still renders with one.
	in := &Input{Host: Host{Meminfo: []byte("MemTotal:       1000 kB\nMemFree:         500 kB")}}
	out, err := Meminfo(nil, in)
	if err != nil || string(out) != "MemTotal:           1000 kB\nMemFree:            1000 kB\n" {
		t.Errorf("Meminfo = %q, %v", out, err)
	}
}

func BenchmarkMeminfo(b *testing.B) {
	in := loadCase(b, "swap")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Meminfo(nil, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComputeMemory(b *testing.B) {
	in := loadCase(b, "swap")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ComputeMemory(in); err != nil {
			b.Fatal(err)
		}
	}
}
