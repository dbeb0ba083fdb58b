package cgroupreader

import (
	"fmt"
	"time"

	"github.com/corral-dev/corral/fusefs/facts"
)

// v1Reader reads cgroup v1 hierarchies, one directory per controller (or
// per co-mounted group), and on a hybrid host the cgroup2 at unified/ for
// PSI only (hybrid cgroup2 carries no controllers).
type v1Reader struct {
	cfg     Config
	mode    Mode
	mounts  map[string]string // controller -> hierarchy directory
	unified string            // the cgroup2 directory on hybrid hosts, else ""
	// skipRoot: the hierarchies are mounted at their real roots, where the
	// kernel allows no limits, so walks up the tree stop below them.
	skipRoot bool
}

func (r *v1Reader) Mode() Mode { return r.mode }

func (r *v1Reader) PathsOf(pid int) (Paths, error) { return pathsOf(r.cfg.ProcRoot, pid) }

// locate returns the hierarchy directory and cgroup path of ctrl.
func (r *v1Reader) locate(p Paths, ctrl string) (dir, cg string, err error) {
	cg, ok := p.V1[ctrl]
	if !ok {
		return "", "", errNoPath(ctrl)
	}
	if !validCgroupPath(cg) {
		return "", "", errBadPath(cg)
	}
	dir, ok = r.mounts[ctrl]
	if !ok {
		return "", "", fmt.Errorf("%s: %w: %w", ctrl, errNoMount, ErrUnavailable)
	}
	return dir, cg, nil
}

func (r *v1Reader) Snapshot(p Paths, want Part) (Snapshot, error) {
	parts := want.resolve()
	s := Snapshot{Mode: r.mode}
	c := collect{s: &s, paths: p}
	sc := getScratch()
	defer putScratch(sc)
	if parts&PartMemory != 0 {
		c.add(GroupMemory, r.memory(sc, p, &s.Memory))
	}
	if parts&(PartCPU|PartCPUQuota) != 0 {
		c.add(GroupCPU, r.cpu(sc, p, &s.CPU, parts&PartCPU != 0))
	}
	if parts&PartCPUUsage != 0 {
		c.add(GroupCPUAcct, r.cpuacct(sc, p, &s.CPU))
	}
	if parts&PartCpuset != 0 {
		c.add(GroupCpuset, r.cpuset(sc, p, &s.CPU))
	}
	if parts&PartPids != 0 {
		c.add(GroupPids, r.pids(sc, p, &s.Pids))
	}
	if parts&PartIO != 0 {
		c.add(GroupIO, r.io(sc, p, &s))
	}
	if parts&PartPSI != 0 {
		c.add(GroupPSI, readPSI(sc, r.unified, p.Unified, &s.PSI))
	}
	if parts&PartTasks != 0 {
		c.add(GroupTasks, r.tasks(sc, p, &s))
	}
	return c.result()
}

func (r *v1Reader) memory(sc *scratch, p Paths, m *Memory) error {
	dir, cg, err := r.locate(p, "memory")
	if err != nil {
		return err
	}
	// Usage first: it is the read that fails when the cgroup vanished.
	if m.Usage, err = readUint(sc, dir, cg, "memory.usage_in_bytes"); err != nil {
		return sc.classify(err)
	}
	data, err := sc.read(dir, cg, "memory.stat")
	if err != nil {
		return err
	}
	var h v1Hierarchical
	if !parseV1MemoryStat(data, &m.Stat, &h) {
		return malformed(sc, data)
	}
	// memory.stat already has the effective limits: the kernel prints the
	// minimum over the cgroup and all its ancestors (up to the real root,
	// even past a cgroup namespace) as hierarchical_memory_limit and, with
	// swap accounting, hierarchical_memsw_limit and total_swap. That saves
	// reading two files per ancestor. Walk the files only without them.
	if h.memOK {
		m.Limit = h.mem
	} else if m.Limit, err = walkLimit(sc, dir, cg, "memory.limit_in_bytes", parseV1Limit, r.skipRoot); err != nil {
		return err
	}
	var memsw Limit
	if h.memswOK && h.swapOK {
		m.SwapAccounting, m.SwapUsage, memsw = true, h.swap, h.memsw
	} else {
		// memsw counts memory+swap; its files exist only with swap
		// accounting (CONFIG_MEMCG_SWAP and swapaccount=1).
		memswUsage, err := readUint(sc, dir, cg, "memory.memsw.usage_in_bytes")
		if notExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		m.SwapAccounting = true
		m.SwapUsage = satSub(memswUsage, m.Usage)
		if memsw, err = walkLimit(sc, dir, cg, "memory.memsw.limit_in_bytes", parseV1Limit, r.skipRoot); err != nil {
			return err
		}
	}
	if memsw.Set {
		// Limit.Value is 0 when memory is unlimited: then all of memsw may be swap.
		m.SwapLimit = Limit{Value: satSub(memsw.Value, m.Limit.Value), Set: true}
	}
	return nil
}

// v1Hierarchical holds the effective limits and swap usage v1 memory.stat
// carries besides the counters.
type v1Hierarchical struct {
	mem, memsw             Limit
	swap                   uint64
	memOK, memswOK, swapOK bool
}

