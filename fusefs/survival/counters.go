package survival

import (
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Counters are the daemon's request, error, latency and fallback counts
// plus the supervisor's worker restarts and upgrades, kept in shared memory
// (a memfd the supervisor makes, hands to every worker and to systemd's fd
// store) so that they are daemon totals: a worker killed, upgraded or
// replaced, or a supervisor restarted by systemd, loses none. Scraped by
// the Prometheus endpoint and shown by `corralfs status`.
//
// The layout is versioned by its magic word: old and new workers share the
// table across an upgrade, so series are found by name (a small name table
// that workers append to under a spin lock), never by an index one build
// computes and another does not. Op and reason indexes are fixed lists
// that only grow at their end; the bucket bounds are part of the version.
type Counters struct {
	mem []byte
}

// CounterOps are the FUSE operations counted, by their index in the table.
var CounterOps = []string{"open", "read", "release", "lookup", "getattr", "opendir", "readdir", "access", "statfs", "other"}

// FallbackReasons say why a view was served from the host's file.
var FallbackReasons = []string{"unknown_caller", "cgroup_unreadable", "render_error"}

// LatencyBuckets are the upper bounds of the latency histogram, in
// seconds (Prometheus' le=...); one more bucket counts everything above.
var LatencyBuckets = []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

const (
	countersMagic   = 0x636f7272616c4331 // "corralC1": bump on any layout change
	counterOpsMax   = 16
	counterReasons  = 4
	counterFilesMax = 64
	counterNameLen  = 56
	counterBuckets  = 16 // len(LatencyBuckets) + the one above
	// per (file, op): count, errors, sum of nanoseconds, buckets
	seriesWords  = 3 + counterBuckets
	daemonWords  = 16
	hdrWords     = 4 // magic, file names used, name lock, spare
	namesOff     = hdrWords * 8
	daemonOff    = namesOff + counterFilesMax*counterNameLen
	seriesOff    = daemonOff + daemonWords*8
	fallbacksOff = seriesOff + counterFilesMax*counterOpsMax*seriesWords*8
	countersSize = fallbacksOff + counterFilesMax*counterReasons*8
)

// Daemon-wide counters at fixed places (the supervisor's).
const (
	CounterWorkerRestarts = iota
	CounterWorkerUpgrades
	CounterWorkerUnresponsive // of the restarts, those the liveness check forced
)

// NewCountersFile makes the shared memory of a Counters table.
func NewCountersFile() (*os.File, error) {
	return newSharedFile("corralfs-counters", countersSize)
}

// OpenCounters maps f (from NewCountersFile). A table of another layout
// (another magic) is an error: the caller then starts a fresh one.
func OpenCounters(f *os.File) (*Counters, error) {
	mem, err := mapSharedFile(f, countersSize)
	if err != nil {
		return nil, err
	}
	c := &Counters{mem: mem}
	magic := c.word(0)
	if !magic.CompareAndSwap(0, countersMagic) && magic.Load() != countersMagic {
		return nil, os.ErrInvalid
	}
	return c, nil
}

func (c *Counters) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

// FileIndex returns the index of the series named name (a view path such
// as "proc/meminfo"), adding it when new; -1 when the table is full.
func (c *Counters) FileIndex(name string) int {
	if c == nil {
		return -1
	}
	if len(name) >= counterNameLen {
		name = name[:counterNameLen-1]
	}
	// Held for a few name compares, at worker start only. A worker killed
	// while holding it would leave it taken for good: after a second the
	// lock is taken over (the dead holder's name, if half written, is
	// never found by anyone and only wastes a slot).
	lock := c.word(16)
	for spin := time.Now(); !lock.CompareAndSwap(0, 1); {
		if time.Since(spin) > time.Second {
			break
		}
		runtime.Gosched()
	}
	defer lock.Store(0)
	used := int(c.word(8).Load())
	for i := 0; i < used; i++ {
		if c.fileName(i) == name {
			return i
		}
	}
	if used >= counterFilesMax {
		return -1
	}
	copy(c.mem[namesOff+used*counterNameLen:], name)
	c.word(8).Store(uint64(used + 1))
	return used
}

func (c *Counters) fileName(i int) string {
	b := c.mem[namesOff+i*counterNameLen : namesOff+(i+1)*counterNameLen]
	return strings.TrimRight(string(b), "\x00")
}

// Files lists the series names in index order.
func (c *Counters) Files() []string {
	if c == nil {
		return nil
	}
	n := int(c.word(8).Load())
	out := make([]string, n)
	for i := range out {
		out[i] = c.fileName(i)
	}
	return out
}

func seriesAt(file, op int) int { return seriesOff + (file*counterOpsMax+op)*seriesWords*8 }

// Observe counts one request of op on file that took d and failed or not.
func (c *Counters) Observe(file, op int, d time.Duration, failed bool) {
	if c == nil || file < 0 || op < 0 || op >= counterOpsMax {
		return
	}
	at := seriesAt(file, op)
	c.word(at).Add(1)
	if failed {
		c.word(at + 8).Add(1)
	}
	c.word(at + 16).Add(uint64(d.Nanoseconds()))
	b := len(LatencyBuckets)
	for i, le := range LatencyBuckets {
		if d.Seconds() <= le {
			b = i
			break
		}
	}
	c.word(at + 24 + b*8).Add(1)
}

// Series is one (file, op) pair's counts.
type Series struct {
	Count, Errors uint64
	Sum           time.Duration
	Buckets       [counterBuckets]uint64 // per bucket, not cumulative
}

// Series reads one (file, op) pair.
func (c *Counters) Series(file, op int) Series {
	at := seriesAt(file, op)
	s := Series{Count: c.word(at).Load(), Errors: c.word(at + 8).Load(), Sum: time.Duration(c.word(at + 16).Load())}
	for i := range s.Buckets {
		s.Buckets[i] = c.word(at + 24 + i*8).Load()
	}
	return s
}

// Fallback counts a view served from the host's file, by reason index.
func (c *Counters) Fallback(file, reason int) {
	if c == nil || file < 0 || reason < 0 || reason >= counterReasons {
		return
	}
	c.word(fallbacksOff + (file*counterReasons+reason)*8).Add(1)
}

// Fallbacks reads the fallback count of one file and reason.
func (c *Counters) Fallbacks(file, reason int) uint64 {
	return c.word(fallbacksOff + (file*counterReasons+reason)*8).Load()
}

// AddDaemon adds to a daemon-wide counter (CounterWorkerRestarts, ...).
func (c *Counters) addDaemon(which int, n uint64) {
	if c != nil && which >= 0 && which < daemonWords {
		c.word(daemonOff + which*8).Add(n)
	}
}

// Daemon reads a daemon-wide counter.
func (c *Counters) Daemon(which int) uint64 {
	if c == nil || which < 0 || which >= daemonWords {
		return 0
	}
	return c.word(daemonOff + which*8).Load()
}

// Totals sums every file's counts of op.
func (c *Counters) Totals(op int) (count, errors uint64) {
	if c == nil {
		return 0, 0
	}
	for f := range c.Files() {
		s := c.Series(f, op)
		count += s.Count
		errors += s.Errors
	}
	return count, errors
}

// TotalFallbacks sums every file's fallbacks.
func (c *Counters) TotalFallbacks() uint64 {
	if c == nil {
		return 0
	}
	var n uint64
	for f := range c.Files() {
		for r := range counterReasons {
			n += c.Fallbacks(f, r)
		}
	}
	return n
}
