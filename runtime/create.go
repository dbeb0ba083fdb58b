package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/seccomp"
)

// CreateOpts are the inputs of Create.
type CreateOpts struct {
	// Bundle is the bundle directory: config.json and the base of a
	// relative root.path. With Spec set, only the latter.
	Bundle string
	// Spec, if non-nil, is used instead of Bundle/config.json.
	Spec *specs.Spec
	// PidFile, if set, receives the init's host pid once created.
	PidFile string
	// ConsoleSocket is a unix socket path: with process.terminal the pty
	// master is sent there (SCM_RIGHTS), as runc does for podman/containerd.
	ConsoleSocket string
	// Stdin, Stdout, Stderr become the container process's 0, 1, 2 (when it
	// has no terminal). nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles become fds 3, 4, ... in the container (runc's
	// --preserve-fds, systemd socket activation's LISTEN_FDS).
	ExtraFiles []*os.File
	// Foreground: the caller stays the init's parent and calls Wait. With
	// process.terminal and no ConsoleSocket, Container.Console() returns the
	// pty master.
	Foreground bool
	// NoPivot uses MS_MOVE+chroot instead of pivot_root (runc --no-pivot).
	NoPivot bool
	// NoNewKeyring keeps the caller's session keyring instead of a fresh
	// _ses.<id> one (runc --no-new-keyring); exec follows the same choice.
	NoNewKeyring bool
	// ImageRoot is the directory of an image's overlay root made for this
	// container (image.Store.MountRoot); Delete releases it. The caller
	// releases it when Create fails.
	ImageRoot string
}

// initConfig is what the parent tells the child init in msgConfig.
type initConfig struct {
	ID      string      `json:"id"`
	Spec    *specs.Spec `json:"spec"`
	Rootfs  string      `json:"rootfs"`
	Bundle  string      `json:"bundle"`
	NoPivot bool        `json:"noPivot,omitempty"`
	// NoNewKeyring: keep the caller's session keyring (keyring.go).
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	// FifoFd is the child's fd of the exec fifo (O_PATH); -1 for exec.
	FifoFd int `json:"fifoFd"`
	// NumExtraFiles preserved fds sit at 3..3+N-1 and survive the exec.
	NumExtraFiles int  `json:"numExtraFiles"`
	NewCgroupNS   bool `json:"newCgroupNS,omitempty"`
	NewNetNS      bool `json:"newNetNS,omitempty"`
	// OwnUTSNS: the container has a UTS namespace of its own (new or
	// joined by path), so the hostname may be set.
	OwnUTSNS bool `json:"ownUTSNS,omitempty"`
	// JoinMntNsFd: the child's fd of a mount namespace given by path, which
	// the init enters before building the rootfs; 0: none.
	JoinMntNsFd int `json:"joinMntNsFd,omitempty"`
	// RootfsFd: the child's O_PATH fd of the rootfs, opened before it
	// became its user namespace's root (userns.go); 0: none.
	RootfsFd int `json:"rootfsFd,omitempty"`
	// IdmappedRootfs: msgConfig carries a detached idmapped clone of the
	// rootfs, attached instead of the plain bind (userns.go).
	IdmappedRootfs bool `json:"idmappedRootfs,omitempty"`
	// BindFiles: per spec mount, the index in msgConfig's fds of the
	// parent's clone of its bind source; -1 (or absent): bind by path.
	BindFiles []int `json:"bindFiles,omitempty"`
	// SharedMountNS: the container has no mount namespace of its own;
	// Rootfs is then the runtime's bind of it (sharedmount.go).
	SharedMountNS bool `json:"sharedMountNS,omitempty"`
	// ExecRoot (exec only): the directory the exec init chroots into after
	// joining the mount namespace, when that is the caller's.
	ExecRoot string `json:"execRoot,omitempty"`
	// Exec only: the process to run and the fd of the container's mount
	// namespace, which the exec init joins itself.
	Process    *specs.Process `json:"process,omitempty"`
	MntNsFd    int            `json:"mntNsFd,omitempty"`
	CgroupNsFd int            `json:"cgroupNsFd,omitempty"` // -1: none
	// Seccomp: the parent's compilation of Spec.Linux.Seccomp, loaded by
	// the init as it is (create only; an exec init compiles its own).
	Seccomp *seccomp.Program `json:"seccompProgram,omitempty"`
}

