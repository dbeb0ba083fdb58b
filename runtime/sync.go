package runtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The parent (corral create / corral exec) and the child it re-executes
// (the container's init, or an exec init) talk over a unix socketpair in
// typed messages, like runc's sync.go. Each message is a 4-byte big-endian
// length and a JSON syncMsg; a message may carry file descriptors
// (SCM_RIGHTS) attached to its first bytes.
//
// create:
//
//	parent                                        child (PID 1 of the new pid ns)
//	──────                                        ─────
//	mkdir state dir (creating), mkfifo exec.fifo
//	create cgroup
//	thread T: unshare(NEWNS) + ro-bind own exe,
//	          unshare(NEWTIME) + offsets
//	clone(NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS)
//	  from T (v2: straight into the cgroup)  ──►  runtime locks main thread
//	(v1: write pid into each cgroup.procs)
//	msgConfig {spec, rootfs, ...}          ──────►  unshare(NEWCGROUP) (now in its cgroup)
//	                                                hostname, lo up, mounts, devices
//	                                      ◄──────  msgHooks                   (hooks only)
//	run prestart + createRuntime hooks
//	msgHooksDone {state}                   ──────►  run createContainer hooks
//	                                                pivot_root, sysctls, masks, ro paths
//	                                      ◄──────  msgConsole + pty master   (terminal only)
//	send master to --console-socket
//	(or keep it: Container.Console())
//	                                                rlimits, oom_score_adj, cwd,
//	                                                look up args[0], user, caps, nnp
//	                                      ◄──────  msgSeccomp + notify fd     (listener only)
//	send state + fd to listenerPath
//	msgSeccompDone                         ──────►
//	                                      ◄──────  msgReady
//	write state (created), pid file
//	msgGo                                  ──────►  close the socket, mark fds CLOEXEC
//	create returns (no monitor left)                open(exec.fifo, O_WRONLY): blocks
//	...
//	corral start: open exec.fifo, read     ◄──────  write "0"
//	remove exec.fifo                                execve(process.args)
//
// Any failure in the child is sent as msgError and the child exits; the
// parent then kills it and rolls back (cgroup, state dir). EOF on the socket
// (the parent died) makes the child exit, so a killed `corral create`
// leaves no half-built container waiting.
//
// exec follows the same shape with an exec init: the parent joins the
// container's namespaces on thread T (pid and time for children), the
// child joins the mount namespace itself, applies the process and execs;
// there is no fifo and msgGo is sent at once. Both are started and driven
// through the same code, launch.go.

type msgType string

const (
	msgConfig      msgType = "config"
	msgHooks       msgType = "hooks"     // child -> parent: run prestart/createRuntime now
	msgHooksDone   msgType = "hooksDone" // parent -> child: done; State for createContainer
	msgConsole     msgType = "console"
	msgSeccomp     msgType = "seccomp"
	msgSeccompDone msgType = "seccompDone"
	msgReady       msgType = "ready"
	msgGo          msgType = "go"
	msgError       msgType = "error"
)

type syncMsg struct {
	Type msgType `json:"type"`
	// Config is set in msgConfig.
	Config *initConfig `json:"config,omitempty"`
	// Error and ErrKind are set in msgError.
	Error   string `json:"error,omitempty"`
	ErrKind string `json:"errKind,omitempty"`
	// State (msgHooksDone) is what createContainer hooks get on stdin.
	State *specs.State `json:"state,omitempty"`
	// Warnings (msgReady) are logged by the parent: things that worked
	// but not as asked (e.g. chroot instead of pivot_root).
	Warnings []string `json:"warnings,omitempty"`
}

// Error kinds a caller may want to tell apart (`corral run` maps them to
// exit statuses 127 and 126, like docker).
const (
	errKindNotFound   = "notfound"
	errKindPermission = "permission"
)

// ErrExecNotFound and ErrExecPermission are wrapped by Create and Exec when
// process.args[0] cannot be found or executed in the container.
var (
	ErrExecNotFound   = errors.New("executable file not found")
	ErrExecPermission = errors.New("executable file not executable")
)

// syncConn is one end of the socketpair.
type syncConn struct {
	f *os.File
}

// newSyncPair returns the parent's and the child's ends.
func newSyncPair() (parent, child *syncConn, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return &syncConn{os.NewFile(uintptr(fds[0]), "sync-parent")},
		&syncConn{os.NewFile(uintptr(fds[1]), "sync-child")}, nil
}

