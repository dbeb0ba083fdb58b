package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

// Exit statuses of `corral run` besides the container's own, as docker and
// podman use them.
const (
	exitRuntimeError  = 125 // corral itself failed
	exitNotExecutable = 126 // the command exists but cannot be executed
	exitNotFound      = 127 // the command does not exist
)

const runUsage = `Usage: corral run [flags] IMAGE [COMMAND [ARG...]]
       corral run [flags] [--] COMMAND [ARG...]
       corral run [--bundle DIR] [--detach] [--pid-file F] [--keep] ... ID    (runc's form)

IMAGE is a local image ('corral pull', 'corral load', 'corral images'):
the container's root is an overlay of the image's layers with a writable
layer of its own (removed with the container), and the image's
Entrypoint, Cmd, Env, WorkingDir and User apply, as in docker run
(--entrypoint replaces the entrypoint and drops the image's Cmd):
  corral pull alpine && corral run --rm --memory 256m alpine free -m
The first argument is taken for an image when a local image has that name
and it does not follow '--'.

Run COMMAND in a new container and wait for it: namespaces, cgroups and
a pivoted root, as 'corral create' + 'start' do, from a spec built out of
these flags. The exit status is the command's; 125 when corral fails, 126
when COMMAND cannot be executed, 127 when it is not found, 128+N when it
is killed by signal N (137: SIGKILL, also an out-of-memory kill).

Without --rootfs or --bundle the container runs on the default root: the
host's own /usr, /bin, /sbin and /lib* bound read-only plus a minimal /etc
(no shadow, no keys), with a private /tmp. Nothing to prepare:
  corral run --rm --memory 256m -- free -m

When a corralfs serves /var/lib/corralfs, its views are bound over
/proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and
/sys/devices/system/cpu, so free, top, vmstat, lscpu, getconf and the JVM
see the container's limits and its live usage instead of the host's (nproc
counts the CPUs of --cpuset-cpus, the process's affinity, not --cpus).
/proc/pressure/* is bound where the container has pressure of its own
(cgroup v2); elsewhere /proc/pressure is masked, as on a kernel without PSI.
Its sysinfo(2) agent (/run/corralfs/seccomp.sock, or the socket --sysinfo
names) answers sysinfo(2), where busybox free and the JVM read the total.

runc's form runs a bundle's config.json as it is, under the container id
ID, with this terminal's stdio, and deletes the container when it exits
(unless --keep), as 'runc run' does. It is chosen when there is exactly one
argument, not after '--', and --bundle or one of runc's flags (--pid-file,
--console-socket, --keep, --no-pivot, --preserve-fds) is given, or the
current directory holds a config.json and the argument is not a command on
PATH. To run a one-word command on a bundle: corral run --bundle DIR -- CMD

Every container gets Docker's default seccomp profile, resolved for its
capabilities: creating user namespaces (unshare -U, clone with namespace
flags; clone3 answers ENOSYS), mount, keyctl/add_key/request_key,
io_uring, bpf, kernel modules and the rest of Docker's list are refused
with EPERM. --security-opt seccomp=unconfined turns it off,
--security-opt seccomp=FILE replaces it (a --bundle keeps its own
linux.seccomp unless this flag is given).

Flags:
`

// runFlags are the parsed flags of `corral run`.
type runFlags struct {
	opts         runspec.Options
	name         string
	rm           bool
	detach       bool
	interactive  bool
	rootfs       string
	bundle       string
	views        string
	sysinfo      string
	securityOpt  []string
	noNewKeyring bool
	userns       string // "" = not given: the bundle's, else defaultUserNS()
	runc         runcFlags
	image        *runImage // the local image of `corral run IMAGE`, nil for a command
	entrypoint   *string   // --entrypoint when given (also "")
	extras       runExtras
}

