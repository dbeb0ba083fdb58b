package inputs

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/render"
)

// DefaultSnapshotTTL: short enough that numbers are current for any
// human or monitoring tool, long enough that the files one `top` refresh
// or `lscpu` opens share one set of cgroup reads.
const DefaultSnapshotTTL = 100 * time.Millisecond

// The loadavg sampler computes each container's 1/5/15-minute load the way
// the kernel computes the host's (kernel/sched/loadavg.c): every 5 seconds
// it counts the container's runnable (R) and uninterruptible (D) threads
// and folds the count into three exponentially decaying averages in 11-bit
// fixed point. Only containers that are being read are sampled: a
// container is registered by its first read of a view that needs load and
// dropped after SamplerConfig.Idle without one, and at most
// SamplerConfig.Max containers are sampled at a time, so the cost is
// bounded by what readers ask for.
//
// A container is a cgroup here, not a pid namespace: the load counts the
// cgroup's tasks, and one container making thousands of pid namespaces
// must not take thousands of slots. When all slots are taken a newcomer
// still gets one: an entry is evicted, from the largest cgroup subtree
// (sampler_evict.go), so a container flooding the sampler with cgroups of
// its own evicts its own entries and nobody else's. (It used to refuse
// newcomers: one container filled the 1,024 slots in 4 s and every new
// container read 0.00 0.00 0.00 for 10 minutes.)

const (
	fshift = 11
	fixed1 = 1 << fshift // 1.0 in fixed point
	exp1   = 1884        // 1/exp(5sec/1min) in fixed point
	exp5   = 2014        // 1/exp(5sec/5min)
	exp15  = 2037        // 1/exp(5sec/15min)
)

var loadExp = [3]uint64{exp1, exp5, exp15}

// calcLoad is the kernel's calc_load: one 5-second step of an average.
// active is in fixed point. Rounding up while the load rises keeps a
// constant load from converging to one tick below its value.
func calcLoad(load, exp, active uint64) uint64 {
	newload := load*exp + active*(fixed1-exp)
	if active >= load {
		newload += fixed1 - 1
	}
	return newload / fixed1
}

// SamplerConfig bounds the sampler; zero values mean the defaults.
type SamplerConfig struct {
	Interval time.Duration // default 5s, the kernel's LOAD_FREQ
	Idle     time.Duration // default 10 minutes without a read
	Max      int           // default 1024 containers
	ProcRoot string        // default /proc
	// Fresh is how old the task counts (loadavg's running/total and last
	// pid, which the kernel shows as of the read) may be when a read
	// asks: older ones are counted again, without advancing the
	// averages. Default DefaultSnapshotTTL.
	Fresh time.Duration
}

type loadEntry struct {
	key      string // pathsKey(paths)
	paths    cgroupreader.Paths
	gone     bool // its cgroup vanished: the first to evict
	lastRead time.Time
	avenrun  [3]uint64
	load     render.LoadAvg
	tasks    map[int]countedTask // by host tid, as last counted
	lastStep time.Time           // when the averages last advanced
	counted  time.Time           // when the tasks were last counted
	sampling sync.Mutex          // one sample of this entry at a time
}

// countedTask is what a count learned of one task.
type countedTask struct {
	nsTid int  // its tid in the container's pid namespace; 0 unknown (read again next count)
	state byte // its state letter
}

// Sampler keeps the load of the containers being read.
type Sampler struct {
	cfg    SamplerConfig
	reader cgroupreader.Reader
	log    *slog.Logger

	mu       sync.Mutex
	entries  map[string]*loadEntry // by pathsKey
	overFull bool                  // logged that Max was reached (reset when below again)
	evicted  uint64

	sampleMu sync.Mutex // one sampling pass at a time
}

// NewSampler makes a sampler; call Run to start the periodic sampling.
func NewSampler(reader cgroupreader.Reader, cfg SamplerConfig, log *slog.Logger) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 10 * time.Minute
	}
	if cfg.Max <= 0 {
		cfg.Max = 1024
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Fresh <= 0 {
		cfg.Fresh = DefaultSnapshotTTL
	}
	return &Sampler{cfg: cfg, reader: reader, log: log, entries: map[string]*loadEntry{}}
}

