// Package cgroupreader turns a process into a read-only Snapshot of the limits
// and usage of the cgroups it lives in, for cgroup v1 (including the hybrid
// layout) and cgroup v2, behind one interface.
//
// The types in this file are the contract between cgroupreader and everything
// that consumes it (fusefs render functions, the sysinfo agent, `corral stats`).
// They carry no containerd/cgroups types on purpose: that library stays inside
// this package.
package cgroupreader

import "time"

// Limit is a resource limit that may be absent. "No limit" is explicit
// (Set == false); we never encode it as MaxUint64 or as 0-on-error.
type Limit struct {
	Value uint64
	Set   bool
}

// Min returns the tighter of two limits; an unset limit never wins.
func (l Limit) Min(o Limit) Limit {
	switch {
	case !l.Set:
		return o
	case !o.Set:
		return l
	case o.Value < l.Value:
		return o
	}
	return l
}

// Cap returns the limit capped at a host value: the effective value a
// container should see. An unset limit becomes the host value.
func (l Limit) Cap(host uint64) uint64 {
	if !l.Set || l.Value > host {
		return host
	}
	return l.Value
}

// Mode is the cgroup layout of the host.
type Mode int

const (
	ModeUnknown Mode = iota
	ModeV1           // legacy: only v1 hierarchies
	ModeHybrid       // v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified
	ModeV2           // unified: cgroup2 mounted at the root
)

func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeV2:
		return "v2"
	}
	return "unknown"
}

// MemoryStat holds the memory.stat counters the views need, in bytes, with
// cgroup v2 names. The v1 reader maps its names (total_cache -> File,
// total_rss -> Anon, total_mapped_file -> FileMapped, ...) onto these, using
// the hierarchical total_* values so a parent cgroup counts its children.
type MemoryStat struct {
	Anon              uint64 // v1 total_rss
	File              uint64 // v1 total_cache
	Shmem             uint64 // v1 total_shmem
	FileMapped        uint64 // v1 total_mapped_file
	FileDirty         uint64 // v1 total_dirty
	FileWriteback     uint64 // v1 total_writeback
	AnonTHP           uint64 // v1 total_rss_huge
	ActiveAnon        uint64
	InactiveAnon      uint64
	ActiveFile        uint64
	InactiveFile      uint64
	Unevictable       uint64
	Slab              uint64 // v2 slab; v1 has no slab counters (left 0)
	SlabReclaimable   uint64
	SlabUnreclaimable uint64
	KernelStack       uint64
	PageTables        uint64
}

// Memory is the memory (and swap) state of a cgroup.
type Memory struct {
	// Limit is the effective memory limit: the minimum over the cgroup and
	// all its ancestors. Not capped at host RAM; consumers cap it.
	Limit Limit
	// Usage is the current charge in bytes (v2 memory.current, v1 usage_in_bytes).
	Usage uint64
	// SwapLimit is the effective swap-only limit: v2 memory.swap.max, v1
	// memsw.limit - memory.limit (0 when they are equal). Unset = unlimited.
	SwapLimit Limit
	// SwapUsage is swap in use (v2 memory.swap.current, v1 memsw.usage - usage).
	SwapUsage uint64
	// SwapAccounting says whether the kernel accounts swap for this cgroup
	// at all (v1 memsw files exist / v2 memory.swap.* exist).
	SwapAccounting bool
	Stat           MemoryStat
}

// CPU is the CPU state of a cgroup.
type CPU struct {
	// Quota and Period (microseconds) of the ancestor with the tightest
	// quota/period ratio; Quota unset = no quota anywhere up the tree.
	Quota  Limit
	Period uint64
	// Shares (v1 cpu.shares) or weight (v2 cpu.weight) of the cgroup itself.
	Shares uint64
	Weight uint64
	// Cpuset is the sorted list of host CPU numbers the cgroup may run on
	// (cpuset.effective_cpus). Empty means unknown: treat as all host CPUs.
	Cpuset []int
	// UsageUser / UsageSystem: CPU time consumed by the cgroup, in nanoseconds.
	UsageUser   uint64
	UsageSystem uint64
	// PerCPU is per-host-CPU usage (index = host CPU number) where the
	// kernel provides it (v1 cpuacct.usage_percpu_user/_sys); nil on v2.
	PerCPU []CPUTime
	// Throttling counters of the cgroup's own quota (cpu.stat).
	NrPeriods     uint64
	NrThrottled   uint64
	ThrottledTime time.Duration
}

// CPUTime is user and system CPU time in nanoseconds.
type CPUTime struct {
	User   uint64
	System uint64
}

// Pids is the pids controller state.
type Pids struct {
	Current uint64
	Limit   Limit // effective: minimum over ancestors
}

// IODevice is the I/O a cgroup did on one block device.
type IODevice struct {
	Major, Minor uint32
	ReadBytes    uint64
	WriteBytes   uint64
	ReadIOs      uint64
	WriteIOs     uint64
	DiscardBytes uint64
	DiscardIOs   uint64
}

// PSI is the raw text of a cgroup's pressure files (cpu.pressure, ...),
// which already has the exact /proc/pressure/* format. nil = not available.
type PSI struct {
	CPU    []byte
	Memory []byte
	IO     []byte
}

// Snapshot is everything the views know about one container's cgroups at one
// moment. A field the reader could not read stays at its zero value and its
// name is recorded in Missing, so a render function can fall back deliberately.
type Snapshot struct {
	Mode   Mode
	Memory Memory
	CPU    CPU
	Pids   Pids
	IO     []IODevice // devices with any I/O, sorted by major, minor
	PSI    PSI
	// Tasks are the pids (as seen from the host) of every task in the
	// container's cgroup and below: the loadavg sampler walks them.
	// Only filled when requested (PartTasks).
	Tasks []int
	// Missing names the groups that could not be read ("memory", "cpu",
	// "cpuset", "cpuacct", "pids", "io", "psi") with the reason.
	Missing map[string]error
}

// Paths locates a process's cgroups: the v2 path and/or the v1
// per-controller paths, each relative to its hierarchy's mount point and
// starting with "/" (as in /proc/PID/cgroup).
type Paths struct {
	Unified string            // "" when the process has no v2 cgroup in use
	V1      map[string]string // controller name ("memory", "cpu", ...) -> path
}
