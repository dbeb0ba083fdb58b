package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Environment of a re-executed child: which init to be, and where the sync
// socket is. Nothing else of the caller's environment is passed on (the
// container's environment comes from the spec at execve).
const syncFdEnv = "_CORRAL_SYNC_FD"

// spawnOpts describe how to start a child (container init or exec init).
type spawnOpts struct {
	kind       string  // "create" or "exec": the value of _CORRAL_INIT
	cloneFlags uintptr // new namespaces (CLONE_NEW*), not time: see timeOffsets
	// newTimeNS: give the child a new time namespace with these offsets.
	// A time namespace can only get offsets before a process enters it,
	// so it cannot come from a clone flag: thread T unshares it (which
	// affects T's future children only), writes T's timens_offsets, forks.
	newTimeNS   bool
	timeOffsets timeOffsets
	// joinNS are namespaces (fds of /proc/PID/ns/X) that T enters before
	// forking; pid and time only take effect for children, which is why
	// the fork must come from T.
	joinNS []nsFD
	// cgroupFD (v2) makes the child start inside the cgroup
	// (clone3 CLONE_INTO_CGROUP): no window where it runs outside.
	cgroupFD *os.File
	// files become the child's fds 0, 1, 2, 3, ... (nil = /dev/null).
	files  []*os.File
	syncFd int // index of the child's end of the sync socket in files
	setsid bool
	// callerMountNS: the child must stay in the caller's mount namespace
	// (a spec without one), so the binary is protected without the
	// private mount namespace (protectExe).
	callerMountNS bool
	// userNS: the child enters a user namespace before its execve (only
	// the raw fork can hold it at a barrier for that).
	userNS *rawUserNS
}

// nsFD is an open namespace file to join.
type nsFD struct {
	flag uintptr // CLONE_NEW*
	f    *os.File
}

// spawn starts the child from a dedicated, locked OS thread T that is
// never unlocked: T's namespace changes (mount namespace with the
// protected binary, time namespace, joined namespaces) must not leak to
// other goroutines, and Go destroys a thread whose goroutine exits while
// locked.
func spawn(o spawnOpts) (*os.Process, error) {
	type result struct {
		proc *os.Process
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: T dies with this goroutine
		proc, err := spawnOnThread(o)
		ch <- result{proc, err}
	}()
	r := <-ch
	return r.proc, r.err
}

// rawForkForced makes every spawn use rawSpawn (tests exercise that path
// on kernels where os/exec would do).
var rawForkForced = os.Getenv("CORRAL_RAWFORK") == "1"

func spawnOnThread(o spawnOpts) (*os.Process, error) {
	exe, done, err := protectExe(o.callerMountNS)
	if err != nil {
		return nil, err
	}
	defer done()
	if o.newTimeNS && o.userNS != nil && ExecEntersTimeNS() {
		// Made by the child inside its user namespace (spawn_rawfork.go).
		o.userNS.timeOffsets = []byte(o.timeOffsets.text())
	} else if o.newTimeNS && o.userNS != nil && Rootless() {
		return nil, errors.New("rootless: a time namespace needs Linux 6.3 or later (execve entering it); drop the time namespace from the spec")
	} else if o.newTimeNS {
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return nil, fmt.Errorf("new time namespace: %w", err)
		}
		if err := o.timeOffsets.write(); err != nil {
			return nil, err
		}
	}
	for _, ns := range o.joinNS {
		if err := unix.Setns(int(ns.f.Fd()), int(ns.flag)); err != nil {
			return nil, fmt.Errorf("join namespace %s: %w", ns.f.Name(), err)
		}
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	files := append([]*os.File(nil), o.files...)
	for i, f := range files {
		if f == nil {
			files[i] = devnull
		}
	}
	env := []string{initEnv + "=" + o.kind, syncFdEnv + "=" + strconv.Itoa(o.syncFd), "GOGC=off", "GOMAXPROCS=1"}
	args := []string{"corral-init"}
	cgroupFD := -1
	if o.cgroupFD != nil {
		cgroupFD = int(o.cgroupFD.Fd())
	}
	if rawForkForced || o.userNS != nil {
		return startErr(rawSpawn(exe, args, env, files, o.cloneFlags, cgroupFD, o.setsid, o.userNS))
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       args,
		Env:        env,
		Stdin:      files[0],
		Stdout:     files[1],
		Stderr:     files[2],
		ExtraFiles: files[3:],
		SysProcAttr: &unix.SysProcAttr{
			Cloneflags:  o.cloneFlags,
			Setsid:      o.setsid,
			UseCgroupFD: cgroupFD >= 0,
			CgroupFD:    cgroupFD,
		},
	}
	err = cmd.Start()
	if err != nil && o.newTimeNS && errors.Is(err, unix.EINVAL) {
		// Linux < 6.3: no vfork into another time namespace (see
		// spawn_rawfork.go).
		return startErr(rawSpawn(exe, args, env, files, o.cloneFlags, cgroupFD, o.setsid, nil))
	}
	if err != nil {
		return startErr(nil, err)
	}
	// Stdio are *os.File: exec.Cmd started no copying goroutines, so the
	// process can be waited for directly.
	return cmd.Process, nil
}

func startErr(p *os.Process, err error) (*os.Process, error) {
	if err == nil {
		return p, nil
	}
	return nil, fmt.Errorf("start container init: %w", err)
}
