package inputs

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/tests/testutil"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// calcLoad must be the kernel's arithmetic, bit for bit.
func TestCalcLoadIsTheKernels(t *testing.T) {
	// One step from 0 with one task: (2048*(2048-1884) + 2047) / 2048.
	if got := calcLoad(0, exp1, fixed1); got != 164 {
		t.Errorf("first step = %d, want 164", got)
	}
	// A falling load is not rounded up: (2048*1884 + 0) / 2048.
	if got := calcLoad(fixed1, exp1, 0); got != 1884 {
		t.Errorf("decay step = %d, want 1884", got)
	}
	// A constant load converges to itself (the round-up keeps it there).
	for _, n := range []uint64{1, 2, 7} {
		var a [3]uint64
		for i := 0; i < 2000; i++ {
			for k := range a {
				a[k] = calcLoad(a[k], loadExp[k], n*fixed1)
			}
		}
		for k := range a {
			if a[k] != n*fixed1 {
				t.Errorf("%d tasks: average %d settles at %d, want %d", n, k, a[k], n*fixed1)
			}
		}
	}
	// And it follows exp(-5s/1min) closely.
	a := uint64(0)
	for i := 0; i < 12; i++ { // one minute
		a = calcLoad(a, exp1, 4*fixed1)
	}
	want := 4 * (1 - math.Exp(-1))
	if got := float64(a) / fixed1; math.Abs(got-want) > 0.02 {
		t.Errorf("after one minute of 4 tasks: %.3f, want about %.3f", got, want)
	}
}

