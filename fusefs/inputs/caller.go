// Package inputs tells who is reading (caller.go, caller_lookup.go: the
// pid's namespace, container init and cgroups, cached per pid namespace)
// and samples each container's load (sampler.go): what fusefs gathers into
// a render.Input, for the FUSE views and the sysinfo(2) answers alike.
package inputs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
)

// Who is asking: the FUSE request's pid (as seen in the daemon's pid
// namespace) -> the pid namespace it lives in -> the init of that namespace
// -> the init's cgroups. A container is the init of a pid namespace, so
// every process of the container, including ones that joined later with
// setns (`corral exec`), sees the same numbers.
//
// Finding the init of a namespace seen for the first time is
// caller_lookup.go's business: the kernel names it (NS_GET_TGID_FROM_PIDNS)
// or the caller's ancestry does; no lookup holds a lock another namespace's
// lookup waits for.
//
// The namespace -> init mapping is cached. A pid namespace inode can only
// be reused after the namespace died, and a namespace dies only after its
// init exited; so a cache entry is valid exactly as long as the process it
// names is the same, still living init. We hold a pidfd of it and poll it
// on every hit (one syscall, no file read): a pidfd keeps naming the
// process it was opened for, so pid reuse can never show one container
// another's data. Where pidfd_open is unavailable, or the entries already
// hold maxPidfds descriptors (one container holding thousands of pid
// namespaces must not use up the daemon's descriptors: others would then
// get errors), the start time in /proc/INIT/stat is compared instead.

// ContainerKey identifies a container for caches and the loadavg sampler:
// the pid namespace inode plus the start time of its init (so a recycled
// namespace inode is a different key). Callers in the daemon's own pid
// namespace are keyed by their cgroup paths instead (HostPaths).
type ContainerKey struct {
	NSInode   uint64
	InitStart uint64 // clock ticks since boot; 0 for host callers
	HostPaths string // cgroup paths, for host-namespace callers only
}

// Caller is the resolved identity of a request's process.
type Caller struct {
	Key           ContainerKey
	HostNamespace bool
	InitPid       int           // host pid of the namespace's init (0 for host callers)
	InitStart     time.Duration // init start, since host boot
	Paths         cgroupreader.Paths
	// Tid is the host tid of the thread whose request this is: the
	// reader, which the loadavg and stat views show running (Sampler.Load).
	Tid       int
	cgroupKey string // pathsKey(Paths), when the resolver made it
}

// pathsTTL bounds how long an init's cgroup paths are trusted: a container
// is rarely moved to another cgroup, but when it is, it sees its new
// cgroup within this time.
const pathsTTL = time.Second

type nsEntry struct {
	initPid   int
	initStart uint64
	fdMu      sync.RWMutex // a poll never races the close of its fd
	pidfd     int          // -1 without pidfd support or once closed
	closed    bool
	paths     atomic.Pointer[stampedPaths]
}

type stampedPaths struct {
	paths cgroupreader.Paths
	key   string // pathsKey(paths), made once per paths lookup, not per request
	at    time.Time
}

// Resolver maps request pids to Callers.
type Resolver struct {
	procRoot string
	reader   cgroupreader.Reader
	selfNS   uint64

	mu      sync.RWMutex
	byNS    map[uint64]*nsEntry
	pending map[uint64]*nsLookup // lookups under way, one per namespace

	lookups   atomic.Uint64 // lookups done (tests check cache hits)
	pidfds    atomic.Int64  // pidfds the entries hold
	maxPidfds int64         // 0: pidfdBudget() (tests set it)
	noIoctl   atomic.Bool   // the kernel has no NS_GET_TGID_FROM_PIDNS
	reclaimAt atomic.Int64  // unix nanos of the last reclaim of dead entries' pidfds
	scanSlots chan struct{} // bounds concurrent /proc scans (the last resort)
}

