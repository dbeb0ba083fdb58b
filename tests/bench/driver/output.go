package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// table is a header and rows of text cells, rendered aligned for the
// terminal or as markdown for docs/benchmarks.md.
type table struct {
	title string
	head  []string
	rows  [][]string
	notes []string
}

func (t *table) text(w io.Writer) {
	width := make([]int, len(t.head))
	for _, row := range append([][]string{t.head}, t.rows...) {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	fmt.Fprintf(w, "\n== %s ==\n", t.title)
	for _, row := range append([][]string{t.head}, t.rows...) {
		var b strings.Builder
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	for _, n := range t.notes {
		fmt.Fprintln(w, "  "+n)
	}
}

func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "\n### %s\n\n", t.title)
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(t.head, " | "), strings.Repeat(" --- |", len(t.head)))
	for _, row := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

// num formats with thousands separators.
func num(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	s := fmt.Sprintf("%.0f", x)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func us(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x < 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func (r *Report) tables() []table {
	var ts []table
	// 1. view reads
	vt := table{title: "1. View reads from inside a container: reads/s (p50 / p99 µs) per open + read to EOF + close",
		head: []string{"file", "readers", "corralfs", "kernel file", "trivial go-fuse", "LXCFS", "corralfs / trivial", "corralfs / LXCFS", "p99 corralfs / LXCFS"}}
	cellText := func(v *ViewCell) string {
		switch {
		case v == nil:
			return "not measured"
		case v.Errors > 0 && v.Ops == v.Errors:
			return "error"
		}
		return fmt.Sprintf("%s (%s / %s)", num(v.ReadsPerSec), us(v.P50us), us(v.P99us))
	}
	get := func(v *ViewCell, f func(*ViewCell) float64) float64 {
		if v == nil || v.Errors > 0 {
			return math.NaN()
		}
		return f(v)
	}
	rate := func(v *ViewCell) float64 { return v.ReadsPerSec }
	p99 := func(v *ViewCell) float64 { return v.P99us }
	seen := map[string]bool{}
	for _, v := range r.Views {
		key := fmt.Sprintf("%s/%d", v.File, v.Readers)
		if seen[key] {
			continue
		}
		seen[key] = true
		c, k, t, l := r.view(v.File, v.Readers, cCorralfs), r.view(v.File, v.Readers, cKernel), r.view(v.File, v.Readers, cTrivial), r.view(v.File, v.Readers, cLXCFS)
		vt.rows = append(vt.rows, []string{v.File, fmt.Sprint(v.Readers), cellText(c), cellText(k), cellText(t), cellText(l),
			ratio(get(c, rate), get(t, rate)), ratio(get(c, rate), get(l, rate)), ratio(get(c, p99), get(l, p99))})
	}
	for _, v := range r.Views {
		if v.Errors > 0 {
			vt.notes = append(vt.notes, fmt.Sprintf("%s %s %d readers: %d of %d reads failed: %s", v.Contender, v.File, v.Readers, v.Errors, v.Ops, v.FirstError))
		}
		if v.Wrong > 0 {
			vt.notes = append(vt.notes, fmt.Sprintf("%s %s %d readers: WRONG answer: %s", v.Contender, v.File, v.Readers, v.FirstWrong))
		}
	}
	for _, ct := range []string{cCorralfs, cTrivial} {
		if v := r.view("meminfo", 1, ct); v != nil && len(v.Requests) > 0 {
			var parts []string
			for _, k := range []string{"open", "read", "flush", "release", "getattr", "lookup"} {
				if n, ok := v.Requests[k]; ok {
					parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToUpper(k), n))
				}
			}
			vt.notes = append(vt.notes, fmt.Sprintf("FUSE requests per meminfo read, %s: %s", ct, strings.Join(parts, ", ")))
		}
	}
	if len(vt.rows) > 0 {
		ts = append(ts, vt)
	}
	if bt, ok := r.boundTable(); ok {
		ts = append(ts, bt)
	}
	// 2. scale
	if len(r.Scale) > 0 {
		st := table{title: "2. Scale: containers each reading meminfo and stat in a loop",
			head: []string{"daemon", "containers", "seconds", "reads/s", "p50 / p99 µs", "daemon CPU s / 1,000 reads", "daemon RSS max", "answers checked", "wrong", "errors"}}
		for _, s := range r.Scale {
			st.rows = append(st.rows, []string{s.Contender, fmt.Sprint(s.Containers), fmt.Sprintf("%.1f", s.Seconds), num(s.ReadsPerSec),
				us(s.P50us) + " / " + us(s.P99us), fmt.Sprintf("%.4f", s.CPUPer1000), mib(s.RSSMax), num(float64(s.Checked)), num(float64(s.Wrong)), num(float64(s.Errors))})
			if s.FirstWrong != "" {
				st.notes = append(st.notes, s.Contender+": first wrong answer: "+s.FirstWrong)
			}
			if s.FirstError != "" {
				st.notes = append(st.notes, s.Contender+": first error: "+s.FirstError)
			}
		}
		for _, ct := range []string{cBound, cCorralfs} {
			if c, l := r.scale(ct), r.scale(cLXCFS); c != nil && l != nil {
				st.notes = append(st.notes, fmt.Sprintf("%s / LXCFS: reads/s %s, CPU per 1,000 reads %s", ct, ratio(c.ReadsPerSec, l.ReadsPerSec), ratio(c.CPUPer1000, l.CPUPer1000)))
			}
		}
		if r.scale(cBound) != nil {
			st.notes = append(st.notes, "corralfs bound: each container reads its own files from corralfs's .bound tree, bound into it as corral run, the hook and the NRI plugin do (page cache, refreshed when 100 ms old); corralfs: the shared LXCFS-style files")
		}
		ts = append(ts, st)
	}
	// 3. start
	if len(r.Start) > 0 {
		st := table{title: "3. Start: run /bin/true in a busybox bundle and wait (wall clock, ms)",
			head: []string{"runtime", "views bound", "runs", "failed", "median", "p90", "median / crun", "median / runc"}}
		st.notes = append(st.notes, "corral binds the views itself (`corral run --views DIR`, with --sysinfo off); runc and crun get the same binds in their bundle, except /proc/pressure/* (runc 1.1 refuses mounts inside /proc other than the LXCFS files)")
		crun, runc := r.start("crun", false), r.start("runc", false)
		for _, s := range r.Start {
			if s.Skipped != "" {
				st.rows = append(st.rows, []string{s.Name, yesNo(s.Views), "-", "-", "-", "-", "-", "-"})
				st.notes = append(st.notes, fmt.Sprintf("%s (views %s): not measured: %s", s.Name, yesNo(s.Views), s.Skipped))
				continue
			}
			vs := func(o *StartRow) string {
				if o == nil {
					return "-"
				}
				return ratio(s.MedianMs, o.MedianMs)
			}
			st.rows = append(st.rows, []string{s.Name, yesNo(s.Views), fmt.Sprint(s.Runs), fmt.Sprint(s.Failures), fmt.Sprintf("%.1f", s.MedianMs), fmt.Sprintf("%.1f", s.P90Ms), vs(crun), vs(runc)})
			if s.FirstError != "" {
				st.notes = append(st.notes, fmt.Sprintf("%s (views %s): first failure: %s", s.Name, yesNo(s.Views), s.FirstError))
			}
			if s.Note != "" && s.Views {
				st.notes = append(st.notes, s.Name+": "+s.Note)
			}
		}
		if len(r.StartTrace) > 0 {
			var total float64
			for _, p := range r.StartTrace {
				total += p.MedianMs
			}
			parts := make([]string, 0, len(r.StartTrace))
			for _, p := range r.StartTrace {
				parts = append(parts, fmt.Sprintf("%s %.1f ms (%.0f%%)", p.Name, p.MedianMs, 100*p.MedianMs/total))
			}
			st.notes = append(st.notes, fmt.Sprintf("corral run --rm with views, per phase under strace (median of %d; strace stops the tracee at each marked call, so the sum exceeds an untraced run): %s", traceRuns, strings.Join(parts, "; ")))
		}
		ts = append(ts, st)
	}
	// 4. memory
	m := r.Memory
	if m.IdleRSS > 0 || m.Skipped != "" {
		mt := table{title: "4. Daemon memory (RSS)", head: []string{"daemon", "idle", fmt.Sprintf("after %s reads", num(float64(m.AfterReads))), fmt.Sprintf("at %d containers", m.AtContainers)}}
		mt.rows = append(mt.rows, []string{"corralfs (tree RSS)", mib(m.IdleRSS), mib(m.AfterReadsRSS), mib(m.At200RSS)})
		if m.PSS[0] > 0 {
			mt.rows = append(mt.rows,
				[]string{"corralfs (tree PSS)", mib(m.PSS[0]), mib(m.PSS[1]), mib(m.PSS[2])},
				[]string{"corralfs (tree anonymous)", mib(m.Anon[0]), mib(m.Anon[1]), mib(m.Anon[2])})
		}
		mt.notes = append(mt.notes, "corralfs: its whole process tree (supervisor and worker, two processes of the corralfs binary, and the sysinfo keeper, corralfs-keeper). RSS sums each process's resident pages, so corralfs's binary pages count once per process; PSS splits shared pages among the processes mapping them; anonymous is the processes' own memory (heaps, stacks)")
		if m.LXCFSIdleRSS > 0 {
			mt.rows = append(mt.rows, []string{"LXCFS", "-", mib(m.LXCFSIdleRSS) + " (after section 1)", mib(m.LXCFSAtScale)})
		}
		if m.Skipped != "" {
			mt.notes = append(mt.notes, "not measured: "+m.Skipped)
		}
		if st := m.HeapStats; len(st) > 0 {
			mt.notes = append(mt.notes, fmt.Sprintf("worker heap after the reads (after a GC): HeapInuse %s, HeapSys %s, HeapReleased %s, StackInuse %s, Sys %s, goroutines %s; profile %s",
				st["HeapInuse"], st["HeapSys"], st["HeapReleased"], st["StackInuse"], st["Sys"], st["goroutines"], st["profile"]))
		}
		for _, l := range m.HeapTop {
			mt.notes = append(mt.notes, "`"+l+"`")
		}
		ts = append(ts, mt)
	}
	// 5. sysinfo
	if len(r.Sysinfo) > 0 {
		st := table{title: "5. sysinfo(2) and getpid(2) in a container, one thread", head: []string{"variant", "calls/s", "ns / call"}}
		for _, s := range r.Sysinfo {
			if s.Skipped != "" {
				st.rows = append(st.rows, []string{s.Name, "not measured: " + s.Skipped, "-"})
				continue
			}
			st.rows = append(st.rows, []string{s.Name, num(s.CallsPerSec), fmt.Sprintf("%.0f", s.NsPerCall)})
		}
		ts = append(ts, st)
	}
	// targets
	tt := table{title: "Targets (issues 6 and 15)", head: []string{"target", "want", "got", "result"}}
	for _, t := range r.Targets {
		res, got := "MISS", t.GotText
		switch {
		case !t.Measured:
			res, got = "not measured", t.Why
		case t.Pass:
			res = "PASS"
		}
		tt.rows = append(tt.rows, []string{t.Name, t.Want, got, res})
	}
	tt.notes = append(tt.notes, r.Notes...)
	ts = append(ts, tt)
	return ts
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (r *Report) print(w io.Writer) {
	for _, t := range r.tables() {
		t.text(w)
	}
}

// write saves the JSON (a dated file and latest.json) and updates the
// generated part of the markdown report.
func (r *Report) write(cfg config) error {
	if err := os.MkdirAll(cfg.results, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(cfg.results, "bench-"+r.Date.Format("20060102-150405")+".json")
	for _, p := range []string{name, filepath.Join(cfg.results, "latest.json")} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nJSON: %s\n", name)
	if cfg.docs == "" {
		return nil
	}
	if err := r.writeMarkdown(cfg.docs); err != nil {
		return err
	}
	fmt.Printf("report: %s\n", cfg.docs)
	return nil
}

// Markers around the generated part of docs/benchmarks.md: text outside
// them (analysis, profiles) is kept when the bench rewrites the numbers.
const (
	mdBegin = "<!-- bench:begin (generated by make bench; edit outside these markers) -->"
	mdEnd   = "<!-- bench:end -->"
)

func (r *Report) writeMarkdown(path string) error {
	var b strings.Builder
	b.WriteString(mdBegin + "\n")
	m := r.Machine
	fmt.Fprintf(&b, "\n## Last run\n\n- Date: %s\n- Command: `%s` (as root, from the repository root)\n", r.Date.Format("2006-01-02 15:04 MST"), r.Command)
	fmt.Fprintf(&b, "- Machine: %s, %d CPUs, %.1f GiB, kernel %s, cgroups %s, %s\n", m.CPU, m.CPUs, float64(m.MemTotalKB)/(1<<20), m.Kernel, m.Cgroups, m.Go)
	fmt.Fprintf(&b, "- Contenders: %s (flags: %s); %s; %s\n", orNone(m.LXCFS, "LXCFS"), orNone(m.LXCFSFlags, "none"), orNone(m.Runc, "runc"), orNone(m.Crun, "crun"))
	fmt.Fprintf(&b, "- Load average (1/5/15 min) at start: %s, at end: %s (the machine is shared; a high load makes every absolute number smaller and the ratios noisier)\n", m.LoadStart, m.LoadEnd)
	c := r.Config
	fmt.Fprintf(&b, "- Settings: view reads %s per cell in %d interleaved rounds; scale %d containers, %s per daemon in %d rounds; %d starts per runtime; %s reads before the memory sample; whole run %s\n",
		c.ViewTime, c.ViewRounds, c.Containers, c.ScaleTime, c.ScaleRounds, c.StartRuns, num(float64(c.MemoryReads)), r.Elapsed.Round(1e9))
	for _, t := range r.tables() {
		t.markdown(&b)
	}
	b.WriteString("\n" + mdEnd + "\n")
	gen := b.String()

	old, err := os.ReadFile(path)
	var out string
	switch {
	case err == nil && strings.Contains(string(old), mdBegin) && strings.Contains(string(old), mdEnd):
		s := string(old)
		i := strings.Index(s, mdBegin)
		j := strings.Index(s, mdEnd) + len(mdEnd) + 1
		out = s[:i] + gen + s[min(j, len(s)):]
	case err == nil:
		out = strings.TrimRight(string(old), "\n") + "\n\n" + gen
	default:
		out = "# Benchmarks\n\n`make bench` (root) measures corralfs against the kernel's own files, a trivial go-fuse file (the FUSE transport floor) and LXCFS, and `corral run` against runc, crun and unshare, interleaved in one run. Ratios are what count; absolute numbers vary from run to run. Raw results: `tests/bench/results/*.json` (not committed).\n\n" + gen
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func orNone(s, what string) string {
	if s == "" {
		return what + " absent"
	}
	return s
}
