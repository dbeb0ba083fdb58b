package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

func sortFloats(s []float64) { sort.Float64s(s) }

// view returns the cell of section 1, nil when not measured.
func (r *Report) view(file string, readers int, contender string) *ViewCell {
	for i := range r.Views {
		v := &r.Views[i]
		if v.File == file && v.Readers == readers && v.Contender == contender {
			return v
		}
	}
	return nil
}

func (r *Report) scale(contender string) *ScaleRun {
	for i := range r.Scale {
		if r.Scale[i].Contender == contender {
			return &r.Scale[i]
		}
	}
	return nil
}

func (r *Report) start(name string, views bool) *StartRow {
	for i := range r.Start {
		if s := &r.Start[i]; s.Name == name && s.Views == views && s.Skipped == "" && s.Runs > 0 {
			return s
		}
	}
	return nil
}

func (r *Report) sys(name string) *SysinfoRow {
	for i := range r.Sysinfo {
		if s := &r.Sysinfo[i]; s.Name == name && s.Skipped == "" {
			return s
		}
	}
	return nil
}

// ratio target: got = a/b must be >= want (atLeast) or <= want.
func ratioTarget(name, wantText string, a, b, want float64, atLeast bool, why string) Target {
	t := Target{Name: name, Want: wantText}
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 || a == 0 {
		t.Why = why
		if t.Why == "" {
			t.Why = "not measured"
		}
		return t
	}
	t.Measured = true
	t.Got = a / b
	t.GotText = fmt.Sprintf("%.2fx", t.Got)
	if atLeast {
		t.Pass = t.Got >= want
	} else {
		t.Pass = t.Got <= want
	}
	return t
}