// newRunFlagSet declares the flags of `corral run`.
func newRunFlagSet(f *runFlags, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	// Flags end at the command: `corral run sh -c 'ls -l'` passes -c to sh.
	fs.SetInterspersed(false)
	fs.SetOutput(out)
	o := &f.opts
	fs.StringVar(&f.name, "name", "", "container id (default: a generated one)")
	fs.BoolVar(&f.rm, "rm", false, "delete the container (state, cgroups) when it exits")
	fs.BoolVarP(&f.detach, "detach", "d", false, "start the container, print its id and return")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin connected (otherwise it reads /dev/null)")
	fs.BoolVarP(&o.Terminal, "tty", "t", false, "give the container a terminal (with -i: an interactive shell, resized with yours)")
	fs.StringVar(&f.rootfs, "rootfs", "", "root filesystem directory (default: the host's /usr read-only and a minimal /etc)")
	fs.StringVarP(&f.bundle, "bundle", "b", "", "OCI bundle directory: its config.json, with the command and flags given here on top (with a single ID and no command: runc's form, see above)")
	fs.StringVarP(&o.Memory, "memory", "m", "", "memory limit: bytes or with a unit, e.g. 256m, 1g")
	fs.StringVar(&o.MemorySwap, "memory-swap", "", "memory+swap limit: equal to --memory for no swap, -1 for unlimited swap (default: twice --memory)")
	fs.StringVar(&o.CPUs, "cpus", "", "CPU quota in CPUs, e.g. 0.5 (50ms of CPU time per 100ms)")
	fs.StringVar(&o.CpusetCPUs, "cpuset-cpus", "", "CPUs the container may run on, e.g. 0-1,3")
	fs.Int64Var(&o.PidsLimit, "pids-limit", 0, "maximum number of tasks (-1: unlimited)")
	fs.StringArrayVarP(&o.Env, "env", "e", nil, "set KEY=VALUE, or pass KEY from this environment (repeatable)")
	fs.StringVarP(&o.Workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&o.User, "user", "u", "", "UID[:GID] or NAME[:GROUP] (names from the container's /etc)")
	fs.StringVarP(&o.Hostname, "hostname", "h", "", "hostname (default: --name, else the short id)")
	fs.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount SRC:DST[:ro] (SRC must exist; repeatable)")
	fs.BoolVar(&o.ReadOnly, "read-only", false, "make the root filesystem read-only (the default root always is)")
	fs.StringVar(&o.Net, "net", "", "network: none (own namespace with lo up; the default) or host (a --bundle keeps its own unless given)")
	fs.StringVar(&f.views, "views", "auto", "corralfs views to bind: auto (/var/lib/corralfs when mounted), none, or a directory")
	fs.StringVar(&f.sysinfo, "sysinfo", "auto", "answer sysinfo(2) from the container's limits via corralfs's agent: auto (when its socket exists), off, or the agent's socket path (corralfs --seccomp-socket)")
	fs.String("entrypoint", "", "with an IMAGE: run this instead of the image's entrypoint (\"\" for none; the image's Cmd is dropped too)")
	addRunExtraFlags(fs, &f.extras)
	addRuncFlags(fs, &f.runc)
	fs.StringArrayVar(&f.securityOpt, "security-opt", nil, "seccomp=unconfined (no filter) or seccomp=FILE (a Docker or OCI seccomp profile JSON) instead of the default profile (Docker's); no-new-privileges (always on)")
	fs.StringVar(&f.userns, "userns", "", "user namespace: host (none; the default as root), auto (65,536 ids of its own from the containers user's /etc/subuid and /etc/subgid ranges; the default without root) or keep-id (without root: your uid is the same inside)")
	fs.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "keep this session's keyring (default: the container gets a new, empty one)")
	fs.Bool("help", false, "show this help")
	// Computed now, before runMain merges the global flags in, so that
	// the help lists run's own flags first and the global ones apart.
	own := fs.FlagUsages()
	fs.Usage = func() {
		fmt.Fprint(out, runUsage, own, "\nGlobal flags:\n", rootCmd.PersistentFlags().FlagUsages())
	}
	return fs
}

