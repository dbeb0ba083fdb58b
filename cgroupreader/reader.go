package cgroupreader

// Reader reads cgroup state for processes. One implementation per cgroup
// version (v1 covers the hybrid layout too), picked by New from the detected
// mode; tests point it at a fixture tree. A Reader is immutable after New
// and safe for concurrent use.
type Reader interface {
	// Mode is the layout this reader serves.
	Mode() Mode
	// PathsOf parses PROCROOT/PID/cgroup. A process that is gone gives an
	// error satisfying errors.Is(err, fs.ErrNotExist).
	PathsOf(pid int) (Paths, error)
	// Snapshot reads limits and usage of the cgroup at p (and its
	// ancestors, for effective limits). Partial failures are recorded in
	// Snapshot.Missing (keys Group*): errors.Is(e, fs.ErrNotExist) when
	// the cgroup vanished, ErrUnavailable when the controller is not
	// mounted/enabled for it, ErrMalformed for an unparsable file,
	// ErrRootPSI for pressure at a hierarchy root. An error is returned
	// only when none of the requested parts could be read; it wraps the
	// per-part errors, so a vanished cgroup satisfies
	// errors.Is(err, fs.ErrNotExist).
	//
	// Cost: a few syscalls per file read (open, read, close), no
	// allocations beyond the returned slices. Ask only for the Parts a
	// view needs.
	Snapshot(p Paths, parts Part) (Snapshot, error)
}

// Part is one group of cgroup files a Snapshot can read; a Snapshot reads
// the Parts asked for and nothing else (each file read costs a syscall
// round trip on every FUSE read). Zero means DefaultParts.
type Part uint16

const (
	PartMemory   Part = 1 << iota // Snapshot.Memory (with swap and memory.stat)
	PartCPU                       // CPU.Quota/Period, Shares/Weight, throttling
	PartCPUUsage                  // CPU.UsageUser/UsageSystem, PerCPU (v1 cpuacct, v2 cpu.stat)
	PartCpuset                    // CPU.Cpuset
	PartPids                      // Snapshot.Pids
	PartIO                        // Snapshot.IO (blkio / io.stat)
	PartPSI                       // Snapshot.PSI (the *.pressure files)
	PartTasks                     // Snapshot.Tasks (walks cgroup.procs of the subtree)
	PartCPUQuota                  // only CPU.Quota/Period (PartCPU includes it): cpuinfo, sys/devices/system/cpu

	// DefaultParts is what a zero Part reads.
	DefaultParts = PartMemory | PartCPU | PartCPUUsage | PartCpuset | PartPids
)

// resolve is the Part set a Snapshot reads for p.
func (p Part) resolve() Part {
	if p == 0 {
		return DefaultParts
	}
	return p
}

// The keys of Snapshot.Missing.
const (
	GroupMemory  = "memory"
	GroupCPU     = "cpu"     // quota, shares/weight, throttling
	GroupCPUAcct = "cpuacct" // CPU usage: v1 cpuacct, v2 cpu.stat usage
	GroupCpuset  = "cpuset"
	GroupPids    = "pids"
	GroupIO      = "io"
	GroupPSI     = "psi"
	GroupTasks   = "tasks"
)

// Config says where the hierarchies are. Zero values mean the real host.
type Config struct {
	CgroupRoot string // default /sys/fs/cgroup
	ProcRoot   string // default /proc
}
