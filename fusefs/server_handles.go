package fusefs

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/inputs"
)

// handleTable holds, per file handle, the content of its latest generation
// (computed at OPEN, then again by each READ at offset 0), so that every
// read of one generation sees the same bytes whatever its offset and size
// (a 1-byte read loop and one big read agree). Sharded: opens and releases
// from many readers do not queue on one lock.
type handleTable struct {
	next   atomic.Uint64
	shards [handleShards]handleShard
}

const handleShards = 16

type handleShard struct {
	mu sync.Mutex
	m  map[uint64]handle
}

// handle is one open file: the content of its latest generation.
type handle struct {
	data []byte
	// unique is the FUSE request that computed data (its OPEN or a READ
	// at 0): that READ seen again gets these bytes, not a new generation.
	unique uint64
	// unread is when OPEN computed data (time since the FS started),
	// while no READ at 0 has used it yet; 0 after. The first READ at 0
	// serves it instead of computing the same thing again.
	unread time.Duration
}

func (t *handleTable) shard(fh uint64) *handleShard { return &t.shards[fh%handleShards] }

// add stores h and returns its number (never 0: 0 means "no handle").
func (t *handleTable) add(h handle) uint64 {
	fh := t.next.Add(1)
	t.set(fh, h)
	return fh
}

// set stores (or replaces) the handle fh: a new generation, or a handle
// opened by an earlier worker that this one now answers.
func (t *handleTable) set(fh uint64, h handle) {
	s := t.shard(fh)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[uint64]handle{}
	}
	s.m[fh] = h
	s.mu.Unlock()
}

// startRead is a READ at offset 0 on fh: the handle, and whether its
// content may be served as is, because that very request computed it or
// because OPEN computed it less than reuseFor ago and no read used it yet
// (which it then marks used).
func (t *handleTable) startRead(fh, unique uint64, now, reuseFor time.Duration) (h handle, known, reuse bool) {
	s := t.shard(fh)
	s.mu.Lock()
	defer s.mu.Unlock()
	h, known = s.m[fh]
	switch {
	case !known:
	case h.unique == unique:
		reuse = true
	case h.unread != 0 && now-h.unread <= reuseFor:
		h.unread = 0
		s.m[fh] = h
		reuse = true
	}
	return h, known, reuse
}

func (t *handleTable) get(fh uint64) (handle, bool) {
	s := t.shard(fh)
	s.mu.Lock()
	h, ok := s.m[fh]
	s.mu.Unlock()
	return h, ok
}

// take removes and returns a handle.
func (t *handleTable) take(fh uint64) (handle, bool) {
	s := t.shard(fh)
	s.mu.Lock()
	h, ok := s.m[fh]
	delete(s.m, fh)
	s.mu.Unlock()
	return h, ok
}

// len is the number of open handles (tests check that releases free them).
func (t *handleTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// snapCache keeps each container's last Snapshot for a short time: a `top`
// refresh or an `ls` of sys/devices/system/cpu opens several files at
// once, and each would otherwise read the same cgroup files again. The
// times that must stay fresh (uptime, stat's elapsed time) do not come from
// the Snapshot but from the clock at each read.
type snapCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[snapKey]snapEntry
}

type snapKey struct {
	c   inputs.ContainerKey
	opt cgroupreader.Part
}

type snapEntry struct {
	snap cgroupreader.Snapshot
	at   time.Time
}

// snapCacheMax bounds the cache; when full it is emptied (entries live for
// a fraction of a second anyway).
const snapCacheMax = 4096

func (c *snapCache) get(k snapKey, now time.Time) (cgroupreader.Snapshot, bool) {
	if c.ttl <= 0 {
		return cgroupreader.Snapshot{}, false
	}
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) > c.ttl {
		return cgroupreader.Snapshot{}, false
	}
	return e.snap, true
}

func (c *snapCache) put(k snapKey, s cgroupreader.Snapshot, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= snapCacheMax {
		c.m = map[snapKey]snapEntry{}
	}
	c.m[k] = snapEntry{snap: s, at: now}
	c.mu.Unlock()
}
