package tests

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestMain watches the whole binary for hangs the per-stretch watchHang
// does not cover: shortly before -test.timeout ends it (its dump holds
// only the test's goroutines), every corralfs daemon still running gets
// hangReport, printed with the daemon's own output.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if limit, err := time.ParseDuration(f.Value.String()); err == nil && limit > 0 {
			time.AfterFunc(limit-min(limit/8, time.Minute), reportLiveDaemons)
		}
	}
	os.Exit(m.Run())
}

// liveDaemons are the daemons started and not yet stopped, for
// reportLiveDaemons.
var liveDaemons = struct {
	sync.Mutex
	m map[*corralfsDaemon]bool
}{m: map[*corralfsDaemon]bool{}}

func trackDaemon(d *corralfsDaemon, live bool) {
	liveDaemons.Lock()
	defer liveDaemons.Unlock()
	if live {
		liveDaemons.m[d] = true
	} else {
		delete(liveDaemons.m, d)
	}
}

func reportLiveDaemons() {
	liveDaemons.Lock()
	var ds []*corralfsDaemon
	for d := range liveDaemons.m {
		ds = append(ds, d)
	}
	liveDaemons.Unlock()
	fmt.Fprintf(os.Stderr, "\n=== the test binary is about to time out; %d corralfs daemons still run\n", len(ds))
	for _, d := range ds {
		fmt.Fprintf(os.Stderr, "=== daemon on %s (test %s)\n", d.mp, d.t.Name())
		d.hangReport(os.Stderr)
		fmt.Fprintf(os.Stderr, "=== its output\n%s\n", d.out.String())
	}
}

// watchHang guards a stretch of a test that reads through the mount: if
// it has not called the returned stop within limit, the daemon is taken
// to be hung and the test gets what explains a hang, gathered before
// anything is killed: the FUSE connection's count of waiting requests,
// the kernel stacks of every daemon thread and of this process's threads
// waiting in FUSE, the worker's goroutines (over the control socket), and
// the Go stacks of the worker and the supervisor (SIGQUIT, which also
// ends them, so that the stuck readers fail instead of waiting forever).
// Without it a hang shows only as the test binary's timeout, whose dump
// holds the test's goroutines and nothing of the daemon's.
func (d *corralfsDaemon) watchHang(limit time.Duration, what string) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-time.After(limit):
		}
		var b strings.Builder
		d.hangReport(&b)
		d.t.Errorf("%s: not finished after %v; the daemon looks hung:\n%s", what, limit, b.String())
	}()
	return func() { close(done) }
}

// hangReport gathers the evidence watchHang describes, then ends the
// daemon with SIGQUIT (its Go stacks land in d.out, which the cleanup
// logs on failure).
func (d *corralfsDaemon) hangReport(b io.Writer) {
	if conn := testutil.FuseConnOf(d.mp); conn != "" {
		w, err := testutil.FuseConnFile(d.mp, "waiting")
		fmt.Fprintf(b, "fuse connection %s: requests waiting: %s (%v)\n", conn, w, err)
	}
	pids := append([]int{d.cmd.Process.Pid}, childrenOf(d.cmd.Process.Pid)...)
	for _, pid := range pids {
		fmt.Fprintf(b, "== kernel stacks of daemon process %d\n%s", pid, kernelStacks(pid, false))
	}
	fmt.Fprintf(b, "== kernel stacks of this test's threads waiting in FUSE\n%s", kernelStacks(os.Getpid(), true))
	client := unixClient(d.ctl)
	client.Timeout = 3 * time.Second
	if resp, err := client.Get("http://corralfs/debug/pprof/goroutine?debug=2"); err != nil {
		fmt.Fprintf(b, "== worker goroutines: the control socket did not answer: %v\n", err)
	} else {
		g, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(b, "== worker goroutines\n%s\n", g)
	}
	for i := len(pids) - 1; i >= 0; i-- { // the workers first: the supervisor would replace them
		syscall.Kill(pids[i], syscall.SIGQUIT)
	}
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
	}
}

// childrenOf lists pid's child processes.
func childrenOf(pid int) []int {
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// kernelStacks prints each thread of pid with its wait channel and kernel
// stack; onlyFUSE keeps the threads whose stack passes through fuse.
func kernelStacks(pid int, onlyFUSE bool) string {
	var b strings.Builder
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, t := range tasks {
		stack, _ := os.ReadFile(filepath.Join(t, "stack"))
		if onlyFUSE && !strings.Contains(string(stack), "fuse") {
			continue
		}
		wchan, _ := os.ReadFile(filepath.Join(t, "wchan"))
		comm, _ := os.ReadFile(filepath.Join(t, "comm"))
		fmt.Fprintf(&b, "-- %s %s wchan=%s\n%s", filepath.Base(t), strings.TrimSpace(string(comm)), wchan, stack)
	}
	return b.String()
}
