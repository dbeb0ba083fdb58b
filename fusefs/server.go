// Package fusefs serves the per-container views over FUSE: the tree of
// files (tree.go), the request handlers (server*.go), the gathering of a
// view's Input (server_input.go) and the mount (mount.go, conn.go). Who is
// reading and their load are fusefs/inputs'; what the views say is
// fusefs/render's; what lets a connection outlive its worker is
// fusefs/survival's.
package fusefs

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/fusefs/survival"
)

// Config configures the FUSE file system.
type Config struct {
	Reader  cgroupreader.Reader
	Options render.Options
	Log     *slog.Logger
	// ProcRoot and SysRoot locate the host's /proc and /sys ("" = real).
	ProcRoot string
	SysRoot  string
	// SnapshotTTL is how long a container's cgroup Snapshot is reused
	// (0 = DefaultSnapshotTTL, negative = never reused).
	SnapshotTTL time.Duration
	Sampler     inputs.SamplerConfig
	// HandleStore, shared with the other workers of the connection, lets
	// a worker go on reading handles its predecessor opened (nil: none).
	HandleStore *survival.HandleStore
	// Counters, shared with the other workers and the supervisor, count
	// requests, latencies and fallbacks as daemon totals (nil: none).
	Counters *survival.Counters
	// MaxHandles and MaxHandlesPerContainer bound the open handles
	// (handle_quota.go; 0 = the defaults).
	MaxHandles             int
	MaxHandlesPerContainer int
	// NoBoundViews leaves out the per-container bound views (bound.go):
	// with the relay (kernels before 6.9) they are not offered, see
	// docs/design.md decision 52.
	NoBoundViews bool
}

// Cache lifetimes the kernel gets. The tree is static and node ids are
// fixed, so entries and attributes may be cached for long; what a file
// SAYS is never cached (direct I/O, no FOPEN_KEEP_CACHE), and the cpuN
// entries, whose existence depends on the caller, get no entry lifetime.
const (
	staticTimeout = time.Hour
)

// openFlags for every file: FOPEN_DIRECT_IO because the content differs by
// reader, so it must never enter the inode's page cache (shared by every
// reader) and every read(2) must come to us; FOPEN_NOFLUSH (Linux 5.16+)
// because there is nothing to flush, which saves one synchronous round
// trip per close.
//
// FOPEN_DIRECT_IO costs a READ at EOF: the reader's second read(2), which
// the kernel forwards like any direct I/O read (it has no size to stop at,
// and a short READ tells it nothing). It still cannot go. Without it
// read(2) is served from the inode's page cache: those fills carry no lock
// owner, so pageCacheRead refuses them and every read would fail; accepting
// them would let two containers opening meminfo at once share the pages the
// first one filled (the cache is per inode, and dropping it at each open
// does not separate concurrent opens); and the kernel would stop every
// read at st_size (4096), cutting a long cpuinfo or stat.
//
// FUSE passthrough (Linux 6.9+: the kernel reads an open file from a
// backing file, no READ round trips) was tried and cannot serve views:
// while one open of an inode is in passthrough mode, the kernel fails
// every other open of it that does not use the very same backing file
// (EIO for a direct I/O open, EBUSY for another backing file), and two
// containers reading meminfo at once need different content. (Early bench
// runs, made while that experiment was in the working tree, showed its
// signature: 5-10% of opens failing with EIO under concurrency and nothing
// in the daemon's log, since the kernel refuses such an open itself.
// TestConcurrentOpensFromManyPidNamespaces fails on any such error.)
const openFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH

// fileSize is every file's st_size, as in sysfs: a page. read(2) ignores it
// (direct I/O reads go to us until we say EOF), so content may be longer
// or shorter. It is not 0 (procfs' choice) because of sendfile(2)/splice:
// since Linux 6.5 the kernel serves splice reads of FOPEN_DIRECT_IO files
// from the page cache (fixed upstream in 2026 by "fuse: use
// copy_splice_read() for FOPEN_DIRECT_IO splice read"), which with size 0
// gives busybox cat (sendfile) an empty file. With a size, the splice asks
// us to fill the page cache, and Read refuses that (see pageCacheRead), so
// sendfile fails and busybox and Python fall back to read(2).
const fileSize = 4096

