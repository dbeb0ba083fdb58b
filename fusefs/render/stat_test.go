package render

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/tests/testutil"
)

// statCPUColumns parses the cpu lines of a stat file: index 0 is the
// aggregate line, then cpu0..N-1.
func statCPUColumns(t *testing.T, b []byte) [][10]uint64 {
	t.Helper()
	var rows [][10]uint64
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "cpu") {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 11 {
			t.Fatalf("stat line %q has %d columns, want 10", l, len(f)-1)
		}
		var row [10]uint64
		for i := range row {
			v, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				t.Fatalf("stat line %q: %v", l, err)
			}
			row[i] = v
		}
		rows = append(rows, row)
	}
	return rows
}

func randomCPUInput(r *rand.Rand, host Host) *Input {
	in := &Input{Host: host, Opts: Options{CPUQuotaView: r.IntN(3) > 0}}
	c := &in.Snap.CPU
	if r.IntN(2) == 0 {
		for _, cpu := range host.CPUs {
			if r.IntN(2) == 0 {
				c.Cpuset = append(c.Cpuset, cpu)
			}
		}
	}
	if r.IntN(2) == 0 {
		c.Quota, c.Period = cgroupreader.Limit{Value: r.Uint64N(800000), Set: true}, 100000
	}
	c.UsageUser, c.UsageSystem = r.Uint64N(1e13), r.Uint64N(1e13)
	if r.IntN(2) == 0 {
		// v1 per-CPU data. The totals are read a moment later, so they
		// may be a little larger than the sum (never smaller: counters
		// only grow).
		c.UsageUser, c.UsageSystem = r.Uint64N(1e9), r.Uint64N(1e9)
		for range host.CPUs {
			t := cgroupreader.CPUTime{User: r.Uint64N(3e12), System: r.Uint64N(3e12)}
			c.PerCPU = append(c.PerCPU, t)
			c.UsageUser += t.User
			c.UsageSystem += t.System
		}
	}
	in.Container.InitStart = time.Duration(r.Int64N(int64(time.Hour)))
	in.Container.Now = time.Duration(r.Int64N(int64(2 * time.Hour)))
	in.Container.HostNamespace = r.IntN(5) == 0
	return in
}

// TestStatProperties: the per-CPU lines add up to the cpu line exactly;
// there are as many as visible CPUs (= cpuinfo processors = online list);
// user+system is the cgroup's usage; idle is elapsed - used per CPU, never
// negative; uptime's idle is stat's idle in seconds.
func TestStatProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, hostDir := range []string{"host", "host4"} {
		host := loadHost(t, hostDir)
		for i := 0; i < testutil.Repeat(2000, 200); i++ { // pure: the host run carries the volume
			in := randomCPUInput(r, host)
			out, err := Stat(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			checkViewGrammar(t, "proc/stat", out)
			rows := statCPUColumns(t, out)
			n := len(VisibleCPUs(in))
			if len(rows) != n+1 {
				t.Fatalf("case %d: %d cpu lines for %d visible CPUs", i, len(rows)-1, n)
			}
			var sum [10]uint64
			elapsed := uint64(ContainerUptime(&in.Container) / (10 * time.Millisecond))
			for _, row := range rows[1:] {
				for k := range row {
					sum[k] += row[k]
				}
				if used := row[0] + row[2]; used < elapsed && row[3] != elapsed-used {
					t.Fatalf("case %d: idle %d != elapsed %d - used %d", i, row[3], elapsed, used)
				}
				if used := row[0] + row[2]; used >= elapsed && row[3] != 0 {
					t.Fatalf("case %d: CPU busier than wall time but idle %d", i, row[3])
				}
			}
			if sum != rows[0] {
				t.Fatalf("case %d: cpu lines sum to %v, cpu line is %v", i, sum, rows[0])
			}
			c := in.Snap.CPU
			if rows[0][0] != c.UsageUser/1e7 || rows[0][2] != c.UsageSystem/1e7 {
				t.Fatalf("case %d: user/system %d/%d, cgroup %d/%d ns", i, rows[0][0], rows[0][2], c.UsageUser, c.UsageSystem)
			}
			// Uptime agrees (unless the host's uptime is served as-is).
			if !in.Container.HostNamespace {
				up, err := Uptime(nil, in)
				if err != nil {
					t.Fatal(err)
				}
				checkViewGrammar(t, "proc/uptime", up)
				f := strings.Fields(string(up))
				if want := string(appendCentis(nil, rows[0][3])); f[1] != want {
					t.Fatalf("case %d: uptime idle %s, stat idle %s", i, f[1], want)
				}
				if want := string(appendCentis(nil, elapsed)); f[0] != want {
					t.Fatalf("case %d: uptime %s, want %s", i, f[0], want)
				}
			}
			// cpuinfo and the sysfs lists count the same CPUs.
			ci, err := Cpuinfo(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(ci), "processor\t: "); got != n {
				t.Fatalf("case %d: cpuinfo has %d processors, stat %d", i, got, n)
			}
			list, _ := CPUList(nil, in)
			if cpus, _ := facts.ParseCPUList(list); len(cpus) != n {
				t.Fatalf("case %d: online %q, stat %d CPUs", i, list, n)
			}
		}
	}
}

