package main

import (
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
	"github.com/corral-dev/corral/tests/testutil"
)

// Report is everything one run measured; it is written as JSON as is.
type Report struct {
	Date    time.Time    `json:"date"`
	Command string       `json:"command"`
	Machine Machine      `json:"machine"`
	Config  ReportConfig `json:"config"`
	Views   []ViewCell   `json:"views"`
	Bound   []BoundCell  `json:"bound"`
	Scale   []ScaleRun   `json:"scale"`
	Start   []StartRow   `json:"start"`
	// StartTrace: corral run --rm's phases under strace (starttrace.go).
	StartTrace []TracePhase  `json:"start_trace,omitempty"`
	Memory     MemoryResult  `json:"memory"`
	Sysinfo    []SysinfoRow  `json:"sysinfo"`
	Targets    []Target      `json:"targets"`
	Notes      []string      `json:"notes"`
	Elapsed    time.Duration `json:"elapsed_ns"`

	began time.Time
}

// Machine says where the numbers come from.
type Machine struct {
	Kernel     string `json:"kernel"`
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	MemTotalKB uint64 `json:"mem_total_kb"`
	Cgroups    string `json:"cgroups"`
	Go         string `json:"go"`
	LXCFS      string `json:"lxcfs"`
	LXCFSFlags string `json:"lxcfs_flags"`
	Runc       string `json:"runc"`
	Crun       string `json:"crun"`
	// Load averages when the run began and ended: the bench shares the
	// machine with whatever else runs, and that shows here.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// ReportConfig are the knobs that shape the numbers.
type ReportConfig struct {
	ViewTime    string `json:"view_time_per_cell"`
	ViewRounds  int    `json:"view_rounds"`
	Containers  int    `json:"scale_containers"`
	ScaleTime   string `json:"scale_time_per_contender"`
	ScaleRounds int    `json:"scale_rounds"`
	StartRuns   int    `json:"start_runs"`
	MemoryReads int64  `json:"memory_reads"`
}

// ViewCell is one (file, readers, contender) cell of section 1.
type ViewCell struct {
	File        string             `json:"file"`
	Readers     int                `json:"readers"`
	Contender   string             `json:"contender"`
	Ops         int64              `json:"ops"`
	Errors      int64              `json:"errors"`
	Checked     int64              `json:"checked"`
	Wrong       int64              `json:"wrong"`
	FirstError  string             `json:"first_error,omitempty"`
	FirstWrong  string             `json:"first_wrong,omitempty"`
	ReadsPerSec float64            `json:"reads_per_s"`
	P50us       float64            `json:"p50_us"`
	P99us       float64            `json:"p99_us"`
	Requests    map[string]float64 `json:"fuse_requests_per_read,omitempty"`

	elapsed time.Duration
	hist    proto.Hist
	reqs    map[string]float64
}

func (v *ViewCell) add(r proto.Result) {
	v.Ops += r.Ops
	v.Errors += r.Errors
	v.Checked += r.Checked
	v.Wrong += r.Wrong
	if v.FirstError == "" {
		v.FirstError = r.FirstErr
	}
	if v.FirstWrong == "" {
		v.FirstWrong = r.FirstBad
	}
	v.elapsed += time.Duration(r.ElapsedNs)
	v.hist.Merge(r.Hist)
}

func (v *ViewCell) reqTotal(kind string, n float64) {
	if v.reqs == nil {
		v.reqs = map[string]float64{}
	}
	v.reqs[kind] += n
}

func (v *ViewCell) finish() {
	if v.elapsed > 0 {
		v.ReadsPerSec = float64(v.Ops) / v.elapsed.Seconds()
	}
	v.P50us = v.hist.Quantile(0.50) / 1e3
	v.P99us = v.hist.Quantile(0.99) / 1e3
	for k, n := range v.reqs {
		if v.Ops > 0 {
			v.Requests[k] = n / float64(v.Ops)
		}
	}
	if len(v.Requests) == 0 {
		v.Requests = nil
	}
}

// ScaleRun is section 2 for one contender.
type ScaleRun struct {
	Contender     string   `json:"contender"`
	Containers    int      `json:"containers"`
	Seconds       float64  `json:"seconds"`
	Reads         int64    `json:"reads"`
	ReadsPerSec   float64  `json:"reads_per_s"`
	DaemonCPUSecs float64  `json:"daemon_cpu_s"`
	CPUPer1000    float64  `json:"daemon_cpu_s_per_1000_reads"`
	RSSSamples    []uint64 `json:"daemon_rss_samples"`
	RSSMax        uint64   `json:"daemon_rss_max"`
	RSSRoundMax   []uint64 `json:"daemon_rss_max_per_round"`
	Checked       int64    `json:"checked"`
	Wrong         int64    `json:"wrong"`
	Errors        int64    `json:"errors"`
	FirstWrong    string   `json:"first_wrong,omitempty"`
	FirstError    string   `json:"first_error,omitempty"`
	P50us         float64  `json:"p50_us"`
	P99us         float64  `json:"p99_us"`
	hist          proto.Hist
}

// StartRow is section 3 for one runtime and variant.
type StartRow struct {
	Name       string    `json:"name"`
	Views      bool      `json:"views"`
	Runs       int       `json:"runs"`
	Failures   int       `json:"failures"`
	MedianMs   float64   `json:"median_ms"`
	P90Ms      float64   `json:"p90_ms"`
	FirstError string    `json:"first_error,omitempty"`
	TimesMs    []float64 `json:"times_ms"`
	Skipped    string    `json:"not_measured,omitempty"`
	Note       string    `json:"note,omitempty"`
}

// MemoryResult is section 4.
type MemoryResult struct {
	IdleRSS       uint64 `json:"idle_rss"`
	AfterReads    int64  `json:"reads_served"`
	AfterReadsRSS uint64 `json:"rss_after_reads"`
	At200RSS      uint64 `json:"rss_at_scale"`
	AtContainers  int    `json:"scale_containers"`
	LXCFSIdleRSS  uint64 `json:"lxcfs_rss_before_scale"`
	LXCFSAtScale  uint64 `json:"lxcfs_rss_at_scale"`
	// The same three points as the tree's PSS and anonymous memory
	// (procUsage): Idle, AfterReads, At200.
	PSS  [3]uint64 `json:"tree_pss"`
	Anon [3]uint64 `json:"tree_anon"`
	// ScaleRoundPeaks: corralfs's tree RSS peak per scale round, in the
	// order the rounds ran (bound and shared rounds interleaved).
	ScaleRoundPeaks []uint64 `json:"scale_round_peaks,omitempty"`
	Skipped         string   `json:"not_measured,omitempty"`
	// The worker's heap after the reads (heap.go).
	HeapTop   []string          `json:"heap_top,omitempty"`
	HeapStats map[string]string `json:"heap_stats,omitempty"`
}

// SysinfoRow is section 5 for one variant.
type SysinfoRow struct {
	Name        string  `json:"name"`
	CallsPerSec float64 `json:"calls_per_s"`
	NsPerCall   float64 `json:"ns_per_call"`
	Errors      int64   `json:"errors"`
	Skipped     string  `json:"not_measured,omitempty"`
}

// Target is one goal of issue 6 and how this run did.
type Target struct {
	Name     string  `json:"name"`
	Want     string  `json:"want"`
	Got      float64 `json:"got"`
	GotText  string  `json:"got_text"`
	Pass     bool    `json:"pass"`
	Measured bool    `json:"measured"`
	Why      string  `json:"why,omitempty"`
}

func newReport(cfg config) *Report {
	r := &Report{
		Date:    time.Now().UTC(),
		Command: cfg.command,
		began:   time.Now(),
		Config: ReportConfig{
			ViewTime: cfg.viewTime.String(), ViewRounds: cfg.viewRounds,
			Containers: cfg.scaleN, ScaleTime: cfg.scaleTime.String(), ScaleRounds: cfg.scaleRounds,
			StartRuns: cfg.startRuns, MemoryReads: cfg.memReads,
		},
	}
	r.Machine = machine()
	return r
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), MemTotalKB: hostMemTotalKB(), Go: runtime.Version(), Cgroups: testutil.DetectCgroupMode().String()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	m.LXCFS = version("lxcfs", "--version")
	m.Runc = version("runc", "--version")
	m.Crun = version("crun", "--version")
	m.LoadStart = loadavg()
	return m
}

// version is the first line of a tool's version output, "" when absent.
func version(tool string, args ...string) string {
	p, err := lookPath(tool)
	if err != nil {
		return ""
	}
	out, _ := exec.Command(p, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func lookPath(tool string) (string, error) { return exec.LookPath(tool) }

// quantile of unsorted samples (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sortFloats(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