// NewResolver needs the daemon's /proc (procRoot "" means /proc).
func NewResolver(procRoot string, reader cgroupreader.Reader) (*Resolver, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	self, err := nsInode(procRoot + "/self/ns/pid")
	if err != nil {
		return nil, fmt.Errorf("own pid namespace: %w", err)
	}
	return &Resolver{procRoot: procRoot, reader: reader, selfNS: self, byNS: map[uint64]*nsEntry{},
		pending: map[uint64]*nsLookup{}, scanSlots: make(chan struct{}, maxScans)}, nil
}

var errNoCaller = errors.New("request has no caller pid (the caller's pid namespace is not below ours)")

// Resolve identifies the process pid. The hit path costs one stat of
// /proc/PID/ns/pid and one poll of a pidfd.
func (r *Resolver) Resolve(pid int) (Caller, error) {
	c, err := r.resolve(pid)
	c.Tid = pid
	return c, err
}

func (r *Resolver) resolve(pid int) (Caller, error) {
	if pid <= 0 {
		return Caller{}, errNoCaller
	}
	ns, err := nsInode(r.procRoot + "/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return Caller{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if ns == r.selfNS {
		return r.hostCaller(pid)
	}
	r.mu.RLock()
	e := r.byNS[ns]
	r.mu.RUnlock()
	if e != nil && r.alive(e) {
		return r.callerOf(ns, e)
	}
	if e, err = r.findInit(pid, ns, e); err != nil {
		return Caller{}, err
	}
	return r.callerOf(ns, e)
}

