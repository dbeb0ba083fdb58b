package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why a second way to fork: Go's os/exec always forks with CLONE_VM|
// CLONE_VFORK (unless a user namespace is made). Before Linux 6.3 (commit
// "fs/exec: switch timens when a task gets a new mm") the kernel refuses
// CLONE_VM while the forking thread's time_ns_for_children differs from its
// own time namespace (EINVAL), which is exactly the state thread T is in
// after unshare(CLONE_NEWTIME). So on those kernels the child comes from a
// plain fork (clone3 without CLONE_VM, as Go itself did before it used
// vfork), whose child runs only raw system calls up to execve.

// cloneArgs is struct clone_args (CLONE_ARGS_SIZE_VER2).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// rawSpawn forks and execs path with files as fds 0..n-1 (nil entries are
// not allowed: the caller maps them to /dev/null), in new namespaces
// cloneFlags, optionally straight into a v2 cgroup (cgroupFD >= 0).
//
// us, when non-nil, puts the child into a user namespace before its
// execve (see userns.go and rawUserNS).
func rawSpawn(path string, args, env []string, files []*os.File, cloneFlags uintptr, cgroupFD int, setsid bool, us *rawUserNS) (*os.Process, error) {
	pathp, err := syscall.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	argv, err := syscall.SlicePtrFromStrings(args)
	if err != nil {
		return nil, err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return nil, err
	}
	// Every source fd is first copied above the target range, so dup3
	// onto 0..n-1 in the child can never overwrite a source still needed.
	high := make([]int, len(files))
	for i := range high {
		high[i] = -1
	}
	defer func() {
		for _, fd := range high {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for i, f := range files {
		if high[i], err = unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 100+len(files)); err != nil {
			return nil, fmt.Errorf("fork: dup fd: %w", err)
		}
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	barrier := [2]int{-1, -1}
	joinFd := -1
	var rootfsp, timensp *byte
	if us != nil && us.timeOffsets != nil {
		timensp = &us.timeOffsets[0]
	}
	if us != nil && us.rootfs != "" {
		if rootfsp, err = syscall.BytePtrFromString(us.rootfs); err != nil {
			return nil, err
		}
	}
	if us != nil {
		if err := unix.Pipe2(barrier[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		defer closeFds(barrier[:])
		if us.join != nil {
			joinFd = int(us.join.Fd())
		}
	}
	ca := cloneArgs{flags: uint64(cloneFlags), exitSignal: uint64(unix.SIGCHLD)}
	if cgroupFD >= 0 {
		ca.flags |= unix.CLONE_INTO_CGROUP
		ca.cgroup = uint64(cgroupFD)
	}
	// No Go signal handler may run in the child (its runtime is a frozen
	// copy): block every signal on this thread across the fork. The child
	// keeps them blocked through execve; the init unblocks them
	// (MaybeInit), and processSetup.exec clears the mask for the user's
	// program.
	all := ^uint64(0)
	var old uint64
	runtime.LockOSThread() // already locked on T; harmless, and keeps the mask on this thread
	defer runtime.UnlockOSThread()
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	after := us.afterUser()
	pid, errno := forkExecChild(&ca, pathp, &argv[0], &envv[0], &high[0], len(high), setsid, errPipe[1], barrier[0], joinFd, rootfsp, timensp, len(us.timeOffsetsOrNil()), after)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	runtime.KeepAlive(pathp)
	runtime.KeepAlive(argv)
	runtime.KeepAlive(envv)
	runtime.KeepAlive(high)
	runtime.KeepAlive(rootfsp)
	runtime.KeepAlive(us)
	runtime.KeepAlive(after)
	unix.Close(errPipe[1])
	defer unix.Close(errPipe[0])
	if after != nil {
		unix.Close(after.pidPipe[1])
		defer unix.Close(after.pidPipe[0])
	}
	if errno != 0 {
		return nil, &os.SyscallError{Syscall: "clone3", Err: errno}
	}
	if us != nil {
		// The child waits at the barrier for its mappings; without them
		// it would exec unmapped and lose every capability.
		if us.mapIDs != nil {
			if err := us.mapIDs(pid); err != nil {
				unix.Kill(pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
				return nil, err
			}
		}
		unix.Write(barrier[1], []byte{0})
	}
	if after != nil && after.forkAgain {
		// The child forked the init (CLONE_PARENT: our child too) into
		// the pid namespace it joined or made, and exits: the init is
		// the process to return.
		if pid, err = secondFork(pid, after.pidPipe[0], errPipe[0], path); err != nil {
			return nil, err
		}
	}
	// The pipe closes at a successful execve (CLOEXEC); otherwise the child
	// writes its errno first.
	var buf [4]byte
	n := 0
	for {
		n, err = unix.Read(errPipe[0], buf[:])
		if err != unix.EINTR {
			break
		}
	}
	if n == 4 {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		return nil, &os.PathError{Op: "fork/exec", Path: path, Err: syscall.Errno(binary.NativeEndian.Uint32(buf[:]))}
	}
	return os.FindProcess(pid)
}

// forkExecChild forks; the child dup3()s fds[i] onto i, optionally
// setsid()s and execs. The child runs nothing but raw system calls on a
// copy of this stack (nosplit: it must not grow it).
//
//go:nosplit
//go:norace
func forkExecChild(ca *cloneArgs, path *byte, argv, envv **byte, fds *int, nfds int, setsid bool, errPipe, barrier, joinUserNS int, rootfs, timens *byte, timensLen int, after *rawAfterUser) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(unix.SYS_CLONE3, uintptr(unsafe.Pointer(ca)), unsafe.Sizeof(*ca), 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	// In the child.
	var rootfsFd uintptr
	if setsid {
		_, _, e = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0)
	}
	if barrier >= 0 && e == 0 {
		// User namespace: wait until the parent has written the mappings
		// (a byte; EOF means it gave up), join one given by path, then
		// become its root, so that execve keeps the capabilities (they
		// are kept only for the namespace's root). setgroups fails where
		// it is denied (own-ids rootless map); there are no groups then.
		var b [1]byte
		n, _, e1 := syscall.RawSyscall(unix.SYS_READ, uintptr(barrier), uintptr(unsafe.Pointer(&b[0])), 1)
		if e1 != 0 || n != 1 {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
		}
		if joinUserNS >= 0 {
			_, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(joinUserNS), unix.CLONE_NEWUSER, 0)
		}
		if after != nil && e == 0 {
			e = rawAfterUserNS(after)
		}
		if rootfs != nil && e == 0 {
			// Open the rootfs while our fsuid is still the host's root:
			// the namespace's root may not traverse the directories
			// above it (0700 /var/lib/...). It ends up as fd nfds.
			dirfd := unix.AT_FDCWD
			r, _, e1 := syscall.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(rootfs)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, 0, 0)
			if e = e1; e == 0 {
				rootfsFd, _, e = syscall.RawSyscall(unix.SYS_FCNTL, r, unix.F_DUPFD_CLOEXEC, uintptr(100+2*nfds))
			}
		}
		if timens != nil && e == 0 {
			// A time namespace of the user namespace's own (the host's
			// would need the host's root): execve moves us into it.
			// Before setresuid, which makes us non-dumpable and so our
			// /proc/self files the host root's, no longer ours to write.
			e = rawNewTimeNS(timens, timensLen)
		}
		if e == 0 {
			syscall.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
			_, _, e = syscall.RawSyscall(unix.SYS_SETRESGID, 0, 0, 0)
		}
		if e == 0 {
			_, _, e = syscall.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0)
		}
	}
	for i := 0; i < nfds && e == 0; i++ {
		fd := *(*int)(unsafe.Add(unsafe.Pointer(fds), uintptr(i)*unsafe.Sizeof(nfds)))
		_, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(fd), uintptr(i), 0)
	}
	if rootfsFd != 0 && e == 0 {
		_, _, e = syscall.RawSyscall(unix.SYS_DUP3, rootfsFd, uintptr(nfds), 0)
	}
	if e == 0 {
		_, _, e = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(argv)), uintptr(unsafe.Pointer(envv)))
	}
	code := uint32(e)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(errPipe), uintptr(unsafe.Pointer(&code)), 4)
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
}

