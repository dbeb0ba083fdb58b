package sysinfoagent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The keeper's two sockets: the OCI listener socket runtimes connect to,
// and the control socket for the agent.

func listenUnix(network, path string, mode os.FileMode) (*net.UnixListener, error) {
	os.Remove(path)
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		return nil, fmt.Errorf("keeper: listen %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // removed explicitly, in order
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("keeper: chmod %s: %w", path, err)
	}
	return l, nil
}

// acceptRuntimes takes listener fds from runtimes (OCI protocol).
func (k *Keeper) acceptRuntimes(l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			k.log.Warn("accept on the listener socket", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			defer func() {
				// A request never takes the keeper down.
				if r := recover(); r != nil {
					k.log.Error("panic serving a runtime connection", "panic", r)
				}
			}()
			raw, st, fd, err := readContainerProcessState(c)
			if err != nil {
				k.log.Warn("runtime message rejected", "err", err)
				return
			}
			if _, err := k.addEntry(entryInfo{Kind: KindSeccomp, Name: st.State.ID, Meta: raw}, fd); err != nil {
				k.log.Warn("listener fd rejected", "container", st.State.ID, "err", err)
				return
			}
			k.log.Debug("listener fd received", "container", st.State.ID, "pid", st.Pid)
		}()
	}
}

// acceptAgents attaches agents; a new agent replaces the current one (an
// upgrade starts the new corralfs before the old one is gone).
func (k *Keeper) acceptAgents(l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			k.log.Warn("accept on the control socket", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err := checkPeer(c); err != nil {
			k.log.Warn("agent refused", "err", err)
			c.Close()
			continue
		}
		k.attach(c)
	}
}

// checkPeer lets only root (or the keeper's own user) attach: an agent
// gets every container's listener.
func checkPeer(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("peer uid %d is not allowed", cred.Uid)
	}
	return nil
}
