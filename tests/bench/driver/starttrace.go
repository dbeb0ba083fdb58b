package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// A per-phase trace of `corral run --rm` (issue 15: where does a start
// spend its time beyond crun's?). strace, filtered in the kernel
// (--seccomp-bpf) to the few system calls that mark phases, timestamps
// them: the CLI's execve, the init's execve, its pivot_root, the
// command's execve and exit, the CLI's exit. strace slows what it traces
// (each marked call stops the tracee), so the phases add up to more than
// an untraced run; their shares are what tell where the time goes.

// TracePhase is one phase's median over the traced runs.
type TracePhase struct {
	Name     string  `json:"name"`
	MedianMs float64 `json:"median_ms"`
}

// startPhases names the phases between consecutive marks.
var startPhases = []string{
	"CLI: Go start, spec, state, cgroup, clone, until the init's execve",
	"init: Go start, rootfs mounts, until pivot_root",
	"init: after pivot_root (masks, seccomp, exec fifo) until the command's execve",
	"the command (true) until its exit",
	"CLI: wait, --rm delete, exit",
}

const traceRuns = 7

// traceStart traces argv (which must differ per run: argv(i)) traceRuns
// times and returns the median of each phase.
func (e *env) traceStart(argv func(int) []string) ([]TracePhase, error) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return nil, err
	}
	per := make([][]float64, len(startPhases))
	for i := range traceRuns {
		out := filepath.Join(e.work, fmt.Sprintf("start-trace-%d", i))
		a := argv(1000 + i)
		cmd := exec.Command(strace, append([]string{"-f", "-ttt", "-q", "--seccomp-bpf", "-e", "trace=execve,pivot_root,exit_group", "-o", out}, a...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("strace %s: %v: %s", strings.Join(a, " "), err, b)
		}
		marks, err := startMarks(out)
		if err != nil {
			return nil, err
		}
		for p := range startPhases {
			per[p] = append(per[p], (marks[p+1]-marks[p])*1000)
		}
	}
	phases := make([]TracePhase, len(startPhases))
	for p, name := range startPhases {
		phases[p] = TracePhase{Name: name, MedianMs: quantile(per[p], 0.5)}
	}
	return phases, nil
}

// startMarks reads an strace -f -ttt log: the times of the CLI's execve,
// the init's execve (another pid, argv ["corral-init"]: corral-init beside
// the CLI, or the CLI's own binary), pivot_root, the command's execve, its
// exit_group, and the CLI's exit.
func startMarks(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	marks := make([]float64, 0, 6)
	cliPid, initPid := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		pid, call := fields[0], fields[2]
		line := sc.Text()
		t, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue
		}
		switch n := len(marks); {
		case n == 0 && strings.HasPrefix(call, "execve("):
			cliPid = pid
			marks = append(marks, t)
		case n == 1 && pid != cliPid && strings.HasPrefix(call, "execve(") && strings.Contains(line, `["corral-init"]`):
			initPid = pid
			marks = append(marks, t)
		case n == 2 && pid == initPid && strings.HasPrefix(call, "pivot_root("):
			marks = append(marks, t)
		case n == 3 && pid == initPid && strings.HasPrefix(call, "execve("):
			marks = append(marks, t)
		case n == 4 && pid == initPid && strings.HasPrefix(call, "exit_group("):
			marks = append(marks, t)
		case n == 5 && pid == cliPid && strings.HasPrefix(call, "+++"):
			marks = append(marks, t)
		}
	}
	if len(marks) != 6 {
		return nil, fmt.Errorf("%s: found %d of the 6 marks of a start", path, len(marks))
	}
	return marks, nil
}