// Load returns the container's current load as the reading thread
// (c.Tid) sees it, and registers the container for sampling. The first
// call for a container counts its tasks at once, so running/total are
// right from the first read; the averages start at 0 like a freshly booted
// kernel's. Task counts older than Fresh are counted again (the averages
// still advance only every Interval, as the kernel's).
func (s *Sampler) Load(c *Caller) render.LoadAvg {
	now := time.Now()
	key := c.CgroupKey()
	s.mu.Lock()
	e := s.entries[key]
	if e != nil {
		e.lastRead = now
		e.paths = c.Paths
		l := e.asRead(c.Tid)
		stale := now.Sub(e.counted) > s.cfg.Fresh
		s.mu.Unlock()
		if !stale {
			return l
		}
		s.count(e, now)
		s.mu.Lock()
		l = e.asRead(c.Tid)
		s.mu.Unlock()
		return l
	}
	if len(s.entries) >= s.cfg.Max {
		if !s.overFull {
			s.overFull = true
			s.log.Warn("loadavg sampler full: evicting from the largest cgroup subtree", "max", s.cfg.Max)
		}
		s.evictLocked()
	}
	e = &loadEntry{key: key, paths: c.Paths, lastRead: now}
	s.entries[key] = e
	s.mu.Unlock()

	s.sample(e, true)
	s.mu.Lock()
	l := e.asRead(c.Tid)
	s.mu.Unlock()
	return l
}

// asRead is e's load with the reading thread tid running, as the kernel
// shows a reader of /proc/loadavg or /proc/stat (it runs the read: top
// always sees at least itself running, vmstat's r column is at least 1).
// The count saw tid as it was then: waiting for this very request (S, or
// D while the kernel waits killable), sleeping before it, or not there yet
// (a cat started since). Called with s.mu held.
func (e *loadEntry) asRead(tid int) render.LoadAvg {
	l := e.load
	if !l.Known || tid <= 0 {
		return l
	}
	switch t, counted := e.tasks[tid]; {
	case !counted:
		l.Running++
		l.Total++
	case t.state == 'R':
	case t.state == 'D':
		l.Blocked--
		l.Running++
	default:
		l.Running++
	}
	return l
}

// Run samples every Interval until stop is closed.
func (s *Sampler) Run(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.SampleAll()
		}
	}
}

// SampleAll does one sampling step for every registered container and
// drops the ones not read for Idle.
func (s *Sampler) SampleAll() {
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	now := time.Now()
	s.mu.Lock()
	list := make([]*loadEntry, 0, len(s.entries))
	for k, e := range s.entries {
		if now.Sub(e.lastRead) > s.cfg.Idle {
			delete(s.entries, k)
			continue
		}
		list = append(list, e)
	}
	if len(s.entries) < s.cfg.Max {
		s.overFull = false
	}
	s.mu.Unlock()
	for _, e := range list {
		s.sample(e, true)
	}
}

