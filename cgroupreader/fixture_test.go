package cgroupreader_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

func set(v uint64) cgroupreader.Limit { return cgroupreader.Limit{Value: v, Set: true} }

// statVal is fixtures/gen.go's counter: field i of cgroup k.
func statVal(i, k int) uint64 { return uint64(i)*mib + uint64(k)*4096 }

// caseK is the counter offset gen.go gives each case's cgroup.
var caseK = map[string]int{"nolimit": 1, "abovehost": 2, "ancestor": 3, "cpusetquota": 4, "swap": 5, "noswap": 6}

// expected is the whole Snapshot (all parts) a reader must produce for a
// fixture case, written out from the case table in fixtures/gen.go.
func expected(layout string, c fixtures.Case) cgroupreader.Snapshot {
	k := caseK[c.Name]
	v2 := layout == fixtures.V2
	s := cgroupreader.Snapshot{Mode: cgroupreader.ModeHybrid}
	if v2 {
		s.Mode = cgroupreader.ModeV2
	}
	m := &s.Memory
	m.SwapAccounting = true
	st := &m.Stat
	for i, f := range []*uint64{&st.Anon, &st.File, &st.Shmem, &st.FileMapped, &st.FileDirty, &st.FileWriteback, &st.AnonTHP,
		&st.ActiveAnon, &st.InactiveAnon, &st.ActiveFile, &st.InactiveFile, &st.Unevictable} {
		*f = statVal(i+1, k)
	}
	if v2 { // v1 has no slab, kernel stack or page table counters
		st.SlabReclaimable, st.SlabUnreclaimable = statVal(13, k), statVal(14, k)
		st.Slab = st.SlabReclaimable + st.SlabUnreclaimable
		st.KernelStack, st.PageTables = statVal(15, k), statVal(16, k)
	}
	cpu := &s.CPU
	cpu.Cpuset = []int{0, 1, 2, 3}
	cpu.Shares, cpu.Weight = 1024, 100
	for c := 0; c < fixtures.HostCPUs; c++ {
		u, sy := uint64(c+1)*1e9+uint64(k)*1e7, uint64(c+5)*1e9+uint64(k)*1e7
		cpu.UsageUser += u
		cpu.UsageSystem += sy
		if !v2 {
			cpu.PerCPU = append(cpu.PerCPU, cgroupreader.CPUTime{User: u, System: sy})
		}
	}
	cpu.NrPeriods, cpu.NrThrottled = uint64(100*k+1), uint64(100*k+2)
	cpu.ThrottledTime = time.Duration(100*k+3) * time.Millisecond
	s.Pids.Current = uint64(10 + k)
	s.Tasks = []int{c.Pid}
	switch c.Name {
	case "nolimit":
		m.Usage = 100 * mib
		s.IO = []cgroupreader.IODevice{
			{Major: 8, Minor: 0, ReadBytes: 1 * mib, WriteBytes: 2 * mib, ReadIOs: 3, WriteIOs: 4, DiscardBytes: 5 * mib, DiscardIOs: 6},
			{Major: 253, Minor: 0, ReadBytes: 11 * mib, WriteBytes: 12 * mib, ReadIOs: 13, WriteIOs: 14, DiscardBytes: 15 * mib, DiscardIOs: 16},
		}
	case "abovehost":
		m.Usage, m.Limit = 200*mib, set(64*gib)
	case "ancestor":
		m.Usage, m.Limit = 150*mib, set(512*mib)
		cpu.Quota, cpu.Period = set(200000), 100000
		s.Pids.Limit = set(100)
		s.Tasks = []int{103, 1033}
	case "cpusetquota":
		m.Usage, m.Limit = 120*mib, set(300*mib)
		cpu.Quota, cpu.Period = set(150000), 100000
		cpu.Cpuset = []int{1, 3}
		cpu.Shares, cpu.Weight = 512, 50
	case "swap":
		m.Usage, m.Limit = 200*mib, set(256*mib)
		m.SwapLimit, m.SwapUsage = set(128*mib), 16*mib
	case "noswap":
		m.Usage, m.Limit = 100*mib, set(256*mib)
		m.SwapLimit = set(0)
	}
	if v2 {
		cpu.Shares = 0
		cpu.PerCPU = nil
		pressure := func(base int) []byte {
			return fmt.Appendf(nil, "some avg10=%d.00 avg60=%d.00 avg300=%d.00 total=%d\nfull avg10=%d.00 avg60=%d.00 avg300=%d.00 total=%d\n",
				base, base+1, base+2, k*1000+base+3, base+4, base+5, base+6, k*1000+base+7)
		}
		s.PSI = cgroupreader.PSI{CPU: pressure(1), Memory: pressure(9), IO: pressure(17)}
		if c.Name == "ancestor" {
			// The child has no io controller (its parent does not enable
			// it): no I/O of its own to show.
			s.Missing = map[string]error{cgroupreader.GroupIO: cgroupreader.ErrUnavailable}
		}
	} else {
		cpu.Weight = 0
		// Hybrid: every process sits in the cgroup2 root, whose
		// pressure is the host's, never a container's.
		s.Missing = map[string]error{cgroupreader.GroupPSI: cgroupreader.ErrRootPSI}
	}
	return s
}

