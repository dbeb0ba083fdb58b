// Package probe is sysinfoprobe (see tests/sysinfoprobe): a package so that
// the integration tests' own static binary can be the probe as well (the
// cgroup v2 VM has test binaries, not the source tree).
package probe

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/seccomp"
)

// Result is one sysinfo answer plus what the container's files said.
type Result struct {
	Errno      int       `json:"errno"`
	Uptime     int64     `json:"uptime"`
	Loads      [3]uint64 `json:"loads"`
	LoadsText  string    `json:"loads_text"` // loads printed like /proc/loadavg
	Totalram   uint64    `json:"totalram"`
	Freeram    uint64    `json:"freeram"`
	Sharedram  uint64    `json:"sharedram"`
	Bufferram  uint64    `json:"bufferram"`
	Totalswap  uint64    `json:"totalswap"`
	Freeswap   uint64    `json:"freeswap"`
	Procs      uint16    `json:"procs"`
	MemUnit    uint32    `json:"mem_unit"`
	TotalBytes uint64    `json:"total_bytes"` // totalram * mem_unit
	Micros     int64     `json:"micros"`      // time the call took

	ProcUptime    string `json:"proc_uptime,omitempty"`
	LoadavgBefore string `json:"loadavg_before,omitempty"`
	LoadavgAfter  string `json:"loadavg_after,omitempty"`
	ThreadsBefore int    `json:"threads_before,omitempty"`
	ThreadsAfter  int    `json:"threads_after,omitempty"`
	InitStartTick uint64 `json:"init_start_ticks,omitempty"` // /proc/1/stat starttime
}

// Summary is the result of the -n mode.
type Summary struct {
	Calls   int     `json:"calls"`
	Bad     int     `json:"bad"`
	Errors  int     `json:"errors"`
	First   Result  `json:"first"`
	FirstBd *Result `json:"first_bad,omitempty"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"calls_per_second"`
}

func call() Result {
	var si unix.Sysinfo_t
	start := time.Now()
	_, _, e := unix.Syscall(unix.SYS_SYSINFO, uintptr(unsafe.Pointer(&si)), 0, 0)
	r := Result{Errno: int(e), Micros: time.Since(start).Microseconds()}
	if e != 0 {
		return r
	}
	r.Uptime, r.Loads = si.Uptime, si.Loads
	r.Totalram, r.Freeram, r.Sharedram, r.Bufferram = si.Totalram, si.Freeram, si.Sharedram, si.Bufferram
	r.Totalswap, r.Freeswap, r.Procs, r.MemUnit = si.Totalswap, si.Freeswap, si.Procs, si.Unit
	r.TotalBytes = si.Totalram * uint64(si.Unit)
	var parts []string
	for _, l := range si.Loads {
		// busybox/kernel style: LOAD_INT . LOAD_FRAC (truncating)
		parts = append(parts, fmt.Sprintf("%d.%02d", l>>16, ((l&0xffff)*100)>>16))
	}
	r.LoadsText = strings.Join(parts, " ")
	return r
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func threads() int {
	for _, line := range strings.Split(readTrim("/proc/self/status"), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "Threads: %d", &n); err == nil {
			return n
		}
	}
	return 0
}

func initStart() uint64 {
	s := readTrim("/proc/1/stat")
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	var v uint64
	if len(f) > 19 {
		fmt.Sscan(f[19], &v) // field 22 overall: starttime
	}
	return v
}

func one(views string) Result {
	proc := "/proc"
	if views != "" {
		proc = views + "/proc"
	}
	before, tb := readTrim(proc+"/loadavg"), threads()
	r := call()
	r.LoadavgBefore, r.ThreadsBefore = before, tb
	r.ThreadsAfter, r.LoadavgAfter = threads(), readTrim(proc+"/loadavg")
	r.ProcUptime = readTrim(proc + "/uptime")
	r.InitStartTick = initStart()
	return r
}

func many(n, nthreads int, expect uint64) Summary {
	var mu sync.Mutex
	s := Summary{First: call()}
	start := time.Now()
	var wg sync.WaitGroup
	for t := 0; t < nthreads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			bad, errs := 0, 0
			var firstBad *Result
			for i := 0; i < n; i++ {
				r := call()
				switch {
				case r.Errno != 0:
					errs++
				case r.TotalBytes != expect || r.Freeram > r.Totalram || r.MemUnit == 0:
					bad++
				default:
					continue
				}
				if firstBad == nil {
					firstBad = &r
				}
			}
			mu.Lock()
			s.Bad += bad
			s.Errors += errs
			if s.FirstBd == nil {
				s.FirstBd = firstBad
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.Calls = n * nthreads
	s.Seconds = time.Since(start).Seconds()
	s.PerSec = float64(s.Calls) / s.Seconds
	return s
}

// wrap is the minimal runtime: filter, listener to the agent, exec.
func wrap(socket, waitFile string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("-wrap: no command")
	}
	runtime.LockOSThread() // the filter is installed on this thread, which execs
	fd, err := seccomp.Install(seccomp.SysinfoOnly(socket))
	if err != nil {
		return err
	}
	st := specs.State{Version: specs.Version, ID: fmt.Sprintf("sysinfoprobe-%d", os.Getpid()), Status: specs.StateCreated, Pid: os.Getpid(), Bundle: "/"}
	if err := seccomp.SendToListener(socket, st, "", fd); err != nil {
		return err
	}
	unix.Close(fd)
	for waitFile != "" {
		if _, err := os.Stat(waitFile); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return unix.Exec(argv[0], argv, os.Environ())
}

// Main runs the probe with the command line args (without the program
// name) and returns the exit status.
func Main(args []string) int {
	flag := flag.NewFlagSet("sysinfoprobe", flag.ContinueOnError)
	views := flag.String("views", "", "read uptime and loadavg from DIR/proc instead of /proc")
	n := flag.Int("n", 0, "calls per thread (summary mode)")
	nthreads := flag.Int("threads", 1, "threads in summary mode")
	expect := flag.Uint64("expect-total", 0, "totalram*mem_unit every answer must have (summary mode)")
	serve := flag.Bool("serve", false, "one call per line of stdin")
	wrapSock := flag.String("wrap", "", "install the sysinfo filter, send its listener to this socket, exec the arguments")
	waitFile := flag.String("wait-file", "", "with -wrap: exec only once this file exists")
	if err := flag.Parse(args); err != nil {
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	switch {
	case *wrapSock != "":
		if err := wrap(*wrapSock, *waitFile, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "sysinfoprobe:", err)
			return 125
		}
	case *serve:
		runtime.LockOSThread()
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			out.Encode(one(*views))
		}
	case *n > 0:
		out.Encode(many(*n, *nthreads, *expect))
	default:
		out.Encode(one(*views))
	}
	return 0
}
