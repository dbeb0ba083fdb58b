package cgroupreader

import (
	"time"

	"github.com/corral-dev/corral/fusefs/facts"
)

// v2Reader reads the unified cgroup2 hierarchy at cfg.CgroupRoot.
type v2Reader struct {
	cfg      Config
	skipRoot bool // the hierarchy root has no limit files to read
}

func (r *v2Reader) Mode() Mode { return ModeV2 }

func (r *v2Reader) PathsOf(pid int) (Paths, error) { return pathsOf(r.cfg.ProcRoot, pid) }

func (r *v2Reader) Snapshot(p Paths, want Part) (Snapshot, error) {
	parts := want.resolve()
	s := Snapshot{Mode: ModeV2}
	c := collect{s: &s, paths: p}
	cg, dir := p.Unified, r.cfg.CgroupRoot
	var pathErr error
	switch {
	case cg == "":
		pathErr = errNoPath("cgroup2")
	case !validCgroupPath(cg):
		pathErr = errBadPath(cg)
	}
	if pathErr != nil {
		for _, g := range [...]struct {
			part  Part
			group string
		}{{PartMemory, GroupMemory}, {PartCPU, GroupCPU}, {PartCPUUsage, GroupCPUAcct}, {PartCpuset, GroupCpuset},
			{PartPids, GroupPids}, {PartIO, GroupIO}, {PartPSI, GroupPSI}, {PartTasks, GroupTasks}} {
			if parts&g.part != 0 {
				c.add(g.group, pathErr)
			}
		}
		return c.result()
	}
	sc := getScratch()
	defer putScratch(sc)
	if parts&PartMemory != 0 {
		c.add(GroupMemory, r.memory(sc, cg, &s.Memory))
	}
	if parts&(PartCPU|PartCPUQuota|PartCPUUsage) != 0 {
		errCPU, errUsage := r.cpu(sc, cg, &s.CPU, parts)
		if parts&(PartCPU|PartCPUQuota) != 0 {
			c.add(GroupCPU, errCPU)
		}
		if parts&PartCPUUsage != 0 {
			c.add(GroupCPUAcct, errUsage)
		}
	}
	if parts&PartCpuset != 0 {
		c.add(GroupCpuset, v2Cpuset(sc, dir, cg, &s.CPU))
	}
	if parts&PartPids != 0 {
		c.add(GroupPids, r.pids(sc, cg, &s.Pids))
	}
	if parts&PartIO != 0 {
		c.add(GroupIO, v2IO(sc, dir, cg, &s))
	}
	if parts&PartPSI != 0 {
		c.add(GroupPSI, readPSI(sc, dir, cg, &s.PSI))
	}
	if parts&PartTasks != 0 {
		var err error
		s.Tasks, err = readTasks(sc, dir, cg)
		c.add(GroupTasks, err)
	}
	return c.result()
}

func (r *v2Reader) memory(sc *scratch, cg string, m *Memory) error {
	dir := r.cfg.CgroupRoot
	// The root has no memory.current (its numbers are the host's); a
	// cgroup whose parent does not enable memory is charged to the
	// nearest ancestor that does.
	at, data, err := readNearest(sc, dir, cg, "memory.current")
	if err != nil {
		return err
	}
	var ok bool
	if m.Usage, ok = facts.ParseUint(data); !ok {
		return malformed(sc, data)
	}
	if data, err = sc.read(dir, at, "memory.stat"); err != nil {
		return err
	}
	if !parseV2MemoryStat(data, &m.Stat) {
		return malformed(sc, data)
	}
	if m.Limit, err = walkLimit(sc, dir, at, "memory.max", parseMax, r.skipRoot); err != nil {
		return err
	}
	// memory.swap.* exist only with swap accounting (CONFIG_MEMCG_SWAP,
	// not disabled by swapaccount=0).
	swap, err := readUint(sc, dir, at, "memory.swap.current")
	if notExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	m.SwapAccounting, m.SwapUsage = true, swap
	m.SwapLimit, err = walkLimit(sc, dir, at, "memory.swap.max", parseMax, r.skipRoot)
	return err
}

func parseV2MemoryStat(data []byte, st *MemoryStat) bool {
	for rest := data; len(rest) > 0; {
		var line, key, val []byte
		line, rest = facts.NextLine(rest)
		key, line = nextField(line)
		val, _ = nextField(line)
		var dst *uint64
		switch string(key) {
		case "anon":
			dst = &st.Anon
		case "file":
			dst = &st.File
		case "shmem":
			dst = &st.Shmem
		case "file_mapped":
			dst = &st.FileMapped
		case "file_dirty":
			dst = &st.FileDirty
		case "file_writeback":
			dst = &st.FileWriteback
		case "anon_thp":
			dst = &st.AnonTHP
		case "active_anon":
			dst = &st.ActiveAnon
		case "inactive_anon":
			dst = &st.InactiveAnon
		case "active_file":
			dst = &st.ActiveFile
		case "inactive_file":
			dst = &st.InactiveFile
		case "unevictable":
			dst = &st.Unevictable
		case "slab":
			dst = &st.Slab
		case "slab_reclaimable":
			dst = &st.SlabReclaimable
		case "slab_unreclaimable":
			dst = &st.SlabUnreclaimable
		case "kernel_stack":
			dst = &st.KernelStack
		case "pagetables":
			dst = &st.PageTables
		default:
			continue
		}
		v, ok := facts.ParseUint(val)
		if !ok {
			return false
		}
		*dst = v
	}
	return true
}

