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
	// What go-fuse's direct mount passes (max_read = MaxWrite).
	data := []string{
		"fd=" + strconv.Itoa(fd),
		"rootmode=" + strconv.FormatUint(uint64(st.Mode&unix.S_IFMT), 8),
		"user_id=" + strconv.Itoa(os.Geteuid()),
		"group_id=" + strconv.Itoa(os.Getegid()),
		"max_read=" + strconv.Itoa(opts.MaxWrite),
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

// MaxWrite is the size corralfs negotiates for requests (max_write, and
// max_pages with it) and READs (max_read). Nothing is ever written to the
// views, and the largest file is a few KiB, but go-fuse gives every
// request in flight a read buffer of this size plus headers: at 200
// containers over a hundred requests are in flight at once, and with
// go-fuse's default (128 KiB) those buffers were most of the worker's
// heap. A file longer than this (cpuinfo of a container with a dozen
// CPUs or more) takes more than one READ.
const MaxWrite = 16 << 10

// MaxBackground is how many asynchronous requests the kernel keeps in
// flight to corralfs at once (max_background; go-fuse's default is 12).
// Every close(2) of a view sends one, a RELEASE, and its file's content
// stays in the handle table until it is answered. With 12 at a time and
// readers waiting tens of milliseconds for the CPU, RELEASEs were answered
// at a few hundred a second while 200 containers opened 2,000 files a
// second: the kernel's queue grew by thousands a second (fusectl's
// waiting: 21,000 after 15 s) and with it the worker's heap (23 MiB of
// contents of files long closed), on the way to refusing opens at the
// handle limit. A RELEASE costs a map deletion; 256 in flight drain that.
const MaxBackground = 256

// legacyMaxWrite is what corralfs negotiated before MaxWrite, and what a
// connection whose size cannot be found is served with: a buffer larger
// than the connection needs always works, a smaller one fails every read
// (the kernel refuses read(2) of /dev/fuse into less than max_write plus
// headers).
const legacyMaxWrite = 128 << 10

func (c MountConfig) maxWrite() int {
	if c.MaxWrite > 0 {
		return c.MaxWrite
	}
	return MaxWrite
}

// ConnMaxWrite is the max_write the connection mounted at mp was
// negotiated with, for a worker adopting it: the process that mounted it
// (this binary, or an older one that kept the connection across an
// upgrade or in systemd's fd store) set max_read to the same value, and
// the mount's options say it.
func ConnMaxWrite(mp string) int {
	top, err := topMount(mp)
	if err != nil || top == nil || top.FSType != facts.FSType {
		return legacyMaxWrite
	}
	for _, o := range strings.Split(top.VFSOptions, ",") {
		if v, ok := strings.CutPrefix(o, "max_read="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return legacyMaxWrite
}