func (r *Resolver) hostCaller(pid int) (Caller, error) {
	p, err := r.reader.PathsOf(pid)
	if err != nil {
		return Caller{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	key := pathsKey(p)
	return Caller{Key: ContainerKey{NSInode: r.selfNS, HostPaths: key}, HostNamespace: true, Paths: p, cgroupKey: key}, nil
}

func (r *Resolver) callerOf(ns uint64, e *nsEntry) (Caller, error) {
	sp := e.paths.Load()
	if now := time.Now(); sp == nil || now.Sub(sp.at) > pathsTTL {
		p, err := r.reader.PathsOf(e.initPid)
		if err != nil {
			return Caller{}, fmt.Errorf("init %d: %w", e.initPid, err)
		}
		sp = &stampedPaths{paths: p, key: pathsKey(p), at: now}
		e.paths.Store(sp)
	}
	return Caller{
		Key:       ContainerKey{NSInode: ns, InitStart: e.initStart},
		InitPid:   e.initPid,
		InitStart: ticksToDuration(e.initStart),
		Paths:     sp.paths,
		cgroupKey: sp.key,
	}, nil
}

// alive says whether e still names the living init it was made for.
func (r *Resolver) alive(e *nsEntry) bool {
	e.fdMu.RLock()
	defer e.fdMu.RUnlock()
	if e.closed {
		return false
	}
	if e.pidfd >= 0 {
		fds := []unix.PollFd{{Fd: int32(e.pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			// A pidfd becomes readable when its process exits.
			return err == nil && n == 0
		}
	}
	st, err := startTime(r.procRoot, e.initPid)
	return err == nil && st == e.initStart
}

// Forget drops entries whose init died (called periodically, and when
// the pidfd budget is used up). The checks run outside the lock: an entry
// without a pidfd costs a file read, and lookups must not wait for them.
func (r *Resolver) Forget() {
	r.mu.RLock()
	list := make(map[uint64]*nsEntry, len(r.byNS))
	for ns, e := range r.byNS {
		list[ns] = e
	}
	r.mu.RUnlock()
	var dead []uint64
	for ns, e := range list {
		if !r.alive(e) {
			dead = append(dead, ns)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range dead {
		if e := r.byNS[ns]; e == list[ns] {
			delete(r.byNS, ns)
			r.closePidfd(e)
		}
	}
}

// Close releases the pidfds.
func (r *Resolver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, e := range r.byNS {
		delete(r.byNS, ns)
		r.closePidfd(e)
	}
}

func (r *Resolver) closePidfd(e *nsEntry) {
	e.fdMu.Lock()
	defer e.fdMu.Unlock()
	e.closed = true
	if e.pidfd >= 0 {
		unix.Close(e.pidfd)
		e.pidfd = -1
		r.pidfds.Add(-1)
	}
}

// nsInode returns the inode of a namespace link such as /proc/PID/ns/pid.
// It reads the link ("pid:[4026531836]") rather than stat it: following
// the link makes the kernel find or create the namespace's nsfs dentry,
// which costs twice as much, and this runs on every request.
func nsInode(path string) (uint64, error) {
	var buf [64]byte
	n, err := syscall.Readlink(path, buf[:])
	if err != nil {
		return 0, err
	}
	b := buf[:n]
	i, j := bytes.IndexByte(b, '['), bytes.LastIndexByte(b, ']')
	if i < 0 || j <= i+1 {
		return 0, fmt.Errorf("%s: unexpected link %q", path, b)
	}
	var ino uint64
	for _, c := range b[i+1 : j] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s: unexpected link %q", path, b)
		}
		ino = ino*10 + uint64(c-'0')
	}
	return ino, nil
}

// nsPidOf returns the last field of the NSpid line of /proc/PID/status: the
// process's pid in its own pid namespace.
func nsPidOf(statusPath string) (int, error) {
	var buf [2048]byte
	b, err := readProc(statusPath, buf[:0])
	if err != nil {
		return 0, err
	}
	return statusField(b, "\nNSpid:", statusPath, true)
}

// startTime returns field 22 (starttime, clock ticks since boot) of
// /proc/PID/stat. The command name may contain spaces and parentheses, so
// fields are counted after the last ')'.
func startTime(procRoot string, pid int) (uint64, error) {
	var buf [512]byte
	b, err := readProc(procRoot+"/"+strconv.Itoa(pid)+"/stat", buf[:0])
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	// After ")": state is field 3, starttime field 22 -> the 20th field.
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux ABI Go supports.
const clockTicks = 100

func ticksToDuration(t uint64) time.Duration {
	return time.Duration(t) * (time.Second / clockTicks)
}

// CgroupKey is the caller's cgroups as a stable string: what the handle
// quota charges (everything reading in one cgroup, whatever its pid
// namespaces).
//
// The heap profile after a million reads (docs/benchmarks.md) had building
// it at every OPEN (handle quota) and loadavg read as 15% of all bytes
// allocated: it is made once per lookup of the paths and carried.
func (c *Caller) CgroupKey() string {
	if c.cgroupKey != "" {
		return c.cgroupKey
	}
	return pathsKey(c.Paths)
}

// pathsKey flattens cgroup paths into a stable string key.
func pathsKey(p cgroupreader.Paths) string {
	if len(p.V1) == 0 {
		return p.Unified
	}
	// Keys in a fixed order: controllers that matter for the views.
	var b []byte
	b = append(b, p.Unified...)
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"} {
		b = append(b, '|')
		b = append(b, p.V1[c]...)
	}
	return string(b)
}

// Known is a container (pid namespace) the resolver holds.
type Known struct {
	PidNS   uint64
	InitPid int
	Cgroup  string // v1 and hybrid: the memory controller's path; v2: the one
}

// Known lists the containers the resolver holds, for status.
func (r *Resolver) Known() []Known {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Known, 0, len(r.byNS))
	for ns, e := range r.byNS {
		k := Known{PidNS: ns, InitPid: e.initPid}
		if sp := e.paths.Load(); sp != nil {
			// A hybrid host's unified hierarchy holds no controllers.
			if k.Cgroup = sp.paths.V1["memory"]; k.Cgroup == "" {
				k.Cgroup = sp.paths.Unified
			}
		}
		out = append(out, k)
	}
	return out
}

// Len is how many containers the resolver holds.
func (r *Resolver) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byNS)
}