// cpu reads cpu.stat once for both the throttling counters (PartCPU) and
// the usage (PartCPUUsage), and the quota (PartCPU or PartCPUQuota) and
// weight (PartCPU). cpu.stat exists in every cgroup (usage is core
// accounting); cpu.max and cpu.weight only where the cpu controller is on.
func (r *v2Reader) cpu(sc *scratch, cg string, c *CPU, parts Part) (errCPU, errUsage error) {
	dir := r.cfg.CgroupRoot
	needStat := parts&(PartCPU|PartCPUUsage) != 0
	if needStat {
		data, err := sc.read(dir, cg, "cpu.stat")
		if err != nil {
			err = sc.classify(err)
			return err, err
		}
		if !parseV2CPUStat(data, c) {
			err = malformed(sc, data)
			return err, err
		}
		if parts&PartCPUUsage == 0 {
			c.UsageUser, c.UsageSystem = 0, 0
		}
		if parts&PartCPU == 0 {
			c.NrPeriods, c.NrThrottled, c.ThrottledTime = 0, 0, 0
		}
	}
	if parts&(PartCPU|PartCPUQuota) == 0 {
		return nil, nil
	}
	if parts&PartCPU != 0 {
		var err error
		if c.Weight, err = readUint(sc, dir, cg, "cpu.weight"); err != nil && !notExist(err) {
			return err, nil
		}
	}
	for a := cg; ; a = parentPath(a) {
		if a == "/" && r.skipRoot {
			return nil, nil
		}
		data, err := sc.read(dir, a, "cpu.max")
		switch {
		case err == nil:
			quota, period, ok := parseCPUMax(data)
			if !ok {
				return malformed(sc, data), nil
			}
			if quota.Set && (!c.Quota.Set || lessRatio(quota.Value, period, c.Quota.Value, c.Period)) {
				c.Quota, c.Period = quota, period
			}
		case !notExist(err):
			return err, nil
		case a == cg && !needStat && !sc.dirExists():
			return err, nil // vanished
		}
		if a == "/" {
			return nil, nil
		}
	}
}

// parseCPUMax parses "max 100000" or "150000 100000".
func parseCPUMax(data []byte) (Limit, uint64, bool) {
	q, rest := nextField(data)
	p, _ := nextField(rest)
	quota, ok := parseMax(q)
	period, ok2 := facts.ParseUint(p)
	if !ok || !ok2 || period == 0 {
		return Limit{}, 0, false
	}
	return quota, period, true
}

func parseV2CPUStat(data []byte, c *CPU) bool {
	for rest := data; len(rest) > 0; {
		var line, key, val []byte
		line, rest = facts.NextLine(rest)
		key, line = nextField(line)
		val, _ = nextField(line)
		switch string(key) {
		case "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec":
		default:
			continue
		}
		v, ok := facts.ParseUint(val)
		if !ok {
			return false
		}
		switch string(key) {
		case "user_usec":
			c.UsageUser = v * 1000 // µs -> ns
		case "system_usec":
			c.UsageSystem = v * 1000
		case "nr_periods":
			c.NrPeriods = v
		case "nr_throttled":
			c.NrThrottled = v
		case "throttled_usec":
			c.ThrottledTime = time.Duration(v) * time.Microsecond
		}
	}
	return true
}

func v2Cpuset(sc *scratch, dir, cg string, c *CPU) error {
	// cpuset.cpus.effective exists where the cpuset controller is enabled
	// (always at the root); without it a cgroup runs on its parent's set.
	for a := cg; ; a = parentPath(a) {
		data, err := sc.read(dir, a, "cpuset.cpus.effective")
		switch {
		case err == nil:
			cpus, err := facts.ParseCPUList(data)
			if err != nil {
				return malformed(sc, data)
			}
			if len(cpus) > 0 {
				c.Cpuset = cpus
				return nil
			}
		case !notExist(err):
			return err
		case a == cg && !sc.dirExists():
			return err // vanished
		}
		if a == "/" {
			return nil // no cpuset controller: unknown, i.e. all host CPUs
		}
	}
}

func (r *v2Reader) pids(sc *scratch, cg string, pd *Pids) error {
	dir := r.cfg.CgroupRoot
	at, data, err := readNearest(sc, dir, cg, "pids.current")
	if err != nil {
		return err
	}
	var ok bool
	if pd.Current, ok = facts.ParseUint(data); !ok {
		return malformed(sc, data)
	}
	pd.Limit, err = walkLimit(sc, dir, at, "pids.max", parseMax, r.skipRoot)
	return err
}

// v2IO parses io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..
// dbytes=.. dios=.." (other keys, e.g. from io.cost, are ignored).
func v2IO(sc *scratch, dir, cg string, s *Snapshot) error {
	data, err := sc.read(dir, cg, "io.stat")
	if err != nil {
		return sc.classify(err)
	}
	for rest := data; len(rest) > 0; {
		var line, f []byte
		line, rest = facts.NextLine(rest)
		f, line = nextField(line)
		if len(f) == 0 {
			continue
		}
		major, minor, ok := parseDev(f)
		if !ok {
			return malformed(sc, f)
		}
		d := ioDevice(&s.IO, major, minor)
		for len(line) > 0 {
			f, line = nextField(line)
			k, v := facts.Cut(f, '=')
			if v == nil {
				continue
			}
			var dst *uint64
			switch string(k) {
			case "rbytes":
				dst = &d.ReadBytes
			case "wbytes":
				dst = &d.WriteBytes
			case "rios":
				dst = &d.ReadIOs
			case "wios":
				dst = &d.WriteIOs
			case "dbytes":
				dst = &d.DiscardBytes
			case "dios":
				dst = &d.DiscardIOs
			default:
				continue
			}
			n, ok := facts.ParseUint(v)
			if !ok {
				return malformed(sc, f)
			}
			*dst = n
		}
	}
	s.IO = finishIO(s.IO)
	return nil
}