var layouts = []string{fixtures.V1, fixtures.V2}

func newReader(t testing.TB, layout string) (cgroupreader.Reader, cgroupreader.Config) {
	t.Helper()
	cfg := fixtures.Materialize(t, layout)
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", layout, err)
	}
	return r, cfg
}

var all = cgroupreader.DefaultParts | cgroupreader.PartTasks | cgroupreader.PartPSI | cgroupreader.PartIO

// compare checks got against want field by field (so a failure names the
// field) and Missing by errors.Is.
func compare(t *testing.T, got, want cgroupreader.Snapshot) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Mode", got.Mode, want.Mode},
		{"Memory.Limit", got.Memory.Limit, want.Memory.Limit},
		{"Memory.Usage", got.Memory.Usage, want.Memory.Usage},
		{"Memory.SwapLimit", got.Memory.SwapLimit, want.Memory.SwapLimit},
		{"Memory.SwapUsage", got.Memory.SwapUsage, want.Memory.SwapUsage},
		{"Memory.SwapAccounting", got.Memory.SwapAccounting, want.Memory.SwapAccounting},
		{"Memory.Stat", got.Memory.Stat, want.Memory.Stat},
		{"CPU.Quota", got.CPU.Quota, want.CPU.Quota},
		{"CPU.Period", got.CPU.Period, want.CPU.Period},
		{"CPU.Shares", got.CPU.Shares, want.CPU.Shares},
		{"CPU.Weight", got.CPU.Weight, want.CPU.Weight},
		{"CPU.Cpuset", got.CPU.Cpuset, want.CPU.Cpuset},
		{"CPU.UsageUser", got.CPU.UsageUser, want.CPU.UsageUser},
		{"CPU.UsageSystem", got.CPU.UsageSystem, want.CPU.UsageSystem},
		{"CPU.PerCPU", got.CPU.PerCPU, want.CPU.PerCPU},
		{"CPU.NrPeriods", got.CPU.NrPeriods, want.CPU.NrPeriods},
		{"CPU.NrThrottled", got.CPU.NrThrottled, want.CPU.NrThrottled},
		{"CPU.ThrottledTime", got.CPU.ThrottledTime, want.CPU.ThrottledTime},
		{"Pids", got.Pids, want.Pids},
		{"IO", got.IO, want.IO},
		{"PSI", got.PSI, want.PSI},
		{"Tasks", got.Tasks, want.Tasks},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %+v\n%*s want %+v", f.name, f.got, len(f.name), "", f.want)
		}
	}
	if len(got.Missing) != len(want.Missing) {
		t.Errorf("Missing = %v, want %v", got.Missing, want.Missing)
	}
	for g, werr := range want.Missing {
		if err := got.Missing[g]; !errorsIs(err, werr) {
			t.Errorf("Missing[%s] = %v, want %v", g, err, werr)
		}
	}
}

func TestFixtureCases(t *testing.T) {
	for _, layout := range layouts {
		r, _ := sharedReader(t, layout)
		for _, c := range fixtures.Cases {
			t.Run(layout+"/"+c.Name, func(t *testing.T) {
				p, err := r.PathsOf(c.Pid)
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.Snapshot(p, all)
				if err != nil {
					t.Fatal(err)
				}
				compare(t, got, expected(layout, c))
			})
		}
	}
}