// Len is the number of containers being sampled.
func (s *Sampler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// count counts e's tasks again, unless another read did since asked.
func (s *Sampler) count(e *loadEntry, asked time.Time) {
	e.sampling.Lock()
	defer e.sampling.Unlock()
	s.mu.Lock()
	done := !e.counted.Before(asked)
	s.mu.Unlock()
	if !done {
		s.sampleLocked(e, false)
	}
}

// sample counts e's tasks and, when step is set, advances its averages by
// one step.
func (s *Sampler) sample(e *loadEntry, step bool) {
	e.sampling.Lock()
	defer e.sampling.Unlock()
	s.sampleLocked(e, step)
}

// sampleLocked is sample with e.sampling held.
func (s *Sampler) sampleLocked(e *loadEntry, step bool) {
	s.mu.Lock()
	paths, prev := e.paths, e.tasks
	s.mu.Unlock()

	// Only the tasks: counting them is all the sampler does (it used to
	// read the default parts too, every 5 s per container).
	snap, err := s.reader.Snapshot(paths, cgroupreader.PartTasks)
	if err != nil {
		// The cgroup vanished: nothing to count; the entry ages out,
		// or is evicted first when a newcomer needs its slot. Noted as
		// counted, so reads do not retry before Fresh.
		s.mu.Lock()
		if errors.Is(err, fs.ErrNotExist) {
			e.gone = true
		}
		e.counted = time.Now()
		s.mu.Unlock()
		return
	}
	c := s.countTasks(snap.Tasks, prev)

	s.mu.Lock()
	defer s.mu.Unlock()
	// The averages advance once per interval: a container's first read
	// racing a periodic pass must not count as two steps.
	now := time.Now()
	e.counted = now
	if step && now.Sub(e.lastStep) >= s.cfg.Interval/2 {
		e.lastStep = now
		active := uint64(c.running+c.blocked) * fixed1
		for i := range e.avenrun {
			e.avenrun[i] = calcLoad(e.avenrun[i], loadExp[i], active)
		}
	}
	e.tasks = c.tasks
	e.load = render.LoadAvg{
		Known:   true,
		Running: c.running,
		Blocked: c.blocked,
		Total:   c.total,
		LastPid: c.lastPid,
	}
	for i, a := range e.avenrun {
		e.load.Avg[i] = float64(a) / fixed1
	}
}

type taskCount struct {
	running, blocked, total, lastPid int
	tasks                            map[int]countedTask
}

// countTasks counts the threads of the given processes (or threads: each
// thread group is walked once) by state. prev is the previous count's
// tasks, whose namespace tids it knows, so /proc/T/status is read only
// for new threads.
func (s *Sampler) countTasks(pids []int, prev map[int]countedTask) taskCount {
	c := taskCount{tasks: make(map[int]countedTask, len(prev))}
	seen := make(map[int]bool, len(pids))
	for _, pid := range pids {
		if seen[pid] {
			continue
		}
		proc := s.cfg.ProcRoot + "/" + strconv.Itoa(pid)
		// Most processes of a container have one thread, and their
		// /proc/PID/stat says so (num_threads) along with the state:
		// one read instead of the task directory and the thread's own
		// stat (counting tasks was a third of the worker's CPU at 200
		// containers reading /proc/stat in a loop).
		state, threads, ok := procStat(proc + "/stat")
		if !ok {
			continue // exited
		}
		if threads == 1 {
			seen[pid] = true
			c.add(state, pid, proc+"/status", prev)
			continue
		}
		dir := proc + "/task"
		tids, err := dirNames(dir)
		if err != nil && len(tids) == 0 {
			continue // exited
		}
		for _, name := range tids {
			tid, err := strconv.Atoi(name)
			if err != nil || seen[tid] {
				continue
			}
			seen[tid] = true
			if tid == pid { // the leader's state came with num_threads
				c.add(state, tid, dir+"/"+name+"/status", prev)
			} else if st, _, ok := procStat(dir + "/" + name + "/stat"); ok {
				c.add(st, tid, dir+"/"+name+"/status", prev)
			}
		}
	}
	return c
}

// add counts task tid in state; status is its /proc status file, read for
// its pid in the container's namespace when prev does not know it.
func (c *taskCount) add(state byte, tid int, status string, prev map[int]countedTask) {
	c.total++
	switch state {
	case 'R':
		c.running++
	case 'D':
		c.blocked++
	}
	nsTid := prev[tid].nsTid
	if nsTid == 0 { // new, or unknown last time: asked again
		if n, err := nsPidOf(status); err == nil {
			nsTid = n
		}
	}
	c.tasks[tid] = countedTask{nsTid: nsTid, state: state}
	c.lastPid = max(c.lastPid, nsTid)
}

// procStat returns the state letter and the thread count (num_threads,
// the thread group's) of a /proc stat file: "pid (comm) S ppid ... ".
func procStat(path string) (state byte, threads int, ok bool) {
	var buf [512]byte
	b, err := readProc(path, buf[:0])
	if err != nil {
		return 0, 0, false
	}
	// comm may hold ')' so use the last one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	state = b[i+2]
	// num_threads is the 18th field after comm (proc(5): field 20).
	fields := b[i+2:]
	for n := 0; n < 17; n++ {
		sp := bytes.IndexByte(fields, ' ')
		if sp < 0 {
			return state, 0, true // truncated: the thread count is unknown
		}
		fields = fields[sp+1:]
	}
	if sp := bytes.IndexByte(fields, ' '); sp >= 0 {
		fields = fields[:sp]
	}
	n, _ := facts.ParseUint(fields)
	return state, int(n), true
}
