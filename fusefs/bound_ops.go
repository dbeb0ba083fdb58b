package fusefs

import (
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/corral-dev/corral/fusefs/survival"
)

// The requests on bound nodes (bound.go; docs/design.md decisions 50-52).
//
// Freshness rides on the kernel's attribute clock, not on a daemon timer:
// a GETATTR by the container renders the content when the last rendering
// is older than the TTL, answers its size and the render time as mtime,
// and lets the kernel keep those attributes for what is left of the TTL.
// The kernel asks again on the first read(2) after that (with
// FUSE_AUTO_INVAL_DATA, which go-fuse negotiates, every page-cache read
// checks the attributes), and a new mtime makes it drop the cached pages,
// which it then fills with READs that slice the rendering GETATTR made. So
// a re-read from offset 0 never sees content older than the TTL, the
// daemon renders at most once per TTL per file that is read, and a file
// nobody reads costs nothing. A lost worker loses no timer.

// boundGen is one rendering of a bound file: what GETATTR gave the size of
// and READs slice until the next one.
type boundGen struct {
	data []byte
	at   time.Time
}

type boundGens struct {
	mu sync.Mutex
	m  map[uint64]boundGen
	// renders: one rendering of a file at a time, a lock per file (a
	// striped lock made renders of unrelated files wait for each other:
	// at 200 containers 44 OPENs sat on stripes, each holding a request
	// buffer and a goroutine).
	renders map[uint64]*renderLock
}

// renderLock serializes the renderings of one bound file; users counts
// the callers holding or waiting for it, so sweep never drops a lock
// someone still uses (a second lock for the same file would let two
// renderings race).
type renderLock struct {
	mu    sync.Mutex
	users int
}

// lockRender takes file id's render lock; the returned func releases it.
func (g *boundGens) lockRender(id uint64) (unlock func()) {
	g.mu.Lock()
	if g.renders == nil {
		g.renders = map[uint64]*renderLock{}
	}
	l := g.renders[id]
	if l == nil {
		l = &renderLock{}
		g.renders[id] = l
	}
	l.users++
	g.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		g.mu.Lock()
		l.users--
		g.mu.Unlock()
	}
}

func (g *boundGens) get(id uint64) (boundGen, bool) {
	g.mu.Lock()
	gen, ok := g.m[id]
	g.mu.Unlock()
	return gen, ok
}

func (g *boundGens) put(id uint64, gen boundGen) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[uint64]boundGen{}
	}
	g.m[id] = gen
	g.mu.Unlock()
}

// sweep drops renderings older than age, here and in the shared store:
// files of containers gone, or idle (the next read renders again anyway).
func (g *boundGens) sweep(age time.Duration, store *survival.HandleStore) {
	g.mu.Lock()
	for id, gen := range g.m {
		if time.Since(gen.at) > age {
			delete(g.m, id)
			store.Clear(id)
		}
	}
	for id, l := range g.renders {
		if _, live := g.m[id]; !live && l.users == 0 {
			delete(g.renders, id)
		}
	}
	g.mu.Unlock()
}

// boundTTL is how old a bound file's content may get before a read makes
// the daemon render it again: the snapshot TTL (decision 11).
func (fs *FS) boundTTL() time.Duration { return max(fs.snaps.ttl, 0) }

// boundFresh is bound file id's rendering for a caller already let through
// the gate: the current one while younger than the TTL, else a new one.
//
// Renderings of one file are serialized: two readers finding it stale at
// once (two GETATTRs, or a GETATTR and an OPEN) would otherwise each
// render and answer its own size, and the kernel could keep the size of
// one and fill its pages from the other.
//
// growOnly (OPEN): a new rendering shorter than the current one is not
// taken, the current one is kept (see boundOpen).
func (fs *FS) boundFresh(id uint64, b *boundNode, pid int, growOnly bool) (gen boundGen, rendered bool, errno syscall.Errno) {
	if gen, ok := fs.boundCurrent(id); ok && fs.handOut(gen) {
		return gen, false, 0
	}
	defer fs.boundGens.lockRender(id)()
	prev, havePrev := fs.boundCurrent(id)
	if havePrev && fs.handOut(prev) {
		return prev, false, 0 // rendered by the reader we waited for
	}
	data, errno := fs.contentFor(b.view, pid, b.caller)
	if errno != 0 {
		return boundGen{}, false, errno
	}
	if growOnly && havePrev && len(data) < len(prev.data) {
		return prev, false, 0
	}
	gen = boundGen{data: data, at: time.Now()}
	// The shared store first (decision 52): a successor, or the other
	// worker of an upgrade, answers the READs that fill the pages of
	// this size with these bytes.
	fs.cfg.HandleStore.Put(id, uint64(gen.at.UnixNano()), data)
	fs.boundGens.put(id, gen)
	return gen, true, 0
}

