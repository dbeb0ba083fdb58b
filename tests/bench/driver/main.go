// Command driver is `make bench`: it measures corralfs side by side with
// the kernel's own files, a trivial go-fuse file (the FUSE transport floor)
// and LXCFS, and `corral run` side by side with runc, crun and unshare, all
// in one run with the contenders interleaved, then prints a table with the
// ratios against the targets of issue 6 and writes JSON and
// docs/benchmarks.md. tests/bench/run.sh builds and starts it as root.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// config is the command line.
type config struct {
	work     string // scratch directory (mounts, logs, bundles); removed at the end
	binDir   string // bin/ of the repository: corral, corralfs
	benchBin string // where run.sh built reader and trivialfs
	results  string // JSON output directory
	docs     string // markdown report to update ("" = none)
	command  string // the command line to print in the report

	sections []string

	viewTime   time.Duration // per (file, readers, contender) cell, over all rounds
	viewRounds int
	threads    []int
	files      []string

	scaleN      int
	scaleTime   time.Duration // per contender, over all rounds
	scaleRounds int

	startRuns int
	memReads  int64
	sysTime   time.Duration
	lxcfsArgs []string
	cfsArgs   []string
	fromJSON  string
}

var allSections = []string{"views", "bound", "memory", "scale", "start", "sysinfo"}

func parseFlags() config {
	var c config
	fl := pflag.CommandLine
	fl.StringVar(&c.work, "work", "", "scratch directory (required; run.sh makes one)")
	fl.StringVar(&c.binDir, "bin", "bin", "directory of the corral and corralfs binaries")
	fl.StringVar(&c.benchBin, "bench-bin", "", "directory of the reader and trivialfs binaries")
	fl.StringVar(&c.results, "results", "tests/bench/results", "directory for the JSON results")
	fl.StringVar(&c.docs, "docs", "docs/benchmarks.md", "markdown report to update (empty: none)")
	fl.StringVar(&c.command, "command", "make bench", "command line shown in the report")
	fl.StringSliceVar(&c.sections, "sections", allSections, "sections to run: "+strings.Join(allSections, ","))
	fl.DurationVar(&c.viewTime, "view-time", 1500*time.Millisecond, "view reads: measuring time per file, reader count and contender (split over --view-rounds)")
	fl.IntVar(&c.viewRounds, "view-rounds", 3, "view reads: interleaved rounds per cell")
	fl.IntSliceVar(&c.threads, "readers", []int{1, 2, 8}, "view reads: concurrent reader counts")
	fl.StringSliceVar(&c.files, "files", []string{"meminfo", "cpuinfo", "stat", "loadavg", "uptime"}, "view reads: files under proc/")
	fl.IntVar(&c.scaleN, "containers", 200, "scale: number of containers")
	fl.DurationVar(&c.scaleTime, "scale-time", 20*time.Second, "scale: reading time per contender (split over --scale-rounds)")
	fl.IntVar(&c.scaleRounds, "scale-rounds", 2, "scale: interleaved rounds")
	fl.IntVar(&c.startRuns, "start-runs", 50, "start: runs per runtime and variant")
	fl.Int64Var(&c.memReads, "memory-reads", 1_000_000, "daemon memory: reads before the second RSS sample")
	fl.DurationVar(&c.sysTime, "sysinfo-time", 2*time.Second, "sysinfo: measuring time per variant")
	fl.StringSliceVar(&c.lxcfsArgs, "lxcfs-args", []string{"--enable-loadavg", "--enable-cfs"}, "extra LXCFS flags (its per-container loadavg and CPU-quota views, the work corralfs does too)")
	fl.StringSliceVar(&c.cfsArgs, "corralfs-args", nil, "extra corralfs flags (e.g. --debug-fuse, or a profiling switch)")
	fl.StringVar(&c.fromJSON, "from-json", "", "measure nothing: print the tables of a saved run and rewrite --docs from it")
	pflag.Parse()
	return c
}

// env is what the sections share: paths and the running daemons.
type env struct {
	cfg    config
	t      *tb
	work   string
	reader string // reader binary
	// boundBind is the bound section's bind of its container's own meminfo.
	boundBind string
	// scaleBound: per scale container, its own bound meminfo and stat.
	scaleBound [][]string
	corral     string
	cfsBin     string

	corralfs  *daemon
	lxcfs     *daemon
	trivialfs *daemon
	cfsSock   string
	agentSock string // corralfs's seccomp agent ("" when it has none)
	trivCount string

	hostMemKB uint64
	report    *Report
}