// rawUserNS is how a raw-spawned child enters a user namespace: a new one
// (CLONE_NEWUSER among the clone flags) gets its mappings from mapIDs,
// run by the parent while the child waits; or the child joins join.
type rawUserNS struct {
	mapIDs func(pid int) error
	join   *os.File
	// rootfs, if set, is opened (O_PATH) by the child before it becomes
	// the namespace's root and handed to the init as fd len(files).
	rootfs string
	// timeOffsets, if set, is the text of timens_offsets for a new time
	// namespace the child makes inside the user namespace.
	timeOffsets []byte
	// joinAfter and unshareAfter: namespaces joined or made after the
	// user namespace (rawAfterUser); joinsPid: joinAfter has a pid one.
	joinAfter    []*os.File
	unshareAfter uintptr
	joinsPid     bool
}

func (u *rawUserNS) timeOffsetsOrNil() []byte {
	if u == nil {
		return nil
	}
	return u.timeOffsets
}

// timensOffsetsPath is NUL-terminated for the raw child.
var timensOffsetsPath = []byte("/proc/self/timens_offsets\x00")

// rawNewTimeNS unshares a time namespace and writes its offsets, in the
// raw child (raw system calls only).
//
//go:nosplit
//go:norace
func rawNewTimeNS(data *byte, n int) syscall.Errno {
	if _, _, e := syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWTIME, 0, 0); e != 0 {
		return e
	}
	dirfd := unix.AT_FDCWD
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&timensOffsetsPath[0])), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return e
	}
	_, _, e = syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(data)), uintptr(n))
	syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	return e
}

