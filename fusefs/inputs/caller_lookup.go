package inputs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Finding the init of a pid namespace the resolver has not seen (issue 11).
// The first version scanned all of /proc under one global lock: one
// container holding 3,000 pid namespaces made an unrelated container's
// first read wait 29-55 s. Now, in order:
//
//  1. The kernel answers: ioctl(NS_GET_TGID_FROM_PIDNS, 1) on the caller's
//     /proc/PID/ns/pid translates pid 1 of that namespace into ours
//     (include/uapi/linux/nsfs.h; Linux 6.11+, "nsfs: add pid translation
//     ioctls", made for LXCFS; ENOTTY before, remembered).
//  2. The caller's ancestry: parents (PPid) while they stay in the
//     namespace; the one whose innermost NSpid is 1 is the init. Every
//     process of a `corral run` container descends from its init.
//  3. Only for a process that entered by setns (`corral exec`) on a
//     kernel without the ioctl, whose parent is outside: a scan of /proc,
//     at most maxScans at a time, for that namespace alone.
//
// Lookups of one namespace are merged (the first does the work, the
// others wait for it); no lookup holds a lock another namespace waits
// for, so one namespace's slow lookup never delays another's.

// nsGetTgidFromPidns is NS_GET_TGID_FROM_PIDNS, _IOR(0xb7, 0x7, int).
const nsGetTgidFromPidns = 0x8004b707

// maxScans bounds the concurrent last-resort /proc scans.
const maxScans = 2

// maxAncestry bounds the parent walk (pid namespaces nest 32 deep; process
// trees inside one are rarely deeper than a few levels).
const maxAncestry = 4096

type nsLookup struct {
	done chan struct{}
	e    *nsEntry
	err  error
}

// ErrResources: the daemon ran out of descriptors or memory while
// identifying a caller or gathering its numbers. The open fails with the
// error rather than show the host's numbers or half a file.
var ErrResources = errors.New("corralfs is out of descriptors or memory")

// OutOfResources tells an exhaustion of the daemon's resources from a
// caller that cannot be identified.
func OutOfResources(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM) || errors.Is(err, ErrResources)
}

// pidfdBudget is how many pidfds the cache may hold: a quarter of the
// descriptor limit (the rest serves requests and cgroup reads). Asked at
// each lookup: the limit may be changed while we run (prlimit).
func pidfdBudget() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 256
	}
	return int64(min(max(rl.Cur/4, 16), 8192))
}

// findInit finds and caches the init of namespace ns for caller pid,
// replacing stale (a dead entry seen by the caller).
func (r *Resolver) findInit(pid int, ns uint64, stale *nsEntry) (*nsEntry, error) {
	r.mu.Lock()
	if e := r.byNS[ns]; e != nil && e != stale {
		// Another request made it while we looked.
		r.mu.Unlock()
		return e, nil
	}
	if l := r.pending[ns]; l != nil {
		r.mu.Unlock()
		<-l.done
		if l.err == nil || OutOfResources(l.err) {
			return l.e, l.err
		}
		// That lookup started from another process, which may have
		// exited meanwhile: start from ours.
		return r.lookupOwn(pid, ns)
	}
	l := &nsLookup{done: make(chan struct{})}
	r.pending[ns] = l
	r.mu.Unlock()

	r.lookups.Add(1)
	e, err := r.lookupInit(pid, ns)

	r.mu.Lock()
	delete(r.pending, ns)
	if old := r.byNS[ns]; old != nil {
		delete(r.byNS, ns)
		r.closePidfd(old)
	}
	if err == nil {
		r.byNS[ns] = e
	}
	r.mu.Unlock()
	l.e, l.err = e, err
	close(l.done)
	return e, err
}

// lookupOwn is a waiter's own lookup after a merged one failed; it caches
// its result unless another lookup got there first.
func (r *Resolver) lookupOwn(pid int, ns uint64) (*nsEntry, error) {
	e, err := r.lookupInit(pid, ns)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.byNS[ns]; cur != nil {
		r.closePidfd(e)
		return cur, nil
	}
	r.byNS[ns] = e
	return e, nil
}

func (r *Resolver) lookupInit(pid int, ns uint64) (*nsEntry, error) {
	if !r.noIoctl.Load() {
		init, err := r.initFromKernel(pid, ns)
		switch {
		case err == nil:
			return r.pin(init, ns)
		case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL):
			r.noIoctl.Store(true) // Linux < 6.11: remember, use the ancestry
		default:
			return nil, err
		}
	}
	init, err := r.initFromAncestry(pid, ns)
	if err == nil {
		return r.pin(init, ns)
	}
	if OutOfResources(err) {
		return nil, err
	}
	// Entered by setns: the ancestry leaves the namespace before its init.
	r.scanSlots <- struct{}{}
	defer func() { <-r.scanSlots }()
	init, err = r.scanForInit(ns)
	if err != nil {
		return nil, err
	}
	return r.pin(init, ns)
}

