package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// storedFDs reads the daemon's sd_notify datagrams as systemd would until
// READY=1, keeping the descriptors it stores (FDSTORE=1) by FDNAME.
func (d *corralfsDaemon) storedFDs(t *testing.T) map[string]*os.File {
	t.Helper()
	fds := map[string]*os.File{}
	t.Cleanup(func() {
		for _, f := range fds {
			f.Close()
		}
	})
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for i := 0; ; i++ {
		m, more := d.notes.next(i)
		for m == nil && more != nil {
			select {
			case <-more:
			case <-deadline.C:
				t.Fatalf("no READY=1 from corralfs:\n%s", d.out.String())
			}
			m, more = d.notes.next(i)
		}
		if m == nil {
			break
		}
		if got := d.notes.takeFDs(i); len(got) > 0 {
			name := ""
			for _, l := range strings.Split(m.text, "\n") {
				name, _ = strings.CutPrefix(l, "FDNAME=")
			}
			if len(got) != 1 || !strings.Contains(m.text, "FDSTORE=1") {
				for _, fd := range got {
					syscall.Close(fd)
				}
				t.Fatalf("descriptors %v with %q", got, m.text)
			}
			fds[name] = os.NewFile(uintptr(got[0]), name)
		}
		if strings.Contains("\n"+m.text+"\n", "\nREADY=1\n") {
			return fds
		}
	}
	t.Fatalf("no READY=1 from corralfs:\n%s", d.out.String())
	return nil
}

// With systemd's fd store holding the connection, even the supervisor can
// be killed with SIGKILL: its successor takes the mounted connection back
// (LISTEN_FDS) and the containers' reads never fail. (Here the test plays
// systemd: it keeps the stored descriptors and restarts the daemon.)
//
// Behind the relay (kernels before 6.9) the supervisor reads the requests,
// and its threads blocked in read(2) when it is killed can take requests
// queued at that moment with them, which nothing can re-queue there
// (docs/operations.md). So in that mode the containers read only after
// the restart: what holds is the connection, the mount and the journal.
func TestSurviveSupervisorKill9WithFDStore(t *testing.T) {
	testutil.RequireRoot(t)
	forEachRecovery(t, surviveSupervisorKill9WithFDStore)
}

func surviveSupervisorKill9WithFDStore(t *testing.T, r recovery) {
	e := runNewEnv(t, false)
	d := launchCorralfsFDStore(t, corralfsMountpoint(t), r.args...)
	stored := d.storedFDs(t)
	names := []string{"corralfs-fuse", "corralfs-fuse-init", "corralfs-handles", "corralfs-counters"}
	if r.relay() {
		names = append(names, "corralfs-inflight") // the relay's in-flight journal
	}
	var files []*os.File
	for _, n := range names {
		if stored[n] == nil {
			t.Fatalf("stored descriptors %v: want %v", stored, names)
		}
		files = append(files, stored[n])
	}
	if len(stored) != len(names) {
		t.Errorf("stored descriptors %v: want only %v", stored, names)
	}
	e.views = d.mp
	checkRecovery(t, d, r)
	worker := d.status().WorkerPid
	relay := r.relay()
	var cs []*surviveContainer
	if !relay {
		cs = startSurviveReaders(t, e, 6*time.Second)
		time.Sleep(1500 * time.Millisecond)
	}
	if _, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil { // counted at least once
		t.Fatal(err)
	}
	opensBefore := d.status().Totals.Opens
	d.kill9()
	if !processGone(worker) {
		t.Fatalf("worker %d outlived its supervisor", worker)
	}
	time.Sleep(200 * time.Millisecond) // reads queue in the kernel meanwhile (systemd: RestartSec=100ms)

	// What systemd does on Restart=: the stored descriptors from fd 3 on,
	// named in LISTEN_FDNAMES, for the new main process's pid.
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	var out syncBuffer
	argv := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, testutil.Binary(t, "corralfs"), "--control-socket", ctl, "--seccomp-socket="}, r.args...)
	cmd := exec.Command("/bin/sh", append(argv, d.mp)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("restarted corralfs ignored SIGTERM")
		}
		if isCorralfsMount(t, d.mp) {
			t.Errorf("%s still mounted after the restarted daemon stopped", d.mp)
		}
		if t.Failed() {
			t.Logf("restarted corralfs:\n%s", out.String())
		}
	}()
	if relay {
		cs = startSurviveReaders(t, e, 3*time.Second)
	}
	checkSurviveReaders(t, cs, 60*time.Second)
	if !strings.Contains(out.String(), "took over the mounted connection") {
		t.Errorf("the restarted daemon did not take the stored connection:\n%s", out.String())
	}
	if b, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil || !strings.HasPrefix(string(b), "MemTotal:") {
		t.Errorf("mount after the supervisor's restart: %q, %v", b, err)
	}
	if ms := mountsAt(t, d.mp); ms != 1 {
		t.Errorf("%d mounts at %s, want 1", ms, d.mp)
	}
	// The daemon-total counters came back with the connection.
	restarted := &corralfsDaemon{t: t, ctl: ctl}
	if st := restarted.status(); st.Totals.Opens < opensBefore || opensBefore == 0 {
		t.Errorf("opens since start: %d before the supervisor's restart, %d after", opensBefore, st.Totals.Opens)
	}
}

func mountsAt(t *testing.T, mp string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), fmt.Sprintf(" %s ", mp))
}
