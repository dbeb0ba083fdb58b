package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOpts are the inputs of Exec besides the process spec.
type ExecOpts struct {
	// Detach returns as soon as the process runs (exit is then 0); the
	// process is reparented to the container's init when we exit.
	Detach bool
	// PidFile, if set, receives the host pid of the new process.
	PidFile string
	// ConsoleSocket receives the pty master when p.Terminal is set.
	ConsoleSocket string
	// OnConsole, when p.Terminal is set and there is no ConsoleSocket, is
	// called with the pty master before the process runs (foreground tty);
	// the callee owns the master.
	OnConsole func(master *os.File)
	// Stdin, Stdout, Stderr: as in CreateOpts (nil = /dev/null).
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles become fds 3, 4, ... in the process.
	ExtraFiles []*os.File
	// ForwardSignals (foreground only) passes the signals this process
	// receives (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) on to
	// the process, like `runc exec`.
	ForwardSignals bool
}

// forwardedSignals are what a foreground exec passes on.
var forwardedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// Exec runs p inside the container (its namespaces, cgroup, root) and,
// unless Detach, waits for it: exit is its status (128+N on signal N).
//
// The namespaces are entered without cgo: a locked thread T setns()es into
// pid, net, ipc and uts (pid affects T's children only), then forks the
// exec init (on v2 straight into the container's cgroup), which joins the
// cgroup and mount namespaces itself: a thread already in the container's
// cgroup namespace may not clone into a cgroup outside it (ENOENT), and
// setns into a mount namespace needs an fs_struct of its own. The time namespace cannot be joined by a multi-threaded
// process (setns returns EUSERS), so T makes a new one with the same
// offsets as the container's: the clocks read exactly the same, only the
// namespace id differs (TODO: visible in /proc/PID/ns/time).
func (c *Container) Exec(p *specs.Process, o ExecOpts) (exit int, err error) {
	if _, err := c.checkStatus(OpExec); err != nil {
		return -1, err
	}
	if p == nil || len(p.Args) == 0 {
		return -1, errors.New("exec: process.args is empty: nothing to run")
	}
	if p.Cwd != "" && !filepath.IsAbs(p.Cwd) {
		return -1, fmt.Errorf("exec: cwd %q must be absolute", p.Cwd)
	}
	if p.Terminal && o.ConsoleSocket == "" && o.OnConsole == nil {
		return -1, errors.New("exec: terminal needs a console socket (or, in the foreground, a console handler)")
	}
	pid := c.st.Pid
	joins, mntNS, cgNS, timeNS, err := c.openNamespaces()
	if err != nil {
		return -1, err
	}
	defer func() {
		for _, j := range joins {
			j.f.Close()
		}
		mntNS.Close()
		if cgNS != nil {
			cgNS.Close()
		}
	}()
	cfg := &initConfig{
		ID: c.st.ID, Spec: c.st.Spec, Rootfs: c.st.Rootfs, Bundle: c.st.Bundle, NoPivot: c.st.NoPivot, NoNewKeyring: c.st.NoNewKeyring,
		FifoFd: -1, NumExtraFiles: len(o.ExtraFiles), Process: p, CgroupNsFd: -1,
	}
	l := &launch{
		spawnOpts: spawnOpts{kind: "exec", joinNS: joins, setsid: p.Terminal},
		stdio:     [3]*os.File{o.Stdin, o.Stdout, o.Stderr}, extra: o.ExtraFiles,
		initFiles: []initFile{{f: mntNS, at: &cfg.MntNsFd}},
		cfg:       cfg, who: "exec init",
	}
	if _, ok := specUserNS(c.st.Spec); ok {
		// The exec init joins the container's user namespace in the raw
		// fork, before its execve, and becomes its root there (userns.go).
		userNS, err := os.OpenFile(fmt.Sprintf("/proc/%d/ns/user", pid), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("exec: container user namespace: %w", err)
		}
		defer userNS.Close()
		l.userNS = &rawUserNS{join: userNS}
		if Rootless() {
			// Without the host's root the others can only be joined
			// from inside the user namespace that owns them.
			l.userNS.joinAfter, l.userNS.joinsPid, l.joinNS = nsFiles(joins), joinsNS(joins, unix.CLONE_NEWPID), nil
		}
	}
	if timeNS {
		if l.timeOffsets, err = readTimeOffsets(pid); err != nil {
			return -1, fmt.Errorf("exec: container clocks: %w", err)
		}
		l.newTimeNS = true
	}
	// The namespace files are open: if the init is still the same process
	// now, they are the container's (not a recycled pid's).
	if !c.initAlive() {
		return -1, fmt.Errorf("exec: container %q stopped", c.st.ID)
	}
	if l.cg, err = c.cgroup(); err != nil {
		return -1, err
	}
	// Under a pids limit the exec init (a Go program with a few threads)
	// joins the cgroup only once ready, just before its execve: moving a
	// process in is allowed past pids.max, while the threads it would
	// start inside the cgroup could be refused (the Go runtime's crash
	// dump "failed to create new OS thread"). Create does the same by
	// setting the limit late.
	l.cgroupLate = hasPidsLimit(c.st.Spec)
	if sharesMountNS(c.st.Spec) {
		// The namespace's root is the caller's: enter the init's chroot.
		cfg.ExecRoot = fmt.Sprintf("/proc/%d/root", pid)
	}
	if cgNS != nil {
		l.initFiles = append(l.initFiles, initFile{f: cgNS, at: &cfg.CgroupNsFd})
	}
	child, err := l.start()
	if err != nil {
		return -1, err
	}
	ok := false
	defer func() {
		if !ok {
			child.kill()
		}
	}()
	if err := child.handshake(c, c.execSyncHandlers(o)); err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, child.proc.Pid); err != nil {
			return -1, err
		}
	}
	if err := child.proceed(nil); err != nil {
		return -1, err
	}
	ok = true
	if o.Detach {
		child.proc.Release()
		return 0, nil
	}
	if o.ForwardSignals {
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, forwardedSignals...)
		defer signal.Stop(sigs)
		go func() {
			for s := range sigs {
				child.proc.Signal(s)
			}
		}()
	}
	return waitStatus(child.proc)
}

