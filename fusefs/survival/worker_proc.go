package survival

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The descriptors a worker inherits (ExtraFiles order) and the variables
// that describe them. A worker is started by the supervisor only; the
// layout is an internal contract between two copies of corralfs, which
// may be different versions during an upgrade: keep it backward
// compatible (same numbers, same names).
const (
	fuseFD    = 3 // the supervisor's /dev/fuse file (the same open file)
	aliveFD   = 4 // read end of a pipe: EOF means the supervisor died
	readyFD   = 5 // write "R" once able to serve, then close
	goFD      = 6 // read end of a pipe: serve once "G" arrives
	controlFD = 7 // the control socket's listener, when there is one

	// EnvInfo carries what the caller tells its workers about the daemon
	// (corralfs: a JSON workerInfo, for `corralfs status`).
	EnvInfo     = "CORRALFS_WORKER"
	envFuseInit = "CORRALFS_FUSE_INIT" // the kernel's INIT request (EncodeInit)
	// envJournalFD: the descriptor of the in-flight journal, when the
	// kernel cannot re-queue a dead worker's requests (journal.go). An
	// environment variable, not a fixed number: workers of older
	// versions never see it.
	envJournalFD  = "CORRALFS_INFLIGHT_FD"
	envRelayFD    = "CORRALFS_REQUESTS_FD" // the relay's socket (relay.go), with envJournalFD
	envHandlesFD  = "CORRALFS_HANDLES_FD"  // HandleStore's memfd
	envCountersFD = "CORRALFS_COUNTERS_FD" // Counters' memfd
	envMetricsFD  = "CORRALFS_METRICS_FD"  // the --metrics-listen socket

	// ExitUnmounted: the worker's connection ended (unmounted from
	// outside); the supervisor stops rather than restarting it.
	ExitUnmounted = 3
)

// Worker is one started worker process.
type Worker struct {
	cmd      *exec.Cmd
	goW      *os.File // write "G" to let it serve
	relayEnd int      // the relay's end of its request socket; -1 without a relay
	started  time.Time
	done     chan struct{} // closed once reaped
}

// Pid is the worker's process id.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Started is when it was started.
func (w *Worker) Started() time.Time { return w.started }

// release lets a started worker read requests. Until then it has adopted
// the connection but reads nothing, so the supervisor can first retire the
// previous worker and re-queue its requests without the new one having
// taken any (FUSE_NOTIFY_RESEND re-queues every unanswered request, also a
// live worker's, which would then be answered twice).
func (w *Worker) release() {
	_, _ = w.goW.Write([]byte{'G'})
	w.goW.Close()
}

// Kill sends SIGKILL; its exit is reported as any other.
func (w *Worker) Kill() { _ = w.cmd.Process.Kill() }

// Exited says whether the worker has been reaped.
func (w *Worker) Exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// State describes how it ended ("running" while it runs).
func (w *Worker) State() string {
	if w.cmd.ProcessState == nil {
		return "running"
	}
	return w.cmd.ProcessState.String()
}

// ExitCode is its exit status (-1: running, or killed by a signal).
func (w *Worker) ExitCode() int {
	if w.cmd.ProcessState == nil {
		return -1
	}
	return w.cmd.ProcessState.ExitCode()
}

// stop asks the worker to exit (SIGTERM) and kills it after grace.
func (w *Worker) stop(grace time.Duration) {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(grace):
		w.Kill()
		<-w.done
	}
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// start starts `Exe Args...` on the connection and waits until it is
// ready to serve; it serves once released. Its exit is reported on
// s.Exited().
func (s *Supervisor) start() (*Worker, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(s.Exe, s.Args...)
	cmd.Env = append(workerEnv(os.Environ()), envFuseInit+"="+EncodeInit(s.Init))
	if s.Info != nil {
		cmd.Env = append(cmd.Env, EnvInfo+"="+s.Info())
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{s.Conn, s.aliveR, readyW, goR}
	if s.Control != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.Control)
	}
	pass := func(env string, f *os.File) {
		if f != nil {
			cmd.Env = append(cmd.Env, env+"="+strconv.Itoa(3+len(cmd.ExtraFiles)))
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
	}
	pass(envHandlesFD, s.Handles)
	pass(envMetricsFD, s.Metrics)
	pass(envCountersFD, s.CountersFile)
	relayEnd := -1
	if s.relay != nil {
		var workerEnd *os.File
		if relayEnd, workerEnd, err = newWorkerSocket(); err != nil {
			readyW.Close()
			goR.Close()
			goW.Close()
			return nil, fmt.Errorf("worker: %w", err)
		}
		defer workerEnd.Close()
		pass(envRelayFD, workerEnd)
		pass(envJournalFD, s.journal)
	}
	// Its own process group: a terminal's Ctrl-C reaches the supervisor,
	// which decides.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	readyW.Close()
	goR.Close()
	if err != nil {
		goW.Close()
		closeFD(relayEnd)
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{cmd: cmd, goW: goW, relayEnd: relayEnd, started: time.Now(), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
		s.exited <- w
	}()
	within := s.ReadyWithin
	if within <= 0 {
		within = defaultReadyWithin
	}
	_ = readyR.SetReadDeadline(time.Now().Add(within))
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil || b[0] != 'R' {
		w.Kill()
		<-w.done
		goW.Close()
		closeFD(relayEnd)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("worker %s did not serve within %v", s.Exe, within)
		}
		return nil, fmt.Errorf("worker %s exited before serving (%s)", s.Exe, w.State())
	}
	return w, nil
}

// workerEnv is our environment without what belongs to the supervisor
// alone: systemd's notify socket and passed descriptors, and the
// variables of the protocol (a supervisor started by a worker's parent
// must not hand on stale ones).
func workerEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", EnvInfo, envFuseInit, envJournalFD, envRelayFD, envHandlesFD, envCountersFD, envMetricsFD:
			continue
		}
		out = append(out, kv)
	}
	return out
}
