package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/seccomp"
)

// processSetup turns the init (or exec init), already inside the
// container, into process p: stdio, limits, identity, privileges. All of it
// runs on the locked main thread, and credentials/capabilities are changed
// with per-thread raw syscalls: the execve from this thread carries them.
type processSetup struct {
	p        *specs.Process
	console  *os.File // pty slave, if terminal
	path     string   // resolved p.Args[0]
	env      []string
	warnings []string
	conn     *syncConn
	// seccompDone: the filter is installed (early, when it needs
	// CAP_SYS_ADMIN because no_new_privs is off).
	seccompDone bool
	seccomp     *specs.LinuxSeccomp
	seccompProg *seccomp.Program // the parent's compilation of seccomp, if sent
}

// prepare applies everything up to the credentials, in an order where each
// step still has the privileges it needs.
func (ps *processSetup) prepare() error {
	p := ps.p
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("process.cwd %s: %w", cwd, err)
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil {
		// Before dropping capabilities: lowering it needs CAP_SYS_RESOURCE.
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("oom_score_adj: %w", err)
		}
	}
	if ps.console != nil {
		if err := ps.attachConsole(); err != nil {
			return err
		}
	}
	ps.env = withHome(p.Env, p.User.UID)
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	} else if ps.seccomp != nil {
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
		// do it while we still have it.
		if err := ps.installSeccomp(); err != nil {
			return err
		}
	}
	// No capabilities section: leave them as they are (runc does too).
	var caps capMasks
	if p.Capabilities != nil {
		var err error
		if caps, err = ps.resolveCaps(); err != nil {
			return err
		}
		if err := dropBounding(caps.bounding); err != nil {
			return err
		}
	}
	if err := switchUser(p.User); err != nil {
		return err
	}
	if p.Capabilities != nil {
		if err := applyCaps(caps, ps.warnOnce); err != nil {
			return err
		}
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	// Look the program up as the user who will run it, so "permission
	// denied" is reported now, by create, not lost after start.
	path, err := lookPath(p.Args[0], ps.env)
	if err != nil {
		return err
	}
	ps.path = path
	return nil
}

// finish installs the seccomp filter as late as possible (when
// no_new_privs allows it), hands its listener fd to the parent, and marks
// every fd beyond stdio and the preserved ones close-on-exec, so no host fd
// leaks into the container.
func (ps *processSetup) finish(conn *syncConn, numExtra int) error {
	ps.conn = conn
	if err := closeExecFrom(3 + numExtra); err != nil {
		return err
	}
	if err := checkProcessLSM(ps.p); err != nil {
		return err
	}
	if err := applyApparmor(ps.p.ApparmorProfile); err != nil {
		return err
	}
	// Last: after this only the sync messages, the fifo and execve remain.
	if ps.seccomp != nil && !ps.seccompDone {
		if err := ps.installSeccomp(); err != nil {
			return err
		}
	}
	return nil
}

func (ps *processSetup) installSeccomp() error {
	fd, err := installSeccomp(ps.seccomp, ps.seccompProg)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	ps.seccompDone = true
	if fd < 0 {
		return nil
	}
	defer unix.Close(fd)
	if err := ps.conn.send(&syncMsg{Type: msgSeccomp}, fd); err != nil {
		return err
	}
	_, _, err = ps.conn.expect(msgSeccompDone)
	return err
}

// exec replaces the init with the user's program. A failure is classified
// like the lookup's (not found / not executable), so that after `start`,
// when only the exit status can tell, MaybeInit exits 127 or 126.
func (ps *processSetup) exec() error {
	// The program starts with no signal blocked, whatever this thread had.
	unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, nil)
	err := unix.Exec(ps.path, ps.p.Args, ps.env)
	kind := ErrExecPermission // ENOEXEC, EACCES, ETXTBSY, ELOOP...
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		kind = ErrExecNotFound
	}
	return fmt.Errorf("exec %s: %v: %w", ps.path, err, kind)
}

// attachConsole makes the pty slave the controlling terminal (we are a
// session leader: Setsid at clone) and stdin, stdout, stderr.
func (ps *processSetup) attachConsole() error {
	fd := int(ps.console.Fd())
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("controlling terminal: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("console stdio: %w", err)
		}
	}
	ps.console.Close()
	return nil
}

var rlimitNames = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

// setRlimits uses syscall.Setrlimit (not x/sys) because Go remembers the
// RLIMIT_NOFILE it started with and restores it at exec unless told
// through syscall.Setrlimit that the program set its own.
func setRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		res, ok := rlimitNames[l.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", l.Type)
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("rlimit %s=%d:%d: %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}

// switchUser sets groups, gid and uid on this thread only, keeping the
// permitted capabilities across the uid change so applyCaps can set them.
func switchUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	gids := make([]uint32, 0, len(u.AdditionalGids))
	gids = append(gids, u.AdditionalGids...)
	var ptr unsafe.Pointer
	if len(gids) > 0 {
		ptr = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(ptr), 0); e != 0 {
		// A user namespace with setgroups denied (rootless, own ids
		// only) has no groups to drop; only asked-for ones are an error.
		if !(e == unix.EPERM && len(gids) == 0 && setgroupsDenied()) {
			return fmt.Errorf("setgroups %v: %w", gids, e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	return unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
}

// withHome adds HOME from the container's /etc/passwd when the spec's
// environment has none (runc does the same), defaulting to "/".
func withHome(env []string, uid uint32) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	home := "/"
	if f, err := os.Open("/etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 6 && fields[2] == strconv.FormatUint(uint64(uid), 10) && fields[5] != "" {
				home = fields[5]
				break
			}
		}
		f.Close()
	}
	return append(append([]string(nil), env...), "HOME="+home)
}

// lookPath finds args[0] with the container's PATH, as the user who will
// run it. Errors wrap ErrExecNotFound or ErrExecPermission.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	var denied error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, name)
		err := checkExecutable(cand)
		if err == nil {
			return cand, nil
		}
		if errors.Is(err, ErrExecPermission) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", fmt.Errorf("%q not found in PATH %s: %w", name, pathEnv, ErrExecNotFound)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, ErrExecNotFound)
		}
		return fmt.Errorf("%s: %v: %w", path, err, ErrExecPermission)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory: %w", path, ErrExecPermission)
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return fmt.Errorf("%s: %v: %w", path, err, ErrExecPermission)
	}
	return nil
}
