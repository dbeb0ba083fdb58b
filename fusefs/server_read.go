package fusefs

import (
	"time"

	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// READ: the seq_file regeneration rule (docs/design.md decision 7).

// reuseOpenContent is how old the content OPEN computed may be for the
// first READ at 0 to serve it rather than compute a new generation: the
// age the caches (DefaultSnapshotTTL) already allow any content to have.
// A reader that opens and reads at once (nearly all) costs one computation;
// one that opens and reads later gets numbers of the time it reads.
const reuseOpenContent = inputs.DefaultSnapshotTTL

// Read follows the kernel's seq_file: a READ at offset 0 starts a new
// generation, the content computed afresh for the reader; a READ at offset
// > 0 goes on with the generation that the last READ at 0 (or the OPEN)
// produced, so one read(2) loop that spans several READs never mixes two
// generations, and a tool that keeps the file open and re-reads it from
// the start (top, free -s, vmstat, the JVM, monitoring agents) sees live
// numbers. The latest generation is copied to the shared HandleStore, so a
// successor worker (after a kill or an upgrade) goes on with it the same way.
func (fs *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if fs.tree.node(in.NodeId) == nil {
		if r, st, bound := fs.boundRead(in); bound {
			return r, st
		}
	}
	fs.Stats.Reads.Add(1)
	if pageCacheRead(in) {
		return nil, fuse.EINVAL
	}
	var data []byte
	var st fuse.Status
	if in.Offset == 0 {
		data, st = fs.readFromStart(in)
	} else {
		data, st = fs.readOn(in)
	}
	if !st.Ok() {
		return nil, st
	}
	off := in.Offset
	if off >= uint64(len(data)) {
		return fuse.ReadResultData(nil), fuse.OK
	}
	end := min(off+uint64(in.Size), uint64(len(data)))
	return fuse.ReadResultData(data[off:end]), fuse.OK
}

// requestID is a request's unique id without the flag the kernel sets on
// a request it queues again after FUSE_NOTIFY_RESEND: the same request.
func requestID(unique uint64) uint64 { return unique &^ (1 << 63) }

// readFromStart is a READ at offset 0: the OPEN's content when it is
// unread and recent, else a new generation.
func (fs *FS) readFromStart(in *fuse.ReadIn) ([]byte, fuse.Status) {
	h, known, reuse := fs.handles.startRead(in.Fh, requestID(in.Unique), time.Since(fs.started), reuseOpenContent)
	if reuse && fs.latestIs(in.Fh, h.unique) {
		if id := requestID(in.Unique); h.unique != id {
			// The OPEN's content is now this READ's generation, in
			// the store too: the relay hands a successor this READ
			// again when the worker dies before freeing its slot, and
			// it must get these bytes, which the reader may hold, not
			// a new generation that its next READ on would continue.
			fs.cfg.HandleStore.Relabel(in.Fh, h.unique, id)
			fs.handles.set(in.Fh, handle{data: h.data, unique: id})
		}
		return h.data, fuse.OK
	}
	// A READ at 0 no newer than the latest generation's is this very
	// request again (re-sent after its worker died having computed it)
	// or an older one replayed after the reader moved on (the relay keeps
	// an answered request until its worker frees the slot): the reader
	// may hold those bytes, or the answer goes nowhere. Either way a new
	// generation would replace the one the reader is on. Request ids only
	// grow on a connection.
	id := requestID(in.Unique)
	if latest, ok := fs.cfg.HandleStore.Latest(in.Fh); ok && latest >= id {
		if content, _, unique, _ := fs.cfg.HandleStore.Get(in.Fh); content != nil && unique == latest {
			fs.handles.set(in.Fh, handle{data: content, unique: unique})
			return content, fuse.OK
		}
	} else if !ok && known && h.unique >= id {
		return h.data, fuse.OK
	}
	return fs.newGeneration(in, -1)
}

// latestIs says whether this worker's generation of fh (computed by
// request unique) is the latest one, as far as the shared store knows.
// During an upgrade the old and the new worker both answer the connection,
// so a reader's READ at 0 may have gone to the other one: its generation
// is then the one to continue.
func (fs *FS) latestIs(fh, unique uint64) bool {
	latest, ok := fs.cfg.HandleStore.Latest(fh)
	return !ok || latest == unique
}

// newGeneration computes the handle's content for the reader (cut to
// maxLen bytes when maxLen >= 0) and makes it the handle's latest
// generation, here and in the shared store.
func (fs *FS) newGeneration(in *fuse.ReadIn, maxLen int) ([]byte, fuse.Status) {
	n := fs.tree.node(in.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	data, errno := fs.content(n, int(in.Pid))
	if errno != 0 {
		return nil, fuse.Status(errno)
	}
	if maxLen >= 0 && len(data) > maxLen {
		data = data[:maxLen]
	}
	// The store first: a successor must never serve an older
	// generation than the one this READ answers with.
	fs.cfg.HandleStore.Put(in.Fh, requestID(in.Unique), data)
	fs.handles.set(in.Fh, handle{data: data, unique: requestID(in.Unique)})
	return data, fuse.OK
}

// readOn is a READ at offset > 0: the latest generation. A handle this
// worker does not know (opened before a restart) continues from the shared
// store; when the store has lost its content but still knows its length,
// at or past that length it is end of file, and before it the content
// afresh, cut to that length (the best left; kept from then on, so the
// rest of the read at least agrees with itself).
func (fs *FS) readOn(in *fuse.ReadIn) ([]byte, fuse.Status) {
	if h, ok := fs.handles.get(in.Fh); ok && fs.latestIs(in.Fh, h.unique) {
		return h.data, fuse.OK
	}
	content, oldLen, unique, known := fs.cfg.HandleStore.Get(in.Fh)
	switch {
	case content != nil:
		fs.handles.set(in.Fh, handle{data: content, unique: unique})
		return content, fuse.OK
	case known && in.Offset >= uint64(oldLen):
		return nil, fuse.OK
	case known:
		return fs.newGeneration(in, oldLen)
	}
	return fs.newGeneration(in, -1)
}
