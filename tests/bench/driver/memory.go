package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
)

// memoryTimeCap bounds the top-up to --memory-reads: a daemon too slow to
// serve them in this time is sampled where it got to (and says so).
const memoryTimeCap = 4 * time.Minute

// benchMemory is section 4 up to the scale part: corralfs's RSS idle (taken
// when it was started) and after it has served --memory-reads opens in
// total (section 1's reads count; a container tops them up with meminfo
// reads). The RSS at 200 containers is sampled by the scale section.
func (e *env) benchMemory() error {
	m := &e.report.Memory
	if lu := e.lxcfsUsage(); lu.RSS > 0 {
		m.LXCFSIdleRSS = lu.RSS
	}
	opens, _, err := corralfsCounters(e.cfsSock)
	if err != nil {
		m.Skipped = "corralfs control socket: " + err.Error()
		return err
	}
	if left := e.cfg.memReads - int64(opens); left > 0 {
		c, err := newContainer(e.t, e, "bench-memory", viewLimits())
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  topping up to %d corralfs reads (%d to go)\n", e.cfg.memReads, left)
		res, err := c.do(proto.Job{
			Paths:      []string{e.viewPath(cCorralfs, "meminfo")},
			Threads:    2 * runtime.NumCPU(),
			MaxOps:     left,
			DurationMs: int(memoryTimeCap / time.Millisecond),
		})
		if err != nil {
			return err
		}
		if res.Errors > 0 {
			return fmt.Errorf("%d of %d reads failed: %s", res.Errors, res.Ops, res.FirstErr)
		}
		c.stop()
	}
	if opens, _, err = corralfsCounters(e.cfsSock); err != nil {
		return err
	}
	m.AfterReads = int64(opens)
	// Let the garbage collector have its say, as it would on a host
	// between bursts.
	time.Sleep(time.Second)
	u, err := usageOf(e.corralfs.pid)
	if err != nil {
		return err
	}
	m.AfterReadsRSS = u.RSS
	m.PSS[1], m.Anon[1] = u.PSS, u.Anon
	top, stats, err := heapProfile(e.cfsSock, e.cfg.results, filepath.Join(e.cfg.binDir, "corralfs"))
	m.HeapTop, m.HeapStats = top, stats
	if err != nil {
		e.report.Notes = append(e.report.Notes, "heap profile: "+err.Error())
	}
	fmt.Fprintf(os.Stderr, "  corralfs RSS idle %s, after %d reads %s\n", mib(m.IdleRSS), m.AfterReads, mib(m.AfterReadsRSS))
	return nil
}

func (e *env) lxcfsUsage() procUsage {
	if e.lxcfs == nil {
		return procUsage{}
	}
	u, _ := usageOf(e.lxcfs.pid)
	return u
}
