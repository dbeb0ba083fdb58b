package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
	"github.com/corral-dev/corral/tests/testutil"
)

// Contenders of the view-read section, in the order tables show them.
const (
	cCorralfs = "corralfs"
	cKernel   = "kernel"
	cTrivial  = "trivialfs"
	cLXCFS    = "lxcfs"
)

// viewLimits are the limits of the section's container: a memory limit
// the views must show, and a CPU quota of all host CPUs (a real quota for
// the views to evaluate, but one that never throttles the readers, whose
// own CPU time is part of every read).
func viewLimits() testutil.CgroupLimits {
	return testutil.CgroupLimits{
		MemoryBytes: 300 << 20,
		CPUQuotaUs:  int64(runtime.NumCPU()) * 100000,
		CPUPeriodUs: 100000,
	}
}

// viewPath is where contender serves file.
func (e *env) viewPath(contender, file string) string {
	switch contender {
	case cKernel:
		return "/proc/" + file
	case cCorralfs:
		return filepath.Join(e.corralfs.mount, "proc", file)
	case cTrivial:
		return filepath.Join(e.trivialfs.mount, "proc", file)
	case cLXCFS:
		return filepath.Join(e.lxcfs.mount, "proc", file)
	}
	panic("unknown contender " + contender)
}

// expectedMemTotal is what a contender's meminfo must say in c.
func (e *env) expectedMemTotal(contender string, c *container) uint64 {
	if contender == cCorralfs || contender == cLXCFS {
		return c.memTotalKB()
	}
	return e.hostMemKB
}

// benchViews is section 1: open + read to EOF + close of each file from
// inside a container, by 1, 2 and 8 concurrent readers, every contender
// measured in each round in a rotating order (so a slow minute of the
// machine hurts all of them alike).
func (e *env) benchViews() error {
	c, err := newContainer(e.t, e, "bench-views", viewLimits())
	if err != nil {
		return err
	}
	contenders := []string{cCorralfs, cKernel, cTrivial}
	if e.lxcfs != nil {
		contenders = append(contenders, cLXCFS)
	}
	rounds := max(e.cfg.viewRounds, 1)
	slice := e.cfg.viewTime / time.Duration(rounds)
	cell := 0
	for _, file := range e.cfg.files {
		for _, threads := range e.cfg.threads {
			acc := map[string]*ViewCell{}
			for _, ct := range contenders {
				acc[ct] = &ViewCell{File: file, Readers: threads, Contender: ct, Requests: map[string]float64{}}
			}
			for r := range rounds {
				for i := range contenders {
					parkIfInterrupted()
					ct := contenders[(i+r+cell)%len(contenders)]
					if err := e.viewJob(c, acc[ct], file, threads, slice); err != nil {
						return err
					}
				}
			}
			for _, ct := range contenders {
				vc := acc[ct]
				vc.finish()
				e.report.Views = append(e.report.Views, *vc)
				fmt.Fprintf(os.Stderr, "  %-8s %d readers %-9s %9.0f reads/s  p50 %7.1f µs  p99 %8.1f µs\n",
					file, threads, ct, vc.ReadsPerSec, vc.P50us, vc.P99us)
			}
			cell++
		}
	}
	return nil
}

// viewJob runs one slice of a cell and adds it to the cell, with the FUSE
// requests the daemon counted for it.
func (e *env) viewJob(c *container, vc *ViewCell, file string, threads int, d time.Duration) error {
	job := proto.Job{
		Paths:      []string{e.viewPath(vc.Contender, file)},
		Threads:    threads,
		DurationMs: int(d / time.Millisecond),
	}
	if file == "meminfo" {
		job.Check = &proto.Check{MemTotalKB: e.expectedMemTotal(vc.Contender, c)}
	}
	before, _ := e.requestCounts(vc.Contender)
	res, err := c.do(job)
	if err != nil {
		return err
	}
	after, _ := e.requestCounts(vc.Contender)
	for k, v := range after {
		vc.reqTotal(k, float64(v-before[k]))
	}
	vc.add(res)
	return nil
}

// requestCounts are the FUSE requests a daemon has served so far, where
// it tells (corralfs: opens and reads; trivialfs: every request type).
func (e *env) requestCounts(contender string) (map[string]uint64, error) {
	switch contender {
	case cCorralfs:
		opens, reads, err := corralfsCounters(e.cfsSock)
		if err != nil {
			return nil, err
		}
		return map[string]uint64{"open": opens, "read": reads}, nil
	case cTrivial:
		return trivialfsCounters(e.trivialfs, e.trivCount)
	}
	return nil, nil
}
