package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/corral-dev/corral/tests/testutil"
)

// READY=1 comes only once the mount answers; SIGTERM sends STOPPING=1,
// unmounts, removes the pidfile and exits 0.
func TestCorralfsReadyAndStop(t *testing.T) {
	mp := corralfsMountpoint(t)
	d := startCorralfs(t, mp)
	// Right after READY=1 the mount answers, from a process that is not
	// the daemon.
	if out, err := exec.Command("cat", filepath.Join(mp, "proc/meminfo")).Output(); err != nil || !strings.HasPrefix(string(out), "MemTotal:") {
		t.Fatalf("meminfo right after READY=1: %q, %v", out, err)
	}
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mp))
	if err != nil || len(ms) != 1 {
		t.Fatalf("mount entry for %s: %v, %v", mp, ms, err)
	}
	m := ms[0]
	if m.FSType != "fuse.corralfs" || m.Source != "corralfs" || !strings.Contains(m.VFSOptions, "allow_other") || !strings.HasPrefix(m.Options, "ro") {
		t.Errorf("mount entry %+v: want fuse.corralfs from corralfs, ro, allow_other", m)
	}
	pid, err := os.ReadFile(d.pidfile)
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(d.cmd.Process.Pid) {
		t.Errorf("pidfile says %q (%v), daemon is %d", pid, err, d.cmd.Process.Pid)
	}
	if st := d.status(); st.Pid != d.cmd.Process.Pid {
		t.Errorf("status pid %d", st.Pid)
	}

	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.waitNotify("STOPPING=1", 10*time.Second); err != nil {
		t.Error(err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon still running 10s after SIGTERM")
	}
	if d.exitErr != nil {
		t.Errorf("exit after SIGTERM: %v", d.exitErr)
	}
	if isCorralfsMount(t, mp) {
		t.Error("still mounted after SIGTERM")
	}
	for _, f := range []string{d.pidfile, d.ctl} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}
}

// A daemon killed with SIGKILL leaves a dead mount (ENOTCONN); the next
// one on the same mount point removes it and serves.
func TestCorralfsRecoversStaleMount(t *testing.T) {
	mp := corralfsMountpoint(t)
	d := startCorralfs(t, mp)
	d.kill9()
	if _, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("read from a dead daemon's mount: %v, want ENOTCONN", err)
	}
	startCorralfs(t, mp)
	if b, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); err != nil || !strings.HasPrefix(string(b), "MemTotal:") {
		t.Fatalf("after restart: %q, %v", b, err)
	}
	ms, _ := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) { return i.Mountpoint != mp, false })
	if len(ms) != 1 {
		t.Errorf("%d mounts stacked at %s, want 1", len(ms), mp)
	}
}

// A second daemon on a live mount refuses, and the first keeps serving.
func TestCorralfsRefusesLiveMount(t *testing.T) {
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	second := launchCorralfs(t, mp)
	select {
	case <-second.done:
	case <-time.After(15 * time.Second):
		t.Fatal("second daemon did not give up")
	}
	if second.exitErr == nil {
		t.Error("second daemon exited 0")
	}
	if out := second.out.String(); !strings.Contains(out, "already a live corralfs mount") {
		t.Errorf("second daemon said %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "proc/uptime")); err != nil || len(b) == 0 {
		t.Errorf("first daemon stopped serving: %q, %v", b, err)
	}
}

func TestCorralfsHelpAndBadFlags(t *testing.T) {
	bin := testutil.Binary(t, "corralfs")
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, f := range []string{"--pidfile", "--log-level", "--cpu-quota-view", "--swap", "--cgroup-root", "--allow-other", "--relay", "/var/lib/corralfs"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("--help does not explain %s", f)
		}
	}
	for _, args := range [][]string{{"--log-level", "loud"}, {"--relay", "sometimes"}, {"--no-such-flag"}, {"a", "b"}} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || len(out) == 0 {
			t.Errorf("corralfs %q: %v, %q; want exit 2 with a message", args, err, out)
		}
	}
}

// 10,000 reads from 4 concurrent readers (and a container reading at the
// same time; fewer in the emulated VM) leave the daemon's goroutines and RSS flat and every handle
// released.
func TestCorralfsManyReadsStayFlat(t *testing.T) {
	mp := corralfsMountpoint(t)
	d := startCorralfs(t, mp)
	cg := testutil.NewCgroup(t, "corralfs-flat", testutil.CgroupLimits{MemoryBytes: 300 << 20})
	files := []string{"proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/loadavg", "proc/uptime", "sys/devices/system/cpu/online"}
	readAll := func(n int) {
		t.Helper()
		start := time.Now()
		defer func() { t.Logf("%d reads by 4 readers in %v", n, time.Since(start).Round(time.Millisecond)) }()
		// A few seconds' work even in the emulated VM: two minutes means
		// a hang, which the watch explains instead of the binary's timeout.
		defer d.watchHang(2*time.Minute, fmt.Sprintf("%d reads", n))()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func(r int) {
				defer wg.Done()
				for i := 0; i < n/4; i++ {
					p := filepath.Join(mp, files[(i+r)%len(files)])
					if b, err := os.ReadFile(p); err != nil || len(b) == 0 {
						errs <- fmt.Errorf("%s: %d bytes, %v", p, len(b), err)
						return
					}
				}
			}(r)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	warmup, reads, inContainer := 2000, 10000, 300
	if testutil.InVM() {
		// TCG emulation serves a few hundred reads/s: keep the VM run
		// (which checks cgroup v2, not volume) inside its time budget.
		warmup, reads, inContainer = 300, 1000, 30
	}
	readAll(warmup) // warm up: server goroutines, buffers, caches
	before := d.status()
	c := startCfsContainer(t, cg, fmt.Sprintf(`i=0; while [ $i -lt %d ]; do cat %s/proc/meminfo > /dev/null || exit 1; i=$((i+1)); done`, inContainer, mp))
	c.start(t)
	readAll(reads)
	c.wait(t, 120*time.Second)
	var after corralfsStatus
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = d.status()
		if after.FS.OpenHandles == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("before: %d goroutines, %.1f MiB; after %d more reads: %d goroutines, %.1f MiB, %d opens",
		before.Goroutines, float64(before.RSSBytes)/(1<<20), reads+inContainer, after.Goroutines, float64(after.RSSBytes)/(1<<20), after.FS.Opens)
	if after.FS.OpenHandles != 0 {
		t.Errorf("%d handles still open", after.FS.OpenHandles)
	}
	if after.Goroutines > before.Goroutines+4 {
		t.Errorf("goroutines grew from %d to %d", before.Goroutines, after.Goroutines)
	}
	if after.RSSBytes > before.RSSBytes+16<<20 {
		t.Errorf("RSS grew from %d to %d bytes", before.RSSBytes, after.RSSBytes)
	}
	if after.FS.Opens < before.FS.Opens+uint64(reads+inContainer) {
		t.Errorf("only %d opens counted", after.FS.Opens-before.FS.Opens)
	}
	// Fallbacks are not an error here: the readers are this test process,
	// whose v1 pids cgroup may be the root one, which has no pids.current
	// (loadavg then serves the host's file, which is right for the root).
	t.Logf("%d reads served the host's file", after.FS.Fallbacks-before.FS.Fallbacks)
}
