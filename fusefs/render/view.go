// Package render computes the per-container views of /proc and /sys files
// (meminfo.go, cpuinfo.go, stat.go, ...) and sysinfo(2)'s answer
// (sysinfo.go). Render functions are pure: everything they may look at is
// in an Input; no FUSE types, no file reads, no clocks. That is what makes
// them golden-testable (golden_test.go, testdata/). The views table
// (views.go) says what each view reads; fusefs identifies the caller,
// gathers an Input and serves the result over FUSE.
package render

import (
	"time"

	"github.com/corral-dev/corral/cgroupreader"
)

// Host holds the host's own versions of the files views are derived from.
// Only the files a view declares in Needs are filled in.
type Host struct {
	Meminfo   []byte // /proc/meminfo
	Cpuinfo   []byte // /proc/cpuinfo
	Stat      []byte // /proc/stat
	Uptime    []byte // /proc/uptime
	Loadavg   []byte // /proc/loadavg
	Swaps     []byte // /proc/swaps
	Diskstats []byte // /proc/diskstats
	Pressure  []byte // /proc/pressure/<resource> for pressure views
	// CPUs are the host's online CPU numbers, sorted
	// (/sys/devices/system/cpu/online).
	CPUs []int
}

// HostNeeds is a bit set of the host files a view needs.
type HostNeeds uint32

const (
	NeedMeminfo HostNeeds = 1 << iota
	NeedCpuinfo
	NeedStat
	NeedUptime
	NeedLoadavg
	NeedSwaps
	NeedDiskstats
	NeedPressure
	NeedCPUs
)

// LoadAvg is a container's load as the sampler computed it.
type LoadAvg struct {
	Known   bool       // false until the sampler has seen the container
	Avg     [3]float64 // 1, 5, 15 minute averages
	Running int        // runnable tasks now
	Blocked int        // uninterruptible (D state) tasks now: stat's procs_blocked
	Total   int        // all tasks now
	LastPid int        // highest pid in the container's pid namespace
}

// Container is what the views know about the reading container besides its
// cgroups.
type Container struct {
	// HostNamespace is true when the caller shares the daemon's pid
	// namespace: it gets the view of its own cgroup but host times.
	HostNamespace bool
	// InitStart is when the container's init started, as time since host
	// boot (starttime of /proc/INIT/stat).
	InitStart time.Duration
	// Now is the host's uptime (CLOCK_BOOTTIME) at the moment of the read.
	Now  time.Duration
	Load LoadAvg
}

// Options are the daemon's switches that change what views say.
type Options struct {
	SwapReporting bool // report the container's swap (else SwapTotal 0)
	CPUQuotaView  bool // let the CPU quota shrink the visible CPU count
}

// Input is everything a render function may look at.
type Input struct {
	Host      Host
	Snap      cgroupreader.Snapshot
	Container Container
	Opts      Options
}

// RenderFunc renders one view, appending it to dst (which may be nil) and
// returning the extended buffer, as strconv's Append functions do: a
// caller that keeps a buffer renders into it without allocating. An error
// means the view cannot be computed from this Input (e.g. the memory
// controller is Missing); the result is then nil, and the caller serves
// the host's own file for this read and logs once per container. The
// result never aliases the Input's buffers, so the caller may recycle
// those right away.
type RenderFunc func(dst []byte, in *Input) ([]byte, error)

// View describes one virtual file.
type View struct {
	Path   string    // relative to the mount, e.g. "proc/meminfo"
	Needs  HostNeeds // host files to fill into Input.Host
	Snap   cgroupreader.Part
	Load   bool // needs Input.Container.Load
	Render RenderFunc
	// HostPath is the host file served when Render fails.
	HostPath string
}
