package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs/facts"
)

// MountConfig are the mount's switches.
type MountConfig struct {
	AllowOther bool // let every user (and every container) read the views
	Debug      bool // log every FUSE request (very verbose)
	// MaxWrite: Adopt only, the connection's negotiated size (ConnMaxWrite);
	// 0 means MaxWrite.
	MaxWrite int
	// Adopt only, a worker behind the relay (kernels without
	// FUSE_NOTIFY_RESEND, survival/relay.go): where requests come from, and the
	// journal it frees answered requests in.
	RequestSource *os.File
	InFlight      *survival.Journal
}

// ErrLiveMount means the mount point is already served by a running corralfs.
var ErrLiveMount = errors.New("already a live corralfs mount")

// PrepareMountpoint makes mp usable for a new mount: it removes stale
// corralfs mounts (whose daemon died: the kernel answers ENOTCONN) with a
// lazy unmount, refuses a live one, refuses any other file system mounted
// there, and creates the directory when missing. mp must be absolute.
func PrepareMountpoint(mp string, log *slog.Logger) error {
	_, err := PrepareMountpointDead(mp, log)
	return err
}

// PrepareMountpointDead is PrepareMountpoint that also returns the device
// numbers (unix.Mkdev of mountinfo's major:minor) of the dead mounts it
// removed: every container that still binds a view of them reads
// ENOTCONN until the new mount's views replace them (views.RebindDead).
func PrepareMountpointDead(mp string, log *slog.Logger) (dead []uint64, err error) {
	for {
		top, err := topMount(mp)
		if err != nil {
			return nil, err
		}
		if top == nil {
			break
		}
		if top.FSType != facts.FSType {
			return nil, fmt.Errorf("%s: a %s file system is already mounted there", mp, top.FSType)
		}
		switch err := probe(mp); {
		case err == nil:
			return nil, fmt.Errorf("%s: %w (stop the running daemon first)", mp, ErrLiveMount)
		case errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED):
			log.Warn("removing stale corralfs mount (its daemon died)", "mountpoint", mp)
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				return nil, fmt.Errorf("%s: unmount stale mount: %w", mp, err)
			}
			dead = append(dead, unix.Mkdev(uint32(top.Major), uint32(top.Minor)))
		default:
			return nil, fmt.Errorf("%s: existing corralfs mount does not answer: %w", mp, err)
		}
	}
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return nil, fmt.Errorf("mountpoint: %w", err)
	}
	return dead, nil
}

// topMount returns the last (visible) mount at exactly mp, or nil.
func topMount(mp string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Mountpoint != mp, false
	})
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return ms[len(ms)-1], nil
}

// probe asks the mount's server something it must answer itself: the
// lookup of a name that does not exist (the kernel caches attributes, so a
// stat of the root can succeed on a dead mount, but it never caches a
// failed lookup). A live server says ENOENT, a dead one's connection
// ENOTCONN. The timeout covers a stopped (not dead) daemon, which would
// block the lookup forever.
func probe(mp string) error {
	done := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		err := unix.Stat(filepath.Join(mp, ".corralfs-probe"), &st)
		if err == nil || errors.Is(err, unix.ENOENT) {
			err = nil
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
		return errors.New("no answer within 3s (is its daemon stopped?)")
	}
}

