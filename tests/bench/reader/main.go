// Command reader is the bench's in-container load generator: the driver
// starts it as the init of a new pid namespace inside a test cgroup (a
// container, as far as corralfs and LXCFS can tell), then sends it one
// proto.Job per line on stdin and reads one proto.Result per line from its
// stdout. It is a static binary so it runs in any mount namespace.
//
// It reads with raw open/read/close system calls (no os.File, whose
// bookkeeping would add system calls of its own) on locked OS threads,
// one per concurrent reader, so what is measured is the file system.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var job proto.Job
		if err := json.Unmarshal(in.Bytes(), &job); err != nil {
			fmt.Fprintf(os.Stderr, "reader: bad job: %v\n", err)
			os.Exit(2)
		}
		if err := out.Encode(run(job)); err != nil {
			os.Exit(1) // the driver went away
		}
	}
}

// run does one job on job.Threads locked threads and merges their results.
func run(job proto.Job) proto.Result {
	threads := max(job.Threads, 1)
	// One P per thread: a reader blocked in the kernel must never wait
	// for the Go scheduler to hand it a P back.
	runtime.GOMAXPROCS(max(threads, runtime.NumCPU()))
	if job.StartUnixNs > 0 {
		time.Sleep(time.Until(time.Unix(0, job.StartUnixNs)))
	}
	var budget atomic.Int64
	budget.Store(job.MaxOps)
	deadline := time.Now().Add(time.Duration(job.DurationMs) * time.Millisecond)
	if job.DurationMs <= 0 {
		deadline = time.Now().Add(24 * time.Hour)
	}
	results := make([]proto.Result, threads)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			w := worker{job: job, deadline: deadline, budget: &budget, limited: job.MaxOps > 0, res: &results[i]}
			switch {
			case job.Syscall != "":
				w.syscalls()
			case job.Pread:
				w.preads(i)
			default:
				w.reads(i)
			}
		}()
	}
	wg.Wait()
	var total proto.Result
	for _, r := range results {
		total.Ops += r.Ops
		total.Errors += r.Errors
		total.Checked += r.Checked
		total.Wrong += r.Wrong
		total.Bytes += r.Bytes
		total.Hist.Merge(r.Hist)
		if total.FirstErr == "" {
			total.FirstErr = r.FirstErr
		}
		if total.FirstBad == "" {
			total.FirstBad = r.FirstBad
		}
	}
	total.ElapsedNs = time.Since(start).Nanoseconds()
	return total
}

type worker struct {
	job      proto.Job
	deadline time.Time
	budget   *atomic.Int64
	limited  bool
	res      *proto.Result
}

// take reserves n operations from the job's budget; false when spent.
func (w *worker) take(n int64) bool {
	return !w.limited || w.budget.Add(-n) >= 0
}

// reads opens, reads to EOF and closes the job's paths in turn, timing
// each open+read+close.
func (w *worker) reads(first int) {
	buf := make([]byte, 64<<10)
	content := make([]byte, 0, 64<<10)
	checked := map[string]bool{}
	paths := w.job.Paths
	for n := first; ; n++ {
		// The clock is read every operation anyway; checking the
		// deadline costs nothing extra.
		t0 := time.Now()
		if !t0.Before(w.deadline) || !w.take(1) {
			return
		}
		path := paths[n%len(paths)]
		check := w.job.Check != nil && (w.job.CheckAll || !checked[path])
		content = content[:0]
		nbytes, err := readFile(path, buf, &content, check)
		if !w.count(t0, nbytes, err) {
			continue
		}
		if check {
			checked[path] = true
			w.res.Checked++
			if why := verify(path, content, w.job.Check); why != "" {
				w.res.Wrong++
				if w.res.FirstBad == "" {
					w.res.FirstBad = path + ": " + why
				}
			}
		}
	}
}

