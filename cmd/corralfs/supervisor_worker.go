package main

import (
	"encoding/json"
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

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs/survival"
)

// The descriptors a worker inherits (ExtraFiles order) and the variables
// that describe them. A worker is started by the supervisor only; the
// layout is an internal contract between two copies of this binary, which
// may be different versions during an upgrade: keep it backward
// compatible.
const (
	workerFuseFD    = 3 // the supervisor's /dev/fuse file (the same open file)
	workerAliveFD   = 4 // read end of a pipe: EOF means the supervisor died
	workerReadyFD   = 5 // write "R" once able to serve, then close
	workerGoFD      = 6 // read end of a pipe: serve once "G" arrives
	workerControlFD = 7 // the control socket's listener, when there is one

	envWorker   = "CORRALFS_WORKER"    // JSON workerInfo
	envFuseInit = "CORRALFS_FUSE_INIT" // the kernel's INIT request (survival.EncodeInit)
	// envJournalFD: the descriptor of the in-flight journal, when the
	// kernel cannot re-queue a dead worker's requests (journal.go). An
	// environment variable, not a fixed number: workers of older
	// versions never see it.
	envJournalFD  = "CORRALFS_INFLIGHT_FD"
	envRelayFD    = "CORRALFS_REQUESTS_FD" // the relay's socket (fusefs/survival/relay.go), with envJournalFD
	envHandlesFD  = "CORRALFS_HANDLES_FD"  // survival.HandleStore's memfd
	envCountersFD = "CORRALFS_COUNTERS_FD" // survival.Counters' memfd
	envMetricsFD  = "CORRALFS_METRICS_FD"  // the --metrics-listen socket

	// exitUnmounted: the worker's connection ended (unmounted from
	// outside); the supervisor stops rather than restarting it.
	exitUnmounted = 3
)

// workerInfo is what the supervisor tells a worker about the daemon, for
// `corralfs status`.
type workerInfo struct {
	SupervisorPid     int       `json:"supervisor_pid"`
	SupervisorStarted time.Time `json:"supervisor_started"`
	Mountpoint        string    `json:"mountpoint"`
	Restarts          int       `json:"restarts"`
	Upgrades          int       `json:"upgrades"`
	Unresponsive      int       `json:"unresponsive"` // workers the liveness check replaced
	Resend            string    `json:"resend"`
	Relay             bool      `json:"relay"`
	Control           bool      `json:"control"`
	// SupervisorBuild: the supervisor's own build (it is not upgraded by a
	// reload; only workers are).
	SupervisorBuild buildinfo.Info `json:"supervisor_build"`
}

// workerProc is one started worker.
type workerProc struct {
	cmd      *exec.Cmd
	goW      *os.File // write "G" to let it serve
	relayEnd int      // the relay's end of its request socket; -1 without a relay
	started  time.Time
	done     chan struct{} // closed once reaped
	err      error
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// release lets a started worker read requests. Until then it has adopted
// the connection but reads nothing, so the supervisor can first retire the
// previous worker and re-queue its requests without the new one having
// taken any (FUSE_NOTIFY_RESEND re-queues every unanswered request, also a
// live worker's, which would then be answered twice).
func (w *workerProc) release() {
	_, _ = w.goW.Write([]byte{'G'})
	w.goW.Close()
}

func (w *workerProc) kill() { _ = w.cmd.Process.Kill() }

// exited says whether the worker has been reaped.
func (w *workerProc) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *workerProc) state() string {
	if w.cmd.ProcessState == nil {
		return "running"
	}
	return w.cmd.ProcessState.String()
}

func (w *workerProc) exitCode() int {
	if w.cmd.ProcessState == nil {
		return -1
	}
	return w.cmd.ProcessState.ExitCode()
}

// stop asks the worker to exit (SIGTERM) and kills it after grace.
func (w *workerProc) stop(grace time.Duration) {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(grace):
		w.kill()
		<-w.done
	}
}

// startWorker starts `exe serve-worker FLAGS` on the connection and waits
// until it is ready to serve; it serves once released. Its exit is
// reported on exited.
func (s *supervisor) startWorker(exe string, exited chan<- *workerProc) (*workerProc, error) {
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
	s.workerSeq++
	info := workerInfo{
		SupervisorPid: os.Getpid(), SupervisorStarted: s.started, Mountpoint: s.mp,
		Restarts: s.restarts, Upgrades: s.upgrades, Unresponsive: s.unresponsive, Resend: s.resend, Relay: s.relaying, Control: s.ctl != nil,
		SupervisorBuild: buildinfo.Get(),
	}
	infoJSON, _ := json.Marshal(info)
	cmd := exec.Command(exe, append([]string{"serve-worker"}, s.args...)...)
	cmd.Env = append(workerEnv(os.Environ()), envWorker+"="+string(infoJSON), envFuseInit+"="+survival.EncodeInit(s.conn.Init))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{s.conn.File, s.aliveR, readyW, goR}
	if s.ctl != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.ctl)
	}
	if s.handles != nil {
		cmd.Env = append(cmd.Env, envHandlesFD+"="+itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.handles)
	}
	if s.metrics != nil {
		cmd.Env = append(cmd.Env, envMetricsFD+"="+itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.metrics)
	}
	if s.countersF != nil {
		cmd.Env = append(cmd.Env, envCountersFD+"="+itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.countersF)
	}
	relayEnd := -1
	if s.relay != nil {
		var workerEnd *os.File
		if relayEnd, workerEnd, err = survival.NewWorkerSocket(); err != nil {
			readyW.Close()
			goR.Close()
			goW.Close()
			return nil, fmt.Errorf("worker: %w", err)
		}
		defer workerEnd.Close()
		cmd.Env = append(cmd.Env, envRelayFD+"="+itoa(3+len(cmd.ExtraFiles)), envJournalFD+"="+itoa(4+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, workerEnd, s.journal)
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
	w := &workerProc{cmd: cmd, goW: goW, relayEnd: relayEnd, started: time.Now(), done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
		exited <- w
	}()
	_ = readyR.SetReadDeadline(time.Now().Add(workerReadyWithin))
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil || b[0] != 'R' {
		w.kill()
		<-w.done
		goW.Close()
		closeFD(relayEnd)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("worker %s did not serve within %v", exe, workerReadyWithin)
		}
		return nil, fmt.Errorf("worker %s exited before serving (%s)", exe, w.state())
	}
	return w, nil
}

// workerEnv is our environment without what belongs to the supervisor
// alone: systemd's notify socket and passed descriptors.
func workerEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", envWorker, envFuseInit, envJournalFD, envRelayFD, envHandlesFD, envCountersFD, envMetricsFD:
			continue
		}
		out = append(out, kv)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
