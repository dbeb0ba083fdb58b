package fusefs

import (
	"time"

	"github.com/corral-dev/corral/fusefs/render"
	"github.com/corral-dev/corral/fusefs/survival"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// instrumentedFS counts every request the FS answers into the shared
// Counters, by operation and file, with its latency and whether it failed.
// It wraps FS from outside (Adopt) so that the request paths themselves
// carry no bookkeeping.
type instrumentedFS struct {
	*FS
	c *survival.Counters
}

// Series names: a view's path, one for the whole CPU tree (its files are
// many and alike), one for directories.
const (
	counterFileCPUTree = cpuDirRel
	counterFileDir     = "dir"
	counterFileUnknown = "unknown"
)

// registerCounterFiles finds (or adds) every series this FS can count in
// the shared table, once: requests then index a map, never the table's
// names.
func (fs *FS) registerCounterFiles() {
	if fs.cfg.Counters == nil {
		return
	}
	fs.counterFiles = map[string]int{}
	names := []string{counterFileDir, counterFileCPUTree, counterFileUnknown}
	for _, v := range render.Views() {
		names = append(names, v.Path)
	}
	for _, name := range names {
		fs.counterFiles[name] = fs.cfg.Counters.FileIndex(name)
	}
}

// counterFile is the series index of a file name (-1: not counted).
func (fs *FS) counterFile(name string) int {
	if i, ok := fs.counterFiles[name]; ok {
		return i
	}
	return -1
}

// counterFileOf names the series a node's requests count in.
func (fs *FS) counterFileOf(nodeID uint64) int {
	n := fs.tree.node(nodeID)
	if b, ok := fs.boundNodes.get(nodeID); n == nil && ok && !b.isDir() {
		n = b.view // a bound file counts as its view
	}
	switch {
	case n == nil:
		return fs.counterFile(counterFileUnknown)
	case n.kind == kindView:
		return fs.counterFile(n.view.Path)
	case n.isDir() && n.kind != kindCPUDir:
		return fs.counterFile(counterFileDir)
	}
	return fs.counterFile(counterFileCPUTree)
}

// Op indexes in survival.CounterOps.
const (
	OpOpen = iota
	OpRead
	opRelease
	opLookup
	opGetAttr
	opOpenDir
	opReadDir
	opAccess
	opStatFs
)

func (i *instrumentedFS) observe(nodeID uint64, op int, start time.Time, st fuse.Status) {
	i.c.Observe(i.counterFileOf(nodeID), op, time.Since(start), st != fuse.OK)
}

func (i *instrumentedFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := i.FS.Lookup(cancel, h, name, out)
	i.observe(h.NodeId, opLookup, start, st)
	return st
}

func (i *instrumentedFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := i.FS.GetAttr(cancel, in, out)
	i.observe(in.NodeId, opGetAttr, start, st)
	return st
}

func (i *instrumentedFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	start := time.Now()
	st := i.FS.Access(cancel, in)
	i.observe(in.NodeId, opAccess, start, st)
	return st
}

func (i *instrumentedFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := i.FS.Open(cancel, in, out)
	i.observe(in.NodeId, OpOpen, start, st)
	return st
}

func (i *instrumentedFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	r, st := i.FS.Read(cancel, in, buf)
	i.observe(in.NodeId, OpRead, start, st)
	return r, st
}

func (i *instrumentedFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	start := time.Now()
	i.FS.Release(cancel, in)
	i.observe(in.NodeId, opRelease, start, fuse.OK)
}

func (i *instrumentedFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := i.FS.OpenDir(cancel, in, out)
	i.observe(in.NodeId, opOpenDir, start, st)
	return st
}

func (i *instrumentedFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := i.FS.ReadDir(cancel, in, out)
	i.observe(in.NodeId, opReadDir, start, st)
	return st
}

func (i *instrumentedFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	st := i.FS.StatFs(cancel, in, out)
	i.observe(in.NodeId, opStatFs, start, st)
	return st
}

// rawFS is what the FUSE server calls: the FS, counted when it has
// Counters.
func (fs *FS) rawFS() fuse.RawFileSystem {
	if fs.cfg.Counters == nil {
		return fs
	}
	return &instrumentedFS{FS: fs, c: fs.cfg.Counters}
}