// handOut says whether a rendering is young enough to give a reader its
// size (GETATTR) or to open on: under half the TTL. The reader's kernel
// then fills its pages with READs that the daemon answers from the
// current rendering; one given out near the end of its life could be
// replaced by another reader's GETATTR before those READs arrive, and a
// longer replacement would be cut at the size this reader's kernel was
// given. Half the TTL is the margin those READs have (50 ms; they follow
// the GETATTR within microseconds unless the machine stalls).
func (fs *FS) handOut(gen boundGen) bool { return time.Since(gen.at) < fs.boundTTL()/2 }

// boundCurrent is bound file id's latest rendering: this worker's, unless
// the shared handle store (keyed by node id, the rendering's time as its
// request id) names a different one, made by a predecessor that died or
// by the other worker during an upgrade, which the kernel may hold the
// size of.
func (fs *FS) boundCurrent(id uint64) (boundGen, bool) {
	local, ok := fs.boundGens.get(id)
	latest, shared := fs.cfg.HandleStore.Latest(id)
	if !shared || (ok && latest == uint64(local.at.UnixNano())) {
		return local, ok
	}
	if content, _, at, _ := fs.cfg.HandleStore.Get(id); content != nil && at == latest {
		gen := boundGen{data: content, at: time.Unix(0, int64(at))}
		fs.boundGens.put(id, gen)
		return gen, true
	}
	return local, ok
}

func boundDirAttr(id uint64, a *fuse.Attr) {
	*a = fuse.Attr{Ino: id, Nlink: 2, Mode: syscall.S_IFDIR | 0o555}
}

func boundFileAttr(id uint64, gen boundGen, a *fuse.Attr) {
	*a = fuse.Attr{Ino: id, Nlink: 1, Mode: syscall.S_IFREG | 0o444, Size: uint64(len(gen.data))}
	if !gen.at.IsZero() {
		ns := gen.at.UnixNano()
		a.Mtime, a.Mtimensec = uint64(ns/1e9), uint32(ns%1e9)
		a.Ctime, a.Ctimensec = a.Mtime, a.Mtimensec
		a.Atime, a.Atimensec = a.Mtime, a.Mtimensec
	}
}

// boundLookup answers LOOKUP in BoundDir or below. Entries and attributes
// get no lifetime: the LOOKUP is how a worker learns a directory's key,
// so every path walk on the host asks again (containers bind files and
// never walk here), and a file's size is only ever the content's for a
// GETATTR of its container.
func (fs *FS) boundLookup(parent uint64, name string, out *fuse.EntryOut) (fuse.Status, bool) {
	var child *boundNode
	switch {
	case fs.tree.bound == nil:
		return 0, false
	case parent == fs.tree.bound.id:
		if !validKey(name) {
			return fuse.ENOENT, true
		}
		child = &boundNode{key: name}
	default:
		dir, ok := fs.boundNodes.get(parent)
		if !ok {
			return 0, false
		}
		if !dir.isDir() {
			return fuse.ENOTDIR, true
		}
		if child = fs.boundChild(dir, name); child == nil {
			return fuse.ENOENT, true
		}
	}
	id := nodeID(boundPath(child.key, child.rel))
	fs.boundNodes.put(id, child)
	*out = fuse.EntryOut{NodeId: id}
	if child.isDir() {
		boundDirAttr(id, &out.Attr)
	} else {
		gen, _ := fs.boundCurrent(id)
		boundFileAttr(id, gen, &out.Attr)
	}
	return fuse.OK, true
}

// boundGetAttr: for the container, its file's size rendered fresh when
// stale (see the top of this file); for anyone else what is known without
// rendering, with no lifetime. Unknown ids are not bound nodes (handled
// false), unless the caller's gate names them.
func (fs *FS) boundGetAttr(in *fuse.GetAttrIn, out *fuse.AttrOut) (fuse.Status, bool) {
	known, ok := fs.boundNodes.get(in.NodeId)
	if ok && known.isDir() {
		boundDirAttr(in.NodeId, &out.Attr)
		return fuse.OK, true
	}
	b, errno := fs.boundCaller(in.NodeId, int(in.Pid))
	if errno != 0 {
		if !ok {
			if _, rendered := fs.boundCurrent(in.NodeId); !rendered {
				return 0, false
			}
		}
		gen, _ := fs.boundCurrent(in.NodeId)
		boundFileAttr(in.NodeId, gen, &out.Attr)
		return fuse.OK, true
	}
	gen, _, errno := fs.boundFresh(in.NodeId, b, int(in.Pid), false)
	if errno != 0 {
		return fuse.Status(errno), true
	}
	boundFileAttr(in.NodeId, gen, &out.Attr)
	out.SetTimeout(max(fs.boundTTL()-time.Since(gen.at), 0))
	return fuse.OK, true
}

