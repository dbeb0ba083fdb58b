package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
)

// forwardSignal passes a signal `corral run` received on to the
// container's init. The kernel drops a signal to a namespace's PID 1 that
// has no handler for it, so ^C or a SIGTERM to `corral run -- sleep 100`
// would do nothing at all: when the init neither catches nor ignores a
// SIGINT, SIGTERM or SIGHUP, the user's wish to end it is carried out
// with SIGKILL instead (and said once on stderr). A program that handles
// the signal gets it as sent.
func forwardSignal(c *runtime.Container, sig unix.Signal) {
	switch sig {
	case unix.SIGINT, unix.SIGTERM, unix.SIGHUP:
		if handled, err := initHandles(c.Pid(), sig); err == nil && !handled {
			fmt.Fprintf(os.Stderr, "corral: the container's PID 1 has no handler for %s (the kernel would drop it): killing it (use --init to pass signals on)\n", unix.SignalName(sig))
			c.Signal(unix.SIGKILL, true)
			return
		}
	}
	c.Signal(sig, false)
}

// initHandles says whether pid catches or ignores sig, from the SigCgt
// and SigIgn masks of /proc/PID/status.
func initHandles(pid int, sig unix.Signal) (bool, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false, err
	}
	defer f.Close()
	var mask uint64
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "SigCgt" && k != "SigIgn") {
			continue
		}
		m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, err
		}
		mask |= m
		found++
	}
	if found != 2 {
		return false, fmt.Errorf("/proc/%d/status: no signal masks", pid)
	}
	return mask&(1<<(uint(sig)-1)) != 0, nil
}
