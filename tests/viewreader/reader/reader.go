// Package reader is viewreader's logic, shared with the test binary (which
// runs it when started under the name "viewreader").
//
//	viewreader -for 10s -loops 2 -dir /proc -mem-kb N -cpus C
//	viewreader watch ...   (watch.go: same-fd re-reads must be live)
//	viewreader load ...    (watch.go: a command run under CPU and memory load)
//
// Each loop opens, reads to EOF and closes meminfo, stat, cpuinfo and
// loadavg in turn until the time is up, and checks each answer is a
// well-formed view of THIS container: MemTotal is N kB, cpuinfo and stat
// list C CPUs. It prints one JSON Report. -count N stops each loop after N
// reads (the flood tests time a container's first read with -count 1).
// -hold N opens meminfo N times and keeps the files open (hold.go).
package reader

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is what viewreader prints.
type Report struct {
	Reads    int      `json:"reads"`
	Failed   int      `json:"failed"`
	Wrong    int      `json:"wrong"`
	MaxMs    float64  `json:"max_ms"`
	Slowest  string   `json:"slowest"`
	Examples []string `json:"examples"` // the first failures and wrong answers
}

var files = []string{"meminfo", "stat", "cpuinfo", "loadavg"}

func Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "watch":
			return Watch(args[1:])
		case "load":
			return Load(args[1:])
		}
	}
	fl := flag.NewFlagSet("viewreader", flag.ContinueOnError)
	dur := fl.Duration("for", 10*time.Second, "how long to read")
	loops := fl.Int("loops", 2, "concurrent reader loops")
	dir := fl.String("dir", "/proc", "where meminfo, stat, cpuinfo and loadavg are")
	memKB := fl.Uint64("mem-kb", 0, "MemTotal the container must see")
	cpus := fl.Int("cpus", 0, "CPUs the container must see")
	count := fl.Int("count", 0, "reads per loop (0: until -for is up)")
	hold := fl.Int("hold", 0, "open meminfo this many times, keep the files open for -for, report (hold.go)")
	until := fl.String("until", "", "with -hold: let go once this file exists")
	keepOpen := fl.Int("keep-open", 0, "of the loops, how many keep the files open and re-read them from offset 0 (as top does)")
	bound := fl.Bool("bound", false, "the files are bound views (page cache): each read(2) is one generation, a loop of several may cross a refresh, so read whole and check content only")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *hold > 0 {
		return holdOpen(filepath.Join(*dir, "meminfo"), *hold, *dur, *until)
	}
	var (
		mu  sync.Mutex
		rep Report
		wg  sync.WaitGroup
	)
	note := func(what string) {
		if len(rep.Examples) < 10 {
			rep.Examples = append(rep.Examples, what)
		}
	}
	deadline := time.Now().Add(*dur)
	for i := 0; i < *loops; i++ {
		read := readFile
		switch {
		case i < *keepOpen && *bound:
			read = newReopener().readWhole
		case i < *keepOpen:
			read = newReopener().read
		case *bound:
			read = readWhole
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline) && (*count == 0 || n < *count); n++ {
				name := files[n%len(files)]
				start := time.Now()
				b, err := read(filepath.Join(*dir, name))
				took := time.Since(start)
				var bad error
				if err == nil {
					bad = check(name, b, *memKB, *cpus)
				}
				mu.Lock()
				rep.Reads++
				if ms := float64(took.Microseconds()) / 1000; ms > rep.MaxMs {
					rep.MaxMs, rep.Slowest = ms, fmt.Sprintf("%s at %s", name, start.Format("15:04:05.000"))
				}
				switch {
				case err != nil:
					rep.Failed++
					note(fmt.Sprintf("%s: %v", name, err))
				case bad != nil:
					rep.Wrong++
					note(fmt.Sprintf("%s: %v", name, bad))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// readFile is open, read to EOF (small reads, as tools do), close.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// reopener keeps each file open (opened at its first read) and reads it
// from offset 0 each time, in small preads (several READs, as a tool's
// read loop), then reads the second half again: a READ at offset > 0 must
// return the rest of the generation the last read from 0 produced, even
// across a worker's death or an upgrade.
type reopener struct{ open map[string]*os.File }

func newReopener() *reopener { return &reopener{open: map[string]*os.File{}} }

// file is path's descriptor, opened at its first read.
func (r *reopener) file(path string) (*os.File, error) {
	if f := r.open[path]; f != nil {
		return f, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r.open[path] = f
	return f, nil
}

func (r *reopener) read(path string) ([]byte, error) {
	f, err := r.file(path)
	if err != nil {
		return nil, err
	}
	b, err := preadAll(f, 0)
	if err != nil || len(b) < 2 {
		return b, err
	}
	rest, err := preadAll(f, int64(len(b)/2))
	if err != nil {
		return nil, err
	}
	if want := b[len(b)/2:]; !bytes.Equal(rest, want) {
		d := 0
		for d < len(rest) && d < len(want) && rest[d] == want[d] {
			d++
		}
		return nil, fmt.Errorf("mixed generations: pread(%d) gave %d bytes, the generation read from 0 (%d bytes) has %d there; from byte %d: %.60q, want %.60q",
			len(b)/2, len(rest), len(b), len(want), len(b)/2+d, rest[d:], want[d:])
	}
	return b, nil
}

// readWhole is open, one read(2) of the whole file, close: the unit a
// bound view keeps to one generation (docs/design.md decision 51).
func readWhole(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := readAtOnce(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// readWhole on a kept-open file: one pread(2) from offset 0.
func (r *reopener) readWhole(path string) ([]byte, error) {
	f, err := r.file(path)
	if err != nil {
		return nil, err
	}
	return readAtOnce(f)
}

func readAtOnce(f *os.File) ([]byte, error) {
	buf := make([]byte, 256<<10)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

var (
	memTotalRe = regexp.MustCompile(`(?m)^MemTotal:\s+(\d+) kB$`)
	loadavgRe  = regexp.MustCompile(`^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n$`)
	statCPURe  = regexp.MustCompile(`(?m)^cpu\d+ `)
)

func check(name string, b []byte, memKB uint64, cpus int) error {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return fmt.Errorf("no final newline: %q", s)
	}
	switch name {
	case "meminfo":
		m := memTotalRe.FindStringSubmatch(s)
		if m == nil {
			return fmt.Errorf("no MemTotal line")
		}
		if v, _ := strconv.ParseUint(m[1], 10, 64); v != memKB {
			return fmt.Errorf("MemTotal %d kB, want %d", v, memKB)
		}
	case "cpuinfo":
		if n := strings.Count(s, "\nprocessor\t") + boolInt(strings.HasPrefix(s, "processor\t")); n != cpus {
			return fmt.Errorf("%d processors, want %d", n, cpus)
		}
	case "stat":
		if !strings.HasPrefix(s, "cpu ") || !strings.Contains(s, "\nbtime ") {
			return fmt.Errorf("not a stat file: %.60q", s)
		}
		if n := len(statCPURe.FindAllString(s, -1)); n != cpus {
			return fmt.Errorf("%d cpuN lines, want %d", n, cpus)
		}
	case "loadavg":
		if !loadavgRe.MatchString(s) {
			return fmt.Errorf("bad loadavg %q", s)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