// FS is the corralfs RawFileSystem. Every request is answered from the
// node id and the caller's pid alone (plus, for reads, the content kept per
// open handle, which a fresh process can recompute).
type FS struct {
	fuse.RawFileSystem
	cfg       Config
	log       *slog.Logger
	tree      *Tree
	resolver  *inputs.Resolver
	sampler   *inputs.Sampler
	handles   handleTable
	quota     *handleQuota
	snaps     snapCache
	hostCache hostFileCache
	inputs    sync.Pool
	started   time.Time

	cpusMu sync.Mutex
	cpus   []int
	cpusAt time.Time

	loggedMu sync.Mutex
	logged   map[logKey]bool

	counterFiles map[string]int // series name -> index in cfg.Counters

	// The per-container bound views (bound.go, bound_ops.go).
	boundViews []*node // the view nodes a key directory holds
	boundNodes boundNodes
	boundGens  boundGens
	server     atomic.Pointer[fuse.Server] // for NOTIFY_INVAL_INODE/STORE
	fallbacks  fallbackLog                 // per pid namespace, for status --containers

	Stats Stats
}

// Stats are counters for `corralfs status` and the tests.
type Stats struct {
	Opens     atomic.Uint64
	Reads     atomic.Uint64
	Fallbacks atomic.Uint64
	Exhausted atomic.Uint64 // opens refused for want of descriptors or memory
	Refused   atomic.Uint64 // opens refused by the handle quota
	// Renders counts contents computed (an OPEN, or a READ at 0 that
	// starts a new generation).
	Renders atomic.Uint64
}

// New builds the tree and the caller resolver.
func New(cfg Config) (*FS, error) {
	if cfg.Reader == nil {
		return nil, fmt.Errorf("fusefs: no cgroup reader")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Sampler.ProcRoot == "" {
		cfg.Sampler.ProcRoot = cfg.ProcRoot
	}
	tree, err := NewTree(render.Views(), TreeConfig{SysRoot: cfg.SysRoot, NoBound: cfg.NoBoundViews})
	if err != nil {
		return nil, err
	}
	res, err := inputs.NewResolver(cfg.ProcRoot, cfg.Reader)
	if err != nil {
		return nil, err
	}
	ttl := cfg.SnapshotTTL
	if ttl == 0 {
		ttl = inputs.DefaultSnapshotTTL
	}
	fs := &FS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		cfg:           cfg,
		log:           cfg.Log,
		tree:          tree,
		resolver:      res,
		sampler:       inputs.NewSampler(cfg.Reader, cfg.Sampler, cfg.Log),
		quota:         newHandleQuota(cfg.MaxHandlesPerContainer, cfg.MaxHandles),
		snaps:         snapCache{ttl: ttl},
		hostCache:     hostFileCache{ttl: ttl},
		started:       time.Now(),
	}
	// File handles must not repeat across processes serving one
	// connection (a restarted worker answers handles its predecessor
	// opened by recomputing their content): start this process's
	// numbers at its start time in milliseconds << 20. A later worker
	// starts at least its predecessor's lifetime in ms << 20 higher,
	// which no worker reaches at fewer than a billion opens a second.
	fs.handles.next.Store(uint64(fs.started.UnixMilli()) << 20)
	fs.boundViews = tree.boundFiles()
	fs.registerCounterFiles()
	return fs, nil
}

// Init keeps the server: bound views send it notifications.
func (fs *FS) Init(s *fuse.Server) { fs.server.Store(s) }

// Run does the periodic work (load sampling, forgetting dead containers)
// until stop is closed.
func (fs *FS) Run(stop <-chan struct{}) {
	go fs.sampler.Run(stop)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fs.resolver.Close()
			return
		case <-t.C:
			fs.resolver.Forget()
			fs.boundGens.sweep(time.Minute, fs.cfg.HandleStore)
		}
	}
}

func (fs *FS) String() string { return "corralfs" }

