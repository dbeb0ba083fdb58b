package fusefs

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/corral-dev/corral/fusefs/render"
)

// Gathering a render function's Input: host files, the caller's cgroup
// Snapshot, times and load. This is the per-open cost besides the FUSE
// transport, so it avoids work twice: host files that change slowly and
// the same for everyone (meminfo, cpuinfo, swaps) and Snapshots (per
// container) are kept for the snapshot TTL, and the buffers of the other
// host files are recycled.

var hostFiles = [...]struct {
	need   render.HostNeeds
	path   string
	field  func(*render.Host) *[]byte
	shared bool // may come from the short host-file cache
}{
	{render.NeedMeminfo, "/proc/meminfo", func(h *render.Host) *[]byte { return &h.Meminfo }, true},
	{render.NeedCpuinfo, "/proc/cpuinfo", func(h *render.Host) *[]byte { return &h.Cpuinfo }, true},
	{render.NeedStat, "/proc/stat", func(h *render.Host) *[]byte { return &h.Stat }, false},
	{render.NeedUptime, "/proc/uptime", func(h *render.Host) *[]byte { return &h.Uptime }, false},
	{render.NeedLoadavg, "/proc/loadavg", func(h *render.Host) *[]byte { return &h.Loadavg }, false},
	{render.NeedSwaps, "/proc/swaps", func(h *render.Host) *[]byte { return &h.Swaps }, true},
	{render.NeedDiskstats, "/proc/diskstats", func(h *render.Host) *[]byte { return &h.Diskstats }, false},
	{render.NeedPressure, "", func(h *render.Host) *[]byte { return &h.Pressure }, false},
}

// inputBuf is a pooled Input with scratch storage for the host files read
// fresh. Shared (cached) host files are never written to.
type inputBuf struct {
	in      render.Input
	scratch [len(hostFiles)][]byte
}

// aliases reports whether out shares storage with a scratch buffer (two
// slices of one array end at the same last element of their capacity).
func (ib *inputBuf) aliases(out []byte) bool {
	if cap(out) == 0 {
		return false
	}
	end := &out[:cap(out)][cap(out)-1]
	for _, b := range ib.scratch {
		if cap(b) > 0 && &b[:cap(b)][cap(b)-1] == end {
			return true
		}
	}
	return false
}

func (fs *FS) getInput() *inputBuf {
	if ib, ok := fs.inputs.Get().(*inputBuf); ok {
		return ib
	}
	return &inputBuf{}
}

func (fs *FS) putInput(ib *inputBuf) {
	ib.in = render.Input{}
	fs.inputs.Put(ib)
}

// input gathers everything a render function may look at.
func (fs *FS) input(c *inputs.Caller, needs render.HostNeeds, opt cgroupreader.Part, load bool, hostPath string) (*inputBuf, error) {
	ib := fs.getInput()
	in := &ib.in
	in.Opts = fs.cfg.Options
	snap, err := fs.snapshot(c, opt)
	if err != nil {
		fs.putInput(ib)
		return nil, err
	}
	in.Snap = snap
	now := time.Now()
	for i, f := range hostFiles {
		if needs&f.need == 0 {
			continue
		}
		path := f.path
		if f.need == render.NeedPressure {
			path = hostPath
		}
		path = fs.procPath(path)
		var b []byte
		if f.shared {
			b, err = fs.hostCache.get(path, now)
		} else {
			b, err = inputs.ReadSmall(path, ib.scratch[i], true)
			ib.scratch[i] = b
		}
		if err != nil {
			fs.putInput(ib)
			return nil, fmt.Errorf("host file: %w", err)
		}
		*f.field(&in.Host) = b
	}
	if needs&render.NeedCPUs != 0 {
		if in.Host.CPUs, err = fs.hostCPUs(); err != nil {
			fs.putInput(ib)
			return nil, err
		}
	}
	in.Container = render.Container{HostNamespace: c.HostNamespace, InitStart: c.InitStart, Now: bootTime()}
	if load {
		in.Container.Load = fs.sampler.Load(c)
	}
	return ib, nil
}

