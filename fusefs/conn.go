package fusefs

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs/facts"
)

// A FUSE connection that outlives the process serving it (issue 5).
//
// The kernel keeps a connection alive while any process holds its
// /dev/fuse file, and a request a server has read but not answered stays
// on that file's "processing" list. So one small process (the supervisor)
// mounts, answers INIT, keeps the file and the INIT request, and starts a
// worker that inherits the SAME open file (not a FUSE_DEV_IOC_CLONE: the
// kernel ends a clone's unanswered requests with ECONNABORTED when it is
// closed). When a worker dies its unanswered requests stay queued on the
// shared file; FUSE_NOTIFY_RESEND (Linux 6.9+) puts them back on the
// pending list, and the next worker answers them. Every answer depends on
// the node id, the caller and the handle's content, which every worker
// keeps in shared memory (fixed node ids, survival/handle_store.go), so any worker
// can answer anything.
//
//	supervisor: open /dev/fuse, mount(2), answer INIT   (MountConn)
//	worker N:   inherits the fd + saved INIT            (Adopt, Serve)
//	worker N dies -> supervisor: NOTIFY_RESEND          (Resend)
//	worker N+1: inherits the same fd + saved INIT       (Adopt, Serve)

// Conn is a mounted, initialised FUSE connection owned by this process.
type Conn struct {
	File *os.File    // the /dev/fuse file: keep it open for the connection to live
	Init fuse.InitIn // the kernel's INIT request, for the workers' negotiation
	// initServer answered INIT and is never served; kept so its copy of
	// the fd is not closed by a finalizer while we care.
	initServer *fuse.Server
}

// MountConn mounts a corralfs connection at mp and answers INIT with the
// options every worker uses, but serves nothing: requests queue in the
// kernel until a worker adopts the connection.
func MountConn(mp string, cfg MountConfig, lg *slog.Logger) (*Conn, error) {
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	file := os.NewFile(uintptr(fd), "/dev/fuse")
	opts := mountOptions(cfg, lg)
	// What go-fuse's direct mount passes (max_read = its default MaxWrite).
	data := []string{
		"fd=" + strconv.Itoa(fd),
		"rootmode=" + strconv.FormatUint(uint64(st.Mode&unix.S_IFMT), 8),
		"user_id=" + strconv.Itoa(os.Geteuid()),
		"group_id=" + strconv.Itoa(os.Getegid()),
		"max_read=" + strconv.Itoa(128*1024),
	}
	if cfg.AllowOther {
		data = append(data, "allow_other")
	}
	if err := unix.Mount(opts.FsName, mp, "fuse."+opts.Name, mountFlags, strings.Join(data, ",")); err != nil {
		file.Close()
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	// go-fuse answers INIT on a duplicate (it takes ownership of the fd
	// it is given); the connection is the same open file.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		unix.Unmount(mp, unix.MNT_DETACH)
		file.Close()
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	srv, err := fuse.NewServer(fuse.NewDefaultRawFileSystem(), "/dev/fd/"+strconv.Itoa(dup), opts)
	if err != nil {
		unix.Unmount(mp, unix.MNT_DETACH)
		file.Close()
		return nil, fmt.Errorf("mount %s: INIT: %w", mp, err)
	}
	return &Conn{File: file, Init: *srv.KernelSettings(), initServer: srv}, nil
}

// Adopt serves fs on an initialised connection: fd is (a descriptor of)
// the supervisor's /dev/fuse file, init the INIT request it answered.
// The caller must Serve the server; it never unmounts (the supervisor
// does).
func Adopt(fs *FS, fd int, init fuse.InitIn, cfg MountConfig) (*fuse.Server, error) {
	opts := mountOptions(cfg, fs.log)
	opts.AdoptInit = &init
	if cfg.InFlight != nil {
		opts.InFlight = cfg.InFlight // a nil *Journal must not become a non-nil interface
	}
	opts.RequestSource = cfg.RequestSource
	srv, err := fuse.NewServer(fs.rawFS(), "/dev/fd/"+strconv.Itoa(fd), opts)
	if err != nil {
		return nil, fmt.Errorf("adopting the FUSE connection: %w", err)
	}
	return srv, nil
}

// MountedAt reports whether the visible mount at mp is a corralfs (without
// asking it anything: its server may be between workers).
func MountedAt(mp string) (bool, error) {
	top, err := topMount(mp)
	if err != nil {
		return false, err
	}
	return top != nil && top.FSType == facts.FSType, nil
}
