// Command trivialfs is the bench's transport floor: the smallest go-fuse
// file system with DEFAULT options serving constant files. It mounts
// MOUNTPOINT/proc/{meminfo,cpuinfo,stat,loadavg,uptime}, each holding a
// copy of the host's file taken at start (so sizes match what corralfs
// serves), with nothing but Open/Read/Getattr implemented: no
// FOPEN_NOFLUSH, no direct I/O, the go-fuse defaults for timeouts. What a
// read of it costs is what FUSE itself costs; corralfs does real work on
// top and is measured against it.
//
// It counts the FUSE requests it gets (the counting wrapper passes every
// request through unchanged) and writes the counts as JSON to --counts on
// SIGUSR1 and at exit, so the bench can report requests per read.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/pflag"
)

// Files are the host files served, under proc/.
var Files = []string{"meminfo", "cpuinfo", "stat", "loadavg", "uptime"}

// constFile is a read-only file with fixed content. Open returns no
// flags: the kernel's defaults (page cache, dropped on every open because
// FOPEN_KEEP_CACHE is not set; FLUSH on close).
type constFile struct {
	fs.Inode
	data []byte
}

var (
	_ fs.NodeOpener    = (*constFile)(nil)
	_ fs.NodeReader    = (*constFile)(nil)
	_ fs.NodeGetattrer = (*constFile)(nil)
)

func (f *constFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *constFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(f.data)))
	return fuse.ReadResultData(f.data[off:end]), 0
}

func (f *constFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(len(f.data))
	return 0
}

type root struct {
	fs.Inode
	files map[string][]byte
}

func (r *root) OnAdd(ctx context.Context) {
	proc := r.NewPersistentInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR})
	r.AddChild("proc", proc, false)
	for name, data := range r.files {
		proc.AddChild(name, r.NewPersistentInode(ctx, &constFile{data: data}, fs.StableAttr{}), false)
	}
}

// counting passes every request to the real file system and counts the
// ones an open+read+close consists of.
type counting struct {
	fuse.RawFileSystem
	open, read, flush, release, getattr, lookup atomic.Uint64
}

func (c *counting) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c.open.Add(1)
	return c.RawFileSystem.Open(cancel, in, out)
}

func (c *counting) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c.read.Add(1)
	return c.RawFileSystem.Read(cancel, in, buf)
}

func (c *counting) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	c.flush.Add(1)
	return c.RawFileSystem.Flush(cancel, in)
}

func (c *counting) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	c.release.Add(1)
	c.RawFileSystem.Release(cancel, in)
}

func (c *counting) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	c.getattr.Add(1)
	return c.RawFileSystem.GetAttr(cancel, in, out)
}

func (c *counting) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	c.lookup.Add(1)
	return c.RawFileSystem.Lookup(cancel, h, name, out)
}

func (c *counting) snapshot() map[string]uint64 {
	return map[string]uint64{
		"open": c.open.Load(), "read": c.read.Load(), "flush": c.flush.Load(),
		"release": c.release.Load(), "getattr": c.getattr.Load(), "lookup": c.lookup.Load(),
	}
}

// defaultOptions are what fs.Mount uses when given nil options (one-second
// entry and attribute timeouts, every other MountOptions field zero), plus
// a direct mount(2) (as root no fusermount is needed) and a name to tell
// the mount apart in /proc/mounts.
func defaultOptions() *fs.Options {
	oneSec := time.Second
	return &fs.Options{
		EntryTimeout: &oneSec,
		AttrTimeout:  &oneSec,
		MountOptions: fuse.MountOptions{DirectMount: true, FsName: "trivialfs", Name: "trivialfs"},
	}
}

func main() {
	counts := pflag.String("counts", "", "write the request counts as JSON here on SIGUSR1 and at exit")
	pidfile := pflag.String("pidfile", "", "write the pid here once the mount answers")
	// Not used by the bench (the floor is the defaults): for measuring
	// what go-fuse's splice attempt costs a ReadResultData reply.
	noSplice := pflag.Bool("disable-splice", false, "set MountOptions.DisableSplice (experiments only; the bench runs the defaults)")
	pflag.Parse()
	if pflag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: trivialfs [--counts FILE] [--pidfile FILE] MOUNTPOINT")
		os.Exit(2)
	}
	mp := pflag.Arg(0)
	files := map[string][]byte{}
	for _, name := range Files {
		b, err := os.ReadFile("/proc/" + name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "trivialfs: %v\n", err)
			os.Exit(1)
		}
		files[name] = b
	}
	opts := defaultOptions()
	opts.MountOptions.DisableSplice = *noSplice
	raw := &counting{RawFileSystem: fs.NewNodeFS(&root{files: files}, opts)}
	srv, err := fuse.NewServer(raw, mp, &opts.MountOptions)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trivialfs: mount %s: %v\n", mp, err)
		os.Exit(1)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		fmt.Fprintf(os.Stderr, "trivialfs: %v\n", err)
		os.Exit(1)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "trivialfs: %v\n", err)
		}
	}
	writeCounts := func() {
		if *counts == "" {
			return
		}
		b, _ := json.Marshal(raw.snapshot())
		_ = os.WriteFile(*counts, b, 0o644)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for s := range sigs {
		writeCounts()
		if s != syscall.SIGUSR1 {
			break
		}
	}
	if err := srv.Unmount(); err != nil {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}
