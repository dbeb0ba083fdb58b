package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/tests/bench/internal/proto"
	"github.com/corral-dev/corral/tests/testutil"
)

// scaleLimits gives container i limits of its own, so an answer meant for
// another container is caught: MemTotal (128+i) MiB, and alternately a
// one-CPU cpuset or a 1.5-CPU quota (ceil: 2 CPUs).
func scaleLimits(i int) (testutil.CgroupLimits, int) {
	lim := testutil.CgroupLimits{MemoryBytes: int64(128+i) << 20}
	if i%2 == 1 {
		lim.Cpus = "0"
		return lim, 1
	}
	lim.CPUQuotaUs, lim.CPUPeriodUs = 150000, 100000
	return lim, min(runtime.NumCPU(), 2)
}

// benchScale is section 2: --containers containers read meminfo and stat
// in a loop, every answer checked against the container's own limits,
// through corralfs's bound files (each container its own, bound into it as
// corral run, the hook and the NRI plugin do), corralfs's shared files and
// LXCFS in rotating rounds, while the daemon's CPU time and RSS are
// sampled.
func (e *env) benchScale() error {
	n := e.cfg.scaleN
	fmt.Fprintf(os.Stderr, "  starting %d containers\n", n)
	cs := make([]*container, n)
	cpus := make([]int, n)
	bound := make([][]string, n)
	for i := range n {
		parkIfInterrupted()
		lim, nc := scaleLimits(i)
		name := fmt.Sprintf("bench-scale-%03d", i)
		// Bound before the container starts, so its mount namespace
		// (a copy of ours) has them.
		paths, err := e.bindOwnViews(name, "meminfo", "stat")
		if err != nil {
			return err
		}
		c, err := newContainer(e.t, e, name, lim)
		if err != nil {
			return err
		}
		cs[i], cpus[i], bound[i] = c, nc, paths
	}
	e.scaleBound = bound
	contenders := []string{cBound, cCorralfs}
	if e.lxcfs != nil {
		contenders = append(contenders, cLXCFS)
	}
	rounds := max(e.cfg.scaleRounds, 1)
	slice := e.cfg.scaleTime / time.Duration(rounds)
	runs := map[string]*ScaleRun{}
	for _, ct := range contenders {
		runs[ct] = &ScaleRun{Contender: ct, Containers: n}
	}
	for r := range rounds {
		for i := range contenders {
			ct := contenders[(i+r)%len(contenders)]
			if err := e.scaleRound(runs[ct], cs, cpus, slice); err != nil {
				return err
			}
		}
	}
	for _, ct := range contenders {
		s := runs[ct]
		if s.Seconds > 0 {
			s.ReadsPerSec = float64(s.Reads) / s.Seconds
		}
		if s.Reads > 0 {
			s.CPUPer1000 = s.DaemonCPUSecs / float64(s.Reads) * 1000
		}
		s.P50us, s.P99us = s.hist.Quantile(0.5)/1e3, s.hist.Quantile(0.99)/1e3
		e.report.Scale = append(e.report.Scale, *s)
	}
	e.report.Memory.AtContainers = n
	for _, ct := range []string{cBound, cCorralfs} {
		if s := runs[ct]; s != nil {
			e.report.Memory.At200RSS = max(e.report.Memory.At200RSS, s.RSSMax)
		}
	}
	if s := runs[cLXCFS]; s != nil {
		e.report.Memory.LXCFSAtScale = s.RSSMax
	}
	for _, c := range cs {
		c.stop()
	}
	return nil
}