// procPath maps a /proc path to the configured proc root (tests).
func (fs *FS) procPath(p string) string {
	if fs.cfg.ProcRoot != "" && len(p) > 5 && p[:6] == "/proc/" {
		return fs.cfg.ProcRoot + p[5:]
	}
	return p
}

// hostFileCache keeps host files that every container's view starts from
// for a short time. Entries are immutable once stored.
type hostFileCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]hostFileEntry
}

type hostFileEntry struct {
	data []byte
	at   time.Time
}

func (c *hostFileCache) get(path string, now time.Time) ([]byte, error) {
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.m[path]
		c.mu.Unlock()
		if ok && now.Sub(e.at) <= c.ttl {
			return e.data, nil
		}
	}
	b, err := inputs.ReadSmall(path, nil, true)
	if err != nil || c.ttl <= 0 {
		return b, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]hostFileEntry{}
	}
	c.m[path] = hostFileEntry{data: b, at: now}
	c.mu.Unlock()
	return b, nil
}

// snapshot returns the caller's cgroup Snapshot, from the short cache when
// it is fresh enough.
func (fs *FS) snapshot(c *inputs.Caller, opt cgroupreader.Part) (cgroupreader.Snapshot, error) {
	now := time.Now()
	k := snapKey{c.Key, opt}
	if s, ok := fs.snaps.get(k, now); ok {
		return s, nil
	}
	s, err := fs.cfg.Reader.Snapshot(c.Paths, opt)
	if err != nil {
		return s, fmt.Errorf("cgroup snapshot: %w", err)
	}
	// A group unreadable for want of descriptors is not a missing
	// controller: rendering without it would show the host's numbers.
	for g, gerr := range s.Missing {
		if inputs.OutOfResources(gerr) {
			return s, fmt.Errorf("cgroup snapshot: %s: %w (%w)", g, inputs.ErrResources, gerr)
		}
	}
	fs.snaps.put(k, s, now)
	return s, nil
}

// hostCPUs returns the host's online CPUs, re-read at most every
// hostCPUsTTL (CPU hotplug is rare, and this is read for every CPU view).
func (fs *FS) hostCPUs() ([]int, error) {
	now := time.Now()
	fs.cpusMu.Lock()
	defer fs.cpusMu.Unlock()
	if fs.cpus != nil && now.Sub(fs.cpusAt) < hostCPUsTTL {
		return fs.cpus, nil
	}
	b, err := os.ReadFile(fs.tree.sysCP + "/online")
	if err != nil {
		return nil, fmt.Errorf("host cpus: %w", err)
	}
	cpus, err := facts.ParseCPUList(b)
	if err != nil {
		return nil, err
	}
	fs.cpus, fs.cpusAt = cpus, now
	return cpus, nil
}

const hostCPUsTTL = time.Second

// cpuParts is what the visible CPUs are computed from: the same parts the
// online/possible/present views ask for, so they share cached Snapshots.
var cpuParts = cgroupreader.PartCPUQuota | cgroupreader.PartCpuset

// visibleCPUs returns the host CPUs the caller sees, in container order.
// Without a usable caller or Snapshot it is every host CPU (ok = false).
func (fs *FS) visibleCPUs(pid int) (cpus []int, ok bool) {
	host, err := fs.hostCPUs()
	if err != nil || len(host) == 0 {
		host = []int{0}
	}
	c, err := fs.resolver.Resolve(pid)
	if err != nil {
		return host, false
	}
	snap, err := fs.snapshot(&c, cpuParts)
	if err != nil {
		return host, false
	}
	in := render.Input{Host: render.Host{CPUs: host}, Snap: snap, Opts: fs.cfg.Options}
	return render.VisibleCPUs(&in), true
}

// bootTime is CLOCK_BOOTTIME: the host's uptime, the clock /proc/uptime
// and process start times count in.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
