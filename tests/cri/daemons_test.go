package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/tests/testutil"
)

// corralfsDaemon is a corralfs the test started: its mount, control
// socket and sysinfo agent socket are the test's own.
type corralfsDaemon struct {
	mp, ctl, seccompSock string
	out                  *testutil.SyncBuffer
	cmd                  *exec.Cmd
	done                 chan struct{}
}

// startCorralfs mounts corralfs below dir and waits until it serves views
// and its sysinfo agent is attached to the keeper.
func startCorralfs(t *testing.T, dir string) *corralfsDaemon {
	t.Helper()
	d := &corralfsDaemon{mp: filepath.Join(dir, "corralfs"), ctl: filepath.Join(dir, "ctl.sock"),
		seccompSock: filepath.Join(dir, "seccomp.sock"), out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	must(t, os.Mkdir(d.mp, 0o755))
	d.cmd = exec.Command(testutil.Binary(t, "corralfs"), "--control-socket", d.ctl, "--pidfile", filepath.Join(dir, "corralfs.pid"),
		"--seccomp-socket", d.seccompSock, "--log-level", "debug", d.mp)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	must(t, d.cmd.Start())
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(t)
		// The keeper outlives corralfs by design (it holds the containers'
		// listener fds): this one is the test's, for its own socket.
		if b, err := os.ReadFile(d.seccompSock + ".pid"); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if pid > 0 && strings.Contains(string(cmdline), "keeper") && strings.Contains(string(cmdline), d.seccompSock) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("corralfs output:\n%s", d.out.String())
		}
	})
	testutil.WaitFor(t, 30*time.Second, "corralfs serving "+d.mp, func() bool {
		_, err := os.Stat(filepath.Join(d.mp, "proc", "meminfo"))
		return testutil.IsCorralfsMount(t, d.mp) && err == nil
	})
	testutil.WaitFor(t, 30*time.Second, "the sysinfo agent attached to its keeper", func() bool {
		return strings.Contains(d.out.String(), "attached to the seccomp keeper")
	})
	return d
}

func (d *corralfsDaemon) stop(t *testing.T) {
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			t.Errorf("corralfs ignored SIGTERM for 15 s")
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	for testutil.IsCorralfsMount(t, d.mp) {
		if err := unix.Unmount(d.mp, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", d.mp, err)
			return
		}
	}
}

// workerPid asks the daemon's control socket which worker serves now.
func (d *corralfsDaemon) workerPid(t *testing.T) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.ctl)
		}}}
	var st struct {
		WorkerPid int `json:"worker_pid"`
	}
	// An empty answer: the worker that took the request was just killed;
	// ask again, as `corralfs status` does.
	for try := 0; ; try++ {
		resp, err := client.Get("http://corralfs/status")
		if err == nil {
			var raw []byte
			raw, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = json.Unmarshal(raw, &st)
			}
		}
		if err == nil && st.WorkerPid > 0 {
			return st.WorkerPid
		}
		if try == 50 {
			t.Fatalf("corralfs status: %v (worker pid %d)", err, st.WorkerPid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nriPlugin is bin/corral-nri connected to the test's containerd.
type nriPlugin struct {
	out *testutil.SyncBuffer
}

// startNRIPlugin starts the plugin and waits until containerd has
// configured it (the plugin logs the runtime that did).
func startNRIPlugin(t *testing.T, e *containerdEnv, cfs *corralfsDaemon) *nriPlugin {
	t.Helper()
	p := &nriPlugin{out: &testutil.SyncBuffer{}}
	cmd := exec.Command(testutil.Binary(t, "corral-nri"), "--nri-socket", e.nriSock, "--views", cfs.mp, "--seccomp-socket", cfs.seccompSock)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("corral-nri ignored SIGTERM for 10 s")
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("corral-nri output:\n%s", p.out.String())
		}
	})
	testutil.WaitFor(t, 30*time.Second, "containerd configuring corral-nri", func() bool {
		return strings.Contains(p.out.String(), "configured by containerd")
	})
	return p
}
