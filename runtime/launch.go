package runtime

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The one launch path for `create` and `exec` (runc shares one
// parentProcess type between its init and setns processes, youki one
// builder). Create and Exec differ in what they ask for (new or joined
// namespaces, the exec fifo or the mount namespace fd, when the cgroup is
// entered, which sync messages may come); how the child is started, put in
// its cgroup, handed its fds and configuration, and talked to until it is
// ready is the same code, here. Anything the parent must do to the child
// between its clone and its configuration (e.g. writing a user namespace's
// uid/gid maps) belongs in launch.start, between spawn and msgConfig: the
// child blocks on that message.

// launch is what the parent asks for when it starts a container init
// ("create") or an exec init ("exec").
type launch struct {
	// spawnOpts: the namespaces to create or join, setsid, the caller's
	// mount namespace. Its files, syncFd and cgroupFD are filled by start.
	spawnOpts
	// cg is the container's cgroup. The child starts inside it (v2:
	// CLONE_INTO_CGROUP; v1: Join right after the clone) unless
	// cgroupLate, when it is moved in only once ready (an exec init under a
	// pids limit, see Exec).
	cg         CgroupManager
	cgroupLate bool
	// stdio become the child's fds 0, 1, 2 (nil = /dev/null); extra
	// become 3, 4, ... and survive into the container's program.
	stdio [3]*os.File
	extra []*os.File
	// initFiles follow the sync socket; each one's fd number in the child
	// is written to *at (a field of cfg) before cfg is sent.
	initFiles []initFile
	// cfg is sent in msgConfig once the child is in its cgroup.
	cfg *initConfig
	// who names the child in errors: "container init" or "exec init".
	who string
	// rootfsFdAt, with userNS.rootfs, receives the fd number the child
	// gets the rootfs on (spawn_rawfork.go: right after the files).
	rootfsFdAt *int
	// configFiles, if set, is run once the child is in its cgroup, before
	// msgConfig: the fds it returns travel with msgConfig (a user
	// namespace's idmapped rootfs and bind sources, userns.go), and are
	// closed here once sent.
	configFiles func(pid int) ([]*os.File, error)
}

// initFile is an fd the init needs for its setup (exec fifo, a mount or
// cgroup namespace to join).
type initFile struct {
	f  *os.File
	at *int
}

// parentProcess is a started child and the parent's end of its sync
// socket.
type parentProcess struct {
	proc       *os.Process
	conn       *syncConn
	cg         CgroupManager
	cgroupLate bool
	who        string
}

// start spawns the child, puts it in its cgroup and sends its
// configuration. On error nothing is left running.
func (l *launch) start() (p *parentProcess, err error) {
	if !l.cgroupLate {
		cgFD, err := l.cg.CloneFD()
		if err != nil {
			return nil, err
		}
		if cgFD != nil {
			defer cgFD.Close()
			l.cgroupFD = cgFD
		}
	}
	parent, child, err := newSyncPair()
	if err != nil {
		return nil, err
	}
	files := append(l.stdio[:], l.extra...)
	l.syncFd = len(files)
	files = append(files, child.f)
	for _, f := range l.initFiles {
		*f.at = len(files)
		files = append(files, f.f)
	}
	l.files = files
	if l.rootfsFdAt != nil {
		*l.rootfsFdAt = len(files)
	}
	proc, err := spawn(l.spawnOpts)
	child.Close() // the child has its copy; EOF on ours now means it died
	if err != nil {
		parent.Close()
		return nil, err
	}
	started := &parentProcess{proc: proc, conn: parent, cg: l.cg, cgroupLate: l.cgroupLate, who: l.who}
	defer func() {
		// started, not p: a failing return has set p to nil already.
		if err != nil {
			started.kill()
		}
	}()
	if l.cgroupFD == nil && !l.cgroupLate {
		if err := l.cg.Join(proc.Pid); err != nil {
			return nil, err
		}
	}
	if l.userNS != nil && !Rootless() {
		if err := prlimitFromParent(proc.Pid, l.cfg); err != nil {
			return nil, err
		}
	}
	var cfgFiles []*os.File
	if l.configFiles != nil {
		if cfgFiles, err = l.configFiles(proc.Pid); err != nil {
			return nil, err
		}
		defer closeAll(cfgFiles)
	}
	// The config first: the child sets up its rootfs while the caller
	// records it.
	if err := parent.send(&syncMsg{Type: msgConfig, Config: l.cfg}, fdsOf(cfgFiles)...); err != nil {
		return nil, err
	}
	return started, nil
}

// syncHandlers are the caller's answers to the messages only it can
// handle.
type syncHandlers struct {
	// console takes the pty master (msgConsole) and owns it.
	console func(master *os.File) error
	// hooks runs the prestart and createRuntime hooks (msgHooks) and
	// returns the state createContainer hooks get; nil: the child must not
	// ask (exec).
	hooks func() (*specs.State, error)
}

// handshake runs the parent's side of the sync protocol from msgConfig to
// msgReady (see sync.go), then moves a late child into its cgroup.
func (p *parentProcess) handshake(c *Container, h syncHandlers) error {
	if err := p.syncUntilReady(c, h); err != nil {
		return err
	}
	if p.cgroupLate {
		return p.cg.Join(p.proc.Pid)
	}
	return nil
}

func (p *parentProcess) syncUntilReady(c *Container, h syncHandlers) error {
	for {
		m, files, err := p.conn.recv()
		if err != nil {
			return fmt.Errorf("%s: %w", p.who, c.initDied(err))
		}
		switch {
		case m.Type == msgError:
			closeAll(files)
			return errFromMsg(m)
		case m.Type == msgConsole:
			if len(files) != 1 {
				closeAll(files)
				return errors.New("sync protocol: console message without a pty fd")
			}
			if err := h.console(files[0]); err != nil {
				return err
			}
		case m.Type == msgHooks && h.hooks != nil:
			closeAll(files)
			st, err := h.hooks()
			if err != nil {
				return err
			}
			if err := p.conn.send(&syncMsg{Type: msgHooksDone, State: st}); err != nil {
				return err
			}
		default:
			if done, err := c.handleCommonSync(p.conn, m, files); err != nil || done {
				return err
			}
		}
	}
}

// proceed sends msgGo (with the state startContainer hooks get, for a
// container init) and closes the parent's end of the socket.
func (p *parentProcess) proceed(st *specs.State) error {
	err := p.conn.send(&syncMsg{Type: msgGo, State: st})
	p.conn.Close()
	return err
}

// kill kills and reaps the child and closes the socket: a failed launch
// leaves no process behind.
func (p *parentProcess) kill() {
	p.conn.Close()
	killAndReap(p.proc)
}

func fdsOf(files []*os.File) []int {
	out := make([]int, len(files))
	for i, f := range files {
		out[i] = int(f.Fd())
	}
	return out
}
