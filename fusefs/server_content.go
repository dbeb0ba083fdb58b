package fusefs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
)

// content computes what node n says to process pid. It is the whole
// per-open work: identify the caller, gather the Input, render. It needs
// nothing but the node and the pid, so any process serving the connection
// can answer (ARCHITECTURE decision 5).
func (fs *FS) content(n *node, pid int) ([]byte, syscall.Errno) {
	switch n.kind {
	case kindView:
		return fs.viewContent(n, pid), 0
	case kindHostFile:
		b, err := os.ReadFile(n.hostPath)
		if err != nil {
			return nil, errnoOf(err)
		}
		return b, 0
	case kindCPUList:
		visible, _ := fs.visibleCPUs(pid)
		b, err := os.ReadFile(n.hostPath)
		if err != nil {
			return nil, errnoOf(err)
		}
		return renumberCPUList(b, visible, formatList)
	case kindCPUOnline:
		if visible, _ := fs.visibleCPUs(pid); n.cpu >= len(visible) {
			return nil, syscall.ENOENT
		}
		return []byte("1\n"), 0
	case kindCPUFile:
		visible, _ := fs.visibleCPUs(pid)
		if n.cpu >= len(visible) {
			return nil, syscall.ENOENT
		}
		b, err := os.ReadFile(fs.tree.sysCP + "/cpu" + strconv.Itoa(visible[n.cpu]) + "/" + n.rel)
		if err != nil {
			return nil, errnoOf(err)
		}
		if n.format == formatAsIs {
			return b, 0
		}
		return renumberCPUList(b, visible, n.format)
	}
	return nil, syscall.EISDIR
}

// viewContent renders a view for the caller, or serves the host's file
// when that is impossible (unknown caller, cgroup vanished, render error),
// logging once per container and view.
func (fs *FS) viewContent(n *node, pid int) []byte {
	v := n.view
	c, err := fs.resolver.Resolve(pid)
	if err != nil {
		return fs.fallback(v, ContainerKey{}, fmt.Errorf("caller %d: %w", pid, err))
	}
	in, err := fs.input(&c, v.Needs, v.Snap, v.Load, v.HostPath)
	if err != nil {
		return fs.fallback(v, c.Key, err)
	}
	out, err := v.Render(in)
	if err == nil && aliasesHost(out, &in.Host) {
		// The render returned (part of) a host buffer that is about to
		// be recycled: keep a copy.
		out = append([]byte(nil), out...)
	}
	fs.putInput(in)
	if err != nil {
		return fs.fallback(v, c.Key, err)
	}
	return out
}

// aliasesHost reports whether out shares storage with one of h's buffers.
// Two slices of one array end at the same last element of their capacity.
func aliasesHost(out []byte, h *Host) bool {
	if cap(out) == 0 {
		return false
	}
	end := &out[:cap(out)][cap(out)-1]
	for _, b := range [...][]byte{h.Meminfo, h.Cpuinfo, h.Stat, h.Uptime, h.Loadavg, h.Swaps, h.Diskstats, h.Pressure} {
		if cap(b) > 0 && &b[:cap(b)][cap(b)-1] == end {
			return true
		}
	}
	return false
}

func (fs *FS) fallback(v *View, key ContainerKey, why error) []byte {
	fs.Stats.Fallbacks.Add(1)
	fs.logOnce(key, v.Path, "serving the host's file", why)
	b, err := os.ReadFile(v.HostPath)
	if err != nil {
		fs.logOnce(key, v.HostPath, "host file unreadable too", err)
		return nil
	}
	return b
}

type logKey struct {
	c    ContainerKey
	path string
}

// logOnce logs a fallback once per container and path. The set is bounded:
// when it fills up it starts over (a log line repeats, nothing grows).
func (fs *FS) logOnce(key ContainerKey, path, msg string, err error) {
	k := logKey{key, path}
	fs.loggedMu.Lock()
	if fs.logged == nil || len(fs.logged) > 10000 {
		fs.logged = map[logKey]bool{}
	}
	seen := fs.logged[k]
	fs.logged[k] = true
	fs.loggedMu.Unlock()
	if !seen {
		fs.log.Warn(msg, "path", path, "pidns", key.NSInode, "cgroup", key.HostPaths, "err", err)
	}
}