// Create sets up a container and leaves its init blocked on the exec fifo
// until Start: namespaces, cgroup, rootfs and credentials are all in place
// and any error is reported here. Without Foreground, no process of ours
// stays behind (the init is reparented when the caller exits). On error
// nothing is left: no state directory, cgroup, mount or process.
func (r *Runtime) Create(id string, o CreateOpts) (c *Container, err error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if r.SystemdCgroup {
		if !systemdRunning() {
			return nil, errors.New("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); drop the flag to use cgroupfs")
		}
		return nil, errors.New("--systemd-cgroup: the systemd cgroup driver is not implemented; drop the flag to use cgroupfs")
	}
	spec := o.Spec
	bundle := o.Bundle
	if bundle == "" {
		bundle = "."
	}
	if bundle, err = filepath.Abs(bundle); err != nil {
		return nil, err
	}
	if spec == nil {
		if spec, err = LoadSpec(bundle); err != nil {
			return nil, err
		}
	}
	rootfs, err := validateSpec(spec, bundle)
	if err != nil {
		return nil, err
	}
	seccompProg, err := checkSeccomp(spec)
	if err != nil {
		return nil, err
	}
	if err := checkHostSupport(spec); err != nil {
		return nil, err
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" && !o.Foreground {
		return nil, errors.New("process.terminal is true: give --console-socket to receive the pty (or set terminal to false)")
	}
	cgPath, err := cgroupPathFor(id, spec)
	if err != nil {
		return nil, err
	}
	plan, err := planNamespaces(spec)
	if err != nil {
		return nil, err
	}
	defer plan.close()

	// The state directory doubles as the lock on the id: mkdir is atomic.
	if err := os.MkdirAll(r.root(), 0o711); err != nil {
		return nil, fmt.Errorf("state root %s: %w", r.root(), err)
	}
	dir := r.stateDir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("state directory: %w", err)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() {
		// Never RemoveAll through a rootfs bind that could not be detached.
		if releaseSharedRootfs(dir) == nil {
			os.RemoveAll(dir)
		}
	})

	st := &persistedState{
		ID: id, Bundle: bundle, Rootfs: rootfs, Status: Creating, Created: time.Now().UTC(),
		CgroupPath: cgPath, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, Spec: spec,
		ImageRoot: o.ImageRoot,
	}
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	// 0622: the init may already run as the container's user when it
	// opens the fifo for writing.
	fifoPath := filepath.Join(dir, fifoFile)
	if err := unix.Mkfifo(fifoPath, 0o622); err != nil {
		return nil, fmt.Errorf("exec fifo: %w", err)
	}
	if err := os.Chmod(fifoPath, 0o622); err != nil { // the umask took some bits
		return nil, err
	}
	fifo, err := os.OpenFile(fifoPath, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("exec fifo: %w", err)
	}
	defer fifo.Close()

	var res *specs.LinuxResources
	if spec.Linux != nil {
		res = spec.Linux.Resources
	}
	if cgroupExists(cgPath) {
		return nil, fmt.Errorf("cgroup %s already exists (another container, or a leftover): choose another cgroupsPath or remove it", cgPath)
	}
	// The pids limit is set once the init is ready, as runc does: the
	// init is a Go program that needs a few threads, and a limit of 1-3
	// tasks used to kill it with the Go runtime's "failed to create new
	// OS thread" crash dump. Lowering pids.max below pids.current is
	// allowed; it only stops new tasks, and the init's threads end at its
	// execve.
	early, pids := splitPidsLimit(res)
	var cg CgroupManager
	if Rootless() {
		cg, err = r.rootlessCgroup(cgPath, early)
	} else {
		cg, err = newCgroup(cgPath, early, spec.Linux.Devices)
	}
	if err != nil {
		return nil, err
	}
	if _, none := cg.(noCgroup); none {
		st.CgroupPath = "" // state, delete, ps: no cgroup to look at
		if err := writeState(dir, st); err != nil {
			return nil, err
		}
	}
	undo = append(undo, func() {
		if err := cg.Delete(); err != nil {
			r.log().Warn("rollback: delete cgroup", "cgroup", cgPath, "err", err)
		}
	})
	cfg := &initConfig{
		ID: id, Spec: spec, Rootfs: rootfs, Bundle: bundle, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		NumExtraFiles: len(o.ExtraFiles),
		NewCgroupNS:   plan.newCgroupNS, NewNetNS: plan.cloneFlags&unix.CLONE_NEWNET != 0,
		OwnUTSNS: plan.ownUTS, Seccomp: seccompProg,
	}
	l := &launch{
		spawnOpts: spawnOpts{
			kind: "create", cloneFlags: plan.cloneFlags, joinNS: plan.join,
			newTimeNS: plan.newTimeNS, setsid: true, callerMountNS: plan.sharedMount,
		},
		cg: cg, stdio: [3]*os.File{o.Stdin, o.Stdout, o.Stderr}, extra: o.ExtraFiles,
		initFiles: []initFile{{f: fifo, at: &cfg.FifoFd}},
		cfg:       cfg, who: "container init",
	}
	if plan.joinMnt != nil {
		l.initFiles = append(l.initFiles, initFile{f: plan.joinMnt, at: &cfg.JoinMntNsFd})
	}
	if plan.sharedMount {
		bind, err := bindSharedRootfs(dir, rootfs)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { releaseSharedRootfs(dir) })
		cfg.Rootfs, cfg.SharedMountNS = bind, true
	}
	l.userNS = spawnUserNS(plan, spec)
	if l.userNS != nil && !plan.sharedMount && plan.joinMnt == nil {
		l.userNS.rootfs, l.rootfsFdAt = rootfs, &cfg.RootfsFd
	}
	if l.userNS != nil && l.rootfsFdAt != nil && !Rootless() {
		// The rootfs (idmapped where needed) and the bind sources, cloned
		// for an init that cannot reach them as its namespace's root.
		// Rootless, the caller has no more access than its init (and
		// open_tree needs the host's root): the init binds by path.
		l.configFiles = func(pid int) ([]*os.File, error) {
			um, err := prepareUserNSMounts(pid, spec, rootfs, bundle)
			if err != nil {
				return nil, err
			}
			for _, w := range um.warnings {
				r.log().Warn(w)
			}
			cfg.IdmappedRootfs, cfg.BindFiles = um.idmappedRoot, um.bindFiles
			return um.files, nil
		}
	}
	if plan.joinUser != nil {
		// The new namespaces must belong to the joined user namespace:
		// the child joins it first and makes them then, forking the init
		// again for a pid namespace (runc's nsexec does the same).
		l.userNS.unshareAfter, l.cloneFlags = plan.cloneFlags, 0
		if Rootless() {
			// Namespaces given by path are joined from inside too.
			l.userNS.joinAfter, l.joinNS = nsFiles(plan.join), nil
			l.userNS.joinsPid = joinsNS(plan.join, unix.CLONE_NEWPID)
		}
	}
	if plan.newTimeNS {
		if l.timeOffsets, err = specTimeOffsets(spec.Linux); err != nil {
			return nil, err
		}
	}
	child, err := l.start()
	if err != nil {
		return nil, err
	}
	undo = append(undo, child.kill)
	pid := child.proc.Pid
	_, start, err := procStat(pid)
	if err != nil {
		return nil, fmt.Errorf("container init: %w", err)
	}
	st.Pid, st.PidStartTime = pid, start
	if err := writeState(dir, st); err != nil { // delete --force can now find it
		return nil, err
	}
	c = &Container{rt: r, dir: dir, st: st, cg: cg}
	if err := child.handshake(c, c.createSyncHandlers(o.ConsoleSocket, o.Foreground)); err != nil {
		return nil, err
	}
	st.Status = Created
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, err
		}
	}
	// msgGo carries the state startContainer hooks get (the init cannot
	// know its host pid).
	if err := child.proceed(c.hookState(specs.StateCreated)); err != nil {
		return nil, err
	}
	// Now the init only waits on the fifo, in a raw syscall with its GC
	// off: it needs no new thread until its execve (init.go).
	if pids != nil {
		if err := cg.Update(&specs.LinuxResources{Pids: pids}); err != nil {
			return nil, fmt.Errorf("pids limit: %w", err)
		}
	}
	if o.Foreground {
		c.proc = child.proc
	} else {
		child.proc.Release()
	}
	return c, nil
}