func (fs *FS) fillAttr(n *node, a *fuse.Attr) {
	*a = fuse.Attr{Ino: n.id, Nlink: 1, Mode: syscall.S_IFREG | 0o444, Size: fileSize}
	if n.isDir() {
		a.Mode = syscall.S_IFDIR | 0o555
		a.Nlink = 2
		for _, c := range n.children {
			if c.isDir() {
				a.Nlink++
			}
		}
	}
	sec := uint64(fs.started.Unix())
	a.Atime, a.Mtime, a.Ctime = sec, sec, sec
}

// Lookup finds name in a directory. cpuN entries exist only for callers
// with more than N CPUs and get entry lifetime 0, so the kernel asks again
// on every path walk and never shows one container's cpuN to another.
func (fs *FS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if st, bound := fs.boundLookup(h.NodeId, name, out); bound {
		return st
	}
	parent := fs.tree.node(h.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	if !parent.isDir() {
		return fuse.ENOTDIR
	}
	n := parent.byName[name]
	if n == nil {
		return fuse.ENOENT
	}
	*out = fuse.EntryOut{NodeId: n.id}
	if n.perCaller() {
		if visible, _ := fs.visibleCPUs(int(h.Pid)); n.cpu >= len(visible) {
			return fuse.ENOENT
		}
	} else {
		out.SetEntryTimeout(staticTimeout)
	}
	out.SetAttrTimeout(staticTimeout)
	fs.fillAttr(n, &out.Attr)
	return fuse.OK
}

// Forget: node ids are fixed and nodes never go away, so the kernel's
// lookup counts need no bookkeeping.
func (fs *FS) Forget(nodeid, nlookup uint64) {}

func (fs *FS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := fs.tree.node(in.NodeId)
	if n == nil {
		if st, bound := fs.boundGetAttr(in, out); bound {
			return st
		}
		return fuse.ENOENT
	}
	out.SetTimeout(staticTimeout)
	fs.fillAttr(n, &out.Attr)
	return fuse.OK
}

func (fs *FS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if fs.tree.node(in.NodeId) == nil {
		if _, bound := fs.boundNodes.get(in.NodeId); !bound {
			return fuse.ENOENT
		}
	}
	if in.Mask&2 != 0 { // W_OK
		return fuse.Status(syscall.EROFS)
	}
	return fuse.OK
}

// Open computes the file's content for the caller. The first READ at
// offset 0 serves it (see Read), so an open+read+close computes it once.
// Computing it here rather than at that READ keeps OPEN the place where a
// file that does not exist for this caller (a cpuN beyond its CPUs, the
// pressure of a container without PSI) fails, as open(2) does in procfs.
func (fs *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.tree.node(in.NodeId)
	if n == nil {
		if st, bound := fs.boundOpen(in, out); bound {
			return st
		}
		return fuse.ENOENT
	}
	if n.isDir() {
		return fuse.EISDIR
	}
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY || in.Flags&syscall.O_TRUNC != 0 {
		return fuse.EACCES
	}
	fs.Stats.Opens.Add(1)
	caller := fs.resolve(int(in.Pid))
	key, errno := fs.takeHandle(caller)
	if errno != 0 {
		return fuse.Status(errno)
	}
	data, errno := fs.contentFor(n, int(in.Pid), caller)
	if errno != 0 {
		fs.quota.untake(key)
		return fuse.Status(errno)
	}
	out.Fh = fs.handles.add(handle{data: data, unique: requestID(in.Unique), unread: max(time.Since(fs.started), 1)})
	fs.quota.bind(out.Fh, key)
	fs.cfg.HandleStore.Put(out.Fh, requestID(in.Unique), data)
	out.OpenFlags = openFlags
	return fuse.OK
}

// pageCacheRead tells a READ that would fill the inode's page cache (splice,
// sendfile, mmap) from a read(2) of the caller: the kernel's direct I/O
// path always names the reading process's file table as lock owner, its
// page cache path never does. Page cache content is shared by every reader
// of the inode, so one container would read another's numbers; refusing
// it with EINVAL (what sendfile(2) documents for a file that cannot be
// mapped) makes sendfile users fall back to read(2), and leaves nothing in
// the cache.
func pageCacheRead(in *fuse.ReadIn) bool { return in.ReadFlags&fuse.READ_LOCKOWNER == 0 }

func (fs *FS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	if in.Fh == 0 {
		return // a bound file: no handle
	}
	fs.handles.take(in.Fh)
	fs.quota.release(in.Fh)
	fs.cfg.HandleStore.Clear(in.Fh)
}

// Flush: nothing to flush. ENOSYS makes kernels older than 5.16 (which
// ignore FOPEN_NOFLUSH) stop sending FLUSH for good.
func (fs *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }

// OpenDir keeps no state: listings are computed per READDIR from the
// caller, so any process can continue a listing.
func (fs *FS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.tree.node(in.NodeId)
	if n == nil {
		if b, bound := fs.boundNodes.get(in.NodeId); bound && b.isDir() {
			return fuse.OK
		}
		return fuse.ENOENT
	}
	if !n.isDir() {
		return fuse.ENOTDIR
	}
	return fuse.OK
}

func (fs *FS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	n := fs.tree.node(in.NodeId)
	if n == nil {
		if st, bound := fs.boundReadDir(in, out); bound {
			return st
		}
		return fuse.ENOENT
	}
	if !n.isDir() {
		return fuse.ENOTDIR
	}
	visible := -1 // number of cpuN directories the caller sees
	if n == fs.tree.cpus {
		v, _ := fs.visibleCPUs(int(in.Pid))
		visible = len(v)
	}
	// Entry i of the listing has offset i+1: ".", "..", then children.
	parent := n.parent
	if parent == nil {
		parent = n
	}
	var i uint64
	emit := func(name string, c *node) bool {
		i++
		if i <= in.Offset {
			return true
		}
		mode := uint32(syscall.S_IFREG)
		if c.isDir() {
			mode = syscall.S_IFDIR
		}
		return out.AddDirEntry(fuse.DirEntry{Name: name, Ino: c.id, Mode: mode, Off: i})
	}
	if !emit(".", n) || !emit("..", parent) {
		return fuse.OK
	}
	for _, c := range n.children {
		if c.perCaller() && c.cpu >= visible {
			continue
		}
		if !emit(c.name, c) {
			break
		}
	}
	return fuse.OK
}

func (fs *FS) ReleaseDir(in *fuse.ReleaseIn) {}

func (fs *FS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255, Files: uint64(len(fs.tree.byID))}
	return fuse.OK
}