func init() {
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND...] | [--] COMMAND [ARG...]",
		Short: "run an image or a command in a new container (limits, views, default root) and wait for it",
		// run parses its own flags: they stop at the command (so
		// `corral run sh -c ...` passes -c to sh) and -h is --hostname,
		// as in docker run.
		DisableFlagParsing: true,
		RunE:               func(cmd *cobra.Command, args []string) error { return runMain(args) },
	}
	cmd.SetHelpFunc(func(*cobra.Command, []string) {
		var f runFlags
		newRunFlagSet(&f, os.Stdout).Usage()
	})
	rootCmd.AddCommand(cmd)
}

// runMain is `corral run`: the error carries the exit status for main.
func runMain(args []string) error {
	var f runFlags
	fs := newRunFlagSet(&f, os.Stdout)
	// With flag parsing disabled, global flags given before `run` arrive
	// here too (`corral --root /x run ...`): parse them into the same
	// variables.
	fs.AddFlagSet(rootCmd.PersistentFlags())
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return withExitCode(exitRuntimeError, fmt.Errorf("run: %w (see 'corral run --help')", err))
	}
	if help, _ := fs.GetBool("help"); help {
		fs.Usage()
		return nil
	}
	if err := checkRootless(); err != nil {
		return withExitCode(exitRuntimeError, err)
	}
	if err := setupLogging(); err != nil {
		return withExitCode(exitRuntimeError, err)
	}
	if id, ok := runcFormID(fs, &f); ok {
		if err := checkRuncForm(fs, true); err != nil {
			return withExitCode(exitRuntimeError, fmt.Errorf("run: %w", err))
		}
		code, err := runRuncForm(newRuntime(), &f, id)
		if err != nil {
			return withExitCode(code, fmt.Errorf("run: %w", err))
		}
		if code != 0 {
			return ExitStatus(code)
		}
		return nil
	}
	if err := checkRuncForm(fs, false); err != nil {
		return withExitCode(exitRuntimeError, fmt.Errorf("run: %w (see 'corral run --help')", err))
	}
	f.opts.Args = fs.Args()
	if fs.Changed("entrypoint") {
		ep, _ := fs.GetString("entrypoint")
		f.entrypoint = &ep
	}
	if err := parseRunExtras(fs, &f); err != nil {
		return withExitCode(exitRuntimeError, fmt.Errorf("run: %w", err))
	}
	if err := pickImage(fs, &f); err != nil {
		return withExitCode(exitRuntimeError, fmt.Errorf("run: %w", err))
	}
	if err := checkRunFlags(&f); err != nil {
		return withExitCode(exitRuntimeError, fmt.Errorf("run: %w (see 'corral run --help')", err))
	}
	code, err := runContainer(newRuntime(), &f)
	if err != nil {
		return withExitCode(code, fmt.Errorf("run: %w", err))
	}
	if code != 0 {
		return ExitStatus(code)
	}
	return nil
}

// checkRunFlags rejects combinations that cannot work, before anything is
// created.
func checkRunFlags(f *runFlags) error {
	switch {
	case len(f.opts.Args) == 0 && f.bundle == "" && f.image == nil:
		return errNoCommand
	case f.entrypoint != nil && f.image == nil:
		return errors.New("--entrypoint needs an IMAGE (a command runs as given)")
	case f.rootfs != "" && f.bundle != "":
		return errors.New("--rootfs and --bundle exclude each other (a bundle names its root)")
	case f.detach && f.opts.Terminal:
		return errors.New("--detach with --tty: nobody would read the terminal; use 'corral exec -t' into a detached container")
	case f.detach && f.interactive:
		return errors.New("--detach with --interactive: stdin cannot follow a detached container")
	}
	if f.name != "" && strings.ContainsAny(f.name, "/") {
		return fmt.Errorf("--name %q: no slashes", f.name)
	}
	return nil
}

