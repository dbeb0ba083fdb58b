package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initEnv marks a re-executed copy of this binary as a container init
// ("create") or exec init ("exec").
const initEnv = "_CORRAL_INIT"

func init() {
	// The init does all its work on the main thread and execs from it:
	// namespace, credential and capability changes made with raw syscalls
	// are per thread, so nothing may migrate the main goroutine elsewhere.
	// Locking here, in a package init, happens before main() starts.
	if os.Getenv(initEnv) != "" {
		goruntime.LockOSThread()
	}
}

// MaybeInit must be the first call in main() of any binary linking this
// package (and in TestMain of tests that create containers): when this
// process is a re-executed container init it becomes the container's
// process and never returns; otherwise it returns at once.
func MaybeInit() {
	kind := os.Getenv(initEnv)
	if kind == "" {
		return
	}
	fd, err := strconv.Atoi(os.Getenv(syncFdEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "corral init: no sync socket")
		os.Exit(1)
	}
	// A raw-forked init starts with every signal blocked (spawn_rawfork.go).
	unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, nil)
	conn := &syncConn{os.NewFile(uintptr(fd), "sync")}
	unix.CloseOnExec(fd)
	// Nothing else of the runtime's environment may reach the container.
	os.Clearenv()
	switch kind {
	case "create":
		err = initContainer(conn)
	case "exec":
		err = initExec(conn)
	default:
		err = fmt.Errorf("unknown init kind %q", kind)
	}
	// Only failures return: success is execve.
	m := &syncMsg{Type: msgError, Error: err.Error()}
	switch {
	case errors.Is(err, ErrExecNotFound):
		m.ErrKind = errKindNotFound
	case errors.Is(err, ErrExecPermission):
		m.ErrKind = errKindPermission
	}
	if conn.send(m) != nil {
		// The parent is gone (after `start`): the container's stderr is
		// the only place left to say why the process did not run, and
		// the exit status the only way to say what kind of failure it
		// was (127 not found, 126 not executable, as shells and docker).
		fmt.Fprintf(os.Stderr, "corral init: %v\n", err)
		switch m.ErrKind {
		case errKindNotFound:
			os.Exit(127)
		case errKindPermission:
			os.Exit(126)
		}
	}
	os.Exit(1)
}

// initContainer is the container's init: it receives the config, builds the
// container around itself, waits on the exec fifo and execs the process.
// See sync.go for the sequence.
func initContainer(conn *syncConn) error {
	m, files, err := conn.expect(msgConfig)
	if err != nil {
		return err
	}
	cfg := m.Config
	idmappedRoot, bindTrees, err := userNSMountFiles(cfg, files)
	if err != nil {
		return err
	}
	spec := cfg.Spec
	// First, before the seccomp filter (which refuses keyctl) and before
	// any container process can exist: our own session keyring.
	if !cfg.NoNewKeyring {
		if err := newSessionKeyring(cfg.ID, spec); err != nil {
			return err
		}
	}
	// Stop container processes (once there are any) from ptracing or
	// reading /proc/1/* of the init while it still runs our binary; execve
	// restores dumpability for the user's program.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	unix.Umask(0) // device nodes and mount points get exactly their modes
	if cfg.JoinMntNsFd > 0 {
		if err := joinMountNS(cfg.JoinMntNsFd); err != nil {
			return err
		}
	}
	if cfg.NewCgroupNS {
		// The parent has put us in the container's cgroup by now, so the new
		// namespace is rooted there: /proc/self/cgroup reads "/" inside.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("new cgroup namespace: %w", err)
		}
	}
	if cfg.NewNetNS {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := setHostname(spec, cfg.OwnUTSNS); err != nil {
		return err
	}
	rc := &rootfsCtx{cfg: cfg, spec: spec, rootfs: cfg.Rootfs, conn: conn, idmappedRoot: idmappedRoot, bindTrees: bindTrees}
	if err := rc.run(); err != nil {
		return err
	}
	p := spec.Process
	ps := &processSetup{p: p, console: rc.consoleSlave, conn: conn, seccomp: spec.Linux.Seccomp, seccompProg: cfg.Seccomp}
	if err := ps.prepare(); err != nil {
		return err
	}
	if err := ps.finish(conn, cfg.NumExtraFiles); err != nil {
		return err
	}
	// From here on the container's pids limit may apply (create.go sets
	// it after msgGo): no garbage collection, which could want a thread
	// for a worker, and the fifo wait below is a raw syscall, so the Go
	// scheduler never hands our P to a new thread while we block.
	debug.SetGCPercent(-1)
	if err := conn.send(&syncMsg{Type: msgReady, Warnings: append(rc.warnings, ps.warnings...)}); err != nil {
		return err
	}
	goMsg, _, err := conn.expect(msgGo)
	if err != nil {
		return err
	}
	conn.Close()
	// Block until `corral start` opens the fifo for reading. Opened via our
	// own fd (O_PATH, passed in) because the state directory is no longer
	// reachable after pivot_root.
	fifo, err := rawOpenWrite("/proc/self/fd/" + strconv.Itoa(cfg.FifoFd))
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	if _, err := unix.Write(fifo, []byte("0")); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	// The fifo stays open (O_CLOEXEC): execve closes it once it is past
	// the point of no return, and `start` waits for that EOF, so that
	// when start returns our threads are gone and the user's process
	// runs. A pause in between used to freeze the Go threads execve was
	// waiting for (cgroup v1's freezer does not let a frozen task die),
	// leaving the container FREEZING for ever.
	if h := spec.Hooks; h != nil && len(h.StartContainer) > 0 {
		if err := runHooks("startContainer", h.StartContainer, goMsg.State); err != nil {
			return err
		}
	}
	return ps.exec()
}

// joinMountNS enters the mount namespace given by path in the spec. setns
// into a mount namespace needs an fs_struct not shared with other threads.
func joinMountNS(fd int) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare(CLONE_FS): %w", err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join mount namespace: %w", err)
	}
	return unix.Close(fd)
}

// setHostname applies hostname and domainname. They need a UTS namespace
// of the container's own (new, or joined by path as runc allows): without
// one they would rename the host.
func setHostname(spec *specs.Spec, ownUTS bool) error {
	if spec.Hostname == "" && spec.Domainname == "" {
		return nil
	}
	if !ownUTS {
		return errors.New("config: hostname/domainname set without a uts namespace of the container's own (it would rename the host)")
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	return nil
}

// loopbackUp brings lo up in a new network namespace (it starts down), so
// that programs binding 127.0.0.1 work in a --net none container.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// rawOpenWrite opens path O_WRONLY|O_CLOEXEC with a raw syscall (restarted
// on EINTR): blocking on the exec fifo for as long as the container stays
// created must not make the Go scheduler start a thread, which a pids
// limit of 1-3 would refuse (the runtime then dies with a crash dump).
func rawOpenWrite(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	dirfd := unix.AT_FDCWD // a variable: the constant is negative
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unix.O_WRONLY|unix.O_CLOEXEC), 0, 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		default:
			return -1, e
		}
	}
}
