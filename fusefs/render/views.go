package render

import (
	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// The virtual tree's files, as one literal table (gVisor's tasks.go is the
// model). Paths and kernel twins come from package facts, which the runtime
// binds from too, so the served files and the bound ones cannot drift
// apart (TestViewsMatchFacts); they follow LXCFS's layout so any LXCFS
// recipe works with the directory changed.
//
// Each entry says which host files its render function reads (Needs), which
// optional parts of the cgroup Snapshot it reads (Snap), whether it needs the
// loadavg sampler (Load), and which host file to serve when rendering fails
// (HostPath).
//
// Snap asks for exactly the cgroup files one view reads: every read of a
// view pays for its Snapshot, and a zero Part would read every default
// part (memory, cpu, usage, cpuset, pids) for any view. loadavg renders
// from the sampler alone and asks for the cheapest part (pids) so that a
// vanished cgroup still falls back to the host file.
var views = []View{
	{Path: facts.Meminfo.Rel, Snap: cgroupreader.PartMemory, Needs: NeedMeminfo, Render: Meminfo, HostPath: facts.Meminfo.Kernel},
	{Path: facts.Cpuinfo.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset, Needs: NeedCpuinfo | NeedCPUs, Render: Cpuinfo, HostPath: facts.Cpuinfo.Kernel},
	{Path: facts.Stat.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset | cgroupreader.PartCPUUsage, Needs: NeedStat | NeedCPUs, Load: true, Render: Stat, HostPath: facts.Stat.Kernel},
	{Path: facts.Uptime.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset | cgroupreader.PartCPUUsage, Needs: NeedUptime | NeedCPUs, Render: Uptime, HostPath: facts.Uptime.Kernel},
	{Path: facts.Loadavg.Rel, Snap: cgroupreader.PartPids, Load: true, Render: Loadavg, HostPath: facts.Loadavg.Kernel},
	{Path: facts.Swaps.Rel, Snap: cgroupreader.PartMemory, Needs: NeedSwaps | NeedMeminfo, Render: Swaps, HostPath: facts.Swaps.Kernel},
	{Path: facts.Diskstats.Rel, Needs: NeedDiskstats, Snap: cgroupreader.PartIO, Render: Diskstats, HostPath: facts.Diskstats.Kernel},
	{Path: facts.PressureCPU.Rel, Snap: cgroupreader.PartPSI, Render: PressureCPU, HostPath: facts.PressureCPU.Kernel},
	{Path: facts.PressureMemory.Rel, Snap: cgroupreader.PartPSI, Render: PressureMemory, HostPath: facts.PressureMemory.Kernel},
	{Path: facts.PressureIO.Rel, Snap: cgroupreader.PartPSI, Render: PressureIO, HostPath: facts.PressureIO.Kernel},
	{Path: facts.CPUOnline.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset, Needs: NeedCPUs, Render: CPUList, HostPath: facts.CPUOnline.Kernel},
	{Path: facts.CPUPossible.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset, Needs: NeedCPUs, Render: CPUList, HostPath: facts.CPUPossible.Kernel},
	{Path: facts.CPUPresent.Rel, Snap: cgroupreader.PartCPUQuota | cgroupreader.PartCpuset, Needs: NeedCPUs, Render: CPUList, HostPath: facts.CPUPresent.Kernel},
}

// Views returns the table of virtual files. The slice is shared: callers
// must not modify it.
func Views() []View { return views }

// ViewByPath returns the view serving path (relative to the mount), if any.
func ViewByPath(path string) (View, bool) {
	for _, v := range views {
		if v.Path == path {
			return v, true
		}
	}
	return View{}, false
}

// VisibleCPUs returns the host CPU numbers the container may use, in
// ascending order: its cpuset intersected with the host's online CPUs, then,
// when the CPU-quota view is on and a quota is set, only the first
// ceil(quota/period) of those. Never empty: a container always runs
// somewhere, so the answer is at least one CPU.
//
// Which CPUs survive the quota cut is arbitrary (the quota is a time budget,
// not a placement); the lowest numbers are chosen so the answer is stable.
func VisibleCPUs(in *Input) []int {
	host := in.Host.CPUs
	set := in.Snap.CPU.Cpuset
	var cpus []int
	switch {
	case len(set) == 0:
		cpus = host
	case len(host) == 0:
		cpus = set
	default:
		cpus = intersectSorted(set, host)
	}
	if len(cpus) == 0 {
		// Cpuset names no online host CPU (offlined since, or a
		// fixture mismatch): fall back to the host set, else CPU 0.
		cpus = host
		if len(cpus) == 0 {
			return []int{0}
		}
	}
	if n := QuotaCPUs(in); n > 0 && n < len(cpus) {
		cpus = cpus[:n]
	}
	return cpus
}

// QuotaCPUs is ceil(quota/period) when the CPU-quota view is on and a quota
// is set, else 0 (no cut). At least 1 when a quota is set.
func QuotaCPUs(in *Input) int {
	c := in.Snap.CPU
	if !in.Opts.CPUQuotaView || !c.Quota.Set || c.Period == 0 {
		return 0
	}
	n := (c.Quota.Value + c.Period - 1) / c.Period
	if n < 1 {
		n = 1
	}
	if n > 1<<20 {
		n = 1 << 20
	}
	return int(n)
}

// intersectSorted returns the elements present in both ascending slices.
// It never aliases a: callers may keep the result.
func intersectSorted(a, b []int) []int {
	out := make([]int, 0, min(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