// boundOpenFlags: the page cache is the point (FOPEN_KEEP_CACHE: an open
// does not drop it), and there is nothing to flush.
const boundOpenFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH

// boundOpen is the gate every read passes: only the container's own
// processes open its files (a read needs an open file; the page cache is
// reached through one). No handle: the content belongs to the inode.
//
// When it renders (the content was older than the TTL), the kernel's
// size and pages are made the new content's before the reply: splice and
// sendfile (busybox cat) read the page cache up to the size the kernel
// has, without asking for attributes, so a content longer than the last
// one would be cut. NOTIFY_INVAL_INODE drops the old pages and attributes,
// NOTIFY_STORE puts the new content in and grows the size to it. Only a
// content at least as long as the current one is taken at OPEN: the store
// cannot shrink the size, and the short READ that would (the kernel takes
// the size from a short answer) is ignored when the inode's attributes
// changed while it was under way (another reader's GETATTR), which left a
// NUL byte at the end of stat for a reader in the v2 VM. A shorter one is
// left to the next GETATTR, which sets size and content together; until
// then a splice reader gets the current content, older than the TTL.
func (fs *FS) boundOpen(in *fuse.OpenIn, out *fuse.OpenOut) (fuse.Status, bool) {
	b, errno := fs.boundCaller(in.NodeId, int(in.Pid))
	if errno != 0 {
		if n, ok := fs.boundNodes.get(in.NodeId); ok && n.isDir() {
			return fuse.EISDIR, true
		}
		if _, ok := fs.boundNodes.get(in.NodeId); !ok {
			if _, ok := fs.boundCurrent(in.NodeId); !ok {
				return 0, false
			}
		}
		return fuse.EACCES, true
	}
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY || in.Flags&syscall.O_TRUNC != 0 {
		return fuse.EACCES, true
	}
	fs.Stats.Opens.Add(1)
	gen, rendered, errno := fs.boundFresh(in.NodeId, b, int(in.Pid), true)
	if errno != 0 {
		return fuse.Status(errno), true
	}
	if srv := fs.server.Load(); rendered && srv != nil {
		srv.InodeNotify(in.NodeId, 0, -1)
		srv.InodeNotifyStoreCache(in.NodeId, 0, gen.data)
	}
	out.OpenFlags = boundOpenFlags
	return fuse.OK, true
}

// boundRead slices the current rendering: the one whose size the kernel
// was given. A worker that has none (it started after the rendering) asks
// the gate and renders.
func (fs *FS) boundRead(in *fuse.ReadIn) (fuse.ReadResult, fuse.Status, bool) {
	gen, ok := fs.boundCurrent(in.NodeId)
	if !ok {
		b, errno := fs.boundCaller(in.NodeId, int(in.Pid))
		if errno != 0 {
			if _, known := fs.boundNodes.get(in.NodeId); !known {
				return nil, 0, false
			}
			return nil, fuse.EACCES, true
		}
		if gen, _, errno = fs.boundFresh(in.NodeId, b, int(in.Pid), false); errno != 0 {
			return nil, fuse.Status(errno), true
		}
	}
	fs.Stats.Reads.Add(1)
	off := in.Offset
	if off >= uint64(len(gen.data)) {
		return fuse.ReadResultData(nil), fuse.OK, true
	}
	end := min(off+uint64(in.Size), uint64(len(gen.data)))
	return fuse.ReadResultData(gen.data[off:end]), fuse.OK, true
}

// boundReadDir lists a bound directory: what the static tree has at the
// same place, limited to what boundChild serves.
func (fs *FS) boundReadDir(in *fuse.ReadIn, out *fuse.DirEntryList) (fuse.Status, bool) {
	dir, ok := fs.boundNodes.get(in.NodeId)
	if !ok {
		return 0, false
	}
	if !dir.isDir() {
		return fuse.ENOTDIR, true
	}
	var names []string
	if dir.rel == "" {
		names = []string{"proc"}
	} else if n := fs.tree.lookupPath(dir.rel); n != nil {
		for _, c := range n.children {
			names = append(names, c.name)
		}
	}
	var i uint64
	for _, name := range append([]string{".", ".."}, names...) {
		i++
		if i <= in.Offset {
			continue
		}
		mode := uint32(syscall.S_IFDIR)
		ino := in.NodeId
		if name != "." && name != ".." {
			c := fs.boundChild(dir, name)
			if c == nil {
				continue
			}
			ino = nodeID(boundPath(c.key, c.rel))
			if !c.isDir() {
				mode = syscall.S_IFREG
			}
		}
		if !out.AddDirEntry(fuse.DirEntry{Name: name, Ino: ino, Mode: mode, Off: i}) {
			break
		}
	}
	return fuse.OK, true
}