func (s *syncConn) Close() error { return s.f.Close() }

// send writes one message, with fds attached when given.
func (s *syncConn) send(m *syncMsg, fds ...int) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, err := unix.SendmsgN(int(s.f.Fd()), buf, oob, nil, 0)
	if err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	if n < len(buf) { // a short write on a stream socket: finish it
		if _, err := s.f.Write(buf[n:]); err != nil {
			return fmt.Errorf("send %s: %w", m.Type, err)
		}
	}
	return nil
}

// recv reads one message and the fds attached to it (as *os.File, CLOEXEC).
// io.EOF means the other end closed the socket.
func (s *syncConn) recv() (*syncMsg, []*os.File, error) {
	hdr := make([]byte, 4)
	// Room for the most fds one message can carry (SCM_MAX_FD): msgConfig
	// of a user-namespaced container brings a clone per bind mount.
	oob := make([]byte, unix.CmsgSpace(4*253))
	got := 0
	var files []*os.File
	for got < 4 {
		n, oobn, flags, _, err := unix.Recvmsg(int(s.f.Fd()), hdr[got:], oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, nil, err
		}
		if flags&unix.MSG_CTRUNC != 0 {
			fs, _ := parseRights(oob[:oobn])
			closeAll(append(files, fs...))
			return nil, nil, errors.New("sync message: its fds were cut off (MSG_CTRUNC): protocol error")
		}
		if oobn > 0 {
			fs, err := parseRights(oob[:oobn])
			if err != nil {
				return nil, nil, err
			}
			files = append(files, fs...)
		}
		if n == 0 {
			closeAll(files)
			return nil, nil, io.EOF
		}
		got += n
	}
	size := binary.BigEndian.Uint32(hdr)
	if size > 64<<20 {
		closeAll(files)
		return nil, nil, fmt.Errorf("sync message of %d bytes: protocol error", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(s.f, body); err != nil {
		closeAll(files)
		return nil, nil, fmt.Errorf("read sync message: %w", err)
	}
	var m syncMsg
	if err := json.Unmarshal(body, &m); err != nil {
		closeAll(files)
		return nil, nil, fmt.Errorf("decode sync message: %w", err)
	}
	return &m, files, nil
}

// expect reads the next message and checks its type; a msgError from the
// other side becomes a Go error (with ErrExecNotFound/ErrExecPermission
// wrapped for those kinds).
func (s *syncConn) expect(want msgType) (*syncMsg, []*os.File, error) {
	m, files, err := s.recv()
	if err != nil {
		if err == io.EOF {
			return nil, nil, fmt.Errorf("container init exited before sending %q", want)
		}
		return nil, nil, err
	}
	if m.Type == msgError {
		closeAll(files)
		return nil, nil, errFromMsg(m)
	}
	if m.Type != want {
		closeAll(files)
		return nil, nil, fmt.Errorf("sync protocol: got %q, want %q", m.Type, want)
	}
	return m, files, nil
}

// errFromMsg turns a msgError into an error, wrapping ErrExecNotFound or
// ErrExecPermission for those kinds.
func errFromMsg(m *syncMsg) error {
	switch m.ErrKind {
	case errKindNotFound:
		return &kindError{m.Error, ErrExecNotFound}
	case errKindPermission:
		return &kindError{m.Error, ErrExecPermission}
	}
	return errors.New(m.Error)
}

// kindError is the child's message (which already says what happened)
// carrying a sentinel for errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var out []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			out = append(out, os.NewFile(uintptr(fd), "received-fd"))
		}
	}
	return out, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// handleCommonSync answers the messages that a container init and an exec
// init send alike (parentProcess.handshake, launch.go): the seccomp listener (passed on to the spec's
// listenerPath), ready (logging the child's warnings) and anything
// unexpected. done is true once the child is ready.
func (c *Container) handleCommonSync(conn *syncConn, m *syncMsg, files []*os.File) (done bool, err error) {
	switch m.Type {
	case msgSeccomp:
		err := c.sendSeccompListener(files)
		closeAll(files)
		if err != nil {
			return false, err
		}
		return false, conn.send(&syncMsg{Type: msgSeccompDone})
	case msgReady:
		closeAll(files)
		for _, w := range m.Warnings {
			c.rt.log().Warn(w, "id", c.st.ID)
		}
		return true, nil
	}
	closeAll(files)
	return false, fmt.Errorf("sync protocol: unexpected %q", m.Type)
}
