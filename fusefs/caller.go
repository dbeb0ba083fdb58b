package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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
// The namespace -> init mapping is cached. A pid namespace inode can only
// be reused after the namespace died, and a namespace dies only after its
// init exited; so a cache entry is valid exactly as long as the process it
// names is the same, still living init. We hold a pidfd of it and poll it
// on every hit (one syscall, no file read): a pidfd keeps naming the
// process it was opened for, so pid reuse can never show one container
// another's data. Where pidfd_open is unavailable the start time in
// /proc/INIT/stat is compared instead.

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
	at    time.Time
}

// Resolver maps request pids to Callers.
type Resolver struct {
	procRoot string
	reader   cgroupreader.Reader
	selfNS   uint64

	mu   sync.RWMutex
	byNS map[uint64]*nsEntry

	scanMu sync.Mutex // one /proc scan at a time
	scans  uint64     // number of scans done (tests check cache hits)
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
	return &Resolver{procRoot: procRoot, reader: reader, selfNS: self, byNS: map[uint64]*nsEntry{}}, nil
}

var errNoCaller = errors.New("request has no caller pid (the caller's pid namespace is not below ours)")

// Resolve identifies the process pid. The hit path costs one stat of
// /proc/PID/ns/pid and one poll of a pidfd.
func (r *Resolver) Resolve(pid int) (Caller, error) {
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
	if e, err = r.findInit(ns, e); err != nil {
		return Caller{}, err
	}
	return r.callerOf(ns, e)
}

func (r *Resolver) hostCaller(pid int) (Caller, error) {
	p, err := r.reader.PathsOf(pid)
	if err != nil {
		return Caller{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Caller{Key: ContainerKey{NSInode: r.selfNS, HostPaths: pathsKey(p)}, HostNamespace: true, Paths: p}, nil
}

func (r *Resolver) callerOf(ns uint64, e *nsEntry) (Caller, error) {
	sp := e.paths.Load()
	if now := time.Now(); sp == nil || now.Sub(sp.at) > pathsTTL {
		p, err := r.reader.PathsOf(e.initPid)
		if err != nil {
			return Caller{}, fmt.Errorf("init %d: %w", e.initPid, err)
		}
		sp = &stampedPaths{paths: p, at: now}
		e.paths.Store(sp)
	}
	return Caller{
		Key:       ContainerKey{NSInode: ns, InitStart: e.initStart},
		InitPid:   e.initPid,
		InitStart: ticksToDuration(e.initStart),
		Paths:     sp.paths,
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

// findInit scans /proc for the init of namespace ns and caches it,
// replacing stale (a dead entry seen by the caller).
func (r *Resolver) findInit(ns uint64, stale *nsEntry) (*nsEntry, error) {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	// Another request may have done the work while we waited.
	r.mu.RLock()
	e := r.byNS[ns]
	r.mu.RUnlock()
	if e != nil && e != stale && r.alive(e) {
		return e, nil
	}
	r.scans++
	e, err := r.scanForInit(ns)
	r.mu.Lock()
	if old := r.byNS[ns]; old != nil {
		delete(r.byNS, ns)
		closePidfd(old)
	}
	if err == nil {
		r.byNS[ns] = e
	}
	r.mu.Unlock()
	return e, err
}

func (r *Resolver) scanForInit(ns uint64) (*nsEntry, error) {
	d, err := os.Open(r.procRoot)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		dir := r.procRoot + "/" + name
		if ino, err := nsInode(dir + "/ns/pid"); err != nil || ino != ns {
			continue
		}
		if nsPid, err := nsPidOf(dir + "/status"); err != nil || nsPid != 1 {
			continue
		}
		return r.pin(pid, ns)
	}
	return nil, fmt.Errorf("no init found for pid namespace %d", ns)
}

// pin opens a pidfd for the init and checks, after it is open, that the pid
// still names a process in namespace ns: if the init had died and its pid
// been reused in between, the pidfd would name the wrong process.
func (r *Resolver) pin(pid int, ns uint64) (*nsEntry, error) {
	e := &nsEntry{initPid: pid, pidfd: -1}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		e.pidfd = fd
	} else if !errors.Is(err, unix.ENOSYS) {
		return nil, fmt.Errorf("init %d: pidfd_open: %w", pid, err)
	}
	st, err := startTime(r.procRoot, pid)
	if err == nil {
		var ino uint64
		if ino, err = nsInode(r.procRoot + "/" + strconv.Itoa(pid) + "/ns/pid"); err == nil && ino != ns {
			err = fmt.Errorf("pid %d left namespace %d", pid, ns)
		}
	}
	if err != nil {
		closePidfd(e)
		return nil, fmt.Errorf("init %d: %w", pid, err)
	}
	e.initStart = st
	return e, nil
}

// Forget drops entries whose init died (called periodically).
func (r *Resolver) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, e := range r.byNS {
		if !r.alive(e) {
			delete(r.byNS, ns)
			closePidfd(e)
		}
	}
}

// Close releases the pidfds.
func (r *Resolver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, e := range r.byNS {
		delete(r.byNS, ns)
		closePidfd(e)
	}
}

func closePidfd(e *nsEntry) {
	e.fdMu.Lock()
	defer e.fdMu.Unlock()
	e.closed = true
	if e.pidfd >= 0 {
		unix.Close(e.pidfd)
		e.pidfd = -1
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
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte("\nNSpid:"))
	if i < 0 {
		return 0, fmt.Errorf("%s: no NSpid line", statusPath)
	}
	line, _, _ := bytes.Cut(b[i+len("\nNSpid:"):], []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return 0, fmt.Errorf("%s: empty NSpid line", statusPath)
	}
	return strconv.Atoi(string(fields[len(fields)-1]))
}

// startTime returns field 22 (starttime, clock ticks since boot) of
// /proc/PID/stat. The command name may contain spaces and parentheses, so
// fields are counted after the last ')'.
func startTime(procRoot string, pid int) (uint64, error) {
	var buf [512]byte
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	n, err := f.Read(buf[:])
	f.Close()
	if err != nil {
		return 0, err
	}
	b := buf[:n]
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