// parseV1MemoryStat maps the hierarchical total_* counters (a parent counts
// its children) onto MemoryStat. v1 has no slab, kernel stack or page
// table counters: those stay 0.
func parseV1MemoryStat(data []byte, st *MemoryStat, h *v1Hierarchical) bool {
	for rest := data; len(rest) > 0; {
		var line, key, val []byte
		line, rest = facts.NextLine(rest)
		key, line = nextField(line)
		val, _ = nextField(line)
		switch string(key) {
		case "hierarchical_memory_limit":
			h.mem, h.memOK = parseV1Limit(val)
			if !h.memOK {
				return false
			}
			continue
		case "hierarchical_memsw_limit":
			h.memsw, h.memswOK = parseV1Limit(val)
			if !h.memswOK {
				return false
			}
			continue
		}
		if len(key) < 6 || string(key[:6]) != "total_" {
			continue
		}
		var dst *uint64
		switch string(key[6:]) {
		case "swap":
			h.swapOK = true
			dst = &h.swap
		case "rss":
			dst = &st.Anon
		case "cache":
			dst = &st.File
		case "shmem":
			dst = &st.Shmem
		case "mapped_file":
			dst = &st.FileMapped
		case "dirty":
			dst = &st.FileDirty
		case "writeback":
			dst = &st.FileWriteback
		case "rss_huge":
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

// cpu reads the quota and, with full, shares and throttling.
func (r *v1Reader) cpu(sc *scratch, p Paths, c *CPU, full bool) error {
	dir, cg, err := r.locate(p, "cpu")
	if err != nil {
		return err
	}
	if full {
		if c.Shares, err = readUint(sc, dir, cg, "cpu.shares"); err != nil {
			return sc.classify(err)
		}
		data, err := sc.read(dir, cg, "cpu.stat")
		if err != nil {
			return err
		}
		var throttledNs uint64
		if !parseKeyed(data, "nr_periods", &c.NrPeriods, "nr_throttled", &c.NrThrottled, "throttled_time", &throttledNs) {
			return malformed(sc, data)
		}
		c.ThrottledTime = time.Duration(throttledNs)
	}
	// The tightest quota/period ratio up the tree. cfs_quota_us is -1 for
	// "no quota"; without CONFIG_CFS_BANDWIDTH the files do not exist.
	for a := cg; ; a = parentPath(a) {
		if a == "/" && r.skipRoot && a != cg {
			return nil
		}
		data, err := sc.read(dir, a, "cpu.cfs_quota_us")
		switch {
		case err != nil && a == cg && !full:
			if err = sc.classify(err); !isUnavailable(err) {
				return err // vanished, or unreadable
			}
		case err == nil:
			q, ok := parseInt(data)
			if !ok {
				return malformed(sc, data)
			}
			if q >= 0 {
				per, err := readUint(sc, dir, a, "cpu.cfs_period_us")
				if err != nil {
					return err
				}
				if per == 0 {
					return malformed(sc, []byte("0"))
				}
				if !c.Quota.Set || lessRatio(uint64(q), per, c.Quota.Value, c.Period) {
					c.Quota, c.Period = Limit{Value: uint64(q), Set: true}, per
				}
			}
		case !notExist(err):
			return err
		}
		if a == "/" {
			return nil
		}
	}
}

// parseKeyed fills up to three "key value" lines of a flat keyed file
// (cpu.stat); absent keys leave their destination alone.
func parseKeyed(data []byte, k1 string, d1 *uint64, k2 string, d2 *uint64, k3 string, d3 *uint64) bool {
	for rest := data; len(rest) > 0; {
		var line, key, val []byte
		line, rest = facts.NextLine(rest)
		key, line = nextField(line)
		val, _ = nextField(line)
		var dst *uint64
		switch string(key) {
		case k1:
			dst = d1
		case k2:
			dst = d2
		case k3:
			dst = d3
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

func (r *v1Reader) pids(sc *scratch, p Paths, pd *Pids) error {
	dir, cg, err := r.locate(p, "pids")
	if err != nil {
		return err
	}
	if pd.Current, err = readUint(sc, dir, cg, "pids.current"); err != nil {
		return sc.classify(err)
	}
	pd.Limit, err = walkLimit(sc, dir, cg, "pids.max", parseMax, r.skipRoot)
	return err
}

func (r *v1Reader) cpuset(sc *scratch, p Paths, c *CPU) error {
	dir, cg, err := r.locate(p, "cpuset")
	if err != nil {
		return err
	}
	// effective_cpus is what the kernel enforces; a v1 cgroup created
	// without clone_children has empty cpus and inherits nothing, so
	// walk up until a level says something.
	for a := cg; ; a = parentPath(a) {
		for _, file := range [...]string{"cpuset.effective_cpus", "cpuset.cpus"} {
			data, err := sc.read(dir, a, file)
			if err != nil {
				if a == cg && file == "cpuset.cpus" {
					return sc.classify(err)
				}
				if notExist(err) {
					continue
				}
				return err
			}
			cpus, err := facts.ParseCPUList(data)
			if err != nil {
				return malformed(sc, data)
			}
			if len(cpus) > 0 {
				c.Cpuset = cpus
				return nil
			}
		}
		if a == "/" {
			return nil // unknown: consumers treat it as all host CPUs
		}
	}
}

func (r *v1Reader) tasks(sc *scratch, p Paths, s *Snapshot) error {
	// Any hierarchy holds every task; prefer the one that is always mounted.
	for _, ctrl := range [...]string{"memory", "pids", "cpu"} {
		dir, cg, err := r.locate(p, ctrl)
		if err != nil {
			continue
		}
		s.Tasks, err = readTasks(sc, dir, cg)
		return err
	}
	return fmt.Errorf("no memory, pids or cpu hierarchy: %w", ErrUnavailable)
}