// preads opens the thread's path once and reads it from offset 0 to EOF
// again and again on that descriptor, timing each read from the start.
func (w *worker) preads(first int) {
	buf := make([]byte, 64<<10)
	path := w.job.Paths[first%len(w.job.Paths)]
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.res.Errors++
		w.res.FirstErr = err.Error()
		return
	}
	defer unix.Close(fd)
	checked := false
	for {
		t0 := time.Now()
		if !t0.Before(w.deadline) || !w.take(1) {
			return
		}
		total, failed := 0, error(nil)
		for {
			n, err := unix.Pread(fd, buf[total:], int64(total))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				failed = fmt.Errorf("pread %s: %w", path, err)
				break
			}
			if n == 0 {
				break
			}
			total += n
		}
		if !w.count(t0, total, failed) {
			continue
		}
		if w.job.Check != nil && (w.job.CheckAll || !checked) {
			checked = true
			w.res.Checked++
			if why := verify(path, buf[:total], w.job.Check); why != "" {
				w.res.Wrong++
				if w.res.FirstBad == "" {
					w.res.FirstBad = path + ": " + why
				}
			}
		}
	}
}

// count records one operation started at t0 that read n bytes; false
// when it failed.
func (w *worker) count(t0 time.Time, n int, err error) bool {
	w.res.Hist.Add(time.Since(t0).Nanoseconds())
	w.res.Ops++
	w.res.Bytes += int64(n)
	if err != nil {
		w.res.Errors++
		if w.res.FirstErr == "" {
			w.res.FirstErr = err.Error()
		}
		return false
	}
	return true
}

// readFile is one open + read to EOF + close; keep collects the bytes
// (only when they will be checked: copying is not free).
func readFile(path string, buf []byte, keep *[]byte, collect bool) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	total := 0
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return total, fmt.Errorf("read %s: %w", path, err)
		}
		if n == 0 {
			break
		}
		total += n
		if collect {
			*keep = append(*keep, buf[:n]...)
		}
	}
	if err := unix.Close(fd); err != nil {
		return total, fmt.Errorf("close %s: %w", path, err)
	}
	return total, nil
}

// verify says what is wrong with a view's content, "" when nothing.
func verify(path string, content []byte, c *proto.Check) string {
	switch {
	case bytes.HasSuffix([]byte(path), []byte("meminfo")) && c.MemTotalKB > 0:
		got, ok := field(content, "MemTotal:")
		if !ok {
			return "no MemTotal line"
		}
		if got != c.MemTotalKB {
			return fmt.Sprintf("MemTotal %d kB, want %d kB", got, c.MemTotalKB)
		}
	case bytes.HasSuffix([]byte(path), []byte("stat")) && c.CPUs > 0:
		if n := cpuLines(content); n != c.CPUs {
			return fmt.Sprintf("%d cpuN lines, want %d", n, c.CPUs)
		}
	}
	return ""
}

// field returns the number after name at the start of a line.
func field(content []byte, name string) (uint64, bool) {
	for line := range bytes.SplitSeq(content, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			v, err := strconv.ParseUint(string(f[0]), 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// cpuLines counts the per-CPU "cpuN ..." lines of a stat file.
func cpuLines(content []byte) int {
	n := 0
	for line := range bytes.SplitSeq(content, []byte("\n")) {
		if len(line) > 3 && bytes.HasPrefix(line, []byte("cpu")) && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

// syscalls calls sysinfo(2) or getpid(2) in batches, timing each batch
// (timing single calls of ~100 ns would measure the clock instead).
func (w *worker) syscalls() {
	const batch = 256
	var info unix.Sysinfo_t
	for {
		t0 := time.Now()
		if !t0.Before(w.deadline) || !w.take(batch) {
			return
		}
		for range batch {
			var err error
			switch w.job.Syscall {
			case "sysinfo":
				err = unix.Sysinfo(&info)
			case "getpid":
				unix.Getpid()
			default:
				err = fmt.Errorf("unknown syscall %q", w.job.Syscall)
			}
			if err != nil {
				w.res.Errors++
				if w.res.FirstErr == "" {
					w.res.FirstErr = err.Error()
				}
			}
		}
		w.res.Ops += batch
		w.res.Hist.Add(time.Since(t0).Nanoseconds() / batch)
		if w.job.Syscall == "sysinfo" && w.job.Check != nil && w.res.Checked == 0 {
			// The answer must be the container's: proof that the
			// agent, not a fallback to the kernel, was measured.
			w.res.Checked++
			got := uint64(info.Totalram) * uint64(max(info.Unit, 1)) / 1024
			if want := w.job.Check.MemTotalKB; want > 0 && got != want {
				w.res.Wrong++
				w.res.FirstBad = fmt.Sprintf("sysinfo totalram %d kB, want %d kB", got, want)
			}
		}
	}
}