// execSyncHandlers answers an exec init's console message: the pty
// master goes to the console socket or to the foreground caller. An exec
// init runs no hooks.
func (c *Container) execSyncHandlers(o ExecOpts) syncHandlers {
	return syncHandlers{console: func(master *os.File) error {
		if o.ConsoleSocket != "" {
			defer master.Close()
			return sendConsole(o.ConsoleSocket, master)
		}
		o.OnConsole(master)
		return nil
	}}
}

// openNamespaces opens the container init's namespaces: the ones the
// spawning thread joins, the mount and cgroup namespaces (joined by the
// exec init) and whether the container has a time namespace of its own.
func (c *Container) openNamespaces() (joins []nsFD, mnt, cg *os.File, timeNS bool, err error) {
	pid := c.st.Pid
	open := func(name string) (*os.File, error) {
		return os.OpenFile(fmt.Sprintf("/proc/%d/ns/%s", pid, name), os.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	fail := func(e error) ([]nsFD, *os.File, *os.File, bool, error) {
		for _, j := range joins {
			j.f.Close()
		}
		for _, f := range []*os.File{mnt, cg} {
			if f != nil {
				f.Close()
			}
		}
		return nil, nil, nil, false, fmt.Errorf("exec: container namespaces: %w", e)
	}
	for _, ns := range c.st.Spec.Linux.Namespaces {
		switch ns.Type {
		case specs.MountNamespace:
			if mnt, err = open("mnt"); err != nil {
				return fail(err)
			}
		case specs.CgroupNamespace:
			if cg, err = open("cgroup"); err != nil {
				return fail(err)
			}
		case specs.TimeNamespace:
			timeNS = true
		case specs.UserNamespace:
		default:
			f, err := open(nsProcName[ns.Type])
			if err != nil {
				return fail(err)
			}
			joins = append(joins, nsFD{flag: nsFlags[ns.Type], f: f})
		}
	}
	if mnt == nil {
		// No mount namespace of its own: the init's is the caller's, which
		// the exec init still joins (the spawning thread has a private one).
		if mnt, err = open("mnt"); err != nil {
			return fail(err)
		}
	}
	return joins, mnt, cg, timeNS, nil
}

// waitStatus waits for proc and reports its status as a shell would:
// the exit code, or 128+N for death by signal N.
func waitStatus(proc *os.Process) (int, error) {
	st, err := proc.Wait()
	if err != nil {
		return -1, err
	}
	// ProcessState.Sys is a syscall.WaitStatus (not unix.WaitStatus).
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}
