package sysinfoagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The runtime side of linux.seccomp.listenerPath (OCI runtime spec,
// "Seccomp notify"): a runtime connects to the socket, sends the JSON of
// specs.ContainerProcessState with the listener fd in SCM_RIGHTS (the
// index of "seccompFd" in state.fds is the index of the fd), and closes.
// runc, crun and corral all do exactly this.

// ociTimeout bounds how long one runtime connection may take, so a stuck
// or hostile client cannot hold a goroutine forever.
const ociTimeout = 5 * time.Second

// readContainerProcessState reads one runtime's message and returns the
// raw state JSON, the decoded state and the seccomp listener fd.
func readContainerProcessState(c *net.UnixConn) (json.RawMessage, *specs.ContainerProcessState, int, error) {
	_ = c.SetDeadline(time.Now().Add(ociTimeout))
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(16*4))
	var data []byte
	var fds []int
	for {
		n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
		n, oobn = max(n, 0), max(oobn, 0)
		if oobn > 0 {
			fds = append(fds, parseRights(oob[:oobn])...)
		}
		if flags&unix.MSG_CTRUNC != 0 {
			closeAll(fds)
			return nil, nil, -1, errors.New("too many fds in the message")
		}
		data = append(data, buf[:n]...)
		if len(data) > maxMessage {
			closeAll(fds)
			return nil, nil, -1, fmt.Errorf("state larger than %d bytes", maxMessage)
		}
		// The runtime sends one message and closes; stop as soon as
		// the JSON is complete so a runtime that keeps the connection
		// open is served too. A message split by the socket continues
		// at once: a short wait is enough for the rest.
		if json.Valid(data) || n == 0 || err != nil {
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(data, &st); err != nil {
		closeAll(fds)
		return nil, nil, -1, fmt.Errorf("container process state: %w", err)
	}
	idx := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName {
			idx = i
		}
	}
	if idx < 0 || idx >= len(fds) {
		closeAll(fds)
		return nil, nil, -1, fmt.Errorf("no %q fd in the message (fds %v, %d received)", specs.SeccompFdName, st.Fds, len(fds))
	}
	fd := fds[idx]
	for i, f := range fds {
		if i != idx {
			unix.Close(f)
		}
	}
	if err := isListenerFd(fd); err != nil {
		unix.Close(fd)
		return nil, nil, -1, err
	}
	return json.RawMessage(data), &st, fd, nil
}