// evaluate holds this run's numbers against the targets of issues 6 and 15.
func (r *Report) evaluate() {
	r.Elapsed = time.Since(r.began)
	r.Machine.LoadEnd = loadavg()
	nan := math.NaN()
	readers := map[int]bool{}
	for _, v := range r.Views {
		readers[v.Readers] = true
	}
	var ns []int
	for n := range readers {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for _, n := range ns {
		c, l, t := r.view("meminfo", n, cCorralfs), r.view("meminfo", n, cLXCFS), r.view("meminfo", n, cTrivial)
		cr, lr, tr, cp, lp := nan, nan, nan, nan, nan
		if c != nil && c.Errors == 0 {
			cr, cp = c.ReadsPerSec, c.P99us
		}
		if l != nil && l.Errors == 0 {
			lr, lp = l.ReadsPerSec, l.P99us
		}
		if t != nil && t.Errors == 0 {
			tr = t.ReadsPerSec
		}
		r.Targets = append(r.Targets,
			ratioTarget(fmt.Sprintf("shared meminfo reads/s, %d reader(s): corralfs / LXCFS", n), ">= 3x", cr, lr, 3, true, ""),
			ratioTarget(fmt.Sprintf("shared meminfo reads/s, %d reader(s): corralfs / trivial go-fuse file (issue 6)", n), ">= 1.3x", cr, tr, 1.3, true, ""),
			ratioTarget(fmt.Sprintf("shared meminfo p99, %d reader(s): corralfs / LXCFS", n), "<= 0.33x", cp, lp, 1.0/3, false, ""))
	}
	if len(r.Bound) > 0 {
		r.Targets = append(r.Targets, r.boundTargets()...)
	}
	r.Targets = append(r.Targets, r.scaleTargets()...)
	med := func(s *StartRow) float64 {
		if s == nil {
			return nan
		}
		return s.MedianMs
	}
	cv := r.start("corral", true)
	why := ""
	if cv == nil {
		why = "corral run --rm with views not measured"
	}
	r.Targets = append(r.Targets,
		ratioTarget("start median: corral run --rm (views bound) / crun run", "<= 1x", med(cv), med(r.start("crun", false)), 1, false, why),
		ratioTarget("start median: corral run --rm (views bound) / runc run", "<= 0.5x", med(cv), med(r.start("runc", false)), 0.5, false, why))
	si := Target{Name: "sysinfo(2) through the agent, 1 thread", Want: ">= 20,000 calls/s"}
	if s := r.sys("sysinfo (agent)"); s != nil {
		si.Measured, si.Got, si.GotText = true, s.CallsPerSec, fmt.Sprintf("%.0f calls/s", s.CallsPerSec)
		si.Pass = s.CallsPerSec >= 20000
	} else {
		si.Why = r.sysSkipped()
	}
	r.Targets = append(r.Targets, si)
	r.Targets = append(r.Targets,
		r.getpidCost("getpid cost of the filter (with / without - 1)", "getpid (filter)", "getpid (no filter)"),
		// What no filter can avoid: a process with any seccomp filter
		// takes the kernel's slow syscall entry. This row is what
		// corralfs's rule adds on top (informational: the issue's
		// target is the row above).
		r.getpidCost("getpid cost of the sysinfo rule beyond an allow-all filter (with / allow-all - 1)", "getpid (filter)", "getpid (allow-all filter)"),
		// corral run's default: Docker's profile with the sysinfo rule
		// (issue 11). getpid is allowed by a constant rule, which the
		// kernel caches per syscall, so this is what the profile adds
		// beyond the floor any filter costs.
		r.getpidCost("getpid cost of the default profile beyond an allow-all filter (default profile / allow-all - 1)", "getpid (default profile)", "getpid (allow-all filter)"))
}

// getpidCost is the target "getpid in the measured row's container costs
// < 5% more than in the baseline row's".
func (r *Report) getpidCost(name, measured, baseline string) Target {
	t := Target{Name: name, Want: "< 5%"}
	with, base := r.sys(measured), r.sys(baseline)
	if with == nil || base == nil {
		t.Why = r.sysSkipped()
		return t
	}
	t.Measured = true
	t.Got = with.NsPerCall/base.NsPerCall - 1
	t.GotText = fmt.Sprintf("%+.1f%%", t.Got*100)
	t.Pass = t.Got < 0.05
	return t
}

func (r *Report) sysSkipped() string {
	for _, s := range r.Sysinfo {
		if s.Skipped != "" {
			return s.Skipped
		}
	}
	return "not measured"
}

// scaleTargets: at 200 containers, reads/s >= 5x LXCFS and daemon CPU per
// 1,000 reads <= 1/4 of LXCFS's, for the bound files (what corral run,
// the hook and the NRI plugin bind) and the shared LXCFS-style files;
// the daemon tree's RSS <= 32 MiB over all corralfs rounds, and flat: the
// last round's peak within 10% of the first's.
func (r *Report) scaleTargets() []Target {
	nan := math.NaN()
	l := r.scale(cLXCFS)
	lr, lc := nan, nan
	if l != nil {
		lr, lc = l.ReadsPerSec, l.CPUPer1000
	}
	var out []Target
	rounds := r.Memory.ScaleRoundPeaks
	var rssMax uint64
	n := 0
	for _, ct := range []string{cBound, cCorralfs} {
		c := r.scale(ct)
		if c == nil {
			continue
		}
		n = c.Containers
		out = append(out,
			ratioTarget(fmt.Sprintf("%d containers: aggregate reads/s %s / LXCFS", c.Containers, ct), ">= 5x", c.ReadsPerSec, lr, 5, true, ""),
			ratioTarget(fmt.Sprintf("%d containers: daemon CPU per 1,000 reads %s / LXCFS", c.Containers, ct), "<= 0.25x", c.CPUPer1000, lc, 0.25, false, ""))
		rssMax = max(rssMax, c.RSSMax)
	}
	if n == 0 {
		return nil
	}
	rss := Target{Name: fmt.Sprintf("%d containers: corralfs tree RSS", n), Want: "<= 32 MiB", Measured: rssMax > 0,
		Got: float64(rssMax) / (1 << 20), GotText: fmt.Sprintf("%.1f MiB", float64(rssMax)/(1<<20))}
	rss.Pass = rss.Measured && rssMax <= 32<<20
	out = append(out, rss)
	if len(rounds) >= 2 {
		first, last := float64(rounds[0]), float64(rounds[len(rounds)-1])
		flat := Target{Name: fmt.Sprintf("%d containers: corralfs tree RSS flat (last round peak / first round peak)", n),
			Want: "<= 1.10x", Measured: true, Got: last / first, GotText: fmt.Sprintf("%.2fx", last/first)}
		flat.Pass = flat.Got <= 1.10
		out = append(out, flat)
	}
	return out
}
