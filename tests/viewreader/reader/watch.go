package reader

// Issue 12: views stay live on an open file descriptor.
//
//	viewreader watch -files /proc/meminfo,/proc/stat,... -for 60s -alloc-mb 64 -burn 2
//
// opens each file ONCE and keeps re-reading it with pread at offset 0, as
// top, free -s, vmstat and monitoring agents do, while it loads its own
// container (busy threads, memory it allocates and touches). It reports,
// per file, whether the content read on the same fd changed the way its
// source did, and every read that broke the generation rule: after a
// pread at 0 returned content C, a pread at offset k > 0 must return
// C[k:] exactly, however much later it comes.
//
//	viewreader load -burn 1 -alloc-mb 400 -step-mb 10 -every 100ms -- free -m -s 1 -c 4
//
// runs a command while it spins threads and allocates and touches memory
// at that pace: a container whose CPU use and memory `top`, `free -s` and
// `vmstat` must show moving.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// WatchFile is what watch reports about one file.
type WatchFile struct {
	Changed bool `json:"changed"` // the same fd showed the source's change
	Reads   int  `json:"reads"`
	Mixed   int  `json:"mixed"` // reads at offset > 0 not of the last generation
	// Bound: the file is a bound view (page cache, docs/design.md decision
	// 602), read whole per call; the generation rule for reads at offset
	// > 0 is not checked there (a read at an offset other than where the
	// last one ended gets the page cache's current content, as the kernel's
	// own seq_file files give a fresh one).
	Bound bool   `json:"bound"`
	First string `json:"first"` // the line watched, at the start and at the end
	Last  string `json:"last"`
	Err   string `json:"err,omitempty"`
}

// WatchReport is what watch prints.
type WatchReport struct {
	Files map[string]*WatchFile `json:"files"`
}

// Watch is `viewreader watch`.
func Watch(args []string) int {
	fl := flag.NewFlagSet("watch", flag.ContinueOnError)
	list := fl.String("files", "/proc/meminfo,/proc/stat,/proc/uptime,/proc/loadavg", "comma-separated files to keep open, whose content must change")
	steady := fl.String("steady", "", "comma-separated files also kept open and re-read (generation rule only) while waiting")
	dur := fl.Duration("for", 60*time.Second, "give up waiting for changes after this long")
	allocMB := fl.Int("alloc-mb", 0, "MiB to allocate and touch once the first contents are read")
	burn := fl.Int("burn", 0, "busy threads to start once the first contents are read")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	rep := WatchReport{Files: map[string]*WatchFile{}}
	type watched struct {
		f      *os.File
		first  []byte
		res    *WatchFile
		steady bool
	}
	var ws []*watched
	paths := strings.Split(*list, ",")
	nChange := len(paths)
	if *steady != "" {
		paths = append(paths, strings.Split(*steady, ",")...)
	}
	for i, p := range paths {
		w := &watched{res: &WatchFile{Bound: boundView(p)}, steady: i >= nChange}
		rep.Files[p] = w.res
		f, err := os.Open(p)
		if err != nil {
			w.res.Err = err.Error()
			continue
		}
		defer f.Close()
		w.f = f
		if w.first, err = w.res.readFrom0(f); err != nil {
			w.res.Err = err.Error()
			continue
		}
		w.res.First = watchedLine(p, w.first)
		ws = append(ws, w)
	}
	startBurn(*burn)
	keep := touchMiB(*allocMB)
	deadline := time.Now().Add(*dur)
	for pending := len(ws); pending > 0 && time.Now().Before(deadline); {
		pending = 0
		for _, w := range ws {
			if w.res.Changed || w.res.Err != "" {
				continue
			}
			cur, err := w.res.readFrom0(w.f)
			if err != nil {
				w.res.Err = err.Error()
				continue
			}
			w.res.Reads++
			// The rest of this generation, read on later.
			for _, off := range []int{1, len(cur) / 2, len(cur) - 1} {
				if off <= 0 || off >= len(cur) || w.res.Bound {
					continue
				}
				rest, err := preadAll(w.f, int64(off))
				if err != nil || !bytes.Equal(rest, cur[off:]) {
					w.res.Mixed++
				}
			}
			w.res.Last = watchedLine(w.f.Name(), cur)
			if w.steady {
				continue
			}
			w.res.Changed = changedLikeItsSource(w.f.Name(), w.first, cur, *allocMB)
			if !w.res.Changed {
				pending++
			}
		}
		// Pacing of this poll, not synchronisation: the sources move on
		// their own (clocks, the 5 s load sampler, the kernel's counters).
		time.Sleep(50 * time.Millisecond)
	}
	runtime.KeepAlive(keep)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// readFrom0 reads the file from offset 0: in small preads (a tool's read
// loop), or for a bound view in one (a loop may cross a refresh there).
func (w *WatchFile) readFrom0(f *os.File) ([]byte, error) {
	if w.Bound {
		return readAtOnce(f)
	}
	return preadAll(f, 0)
}

// boundView says whether path is a bind of a corralfs bound view: its
// mount's root in /proc/self/mountinfo is below /.bound/.
func boundView(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == path && strings.HasPrefix(f[3], "/.bound/") {
			return true
		}
	}
	return false
}

