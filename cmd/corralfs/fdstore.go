package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs"
)

// systemd's file descriptor store (FDSTORE=1, FileDescriptorStoreMax= in
// corralfs.service): the supervisor gives systemd a copy of the /dev/fuse
// file and of the INIT settings (a memfd), so that when the supervisor
// itself dies systemd holds the connection — the mount stays alive, reads
// wait in the kernel's queue — and hands both back to the restarted
// supervisor in LISTEN_FDS. Without systemd (or without a NOTIFY_SOCKET)
// nothing is stored, and a dead supervisor's mount dies with its worker.

const (
	fdNameFuse = "corralfs-fuse"
	fdNameInit = "corralfs-fuse-init"
)

// storedConn takes the connection systemd kept for us, if any.
func storedConn() (*fusefs.Conn, error) {
	var fuseF, initF *os.File
	for _, f := range activation.Files(true) {
		switch f.Name() {
		case fdNameFuse:
			fuseF = f
		case fdNameInit:
			initF = f
		default:
			f.Close()
		}
	}
	if fuseF == nil || initF == nil {
		for _, f := range []*os.File{fuseF, initF} {
			if f != nil {
				f.Close()
			}
		}
		return nil, nil
	}
	defer initF.Close()
	buf := make([]byte, 4096)
	n, err := initF.ReadAt(buf, 0)
	if n == 0 {
		fuseF.Close()
		return nil, fmt.Errorf("stored INIT settings: %v", err)
	}
	init, err := fusefs.DecodeInit(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		fuseF.Close()
		return nil, err
	}
	unix.CloseOnExec(int(fuseF.Fd()))
	return &fusefs.Conn{File: fuseF, Init: init}, nil
}

// storeConn gives systemd copies of the connection and its INIT settings.
// No NOTIFY_SOCKET: nothing to do.
func storeConn(c *fusefs.Conn) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	memfd, err := unix.MemfdCreate(fdNameInit, unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	defer unix.Close(memfd)
	if _, err := unix.Write(memfd, []byte(fusefs.EncodeInit(c.Init))); err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	if err := sdNotifyFDs("FDSTORE=1\nFDNAME="+fdNameInit, memfd); err != nil {
		return err
	}
	return sdNotifyFDs("FDSTORE=1\nFDNAME="+fdNameFuse, int(c.File.Fd()))
}

// unstoreConn asks systemd to drop them (a deliberate stop: the next start
// mounts afresh).
func unstoreConn() {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + fdNameFuse)
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + fdNameInit)
}

// sdNotifyFDs is sd_pid_notify_with_fds: one datagram with the state and
// the descriptors (go-systemd's SdNotify cannot pass descriptors).
func sdNotifyFDs(state string, fds ...int) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// x/sys maps a leading '@' to the abstract namespace, as systemd means it.
	if err := unix.Sendmsg(fd, []byte(state), oob, &unix.SockaddrUnix{Name: addr}, 0); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