// The tree is read-only: everything that would change it is refused (the
// mount is read-only too, so the kernel normally answers EROFS itself).
var erofs = fuse.Status(syscall.EROFS)

func (fs *FS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return erofs
}
func (fs *FS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return erofs
}
func (fs *FS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status { return erofs }
func (fs *FS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return erofs
}
func (fs *FS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return erofs
}
func (fs *FS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return erofs
}
func (fs *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return 0, erofs
}

// Status is a snapshot of the file system's counters.
type Status struct {
	Opens       uint64 `json:"opens"`
	Reads       uint64 `json:"reads"`
	Fallbacks   uint64 `json:"fallbacks"`
	Exhausted   uint64 `json:"exhausted"`       // opens refused: out of descriptors or memory
	Refused     uint64 `json:"handles_refused"` // opens refused: handle quota
	OpenHandles int    `json:"open_handles"`
	Containers  int    `json:"containers"` // pid namespaces seen and still alive
	LoadSampled int    `json:"load_sampled"`
}

// Status reports the counters.
func (fs *FS) Status() Status {
	containers := fs.resolver.Len()
	return Status{
		Opens:       fs.Stats.Opens.Load(),
		Reads:       fs.Stats.Reads.Load(),
		Fallbacks:   fs.Stats.Fallbacks.Load(),
		Exhausted:   fs.Stats.Exhausted.Load(),
		Refused:     fs.Stats.Refused.Load(),
		OpenHandles: fs.handles.len(),
		Containers:  containers,
		LoadSampled: fs.sampler.Len(),
	}
}
