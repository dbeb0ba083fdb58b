package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// cleanups is the LIFO list of undo steps of everything the bench made
// (processes, mounts, cgroups, directories). It runs once: at the end of
// main, on an error, or on SIGINT/SIGTERM; a step registered after it ran
// (a section still finishing while a signal tears down) runs at once.
type cleanups struct {
	mu    sync.Mutex
	steps []func()
	done  bool
}

var undo cleanups

// interrupted is set when a signal tears the bench down: a half-run must
// not overwrite the report of a whole one.
var interrupted atomic.Bool

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		f()
		return
	}
	c.steps = append(c.steps, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	for i := len(c.steps) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(os.Stderr, "bench: cleanup step failed: %v\n", r)
				}
			}()
			c.steps[i]()
		}()
	}
	c.steps = nil
}

// parkIfInterrupted stops the calling goroutine for good once a signal is
// being handled: nothing new may start while the teardown runs (it ends
// the process when done).
func parkIfInterrupted() {
	if interrupted.Load() {
		select {}
	}
}

// onSignal tears everything down when the user interrupts the bench.
func onSignal() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "\nbench: %v: cleaning up (cgroups, mounts, processes)\n", s)
		undo.run()
		os.Exit(130)
	}()
}

// errFatal is what the testing.TB shim panics with on Fatal, so that
// helpers from tests/testutil (written for tests) can be used here: the
// panic is turned back into an error by catch.
type errFatal struct{ msg string }

func (e errFatal) Error() string { return e.msg }

// tb lets the bench use tests/testutil's helpers (real cgroups under
// /corral-test, the busybox rootfs) outside `go test`: cleanups go to the
// bench's own undo list, temporary directories below the work directory,
// and Fatal/Skip become errors returned by catch.
type tb struct {
	testing.TB // never called: only the methods below are used by testutil
	tmp        string
	n          int
	failed     bool
}

func newTB(tmp string) *tb { return &tb{tmp: tmp} }

func (t *tb) Helper()                    {}
func (t *tb) Name() string               { return "bench" }
func (t *tb) Cleanup(f func())           { undo.add(f) }
func (t *tb) Failed() bool               { return t.failed }
func (t *tb) Log(args ...any)            { fmt.Fprintln(os.Stderr, args...) }
func (t *tb) Logf(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (t *tb) Error(args ...any)          { t.failed = true; t.Log(args...) }
func (t *tb) Errorf(f string, a ...any)  { t.failed = true; t.Logf(f, a...) }
func (t *tb) Fatal(args ...any)          { t.failed = true; panic(errFatal{fmt.Sprint(args...)}) }
func (t *tb) Fatalf(f string, a ...any)  { t.failed = true; panic(errFatal{fmt.Sprintf(f, a...)}) }
func (t *tb) Skip(args ...any)           { panic(errFatal{"requirement missing: " + fmt.Sprint(args...)}) }
func (t *tb) Skipf(f string, a ...any) {
	panic(errFatal{"requirement missing: " + fmt.Sprintf(f, a...)})
}
func (t *tb) SkipNow() { panic(errFatal{"skipped"}) }
func (t *tb) FailNow() { panic(errFatal{"failed"}) }

func (t *tb) TempDir() string {
	t.n++
	dir := filepath.Join(t.tmp, fmt.Sprintf("tmp%03d", t.n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	undo.add(func() { os.RemoveAll(dir) })
	return dir
}

// catch runs f and returns the error of a Fatal inside it.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			var ef errFatal
			if e, ok := r.(errFatal); ok {
				ef = e
				err = ef
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}
