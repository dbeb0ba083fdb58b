package facts

// DefaultDir is where the corralfs service mounts its views (the systemd
// unit, `corral run`, the hook and the Kubernetes DaemonSet use it).
// LXCFS's /var/lib/lxcfs has the same layout below it, so LXCFS recipes
// carry over with the directory changed.
const DefaultDir = "/var/lib/corralfs"

// FSName is the mount's source and the name go-fuse appends to "fuse." for
// its type; FSType is that type as /proc/self/mountinfo shows it.
const (
	FSName = "corralfs"
	FSType = "fuse." + FSName
)

// SeccompSocket is where the sysinfo agent's keeper listens for seccomp
// listener fds (the OCI listenerPath `corral run` writes into specs).
const SeccompSocket = "/run/corralfs/seccomp.sock"

// View is one file corralfs serves and the kernel file it stands in for.
type View struct {
	Rel    string // below the view mount, e.g. "proc/meminfo"
	Kernel string // the kernel's file, where a container gets it bound
	// PSI marks the pressure files: they exist only on kernels with
	// pressure stall information, and are a container's own only where
	// its cgroup has pressure files of its own.
	PSI bool
}

// The views, by name, so the renderer table and the bind list name the
// same values instead of repeating path strings.
var (
	Meminfo        = View{Rel: "proc/meminfo", Kernel: "/proc/meminfo"}
	Cpuinfo        = View{Rel: "proc/cpuinfo", Kernel: "/proc/cpuinfo"}
	Stat           = View{Rel: "proc/stat", Kernel: "/proc/stat"}
	Uptime         = View{Rel: "proc/uptime", Kernel: "/proc/uptime"}
	Loadavg        = View{Rel: "proc/loadavg", Kernel: "/proc/loadavg"}
	Swaps          = View{Rel: "proc/swaps", Kernel: "/proc/swaps"}
	Diskstats      = View{Rel: "proc/diskstats", Kernel: "/proc/diskstats"}
	PressureCPU    = View{Rel: "proc/pressure/cpu", Kernel: "/proc/pressure/cpu", PSI: true}
	PressureMemory = View{Rel: "proc/pressure/memory", Kernel: "/proc/pressure/memory", PSI: true}
	PressureIO     = View{Rel: "proc/pressure/io", Kernel: "/proc/pressure/io", PSI: true}
	CPUOnline      = View{Rel: "sys/devices/system/cpu/online", Kernel: "/sys/devices/system/cpu/online"}
	CPUPossible    = View{Rel: "sys/devices/system/cpu/possible", Kernel: "/sys/devices/system/cpu/possible"}
	CPUPresent     = View{Rel: "sys/devices/system/cpu/present", Kernel: "/sys/devices/system/cpu/present"}

	// CPUDir is the LXCFS-style directory holding the CPU files (and the
	// per-CPU directories corralfs renumbers): containers get it bound
	// whole over its twin, as LXCFS recipes do.
	CPUDir = View{Rel: "sys/devices/system/cpu", Kernel: "/sys/devices/system/cpu"}
)

// Views is every file corralfs serves with a renderer of its own. The
// slice is shared: callers must not modify it.
var Views = []View{
	Meminfo, Cpuinfo, Stat, Uptime, Loadavg, Swaps, Diskstats,
	PressureCPU, PressureMemory, PressureIO,
	CPUOnline, CPUPossible, CPUPresent,
}

// Binds is what a container gets bound, in mount order: every /proc view
// over its twin, then the CPU directory (which carries the sys views).
var Binds = []View{
	Meminfo, Cpuinfo, Stat, Uptime, Loadavg, Swaps, Diskstats,
	PressureCPU, PressureMemory, PressureIO,
	CPUDir,
}
