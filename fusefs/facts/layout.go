package facts

import (
	"net/url"
	"strings"
)

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

// BoundDir is the directory below the view mount holding one directory
// per container (named by its cgroup) with the container's own /proc
// views: what `corral run` and the hook bind when the daemon offers it
// (docs/design.md decision 49). Hidden, so LXCFS-style listings of the
// mount look as before.
const BoundDir = ".bound"

// BoundKeyOf names the cgroup a container's bound views are for, from the
// cgroup paths of its init (unified: the cgroup2 path, v1: controller ->
// path): the path (without its leading slash) with "/" and "%" escaped,
// so distinct cgroups never share a key (a container cannot name a cgroup
// of its own so that it collides with another's). On cgroup v1 and hybrid
// hosts it is the memory controller's path, and every other controller
// the views read must be at the same path (and the cgroup2 path, which
// decides pressure, there or at the root); otherwise the content would
// depend on more than the key, and there is no key. The root cgroup has
// none: the host reads the shared files.
func BoundKeyOf(unified string, v1 map[string]string) (string, bool) {
	path := unified
	if len(v1) > 0 {
		path = v1["memory"]
		for _, c := range []string{"cpu", "cpuacct", "cpuset", "blkio", "pids"} {
			if q, ok := v1[c]; ok && q != path {
				return "", false
			}
		}
		if unified != "" && unified != "/" && unified != path {
			return "", false
		}
	}
	return BoundKeyOfCgroup(path)
}

// BoundKeyOfCgroup is the key of a container whose cgroup is path (from
// the hierarchy root) in every controller: what `corral run` computes from
// the cgroupsPath it gives the container.
func BoundKeyOfCgroup(path string) (string, bool) {
	path = strings.Trim(path, "/")
	if path == "" {
		return "", false
	}
	return url.PathEscape(path), true
}

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
