package fusefs

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
)

// handleTable holds the content computed at open, per file handle, so that
// every read of one open file sees the same bytes whatever its offset and
// size (a 1-byte read loop and one big read agree). Sharded: opens and
// releases from many readers do not queue on one lock.
type handleTable struct {
	next   atomic.Uint64
	shards [handleShards]handleShard
}

const handleShards = 16

type handleShard struct {
	mu sync.Mutex
	m  map[uint64]handle
}

// handle is one open file: the content rendered for its opener.
type handle struct {
	data []byte
}

func (t *handleTable) shard(fh uint64) *handleShard { return &t.shards[fh%handleShards] }

// add stores h and returns its number (never 0: 0 means "no handle").
func (t *handleTable) add(h handle) uint64 {
	fh := t.next.Add(1)
	s := t.shard(fh)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[uint64]handle{}
	}
	s.m[fh] = h
	s.mu.Unlock()
	return fh
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
	c   ContainerKey
	opt cgroupreader.Options
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