// preadAll reads from off to EOF with small preads (several READs per
// generation, as a tool's read loop makes).
func preadAll(f *os.File, off int64) ([]byte, error) {
	var out []byte
	buf := make([]byte, 256)
	for {
		n, err := f.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if n == 0 || err != nil {
			if err != nil && err.Error() != "EOF" {
				return out, err
			}
			return out, nil
		}
	}
}

// touchMiB allocates n MiB and writes every page, so the container's
// cgroup is charged for all of it.
func touchMiB(n int) [][]byte {
	var keep [][]byte
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
	}
	return keep
}

var (
	memFreeRe  = regexp.MustCompile(`(?m)^MemFree:\s+(\d+) kB$`)
	pressureRe = regexp.MustCompile(`(?m)^some .* total=(\d+)$`)
)

// watchedLine is the line of a file that shows its change.
func watchedLine(path string, b []byte) string {
	s := string(b)
	switch {
	case strings.HasSuffix(path, "/meminfo"):
		return memFreeRe.FindString(s)
	case strings.Contains(path, "/pressure/"):
		return pressureRe.FindString(s)
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// changedLikeItsSource says whether cur, read on the same fd as first,
// shows what moved since: MemFree down by half the memory allocated, the
// container's CPU time up, the uptime up, the load averages off zero (the
// sampler's first 5 s step under busy threads), pressure's total up. Other
// files: any change.
func changedLikeItsSource(path string, first, cur []byte, allocMB int) bool {
	num := func(re *regexp.Regexp, b []byte) uint64 {
		m := re.FindSubmatch(b)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return v
	}
	switch {
	case strings.HasSuffix(path, "/meminfo"):
		a, b := num(memFreeRe, first), num(memFreeRe, cur)
		return b+uint64(allocMB)*1024/2 <= a
	case strings.HasSuffix(path, "/stat"):
		return cpuBusy(cur) > cpuBusy(first)
	case strings.HasSuffix(path, "/uptime"):
		a, _ := strconv.ParseFloat(strings.Fields(string(first) + " 0")[0], 64)
		b, _ := strconv.ParseFloat(strings.Fields(string(cur) + " 0")[0], 64)
		return b > a
	case strings.HasSuffix(path, "/loadavg"):
		return !bytes.Equal(bytes.Fields(cur)[0], bytes.Fields(first)[0])
	case strings.Contains(path, "/pressure/"):
		return num(pressureRe, cur) > num(pressureRe, first)
	}
	return !bytes.Equal(first, cur)
}

// cpuBusy is user+nice+system of stat's "cpu" line, in ticks.
func cpuBusy(stat []byte) uint64 {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	var sum uint64
	for i := 1; i <= 3 && i < len(f); i++ {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		sum += v
	}
	return sum
}

// Load is `viewreader load`: it starts busy threads and a paced memory
// allocation in this process, runs the command (output passed through)
// meanwhile, and exits with the command's status.
func Load(args []string) int {
	fl := flag.NewFlagSet("load", flag.ContinueOnError)
	burn := fl.Int("burn", 0, "busy threads")
	total := fl.Int("alloc-mb", 0, "MiB to allocate in all")
	step := fl.Int("step-mb", 10, "MiB per step")
	every := fl.Duration("every", 100*time.Millisecond, "time between steps")
	if err := fl.Parse(args); err != nil || fl.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: viewreader load [flags] -- COMMAND [ARG...]")
		return 2
	}
	startBurn(*burn)
	go func() {
		var keep [][][]byte
		for done := 0; done < *total; done += *step {
			keep = append(keep, touchMiB(*step))
			time.Sleep(*every) // the pace of the growth a watcher sees
		}
		for {
			time.Sleep(time.Hour)
			runtime.KeepAlive(keep)
		}
	}()
	cmd := exec.Command(fl.Arg(0), fl.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	return 0
}

// startBurn starts n threads that spin forever.
func startBurn(n int) {
	for i := 0; i < n; i++ {
		go func() {
			for x := uint64(0); ; x++ {
				_ = x * x
			}
		}()
	}
}