// startSamplerContainer starts an init in its own pid namespace in cg that
// runs script once goFile exists (so that on v1 its children start inside
// the cgroup: StartInPidNS moves the init there after it started), and
// resolves it as a caller.
func startSamplerContainer(t *testing.T, cg *testutil.Cgroup, script string) (reader cgroupreader.Reader, c Caller, goFile string) {
	t.Helper()
	goFile = t.TempDir() + "/go"
	cmd := testutil.StartInPidNS(t, cg, "/bin/sh", "-c", "until [ -e "+goFile+" ]; do sleep 0.01; done; "+script)
	reader = realReader(t)
	res, err := NewResolver("", reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	if c, err = res.Resolve(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return reader, c, goFile
}

func TestSamplerCountsContainerTasks(t *testing.T) {
	testutil.RequireRoot(t)
	cg := testutil.NewCgroup(t, "fusefs-sampler", testutil.CgroupLimits{})
	// Two busy loops (always R), a sleeper and the init itself, forked
	// only once the init is in its cgroup (on v1 StartInPidNS moves it
	// there after it started).
	reader, c, goFile := startSamplerContainer(t, cg, "while :; do :; done & while :; do :; done & sleep 60 & wait")
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewSampler(reader, SamplerConfig{Interval: 20 * time.Millisecond}, quietLog())
	var l render.LoadAvg
	// The children appear shortly after the init starts.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.SampleAll()
		if l = s.Load(&c); l.Total >= 4 && l.Running >= 2 {
			break
		}
	}
	if !l.Known || l.Running < 2 || l.Total < 4 || l.Total > 10 {
		t.Fatalf("load %+v: want 2+ running of 4 tasks", l)
	}
	// Namespace pids: init 1, then 2, 3, 4 for the three children.
	if l.LastPid < 4 || l.LastPid > 50 {
		t.Errorf("last pid %d, want the container's own numbering (about 4)", l.LastPid)
	}
	for i := 0; i < 12; i++ {
		time.Sleep(15 * time.Millisecond)
		s.SampleAll()
	}
	l = s.Load(&c)
	if !(l.Avg[0] > l.Avg[1] && l.Avg[1] > l.Avg[2] && l.Avg[2] > 0) || l.Avg[0] < 1 || l.Avg[0] > 3 {
		t.Errorf("averages %v after a minute's worth of steps with 2 busy tasks", l.Avg)
	}
}

// Issue 12: loadavg's running/total are of the time of the read (at most
// Fresh old), not of the last 5 s step; the averages still wait for it.
func TestSamplerCountsAreFreshAtRead(t *testing.T) {
	testutil.RequireRoot(t)
	cg := testutil.NewCgroup(t, "fusefs-sampler-fresh", testutil.CgroupLimits{})
	reader, c, goFile := startSamplerContainer(t, cg, "sleep 60 & sleep 60 & sleep 60 & wait")
	// No periodic step during the test.
	s := NewSampler(reader, SamplerConfig{Interval: time.Hour}, quietLog())
	first := s.Load(&c)
	if first.Total > 2 {
		t.Fatalf("before go: %+v, want the init (and a transient sleep)", first)
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var l render.LoadAvg
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l = s.Load(&c); l.Total == 4 {
			break
		}
	}
	if l.Total != 4 {
		t.Errorf("total %d after three sleeps started, want 4 without waiting for a sampling step (first %+v)", l.Total, first)
	}
	if l.Avg != first.Avg {
		t.Errorf("averages moved from %v to %v without a step", first.Avg, l.Avg)
	}
}

func TestSamplerBounds(t *testing.T) {
	testutil.RequireRoot(t)
	reader := realReader(t)
	res, err := NewResolver("", reader)
	if err != nil {
		t.Fatal(err)
	}
	self, err := res.Resolve(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	s := NewSampler(reader, SamplerConfig{Idle: time.Millisecond}, quietLog())
	s.Load(&self)
	time.Sleep(5 * time.Millisecond)
	s.SampleAll()
	if s.Len() != 0 {
		t.Errorf("a container not read for Idle is still sampled")
	}
}

// samplerCaller is a caller in cgroup cg (plus sub, a cgroup below it).
func samplerCaller(cg *testutil.Cgroup, sub string) Caller {
	p := cg.Paths()
	c := Caller{Paths: cgroupreader.Paths{Unified: p.Unified, V1: map[string]string{}}}
	if p.Unified != "" && sub != "" {
		c.Paths.Unified += "/" + sub
	}
	for ctrl, v := range p.V1 {
		if sub != "" {
			v += "/" + sub
		}
		c.Paths.V1[ctrl] = v
	}
	c.Key = ContainerKey{HostPaths: pathsKey(c.Paths)}
	return c
}

// One container flooding the sampler, with more pid namespaces or more
// cgroups than it has slots, evicts its own entries: another container's
// history stays, and a newcomer still gets its load.
func TestSamplerFloodEvictsTheFlooder(t *testing.T) {
	testutil.RequireRoot(t)
	reader := realReader(t)
	victimCg := testutil.NewCgroup(t, "fusefs-sampler-victim", testutil.CgroupLimits{})
	floodCg := testutil.NewCgroup(t, "fusefs-sampler-flood", testutil.CgroupLimits{})
	newCg := testutil.NewCgroup(t, "fusefs-sampler-new", testutil.CgroupLimits{})
	const subs = 12
	for i := 0; i < subs; i++ {
		dirs := map[string]bool{}
		ctrls := []string{""}
		for ctrl := range floodCg.Paths().V1 {
			ctrls = append(ctrls, ctrl)
		}
		for _, ctrl := range ctrls {
			if d := floodCg.Dir(ctrl); d != "" && !dirs[d] {
				dirs[d] = true
				if err := os.Mkdir(d+"/s"+strconv.Itoa(i), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	s := NewSampler(reader, SamplerConfig{Max: 4}, quietLog())
	victim := samplerCaller(victimCg, "")
	if l := s.Load(&victim); !l.Known {
		t.Fatalf("victim: %+v", l)
	}
	s.mu.Lock()
	victimEntry := s.entries[pathsKey(victim.Paths)]
	s.mu.Unlock()
	// The same cgroup in many pid namespaces is one entry.
	for i := 0; i < 50; i++ {
		c := samplerCaller(floodCg, "")
		c.Key.NSInode = uint64(1000 + i)
		s.Load(&c)
	}
	if s.Len() != 2 {
		t.Fatalf("%d entries after one cgroup read from 50 pid namespaces, want 2", s.Len())
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < subs; i++ {
			c := samplerCaller(floodCg, "s"+strconv.Itoa(i))
			if l := s.Load(&c); !l.Known {
				t.Fatalf("flood cgroup %d got no load", i)
			}
		}
	}
	s.mu.Lock()
	kept := s.entries[pathsKey(victim.Paths)] == victimEntry
	s.mu.Unlock()
	if !kept || s.Len() != 4 {
		t.Fatalf("victim kept %v, %d entries: the flood evicted another container's entry", kept, s.Len())
	}
	newcomer := samplerCaller(newCg, "")
	if l := s.Load(&newcomer); !l.Known {
		t.Errorf("a newcomer in a full sampler got no load: %+v", l)
	}
	s.mu.Lock()
	kept = s.entries[pathsKey(victim.Paths)] == victimEntry
	s.mu.Unlock()
	if !kept {
		t.Error("the newcomer evicted the victim rather than a flood entry")
	}
}

func TestLargestSubtreeLRU(t *testing.T) {
	now := time.Now()
	mk := func(path string, age int) *loadEntry {
		return &loadEntry{paths: cgroupreader.Paths{Unified: path}, lastRead: now.Add(-time.Duration(age) * time.Second)}
	}
	victim := mk("/corral/v", 100) // the least recently read of all
	a1, a2, a3 := mk("/corral/a/x/1", 1), mk("/corral/a/y/2", 2), mk("/corral/a", 3)
	if got := largestSubtreeLRU([]*loadEntry{victim, a1, a2, a3}); got != a3 {
		t.Errorf("evicted %s, want /corral/a (the largest subtree's oldest)", got.paths.Unified)
	}
	b := mk("/corral/b", 50)
	if got := largestSubtreeLRU([]*loadEntry{victim, b}); got != victim {
		t.Errorf("equal subtrees: evicted %s, want the least recently read", got.paths.Unified)
	}
	if got := largestSubtreeLRU([]*loadEntry{mk("/", 1), mk("/", 5)}); got.lastRead != now.Add(-5*time.Second) {
		t.Errorf("same path: evicted %+v", got)
	}
}

// partsRecorder is the real reader, noting the parts each Snapshot asks for.
type partsRecorder struct {
	cgroupreader.Reader
	mu    sync.Mutex
	asked []cgroupreader.Part
}

func (r *partsRecorder) Snapshot(p cgroupreader.Paths, parts cgroupreader.Part) (cgroupreader.Snapshot, error) {
	r.mu.Lock()
	r.asked = append(r.asked, parts)
	r.mu.Unlock()
	return r.Reader.Snapshot(p, parts)
}

// The sampler only counts tasks: it reads cgroup.procs and nothing else
// (it read memory, cpu, cpuset and pids too, every 5 s per container).
func TestSamplerReadsOnlyTasks(t *testing.T) {
	testutil.RequireRoot(t)
	cg := testutil.NewCgroup(t, "fusefs-sampler-parts", testutil.CgroupLimits{})
	reader, c, goFile := startSamplerContainer(t, cg, "sleep 60 & wait")
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &partsRecorder{Reader: reader}
	s := NewSampler(rec, SamplerConfig{Interval: time.Hour}, quietLog())
	testutil.WaitFor(t, 10*time.Second, "the container's two tasks counted", func() bool { return s.Load(&c).Total == 2 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, p := range rec.asked {
		if p != cgroupreader.PartTasks {
			t.Errorf("the sampler asked for parts %#x, want only PartTasks (%#x)", p, cgroupreader.PartTasks)
		}
	}
}

// TestProcStat reads the state and the thread count of a stat line, a
// command name with ") " in it included, and counts a one-thread process
// from its stat alone.
func TestProcStat(t *testing.T) {
	dir := t.TempDir()
	line := "4242 (x) S (y) R 1 4242 4242 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 1 0 123 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	if err := os.MkdirAll(filepath.Join(dir, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "4242", "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	state, threads, ok := procStat(filepath.Join(dir, "4242", "stat"))
	if !ok || state != 'R' || threads != 1 {
		t.Fatalf("procStat = %c, %d, %v; want R, 1", state, threads, ok)
	}
	os.WriteFile(filepath.Join(dir, "4242", "status"), []byte("Name:\tx\nNSpid:\t4242\t7\n"), 0o644)
	s := NewSampler(nil, SamplerConfig{ProcRoot: dir}, quietLog())
	c := s.countTasks([]int{4242}, nil)
	if c.total != 1 || c.running != 1 || c.lastPid != 7 {
		t.Errorf("countTasks = %+v; want one running task, namespace pid 7", c)
	}
	// This test process has several threads: they are counted one by one.
	if _, threads, ok := procStat("/proc/self/stat"); !ok || threads < 2 {
		t.Errorf("own thread count %d (%v)", threads, ok)
	}
}

// TestLoadAsRead: the reading thread is running in what it reads, whatever
// state the count saw it in.
func TestLoadAsRead(t *testing.T) {
	e := &loadEntry{
		load:  render.LoadAvg{Known: true, Running: 1, Blocked: 1, Total: 4},
		tasks: map[int]countedTask{10: {1, 'R'}, 11: {2, 'D'}, 12: {3, 'S'}},
	}
	for _, tc := range []struct {
		tid                     int
		running, blocked, total int
	}{
		{10, 1, 1, 4}, // counted running already
		{11, 2, 0, 4}, // counted blocked: waiting for its own request
		{12, 2, 1, 4}, // counted sleeping
		{13, 2, 1, 5}, // started after the count
		{0, 1, 1, 4},  // no reader (the sampler's own passes)
	} {
		l := e.asRead(tc.tid)
		if l.Running != tc.running || l.Blocked != tc.blocked || l.Total != tc.total {
			t.Errorf("tid %d: running %d blocked %d total %d, want %d %d %d", tc.tid, l.Running, l.Blocked, l.Total, tc.running, tc.blocked, tc.total)
		}
	}
	if e.load.Running != 1 || e.load.Total != 4 {
		t.Errorf("asRead changed the entry: %+v", e.load)
	}
}