// input gathers everything a render function may look at. Host files are
// read fresh on every call: they are what the kernel says now.
func (fs *FS) input(c *Caller, needs HostNeeds, opt cgroupreader.Options, load bool, hostPath string) (*Input, error) {
	in := fs.getInput()
	in.Opts = fs.cfg.Options
	snap, err := fs.snapshot(c, opt)
	if err != nil {
		fs.putInput(in)
		return nil, err
	}
	in.Snap = snap
	for _, f := range hostFiles {
		if needs&f.need == 0 {
			continue
		}
		path := f.path
		if f.need == NeedPressure {
			path = hostPath
		}
		b, err := readInto(*f.field(&in.Host), fs.procPath(path))
		if err != nil {
			fs.putInput(in)
			return nil, fmt.Errorf("host %s: %w", path, err)
		}
		*f.field(&in.Host) = b
	}
	if needs&NeedCPUs != 0 {
		if in.Host.CPUs, err = fs.hostCPUs(); err != nil {
			fs.putInput(in)
			return nil, err
		}
	}
	in.Container = Container{HostNamespace: c.HostNamespace, InitStart: c.InitStart, Now: bootTime()}
	if load {
		in.Container.Load = fs.sampler.Load(c)
	}
	return in, nil
}

var hostFiles = []struct {
	need  HostNeeds
	path  string
	field func(*Host) *[]byte
}{
	{NeedMeminfo, "/proc/meminfo", func(h *Host) *[]byte { return &h.Meminfo }},
	{NeedCpuinfo, "/proc/cpuinfo", func(h *Host) *[]byte { return &h.Cpuinfo }},
	{NeedStat, "/proc/stat", func(h *Host) *[]byte { return &h.Stat }},
	{NeedUptime, "/proc/uptime", func(h *Host) *[]byte { return &h.Uptime }},
	{NeedLoadavg, "/proc/loadavg", func(h *Host) *[]byte { return &h.Loadavg }},
	{NeedSwaps, "/proc/swaps", func(h *Host) *[]byte { return &h.Swaps }},
	{NeedDiskstats, "/proc/diskstats", func(h *Host) *[]byte { return &h.Diskstats }},
	{NeedPressure, "", func(h *Host) *[]byte { return &h.Pressure }},
}

// procPath maps a /proc path to the configured proc root (tests).
func (fs *FS) procPath(p string) string {
	if fs.cfg.ProcRoot != "" && len(p) > 5 && p[:6] == "/proc/" {
		return fs.cfg.ProcRoot + p[5:]
	}
	return p
}

// getInput / putInput recycle Inputs and their host-file buffers: a
// meminfo read then allocates little more than its output.
func (fs *FS) getInput() *Input {
	if in, ok := fs.inputs.Get().(*Input); ok {
		return in
	}
	return &Input{}
}

func (fs *FS) putInput(in *Input) {
	h := in.Host
	*in = Input{}
	in.Host = Host{
		Meminfo: h.Meminfo[:0], Cpuinfo: h.Cpuinfo[:0], Stat: h.Stat[:0], Uptime: h.Uptime[:0],
		Loadavg: h.Loadavg[:0], Swaps: h.Swaps[:0], Diskstats: h.Diskstats[:0], Pressure: h.Pressure[:0],
	}
	fs.inputs.Put(in)
}

// readInto reads a whole (small, pseudo-) file into buf's storage.
func readInto(buf []byte, path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(4096, cap(buf)))...)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// snapshot returns the caller's cgroup Snapshot, from the short cache when
// it is fresh enough.
func (fs *FS) snapshot(c *Caller, opt cgroupreader.Options) (cgroupreader.Snapshot, error) {
	now := time.Now()
	k := snapKey{c.Key, opt}
	if s, ok := fs.snaps.get(k, now); ok {
		return s, nil
	}
	s, err := fs.cfg.Reader.Snapshot(c.Paths, opt)
	if err != nil {
		return s, fmt.Errorf("cgroup snapshot: %w", err)
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
	cpus, err := ParseCPUList(b)
	if err != nil {
		return nil, err
	}
	fs.cpus, fs.cpusAt = cpus, now
	return cpus, nil
}

const hostCPUsTTL = time.Second

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
	snap, err := fs.snapshot(&c, cgroupreader.Options{})
	if err != nil {
		return host, false
	}
	in := Input{Host: Host{CPUs: host}, Snap: snap, Opts: fs.cfg.Options}
	return VisibleCPUs(&in), true
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

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
