package cgroupreader

import "github.com/corral-dev/corral/fusefs/facts"

// CPU time and block I/O of cgroup v1: cpuacct and blkio.

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

func (r *v1Reader) cpuacct(sc *scratch, p Paths, c *CPU) error {
	dir, cg, err := r.locate(p, "cpuacct")
	if err != nil {
		return err
	}
	// usage_all has per-CPU user and system time in one file (kernel 4.16+):
	// one read instead of four.
	data, err := sc.read(dir, cg, "cpuacct.usage_all")
	if err == nil {
		if !parseUsageAll(data, c) {
			return malformed(sc, data)
		}
		return nil
	}
	if !notExist(err) || !sc.dirExists() {
		return err // a real read error, or the cgroup vanished
	}
	c.PerCPU = nil
	user, errU := readUint(sc, dir, cg, "cpuacct.usage_user")
	sys, errS := readUint(sc, dir, cg, "cpuacct.usage_sys")
	switch {
	case errU == nil && errS == nil:
		c.UsageUser, c.UsageSystem = user, sys
	case notExist(errU) || notExist(errS):
		// Kernels before 4.7: only tick-based cpuacct.stat.
		data, err := sc.read(dir, cg, "cpuacct.stat")
		if err != nil {
			return sc.classify(err)
		}
		var u, s uint64
		if !parseKeyed(data, "user", &u, "system", &s, "", nil) {
			return malformed(sc, data)
		}
		c.UsageUser, c.UsageSystem = u*(1e9/userHZ), s*(1e9/userHZ)
	case errU != nil:
		return errU
	default:
		return errS
	}
	// Per-CPU split, where the kernel has it.
	for i, file := range [...]string{"cpuacct.usage_percpu_user", "cpuacct.usage_percpu_sys"} {
		data, err := sc.read(dir, cg, file)
		if notExist(err) {
			c.PerCPU = nil
			return nil
		}
		if err != nil {
			return err
		}
		if !parsePerCPU(data, &c.PerCPU, i == 1) {
			return malformed(sc, data)
		}
	}
	return nil
}

// parseUsageAll parses cpuacct.usage_all:
//
//	cpu user system
//	0 29304000000 24576000000
//	1 ...
func parseUsageAll(data []byte, c *CPU) bool {
	n := 0
	for _, b := range data {
		if b == '\n' {
			n++
		}
	}
	per := make([]CPUTime, 0, n)
	var user, sys uint64
	_, rest := facts.NextLine(data) // header
	for len(rest) > 0 {
		var line, f []byte
		line, rest = facts.NextLine(rest)
		f, line = nextField(line)
		if len(f) == 0 {
			continue
		}
		cpu, ok1 := facts.ParseUint(f)
		f, line = nextField(line)
		u, ok2 := facts.ParseUint(f)
		f, _ = nextField(line)
		s, ok3 := facts.ParseUint(f)
		if !ok1 || !ok2 || !ok3 || cpu >= maxCPUs {
			return false
		}
		for uint64(len(per)) <= cpu {
			per = append(per, CPUTime{})
		}
		per[cpu] = CPUTime{User: u, System: s}
		user += u
		sys += s
	}
	c.PerCPU, c.UsageUser, c.UsageSystem = per, user, sys
	return true
}

// parsePerCPU fills the User (or System) column of *per from a
// space-separated cpuacct.usage_percpu_* line, index = CPU number.
func parsePerCPU(data []byte, per *[]CPUTime, system bool) bool {
	i := 0
	for rest := data; ; i++ {
		var f []byte
		f, rest = nextField(rest)
		if len(f) == 0 {
			return true
		}
		v, ok := facts.ParseUint(f)
		if !ok || i >= maxCPUs {
			return false
		}
		if i >= len(*per) {
			*per = append(*per, CPUTime{})
		}
		if system {
			(*per)[i].System = v
		} else {
			(*per)[i].User = v
		}
	}
}

func (r *v1Reader) io(sc *scratch, p Paths, s *Snapshot) error {
	dir, cg, err := r.locate(p, "blkio")
	if err != nil {
		return err
	}
	// The throttle files count every bio whatever the I/O scheduler; the
	// _recursive ones include descendants (what a container did, all of it).
	for i, files := range [...][2]string{
		{"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"},
		{"blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"},
	} {
		data, err := sc.read(dir, cg, files[0])
		if notExist(err) {
			data, err = sc.read(dir, cg, files[1])
		}
		if err != nil {
			return sc.classify(err)
		}
		if !parseBlkio(data, &s.IO, i == 1) {
			return malformed(sc, data)
		}
	}
	s.IO = finishIO(s.IO)
	return nil
}

// parseBlkio parses "MAJ:MIN Op value" lines (Op: Read, Write, Sync,
// Async, Discard, Total) and the final "Total value" line.
func parseBlkio(data []byte, list *[]IODevice, counts bool) bool {
	for rest := data; len(rest) > 0; {
		var line, dev, op, val []byte
		line, rest = facts.NextLine(rest)
		dev, line = nextField(line)
		op, line = nextField(line)
		val, _ = nextField(line)
		if len(dev) == 0 || len(val) == 0 {
			continue // blank, or the trailing "Total N"
		}
		major, minor, ok := parseDev(dev)
		v, ok2 := facts.ParseUint(val)
		if !ok || !ok2 {
			return false
		}
		switch string(op) {
		case "Read":
			if d := ioDevice(list, major, minor); counts {
				d.ReadIOs = v
			} else {
				d.ReadBytes = v
			}
		case "Write":
			if d := ioDevice(list, major, minor); counts {
				d.WriteIOs = v
			} else {
				d.WriteBytes = v
			}
		case "Discard":
			if d := ioDevice(list, major, minor); counts {
				d.DiscardIOs = v
			} else {
				d.DiscardBytes = v
			}
		}
	}
	return true
}