// scaleRound has every container read through one daemon for d.
func (e *env) scaleRound(s *ScaleRun, cs []*container, cpus []int, d time.Duration) error {
	daemon := e.corralfs
	if s.Contender == cLXCFS {
		daemon = e.lxcfs
	}
	var shared []string
	if s.Contender != cBound {
		shared = []string{e.viewPath(s.Contender, "meminfo"), e.viewPath(s.Contender, "stat")}
	}
	// Every reader waits for the same instant, so the window is shared.
	start := time.Now().Add(time.Second + time.Duration(len(cs))*2*time.Millisecond)
	for i, c := range cs {
		paths := shared
		if s.Contender == cBound {
			paths = e.scaleBound[i]
		}
		job := proto.Job{Paths: paths, Threads: 1, DurationMs: int(d / time.Millisecond), StartUnixNs: start.UnixNano(),
			Check: &proto.Check{MemTotalKB: c.memTotalKB(), CPUs: cpus[i]}, CheckAll: true}
		if err := c.send(job); err != nil {
			return err
		}
	}
	time.Sleep(time.Until(start))
	before, err := usageOf(daemon.pid)
	if err != nil {
		return err
	}
	// RSS once a second while the readers run.
	stopSampling := make(chan struct{})
	var sampled sync.WaitGroup
	var roundMax uint64
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if u, err := usageOf(daemon.pid); err == nil {
					s.RSSSamples = append(s.RSSSamples, u.RSS)
					roundMax = max(roundMax, u.RSS)
					if daemon == e.corralfs {
						m := &e.report.Memory
						m.PSS[2], m.Anon[2] = max(m.PSS[2], u.PSS), max(m.Anon[2], u.Anon)
					}
				}
			}
		}
	}()
	results := make([]proto.Result, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.result()
		}()
	}
	wg.Wait()
	after, err := usageOf(daemon.pid)
	close(stopSampling)
	sampled.Wait()
	if err != nil {
		return err
	}
	roundMax = max(roundMax, after.RSS)
	var window int64
	var reads, wrong, failed int64
	for i, r := range results {
		if errs[i] != nil {
			return errs[i]
		}
		window = max(window, r.ElapsedNs)
		reads += r.Ops
		wrong += r.Wrong
		failed += r.Errors
		s.Checked += r.Checked
		s.Wrong += r.Wrong
		s.Errors += r.Errors
		if s.FirstWrong == "" && r.FirstBad != "" {
			s.FirstWrong = cs[i].name + ": " + r.FirstBad
		}
		if s.FirstError == "" && r.FirstErr != "" {
			s.FirstError = cs[i].name + ": " + r.FirstErr
		}
		s.hist.Merge(r.Hist)
	}
	s.Reads += reads
	s.Seconds += time.Duration(window).Seconds()
	s.DaemonCPUSecs += (after.CPU - before.CPU).Seconds()
	s.RSSRoundMax = append(s.RSSRoundMax, roundMax)
	if daemon == e.corralfs {
		e.report.Memory.ScaleRoundPeaks = append(e.report.Memory.ScaleRoundPeaks, roundMax)
	}
	s.RSSMax = max(s.RSSMax, roundMax)
	fmt.Fprintf(os.Stderr, "  %-8s %d containers: %8.0f reads/s, daemon CPU %.2f s, RSS %s, %d wrong, %d errors\n",
		s.Contender, len(cs), float64(reads)/time.Duration(window).Seconds(), (after.CPU - before.CPU).Seconds(), mib(roundMax), wrong, failed)
	return nil
}

// bindOwnViews binds the files of the container that will run in cgroup
// /corral-test/NAME from corralfs's .bound tree onto files below the work
// directory and returns their paths. The entries resolve by the cgroup's
// path, so they can be bound before the cgroup exists; only that
// container's processes can open them (decision 49).
func (e *env) bindOwnViews(name string, files ...string) ([]string, error) {
	key, ok := facts.BoundKeyOfCgroup(testutil.TestCgroupParent + "/" + name)
	if !ok {
		return nil, fmt.Errorf("no bound-view key for %s", name)
	}
	dir := filepath.Join(e.work, "bound", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		dst := filepath.Join(dir, f)
		if err := os.WriteFile(dst, nil, 0o444); err != nil {
			return nil, err
		}
		src := filepath.Join(e.corralfs.mount, facts.BoundDir, key, "proc", f)
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return nil, fmt.Errorf("binding %s: %w", src, err)
		}
		undo.add(func() { unix.Unmount(dst, unix.MNT_DETACH) })
		out = append(out, dst)
	}
	return out, nil
}
