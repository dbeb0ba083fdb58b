package survival

import (
	"fmt"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
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
	// The names of the shared memory kept with the connection:
	FDNameInFlight = "corralfs-inflight" // the relay's in-flight journal (kernels without FUSE_NOTIFY_RESEND)
	FDNameHandles  = "corralfs-handles"  // open handles' content (HandleStore)
	FDNameCounters = "corralfs-counters" // daemon-total counters (Counters)
)

// StoredConn takes the connection systemd kept for us, if any (nil
// file), its INIT request, and the shared memory kept with it (by name:
// FDNameInFlight, FDNameHandles, FDNameCounters).
func StoredConn() (*os.File, fuse.InitIn, map[string]*os.File, error) {
	var fuseF, initF *os.File
	extra := map[string]*os.File{}
	for _, f := range activation.Files(true) {
		switch f.Name() {
		case fdNameFuse:
			fuseF = f
		case fdNameInit:
			initF = f
		case FDNameInFlight, FDNameHandles, FDNameCounters:
			extra[f.Name()] = f
		default:
			f.Close()
		}
	}
	closeAll := func() {
		for _, f := range []*os.File{fuseF, initF} {
			if f != nil {
				f.Close()
			}
		}
		for _, f := range extra {
			f.Close()
		}
	}
	if fuseF == nil || initF == nil {
		closeAll()
		return nil, fuse.InitIn{}, nil, nil
	}
	buf := make([]byte, 4096)
	n, err := initF.ReadAt(buf, 0)
	if n == 0 {
		closeAll()
		return nil, fuse.InitIn{}, nil, fmt.Errorf("stored INIT settings: %v", err)
	}
	init, err := DecodeInit(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		closeAll()
		return nil, fuse.InitIn{}, nil, err
	}
	initF.Close()
	unix.CloseOnExec(int(fuseF.Fd()))
	for _, f := range extra {
		unix.CloseOnExec(int(f.Fd()))
	}
	return fuseF, init, extra, nil
}

// StoreShared gives systemd a piece of shared memory the workers use (the
// in-flight journal, the handle store), so that a restarted supervisor
// hands it to its workers. Storing the same file again after a restart
// adds nothing (systemd keeps one copy of a file).
func StoreShared(name string, f *os.File, log interface{ Warn(string, ...any) }) {
	if err := sdNotifyFDs("FDSTORE=1\nFDNAME="+name, int(f.Fd())); err != nil {
		log.Warn("systemd cannot keep "+name, "err", err)
	}
}

// StoreConn gives systemd copies of the connection and its INIT settings.
// No NOTIFY_SOCKET: nothing to do.
func StoreConn(dev *os.File, init fuse.InitIn) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	memfd, err := unix.MemfdCreate(fdNameInit, unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	defer unix.Close(memfd)
	if _, err := unix.Write(memfd, []byte(EncodeInit(init))); err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	if err := sdNotifyFDs("FDSTORE=1\nFDNAME="+fdNameInit, memfd); err != nil {
		return err
	}
	return sdNotifyFDs("FDSTORE=1\nFDNAME="+fdNameFuse, int(dev.Fd()))
}

// UnstoreConn asks systemd to drop them (a deliberate stop: the next start
// mounts afresh).
func UnstoreConn() {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + fdNameFuse)
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + fdNameInit)
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + FDNameInFlight)
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + FDNameHandles)
	_ = sdNotifyFDs("FDSTOREREMOVE=1\nFDNAME=" + FDNameCounters)
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