// createSyncHandlers answers a container init's console and hooks
// messages: the pty master goes to the console socket, or is kept for a
// foreground caller (Container.Console); the prestart and createRuntime
// hooks run in the runtime's namespaces.
func (c *Container) createSyncHandlers(consoleSocket string, foreground bool) syncHandlers {
	return syncHandlers{
		console: func(master *os.File) error {
			switch {
			case consoleSocket != "":
				defer master.Close()
				return sendConsole(consoleSocket, master)
			case foreground:
				c.console = master
			default:
				master.Close()
			}
			return nil
		},
		hooks: func() (*specs.State, error) {
			st := c.hookState(specs.StateCreating)
			h := c.st.Spec.Hooks
			if err := runHooks("prestart", h.Prestart, st); err != nil {
				return nil, err
			}
			if err := runHooks("createRuntime", h.CreateRuntime, st); err != nil {
				return nil, err
			}
			return st, nil
		},
	}
}

// initDied turns EOF on the sync socket into a clear error.
func (c *Container) initDied(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("exited during setup without reporting an error")
	}
	return err
}

// hasPidsLimit reports whether the spec limits the container's tasks.
func hasPidsLimit(s *specs.Spec) bool {
	if s.Linux == nil || s.Linux.Resources == nil || s.Linux.Resources.Pids == nil {
		return false
	}
	l := s.Linux.Resources.Pids.Limit
	return l != nil && *l > 0
}

// splitPidsLimit returns res without its pids limit, and the limit.
func splitPidsLimit(res *specs.LinuxResources) (*specs.LinuxResources, *specs.LinuxPids) {
	if res == nil || res.Pids == nil {
		return res, nil
	}
	cp := *res
	cp.Pids = nil
	return &cp, res.Pids
}

// killAndReap kills a child we started and waits for it, so nothing is left.
func killAndReap(proc *os.Process) {
	proc.Kill()
	proc.Wait()
}

// writePidFile writes the pid atomically (runc: no trailing newline).
func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}