// TestStatPerCPUMapping: on v1 each visible CPU's line comes from its own
// host CPU's counters, renumbered; usage on hidden CPUs is spread evenly.
func TestStatPerCPUMapping(t *testing.T) {
	in := &Input{Host: loadHost(t, "host4"), Opts: Options{CPUQuotaView: true}}
	in.Container = Container{InitStart: 0, Now: 100 * time.Second}
	in.Snap.CPU = cgroupreader.CPU{
		Cpuset: []int{1, 3},
		PerCPU: []cgroupreader.CPUTime{{User: 1e9, System: 2e9}, {User: 3e9, System: 4e9}, {User: 5e9, System: 6e9}, {User: 7e9, System: 8e9}},
	}
	in.Snap.CPU.UsageUser, in.Snap.CPU.UsageSystem = 16e9, 20e9
	out, err := Stat(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	rows := statCPUColumns(t, out)
	// Visible host CPUs 1 and 3: 300/400 and 700/800 ticks of their own,
	// plus (1600-1000)/2 user and (2000-1200)/2 system from CPUs 0 and 2.
	want := [][10]uint64{
		{1600, 0, 2000, 20000 - 3600, 0, 0, 0, 0, 0, 0},
		{600, 0, 800, 10000 - 1400, 0, 0, 0, 0, 0, 0},
		{1000, 0, 1200, 10000 - 2200, 0, 0, 0, 0, 0, 0},
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %v, want %v", i, rows[i], want[i])
		}
	}
}

// TestStatOtherLines: the container's procs_running/procs_blocked once the
// sampler knows them, the host's btime and processes.
func TestStatOtherLines(t *testing.T) {
	in := loadCase(t, "abovehost")
	out, _ := Stat(nil, in)
	s := string(out)
	for _, want := range []string{"\nprocs_running 2\n", "\nprocs_blocked 1\n", "\nbtime 1795877346\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("stat lacks %q", want)
		}
	}
	in.Container.Load.Known = false
	out, _ = Stat(nil, in)
	hostRunning := nonCPULines(in.Host.Stat)
	if got := nonCPULines(out); strings.Join(got, "\n") != strings.Join(hostRunning, "\n") {
		t.Errorf("unknown load: non-cpu lines differ from the host's:\n%q\n%q", got, hostRunning)
	}
}

func TestStatNoCPUAccounting(t *testing.T) {
	in := loadCase(t, "cpusetquota")
	in.Snap.CPU.UsageUser, in.Snap.CPU.UsageSystem = 0, 0
	in.Snap.Missing = map[string]error{cgroupreader.GroupCPUAcct: errNoCPUAcct}
	if _, err := Stat(nil, in); err == nil {
		t.Error("Stat without cpu accounting: no error, want a host fallback")
	}
	// Uptime still knows the age.
	up, err := Uptime(nil, in)
	if err != nil || !strings.HasPrefix(string(up), "30.25 ") {
		t.Errorf("Uptime = %q, %v", up, err)
	}
}

func TestUptime(t *testing.T) {
	in := loadCase(t, "hostns")
	if up, _ := Uptime(nil, in); string(up) != string(in.Host.Uptime) {
		t.Errorf("host namespace: %q, want the host's %q", up, in.Host.Uptime)
	}
	in.Container = Container{InitStart: 10 * time.Second, Now: 5 * time.Second}
	if up, _ := Uptime(nil, in); !strings.HasPrefix(string(up), "0.00 ") {
		t.Errorf("init started after now: %q", up)
	}
}

func BenchmarkStat(b *testing.B) {
	in := loadCase(b, "ancestor")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Stat(nil, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUptime(b *testing.B) {
	in := loadCase(b, "ancestor")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Uptime(nil, in); err != nil {
			b.Fatal(err)
		}
	}
}
