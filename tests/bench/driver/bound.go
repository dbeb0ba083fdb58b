package main

import (
	"fmt"
	"os"
	"time"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
)

// Section "bound" (issue 15): meminfo read from inside one container by one
// reader, two ways (open + read to EOF + close; the same descriptor read
// again from offset 0 with pread, as top and agents do), from the
// container's own bound file (page cache, docs/design.md decision 49),
// the shared corralfs file, LXCFS and the kernel's file, every cell in
// each round in a rotating order.

// Contenders of the bound section.
const (
	cBound  = "corralfs bound"
	cShared = "corralfs shared"
)

// Modes of the bound section.
const (
	modeOpen  = "open+read+close"
	modePread = "pread at 0, same fd"
)

// BoundCell is one cell of the bound section.
type BoundCell struct {
	ViewCell
	Mode string `json:"mode"`
}

func (e *env) boundPath(contender string, c *container) (string, error) {
	switch contender {
	case cBound:
		return e.boundBind, nil
	case cShared:
		return e.viewPath(cCorralfs, "meminfo"), nil
	}
	return e.viewPath(contender, "meminfo"), nil
}

func (e *env) benchBound() error {
	// The container reads its own file through a bind mount, as in a
	// container `corral run` starts: a path walk into the mount's
	// .bound directory would cost a LOOKUP per component (bound entries
	// get no lifetime, decision 49). Bound before the container starts,
	// so its mount namespace has it.
	const name = "bench-bound"
	paths, err := e.bindOwnViews(name, "meminfo")
	if err != nil {
		return err
	}
	e.boundBind = paths[0]
	c, err := newContainer(e.t, e, name, viewLimits())
	if err != nil {
		return err
	}
	contenders := []string{cBound, cShared, cKernel}
	if e.lxcfs != nil {
		contenders = append(contenders, cLXCFS)
	}
	rounds := max(e.cfg.viewRounds, 1)
	slice := e.cfg.viewTime / time.Duration(rounds)
	for mi, mode := range []string{modeOpen, modePread} {
		acc := map[string]*BoundCell{}
		for _, ct := range contenders {
			acc[ct] = &BoundCell{ViewCell: ViewCell{File: "meminfo", Readers: 1, Contender: ct, Requests: map[string]float64{}}, Mode: mode}
		}
		for r := range rounds {
			for i := range contenders {
				parkIfInterrupted()
				ct := contenders[(i+r+mi)%len(contenders)]
				path, err := e.boundPath(ct, c)
				if err != nil {
					return err
				}
				kernelCt := ct
				if ct == cBound || ct == cShared {
					kernelCt = cCorralfs
				}
				job := proto.Job{Paths: []string{path}, Threads: 1, DurationMs: int(slice / time.Millisecond),
					Pread: mode == modePread, Check: &proto.Check{MemTotalKB: e.expectedMemTotal(kernelCt, c)}, CheckAll: true}
				before, _ := e.requestCounts(kernelCt)
				res, err := c.do(job)
				if err != nil {
					return err
				}
				after, _ := e.requestCounts(kernelCt)
				for k, v := range after {
					acc[ct].reqTotal(k, float64(v-before[k]))
				}
				acc[ct].add(res)
			}
		}
		for _, ct := range contenders {
			bc := acc[ct]
			bc.finish()
			e.report.Bound = append(e.report.Bound, *bc)
			fmt.Fprintf(os.Stderr, "  meminfo %-20s %-16s %9.0f reads/s  p50 %7.1f µs  p99 %8.1f µs\n",
				mode, ct, bc.ReadsPerSec, bc.P50us, bc.P99us)
		}
	}
	return nil
}

func (r *Report) bound(mode, contender string) *BoundCell {
	for i := range r.Bound {
		if b := &r.Bound[i]; b.Mode == mode && b.Contender == contender {
			return b
		}
	}
	return nil
}

// boundTable is the section's table: one row per mode.
func (r *Report) boundTable() (table, bool) {
	t := table{title: "1b. Bound views (issue 15): meminfo from inside a container, 1 reader: reads/s (p50 / p99 µs)",
		head: []string{"mode", "corralfs bound", "corralfs shared", "kernel file", "LXCFS", "bound / LXCFS", "bound / kernel", "p99 bound / LXCFS"}}
	cell := func(b *BoundCell) string {
		if b == nil {
			return "not measured"
		}
		return fmt.Sprintf("%s (%s / %s)", num(b.ReadsPerSec), us(b.P50us), us(b.P99us))
	}
	val := func(b *BoundCell, p99 bool) float64 {
		switch {
		case b == nil || b.Errors > 0:
			return 0
		case p99:
			return b.P99us
		}
		return b.ReadsPerSec
	}
	for _, mode := range []string{modeOpen, modePread} {
		b, s, k, l := r.bound(mode, cBound), r.bound(mode, cShared), r.bound(mode, cKernel), r.bound(mode, cLXCFS)
		if b == nil {
			continue
		}
		t.rows = append(t.rows, []string{mode, cell(b), cell(s), cell(k), cell(l),
			ratio(val(b, false), val(l, false)), ratio(val(b, false), val(k, false)), ratio(val(b, true), val(l, true))})
		if len(b.Requests) > 0 {
			t.notes = append(t.notes, fmt.Sprintf("FUSE requests per read, corralfs bound, %s: OPEN %.3f, READ %.3f", mode, b.Requests["open"], b.Requests["read"]))
		}
	}
	for _, b := range r.Bound {
		if b.Errors > 0 {
			t.notes = append(t.notes, fmt.Sprintf("%s %s: %d of %d reads failed: %s", b.Contender, b.Mode, b.Errors, b.Ops, b.FirstError))
		}
		if b.Wrong > 0 {
			t.notes = append(t.notes, fmt.Sprintf("%s %s: WRONG answer: %s", b.Contender, b.Mode, b.FirstWrong))
		}
	}
	return t, len(t.rows) > 0
}

// boundTargets are issue 15's read targets.
func (r *Report) boundTargets() []Target {
	val := func(b *BoundCell) float64 {
		if b == nil || b.Errors > 0 || b.Wrong > 0 {
			return 0
		}
		return b.ReadsPerSec
	}
	return []Target{
		ratioTarget("bound meminfo open+read+close, 1 reader: corralfs bound / LXCFS", ">= 10x",
			val(r.bound(modeOpen, cBound)), val(r.bound(modeOpen, cLXCFS)), 10, true, ""),
		ratioTarget("bound meminfo same-fd pread at 0, 1 reader: corralfs bound / LXCFS", ">= 20x",
			val(r.bound(modePread, cBound)), val(r.bound(modePread, cLXCFS)), 20, true, ""),
	}
}
