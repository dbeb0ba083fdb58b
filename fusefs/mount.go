package fusefs

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// FSType is the mount's type as /proc/self/mountinfo shows it.
const FSType = "fuse.corralfs"

// MountConfig are the mount's switches.
type MountConfig struct {
	AllowOther bool // let every user (and every container) read the views
	Debug      bool // log every FUSE request (very verbose)
}

// ErrLiveMount means the mount point is already served by a running corralfs.
var ErrLiveMount = errors.New("already a live corralfs mount")

// PrepareMountpoint makes mp usable for a new mount: it removes stale
// corralfs mounts (whose daemon died: the kernel answers ENOTCONN) with a
// lazy unmount, refuses a live one, refuses any other file system mounted
// there, and creates the directory when missing. mp must be absolute.
func PrepareMountpoint(mp string, log *slog.Logger) error {
	for {
		top, err := topMount(mp)
		if err != nil {
			return err
		}
		if top == nil {
			break
		}
		if top.FSType != FSType {
			return fmt.Errorf("%s: a %s file system is already mounted there", mp, top.FSType)
		}
		switch err := probe(mp); {
		case err == nil:
			return fmt.Errorf("%s: %w (stop the running daemon first)", mp, ErrLiveMount)
		case errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED):
			log.Warn("removing stale corralfs mount (its daemon died)", "mountpoint", mp)
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("%s: unmount stale mount: %w", mp, err)
			}
		default:
			return fmt.Errorf("%s: existing corralfs mount does not answer: %w", mp, err)
		}
	}
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	return nil
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
		FsName:             "corralfs",
		Name:               "corralfs",
		DisableXAttrs:      true,
		DisableReadDirPlus: true, // plain READDIR: cpuN entries must not be cached from a listing
		Debug:              cfg.Debug,
		Logger:             slog.NewLogLogger(lg.Handler(), slog.LevelDebug),
		PanicHandler: func(r any) fuse.Status {
			lg.Error("panic in a FUSE handler (request failed with EIO)", "panic", r, "stack", string(debug.Stack()))
			return fuse.EIO
		},
	}
	if opts.Logger == nil {
		opts.Logger = log.Default()
	}
	return opts
}

// WaitAnswering waits until the mount answers a stat of one of its files
// from this process (run it outside the serving goroutines).
func WaitAnswering(mp string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	p := filepath.Join(mp, "proc", "meminfo")
	for {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer: %w", p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