func TestPathsOfFixtures(t *testing.T) {
	r1, _ := sharedReader(t, fixtures.V1)
	p, err := r1.PathsOf(fixtures.Ancestor.Pid)
	if err != nil {
		t.Fatal(err)
	}
	want := cgroupreader.Paths{Unified: "/", V1: map[string]string{}}
	for _, c := range []string{"name=systemd", "pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpuacct", "cpu"} {
		want.V1[c] = "/ancestor/child"
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("v1 PathsOf = %+v\nwant %+v", p, want)
	}
	r2, _ := sharedReader(t, fixtures.V2)
	if p, err := r2.PathsOf(fixtures.Ancestor.Pid); err != nil || !reflect.DeepEqual(p, cgroupreader.Paths{Unified: "/ancestor/child"}) {
		t.Errorf("v2 PathsOf = %+v, %v", p, err)
	}
}

// Parts narrow the read to what a view needs; a zero Part reads memory,
// cpu (limits and usage), cpuset and pids, and nothing else.
func TestPartsSelectWhatIsRead(t *testing.T) {
	for _, layout := range layouts {
		r, _ := sharedReader(t, layout)
		p, err := r.PathsOf(fixtures.CpusetQuota.Pid)
		if err != nil {
			t.Fatal(err)
		}
		full := expected(layout, fixtures.CpusetQuota)
		t.Run(layout+"/zero", func(t *testing.T) {
			got, err := r.Snapshot(p, cgroupreader.DefaultParts)
			if err != nil {
				t.Fatal(err)
			}
			want := full
			want.IO, want.PSI, want.Tasks, want.Missing = nil, cgroupreader.PSI{}, nil, nil
			compare(t, got, want)
		})
		t.Run(layout+"/memory-only", func(t *testing.T) {
			got, err := r.Snapshot(p, cgroupreader.PartMemory)
			if err != nil {
				t.Fatal(err)
			}
			want := cgroupreader.Snapshot{Mode: full.Mode, Memory: full.Memory}
			compare(t, got, want)
		})
		t.Run(layout+"/cpu-limits-and-cpuset", func(t *testing.T) {
			got, err := r.Snapshot(p, cgroupreader.PartCPU|cgroupreader.PartCpuset)
			if err != nil {
				t.Fatal(err)
			}
			want := cgroupreader.Snapshot{Mode: full.Mode}
			want.CPU = full.CPU
			want.CPU.UsageUser, want.CPU.UsageSystem, want.CPU.PerCPU = 0, 0, nil
			compare(t, got, want)
		})
		t.Run(layout+"/quota-only", func(t *testing.T) {
			got, err := r.Snapshot(p, cgroupreader.PartCPUQuota)
			if err != nil {
				t.Fatal(err)
			}
			want := cgroupreader.Snapshot{Mode: full.Mode}
			want.CPU.Quota, want.CPU.Period = full.CPU.Quota, full.CPU.Period
			compare(t, got, want)
		})
		t.Run(layout+"/cpu-usage-only", func(t *testing.T) {
			got, err := r.Snapshot(p, cgroupreader.PartCPUUsage)
			if err != nil {
				t.Fatal(err)
			}
			want := cgroupreader.Snapshot{Mode: full.Mode}
			want.CPU.UsageUser, want.CPU.UsageSystem, want.CPU.PerCPU = full.CPU.UsageUser, full.CPU.UsageSystem, full.CPU.PerCPU
			compare(t, got, want)
		})
		t.Run(layout+"/io-only", func(t *testing.T) {
			np, err := r.PathsOf(fixtures.NoLimit.Pid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Snapshot(np, cgroupreader.PartIO)
			if err != nil {
				t.Fatal(err)
			}
			compare(t, got, cgroupreader.Snapshot{Mode: full.Mode, IO: expected(layout, fixtures.NoLimit).IO})
		})
	}
}

// Readers are shared by the FUSE daemon's request goroutines: concurrent
// Snapshots (pooled buffers) must not see each other's data.
func TestConcurrentSnapshots(t *testing.T) {
	for _, layout := range layouts {
		r, _ := sharedReader(t, layout)
		errs := make(chan error, len(fixtures.Cases))
		for _, c := range fixtures.Cases {
			go func() {
				p, err := r.PathsOf(c.Pid)
				if err != nil {
					errs <- err
					return
				}
				want := expected(layout, c)
				for range 200 {
					got, err := r.Snapshot(p, cgroupreader.DefaultParts)
					if err != nil {
						errs <- err
						return
					}
					if got.Memory != want.Memory || !reflect.DeepEqual(got.CPU, want.CPU) || got.Pids != want.Pids {
						errs <- fmt.Errorf("%s/%s: got %+v", layout, c.Name, got)
						return
					}
				}
				errs <- nil
			}()
		}
		for range fixtures.Cases {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
}