// newContainerID returns 64 random hex digits, as docker does; the first
// 12 are the short id.
func newContainerID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// runContainer does the work of `corral run` after flag parsing: build the
// spec, create, start, wait, delete. It returns the exit status and the
// error to print (if any).
func runContainer(rt *runtime.Runtime, f *runFlags) (int, error) {
	id := f.name
	if id == "" {
		var err error
		if id, err = newContainerID(); err != nil {
			return exitRuntimeError, err
		}
	} else if _, err := rt.Load(id); err == nil {
		return exitRuntimeError, fmt.Errorf("a container named %q already exists (corral delete %s)", id, id)
	}
	args := f.opts.Args
	rs, err := buildRunSpec(rt, f, id, os.Stderr)
	if err != nil {
		return exitRuntimeError, err
	}
	if f.detach {
		return runDetached(rt, f, id, rs)
	}

	opts := runtime.CreateOpts{Bundle: rs.Bundle, Spec: rs.Spec, Foreground: true, Stdout: os.Stdout, Stderr: os.Stderr, NoNewKeyring: f.noNewKeyring, ImageRoot: rs.imageRoot}
	if f.interactive {
		opts.Stdin = os.Stdin
	}
	c, err := rt.Create(id, opts)
	if err != nil {
		rs.release()
		return execErrorCode(err), notFoundHint(err, f, args)
	}
	var master *os.File
	if rs.Spec.Process.Terminal {
		if master = c.Console(); master == nil {
			if f.rm {
				c.Delete(true)
			}
			return exitRuntimeError, errors.New("the runtime gave no terminal for --tty")
		}
	}
	var in io.Reader
	if f.interactive {
		in = os.Stdin
	}
	return runForeground(c, master, in, f.rm)
}

// runForeground starts a container created in the foreground, joins its
// pty master (if any) to stdin (in, may be nil) and stdout, relays signals,
// waits and, with remove, deletes it (also when something fails). It
// returns the container's exit status.
func runForeground(c *runtime.Container, master *os.File, in io.Reader, remove bool) (int, error) {
	cleanup := func() error {
		if remove {
			return c.Delete(true)
		}
		return nil
	}
	var tty *ttyProxy
	if master != nil {
		var err error
		if tty, err = startTTYProxy(master, in, os.Stdout); err != nil {
			cleanup()
			return exitRuntimeError, fmt.Errorf("tty: %w", err)
		}
		defer tty.finish()
	}
	stopForwarding := forwardSignals(c)
	defer stopForwarding()
	if err := c.Start(); err != nil {
		if tty != nil {
			tty.restore()
		}
		cleanup()
		return execErrorCode(err), err
	}
	code, err := c.Wait()
	if tty != nil {
		tty.finish()
	}
	if err != nil {
		cleanup()
		return exitRuntimeError, err
	}
	reportExit(c, code)
	if err := cleanup(); err != nil {
		return code, fmt.Errorf("remove the container: %w", err)
	}
	return code, nil
}

// reportExit records the exit in the container's state (for inspect,
// when it is kept) and says once, on stderr, when the kernel's OOM
// killer is why it ended: 137 alone does not tell.
func reportExit(c *runtime.Container, code int) {
	rec, err := c.RecordExit(code)
	if err != nil || !rec.OOMKilled {
		return
	}
	fmt.Fprintf(os.Stderr, "corral: container %s was killed by the kernel's OOM killer%s\n", runtime.ShortID(c.ID()), memoryLimitNote(c.Spec()))
}

// forwardSignals relays the signals a user sends to `corral run` to the
// container's init, as docker's sig-proxy does (^C without a terminal,
// kill from another shell, a service manager's SIGTERM). With a terminal
// ^C travels through the pty instead.
func forwardSignals(c *runtime.Container) func() {
	ch := make(chan os.Signal, 8)
	sigs := []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				forwardSignal(c, s.(unix.Signal))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// execErrorCode maps an error of Create or Start to docker's statuses: 127
// when the command does not exist in the container, 126 when it exists but
// cannot be executed, 125 for anything else.
func execErrorCode(err error) int {
	switch {
	case errors.Is(err, runtime.ErrExecNotFound):
		return exitNotFound
	case errors.Is(err, runtime.ErrExecPermission):
		return exitNotExecutable
	}
	return exitRuntimeError
}

// detachLogPath is where a detached container's stdout and stderr go.
func detachLogPath(rt *runtime.Runtime, id string) string {
	return filepath.Join(runtimeRoot(rt), id+".log")
}
