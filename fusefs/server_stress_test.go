package fusefs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/testutil"
)

// The test binary doubles as the stress reader: TestMain runs readerMain
// instead of the tests when this variable names a job (JSON). A re-executed
// test binary is the only program the static test binary can count on in
// the VM, where the source tree and Go are absent.
const stressReaderEnv = "CORRALFS_STRESS_READER"

func TestMain(m *testing.M) {
	if job := os.Getenv(stressReaderEnv); job != "" {
		os.Exit(stressReaderMain(job))
	}
	os.Exit(m.Run())
}

// stressJob is what one stress reader (a container: the init of its own pid
// namespace, in its own cgroup) does: Threads locked OS threads, each doing
// Opens open + read-to-EOF + close cycles over Paths, checking every
// meminfo's MemTotal. A sibling thread sends SIGURG to the readers all
// along, so many FUSE requests are interrupted (the kernel then sends
// INTERRUPT to the daemon): the Go runtime's own preemption signal, which
// every Go reader gets anyway, only more often.
type stressJob struct {
	Paths      []string `json:"paths"`
	Threads    int      `json:"threads"`
	Opens      int      `json:"opens"` // per thread
	MemTotalKB uint64   `json:"mem_total_kb"`
}

type stressResult struct {
	Opens    int64  `json:"opens"`
	Errors   int64  `json:"errors"`
	FirstErr string `json:"first_err,omitempty"`
	Wrong    int64  `json:"wrong"`
	FirstBad string `json:"first_bad,omitempty"`
	Signals  int64  `json:"signals"`
}

// stressReaderMain waits for one line on stdin (the parent has moved it
// into its cgroup by then), runs the job and prints the result as JSON.
func stressReaderMain(jobJSON string) int {
	var job stressJob
	if err := json.Unmarshal([]byte(jobJSON), &job); err != nil {
		fmt.Fprintln(os.Stderr, "stress reader: bad job:", err)
		return 2
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "stress reader: no go signal:", err)
		return 2
	}
	runtime.GOMAXPROCS(job.Threads + 2)
	var res stressResult
	var mu sync.Mutex
	tids := make(chan int, job.Threads)
	var wg sync.WaitGroup
	for range job.Threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // a fixed thread the pesterer can aim at
			defer runtime.UnlockOSThread()
			tids <- unix.Gettid()
			r := stressReads(job)
			mu.Lock()
			res.Opens += r.Opens
			res.Errors += r.Errors
			res.Wrong += r.Wrong
			if res.FirstErr == "" {
				res.FirstErr = r.FirstErr
			}
			if res.FirstBad == "" {
				res.FirstBad = r.FirstBad
			}
			mu.Unlock()
		}()
	}
	threads := make([]int, 0, job.Threads)
	for range job.Threads {
		threads = append(threads, <-tids)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	pid := unix.Getpid()
pester:
	for {
		select {
		case <-done:
			break pester
		default:
		}
		for _, tid := range threads {
			if unix.Tgkill(pid, tid, unix.SIGURG) == nil {
				res.Signals++
			}
		}
		time.Sleep(50 * time.Microsecond)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func stressReads(job stressJob) stressResult {
	var r stressResult
	buf := make([]byte, 64<<10)
	fail := func(err error) {
		r.Errors++
		if r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
	for i := range job.Opens {
		path := job.Paths[i%len(job.Paths)]
		r.Opens++
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fail(fmt.Errorf("open %s: %w", path, err))
			continue
		}
		var content []byte
		var rerr error
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR { // a signal before any byte: try again, like every reader
				continue
			}
			if err != nil {
				rerr = fmt.Errorf("read %s at %d: %w", path, len(content), err)
				break
			}
			if n == 0 {
				break
			}
			content = append(content, buf[:n]...)
		}
		if err := unix.Close(fd); err != nil && rerr == nil {
			rerr = fmt.Errorf("close %s: %w", path, err)
		}
		if rerr != nil {
			fail(rerr)
			continue
		}
		if why := stressCheck(path, content, job.MemTotalKB); why != "" {
			r.Wrong++
			if r.FirstBad == "" {
				r.FirstBad = path + ": " + why
			}
		}
	}
	return r
}

// stressCheck says what is wrong with one answer ("" when nothing): every
// view must end with a newline, meminfo must carry this container's limit.
func stressCheck(path string, content []byte, memTotalKB uint64) string {
	if len(content) == 0 || content[len(content)-1] != '\n' {
		return fmt.Sprintf("%d bytes, not newline-terminated", len(content))
	}
	if !strings.HasSuffix(path, "meminfo") {
		return ""
	}
	line, _, _ := bytes.Cut(content, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "MemTotal:" || f[1] != strconv.FormatUint(memTotalKB, 10) {
		return fmt.Sprintf("first line %q, want MemTotal: %d kB", line, memTotalKB)
	}
	return ""
}

// Many containers opening views at once, with their FUSE requests
// interrupted by signals all along, must never see an error or another
// container's numbers. Bounded by a number of opens, not by time. (The
// bench once saw 5-10% of opens fail with EIO in such a run; this is the
// test that catches any such failure, whatever its cause.)
func TestConcurrentOpensFromManyPidNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	fs, mp := mountTestFS(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const containers, threads = 6, 2
	opens := testutil.Repeat(500, 100)
	paths := []string{filepath.Join(mp, "proc/meminfo"), filepath.Join(mp, "proc/stat"),
		filepath.Join(mp, "proc/meminfo"), filepath.Join(mp, "proc/cpuinfo")}
	type reader struct {
		cmd   *exec.Cmd
		start io.WriteCloser // its stdin: one line starts it
		out   bytes.Buffer
		limit uint64
	}
	readers := make([]*reader, containers)
	for i := range readers {
		limit := uint64(200+i) << 20
		cg := testutil.NewCgroup(t, fmt.Sprintf("fusefs-stress-%d", i), testutil.CgroupLimits{MemoryBytes: int64(limit)})
		job, _ := json.Marshal(stressJob{Paths: paths, Threads: threads, Opens: opens, MemTotalKB: limit >> 10})
		r := &reader{limit: limit}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), stressReaderEnv+"="+string(job))
		cmd.Stdout = &r.out
		cmd.Stderr = &r.out
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
		if cg.Mode == testutil.CgroupModeV2 {
			fd, err := syscall.Open(cg.Dir(""), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.cmd, r.start = cmd, stdin
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if cg.Mode != testutil.CgroupModeV2 {
			if err := cg.AddProc(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
		}
		readers[i] = r
	}
	for _, r := range readers {
		if _, err := io.WriteString(r.start, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var signals atomic.Int64
	for i, r := range readers {
		err := r.cmd.Wait()
		var res stressResult
		if jerr := json.Unmarshal(r.out.Bytes(), &res); err != nil || jerr != nil {
			t.Fatalf("reader %d: %v / %v; output: %s", i, err, jerr, r.out.Bytes())
		}
		signals.Add(res.Signals)
		if res.Opens != int64(threads*opens) || res.Errors != 0 || res.Wrong != 0 {
			t.Errorf("container %d (MemTotal %d kB): %d opens, %d failed (first: %s), %d wrong (first: %s)",
				i, r.limit>>10, res.Opens, res.Errors, res.FirstErr, res.Wrong, res.FirstBad)
		}
	}
	if n := fs.Stats.Fallbacks.Load(); n != 0 {
		t.Errorf("%d reads fell back to the host's file", n)
	}
	t.Logf("%d opens from %d pid namespaces, %d signals to the reading threads",
		containers*threads*opens, containers, signals.Load())
}