// Mount mounts fs at mp (read-only, nosuid, nodev, noexec, directly with
// mount(2): no fusermount needed as root) and returns the server, which
// the caller must Serve. The connection lives and dies with this process;
// MountConn and Adopt split owning it from serving it (conn.go).
//
// Request dispatch is go-fuse's: each request is served on the goroutine
// that read it, which first starts a fresh reader for the next one. No
// option changes that (the reader count is GOMAXPROCS clamped to 2..16),
// and SingleThreaded would only put every handler behind one mutex,
// queueing all containers behind the slowest cgroup read.
func Mount(fs *FS, mp string, cfg MountConfig) (*fuse.Server, error) {
	opts := mountOptions(cfg, fs.log)
	opts.DirectMountStrict = true
	opts.DirectMountFlags = mountFlags
	srv, err := fuse.NewServer(fs, mp, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	return srv, nil
}

// mountFlags: the views are read-only text, nothing to execute or open as
// a device.
const mountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_RDONLY

// mountOptions are the go-fuse options of every corralfs server. The
// process that answers INIT (MountConn) and every worker adopting the
// connection later (Adopt) must use the same ones: each negotiates the
// protocol from them and they must agree with what the kernel was told.
func mountOptions(cfg MountConfig, lg *slog.Logger) *fuse.MountOptions {
	if lg == nil {
		lg = slog.Default()
	}
	opts := &fuse.MountOptions{
		AllowOther:         cfg.AllowOther,
		FsName:             facts.FSName,
		Name:               facts.FSName,
		DisableXAttrs:      true,
		DisableReadDirPlus: true, // plain READDIR: cpuN entries must not be cached from a listing
		// Every READ is answered from memory (fuse.ReadResultData). With
		// splice on, go-fuse 2.12 first writes the reply header into a
		// pipe, finds the data is not a file descriptor, drains the pipe
		// and only then writev()s the reply: three wasted system calls
		// per READ that carries data (strace -c over 2,000 open+read+close
		// of meminfo: 2,000 each of splice, ioctl and an extra writev, all
		// gone with this).
		DisableSplice: true,
		MaxWrite:      cfg.maxWrite(),
		MaxBackground: MaxBackground,
		Debug:         cfg.Debug,
		Logger:        goFuseLogger(lg, cfg.Debug),
		PanicHandler: func(r any) fuse.Status {
			lg.Error("panic in a FUSE handler (request failed with EIO)", "panic", r, "stack", string(debug.Stack()))
			return fuse.EIO
		},
	}
	return opts
}

// goFuseLogger is where go-fuse's own messages go. Without debug they are
// all trouble that our handlers never hear of: a reply the kernel refused
// (its reader then gets EIO), a failed read of /dev/fuse, an opcode go-fuse
// does not know. They used to be logged at debug level, which hid exactly
// the messages that explain an EIO nobody logged; now they are warnings,
// at most fuseLogBurst a minute so a repeating one cannot flood the
// journal. With debug they are the request trace, shown at info level:
// asking for the trace is enough to see it.
func goFuseLogger(l *slog.Logger, debug bool) *log.Logger {
	w := &fuseLogWriter{log: l, level: slog.LevelWarn, burst: fuseLogBurst}
	if debug {
		w.level, w.burst = slog.LevelInfo, 0
	}
	return log.New(w, "", 0)
}

const fuseLogBurst = 20

// fuseLogWriter turns go-fuse's log lines into slog records, dropping
// those beyond burst per minute (0: no limit); the first message of the
// next minute is preceded by how many were dropped.
type fuseLogWriter struct {
	log   *slog.Logger
	level slog.Level
	burst int

	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

func (w *fuseLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if w.burst > 0 {
		now := time.Now()
		w.mu.Lock()
		if now.Sub(w.window) >= time.Minute {
			if w.dropped > 0 {
				w.log.Log(context.Background(), w.level, "go-fuse: more messages were dropped", "dropped", w.dropped)
			}
			w.window, w.n, w.dropped = now, 0, 0
		}
		w.n++
		drop := w.n > w.burst
		if drop {
			w.dropped++
		}
		w.mu.Unlock()
		if drop {
			return len(p), nil
		}
	}
	w.log.Log(context.Background(), w.level, "go-fuse: "+msg)
	return len(p), nil
}

// Unmount unmounts mp, waiting briefly for busy files to close, and
// detaches it lazily if it stays busy.
func Unmount(srv *fuse.Server, mp string) error {
	if err := srv.Unmount(); err == nil {
		return nil
	}
	if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}