func main() {
	cfg := parseFlags()
	onSignal()
	var err error
	if cfg.fromJSON != "" {
		err = rerender(cfg)
	} else {
		err = run(cfg)
	}
	undo.run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (real cgroups, FUSE mounts, containers)")
	}
	if cfg.work == "" || cfg.benchBin == "" {
		return fmt.Errorf("--work and --bench-bin are required (use tests/bench/run.sh)")
	}
	for _, s := range cfg.sections {
		if !slices.Contains(allSections, s) {
			return fmt.Errorf("--sections: unknown section %q (want %s)", s, strings.Join(allSections, ","))
		}
	}
	for _, d := range []string{"logs", "mnt", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.work, d), 0o755); err != nil {
			return err
		}
	}
	e := &env{
		cfg:       cfg,
		t:         newTB(filepath.Join(cfg.work, "tmp")),
		work:      cfg.work,
		reader:    filepath.Join(cfg.benchBin, "reader"),
		corral:    absPath(filepath.Join(cfg.binDir, "corral")),
		cfsBin:    absPath(filepath.Join(cfg.binDir, "corralfs")),
		hostMemKB: hostMemTotalKB(),
		report:    newReport(cfg),
	}
	if err := e.startDaemons(); err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"views", e.benchViews},
		{"bound", e.benchBound},
		{"memory", e.benchMemory},
		{"scale", e.benchScale},
		{"start", e.benchStart},
		{"sysinfo", e.benchSysinfo},
	}
	for _, s := range steps {
		if !slices.Contains(cfg.sections, s.name) {
			continue
		}
		parkIfInterrupted()
		fmt.Fprintf(os.Stderr, "bench: section %s\n", s.name)
		if err := s.fn(); err != nil {
			// One broken section must not cost the others: record it.
			e.report.Notes = append(e.report.Notes, fmt.Sprintf("section %s failed: %v", s.name, err))
			fmt.Fprintf(os.Stderr, "bench: section %s failed: %v\n", s.name, err)
		}
	}
	parkIfInterrupted()
	e.report.evaluate()
	e.report.print(os.Stdout)
	return e.report.write(cfg)
}

// rerender prints and rewrites the markdown report of a saved JSON run
// (after editing the report's layout, or to restore docs/benchmarks.md).
func rerender(cfg config) error {
	b, err := os.ReadFile(cfg.fromJSON)
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", cfg.fromJSON, err)
	}
	r.print(os.Stdout)
	if cfg.docs == "" {
		return nil
	}
	return r.writeMarkdown(cfg.docs)
}

// startDaemons mounts corralfs, trivialfs and LXCFS side by side, each on
// its own mount point, before any container starts (the containers' mount
// namespaces are copies taken at their start).
func (e *env) startDaemons() error {
	mnt := filepath.Join(e.work, "mnt")
	var err error
	e.cfsSock = filepath.Join(e.work, "corralfs.sock")
	args := []string{e.cfsBin, "--log-level", "warn", "--control-socket", e.cfsSock,
		"--pidfile", filepath.Join(e.work, "corralfs.pid")}
	if flag := agentFlag(e.cfsBin); flag != "" {
		e.agentSock = filepath.Join(e.work, "seccomp.sock")
		args = append(args, "--"+flag, e.agentSock)
	}
	args = append(args, e.cfg.cfsArgs...)
	args = append(args, filepath.Join(mnt, "corralfs"))
	if e.agentSock != "" {
		// corralfs hands the agent's socket to a keeper process that
		// outlives it by design; the bench's keeper goes with the bench.
		sock := e.agentSock
		undo.add(func() { killByCmdline("--socket", sock) }) // corralfs-keeper, or corralfs seccomp-keeper
	}
	e.corralfs, err = startDaemon(e, "corralfs", filepath.Join(mnt, "corralfs"), "fuse.corralfs", args...)
	if err != nil {
		return fmt.Errorf("corralfs: %w", err)
	}
	// RSS of the daemon before it served a single container (section 4).
	time.Sleep(200 * time.Millisecond)
	if u, err := usageOf(e.corralfs.pid); err == nil {
		e.report.Memory.IdleRSS = u.RSS
		e.report.Memory.PSS[0], e.report.Memory.Anon[0] = u.PSS, u.Anon
	}
	e.trivCount = filepath.Join(e.work, "trivialfs.counts")
	e.trivialfs, err = startDaemon(e, "trivialfs", filepath.Join(mnt, "trivialfs"), "fuse.trivialfs",
		filepath.Join(e.cfg.benchBin, "trivialfs"), "--counts", e.trivCount, filepath.Join(mnt, "trivialfs"))
	if err != nil {
		return fmt.Errorf("trivialfs: %w", err)
	}
	lx, lerr := lookPath("lxcfs")
	if lerr == nil {
		args := append([]string{lx, "-f", "-p", filepath.Join(e.work, "lxcfs.pid")}, e.cfg.lxcfsArgs...)
		args = append(args, filepath.Join(mnt, "lxcfs"))
		e.lxcfs, lerr = startDaemon(e, "lxcfs", filepath.Join(mnt, "lxcfs"), "fuse.lxcfs", args...)
	}
	if lerr != nil {
		e.lxcfs = nil
		e.report.Notes = append(e.report.Notes, "LXCFS not measured: "+lerr.Error())
		fmt.Fprintf(os.Stderr, "bench: LXCFS not measured: %v\n", lerr)
	} else {
		e.report.Machine.LXCFSFlags = strings.Join(e.cfg.lxcfsArgs, " ")
	}
	return nil
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