// initFromKernel asks the kernel for pid 1 of pid's namespace, as a pid of
// ours.
func (r *Resolver) initFromKernel(pid int, ns uint64) (int, error) {
	fd, err := unix.Open(r.procRoot+"/"+strconv.Itoa(pid)+"/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Ino != ns {
		return 0, fmt.Errorf("pid %d left pid namespace %d", pid, ns)
	}
	// The argument is the pid itself, not a pointer to it.
	init, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetTgidFromPidns, 1)
	if errno != 0 {
		if errno == unix.ESRCH {
			return 0, fmt.Errorf("pid namespace %d has no init any more", ns)
		}
		return 0, errno
	}
	return int(init), nil
}

// initFromAncestry walks up from pid while the parents stay in namespace
// ns, to the process that is pid 1 there.
func (r *Resolver) initFromAncestry(pid int, ns uint64) (int, error) {
	cur := pid
	for i := 0; i < maxAncestry; i++ {
		ppid, nsPid, err := statusIDs(r.procRoot + "/" + strconv.Itoa(cur) + "/status")
		if err != nil {
			return 0, err
		}
		if nsPid == 1 {
			return cur, nil
		}
		if ppid <= 0 {
			break
		}
		if ino, err := nsInode(r.procRoot + "/" + strconv.Itoa(ppid) + "/ns/pid"); err != nil {
			if OutOfResources(err) {
				return 0, err
			}
			break
		} else if ino != ns {
			break // entered by setns: its parent is outside
		}
		cur = ppid
	}
	return 0, fmt.Errorf("pid %d: no init among its ancestors in pid namespace %d", pid, ns)
}

// scanForInit looks through /proc for the init of namespace ns.
func (r *Resolver) scanForInit(ns uint64) (int, error) {
	d, err := os.Open(r.procRoot)
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		dir := r.procRoot + "/" + name
		if ino, err := nsInode(dir + "/ns/pid"); err != nil || ino != ns {
			if OutOfResources(err) {
				return 0, err
			}
			continue
		}
		if _, nsPid, err := statusIDs(dir + "/status"); err != nil || nsPid != 1 {
			if OutOfResources(err) {
				return 0, err
			}
			continue
		}
		return pid, nil
	}
	return 0, fmt.Errorf("no init found for pid namespace %d", ns)
}

// pin makes the cache entry for init: with a pidfd while the budget
// allows, else checked by start time. It checks, after the pidfd is open,
// that the pid still names a process in namespace ns: if the init had died
// and its pid been reused in between, the pidfd would name the wrong
// process.
func (r *Resolver) pin(pid int, ns uint64) (*nsEntry, error) {
	e := &nsEntry{initPid: pid, pidfd: -1}
	if r.takePidfdSlot() {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			e.pidfd = fd
		case errors.Is(err, unix.ENOSYS) || OutOfResources(err):
			// No pidfds here, or none left: the start time check
			// is as safe, one file read dearer per request.
			r.pidfds.Add(-1)
		default:
			r.pidfds.Add(-1)
			return nil, fmt.Errorf("init %d: pidfd_open: %w", pid, err)
		}
	}
	st, err := startTime(r.procRoot, pid)
	if err == nil {
		var ino uint64
		if ino, err = nsInode(r.procRoot + "/" + strconv.Itoa(pid) + "/ns/pid"); err == nil && ino != ns {
			err = fmt.Errorf("pid %d left namespace %d", pid, ns)
		}
	}
	if err != nil {
		r.closePidfd(e)
		return nil, fmt.Errorf("init %d: %w", pid, err)
	}
	e.initStart = st
	return e, nil
}

// takePidfdSlot reserves one pidfd of the budget. When the budget is used
// up it first closes the pidfds of dead namespaces (at most once a
// second: the periodic Forget does the rest).
func (r *Resolver) takePidfdSlot() bool {
	budget := r.maxPidfds
	if budget == 0 {
		budget = pidfdBudget()
	}
	if r.pidfds.Add(1) <= budget {
		return true
	}
	r.pidfds.Add(-1)
	now := time.Now().UnixNano()
	if last := r.reclaimAt.Load(); now-last < int64(time.Second) || !r.reclaimAt.CompareAndSwap(last, now) {
		return false
	}
	r.Forget()
	if r.pidfds.Add(1) <= budget {
		return true
	}
	r.pidfds.Add(-1)
	return false
}

// statusIDs returns PPid and the innermost NSpid (the pid in the process's
// own namespace) of a /proc/PID/status file.
func statusIDs(path string) (ppid, nsPid int, err error) {
	var buf [2048]byte
	b, err := readProc(path, buf[:0])
	if err != nil {
		return 0, 0, err
	}
	if ppid, err = statusField(b, "\nPPid:", path, false); err != nil {
		return 0, 0, err
	}
	nsPid, err = statusField(b, "\nNSpid:", path, true)
	return ppid, nsPid, err
}

// statusField parses the first (or last) number of a status line.
func statusField(b []byte, key, path string, last bool) (int, error) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("%s: no %s line", path, key[1:])
	}
	line, _, _ := bytes.Cut(b[i+len(key):], []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return 0, fmt.Errorf("%s: empty %s line", path, key[1:])
	}
	f := fields[0]
	if last {
		f = fields[len(fields)-1]
	}
	return strconv.Atoi(string(f))
}