func closeFds(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// rawAfterUser: namespaces the child joins or makes once it is in the user
// namespace (they are owned by it, or must be: a rootless caller may not
// join them from outside, and new ones made by clone(2) before a setns
// into a user namespace would belong to the host's). A pid namespace
// takes effect for children only, so then the child forks the init again
// (forkAgain) and exits.
type rawAfterUser struct {
	joins     []int   // fds of /proc/PID/ns/* to setns (type 0: any)
	unshare   uintptr // CLONE_NEW* to make
	forkAgain bool
	ca        cloneArgs // the second fork's (CLONE_PARENT)
	pidPipe   [2]int    // the init's pid, from the child
}

// rawAfterUserNS runs in the raw child: setns, unshare and, for a pid
// namespace, the second fork. Only the init returns.
//
//go:nosplit
//go:norace
func rawAfterUserNS(a *rawAfterUser) syscall.Errno {
	for i := 0; i < len(a.joins); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.joins[i]), 0, 0); e != 0 {
			return e
		}
	}
	if a.unshare != 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_UNSHARE, a.unshare, 0, 0); e != 0 {
			return e
		}
	}
	if !a.forkAgain {
		return 0
	}
	r, _, e := syscall.RawSyscall6(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a.ca)), unsafe.Sizeof(a.ca), 0, 0, 0, 0)
	if e != 0 {
		return e
	}
	if r != 0 {
		pid := uint32(r)
		syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.pidPipe[1]), uintptr(unsafe.Pointer(&pid)), 4)
		for {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	return 0
}

// secondFork reaps the first child and returns the init's pid (from
// pidPipe), or the first child's error (from errPipe).
func secondFork(first, pidPipe, errPipe int, path string) (int, error) {
	var buf [4]byte
	n, _ := readFull(pidPipe, buf[:])
	var ws unix.WaitStatus
	unix.Wait4(first, &ws, 0, nil)
	if n == 4 {
		return int(binary.NativeEndian.Uint32(buf[:])), nil
	}
	if n, _ = readFull(errPipe, buf[:]); n == 4 {
		return 0, &os.PathError{Op: "fork/exec", Path: path, Err: syscall.Errno(binary.NativeEndian.Uint32(buf[:]))}
	}
	return 0, fmt.Errorf("fork/exec %s: the first child exited (%v) without starting the init", path, ws)
}

func readFull(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// afterUser prepares the child's rawAfterUser, or nil.
func (u *rawUserNS) afterUser() *rawAfterUser {
	if u == nil || (len(u.joinAfter) == 0 && u.unshareAfter == 0) {
		return nil
	}
	a := &rawAfterUser{unshare: u.unshareAfter, pidPipe: [2]int{-1, -1}}
	for _, f := range u.joinAfter {
		a.joins = append(a.joins, int(f.Fd()))
	}
	a.forkAgain = u.unshareAfter&unix.CLONE_NEWPID != 0 || u.joinsPid
	if a.forkAgain {
		// exit_signal 0: with CLONE_PARENT the init's is the first
		// child's (SIGCHLD).
		a.ca = cloneArgs{flags: unix.CLONE_PARENT}
		if err := unix.Pipe2(a.pidPipe[:], unix.O_CLOEXEC); err != nil {
			return nil
		}
	}
	return a
}
