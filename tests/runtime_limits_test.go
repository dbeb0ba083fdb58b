package tests

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func rtI64(v int64) *int64   { return &v }
func rtU64(v uint64) *uint64 { return &v }

// TestRuntimeOOMKill: a memory hog in 32 MiB is OOM-killed (its shell sees
// status 137) and `state` reports the OOM kill.
func TestRuntimeOOMKill(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("oom")
	// dd allocates a 64 MiB block buffer and fills it from /dev/zero.
	s := rtSpec(id, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo status=$?; sleep 1000")
	s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: rtI64(32 << 20), Swap: rtI64(32 << 20)}}
	b := e.bundle(id, s)
	out := e.create(id, b)
	e.must("start", id)
	rtWaitFile(t, out, "status=")
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "status=137") {
		t.Errorf("memory hog: %q, want status=137", data)
	}
	if st := e.state(id); !st.OOMKilled {
		t.Errorf("state does not report the OOM kill: %+v", st)
	}
	e.must("delete", "--force", id)
}

// TestRuntimePidsLimit: a fork bomb in pids.max 20 is contained: forks
// fail, the task count never passes 20, and the container can be killed.
func TestRuntimePidsLimit(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("pids")
	s := rtSpec(id, "sleep", "1000")
	s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: rtI64(20)}}
	b := e.bundle(id, s)
	e.create(id, b)
	e.must("start", id)
	// busybox sh gives up at the first refused fork, so the bomb runs in
	// an exec and the init (sleep) shows the container survives it.
	bomb := `i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done`
	if r := e.corral("exec", id, "sh", "-c", bomb); r.code == 0 || !strings.Contains(r.stderr, "can't fork") {
		t.Errorf("fork bomb: %v, want refused forks", r)
	}
	if st := e.state(id); st.Status != "running" {
		t.Errorf("container %s after the fork bomb", st.Status)
	}
	cur := rtReadTrim(t, rtCgroupFile(id, "pids", "pids.current", "pids.current"))
	if n, _ := strconv.Atoi(cur); n > 20 || n < 15 {
		t.Errorf("pids.current = %s, want the limit (20) reached but not passed", cur)
	}
	if ev := rtReadTrim(t, rtCgroupFile(id, "pids", "pids.events", "pids.events")); !strings.Contains(ev, "max ") || strings.HasSuffix(ev, " 0") {
		t.Errorf("pids.events %q: no fork was refused", ev)
	}
	e.must("delete", "--force", id)
}

// TestRuntimeCPUQuota: a busy loop under a 0.5 CPU quota is throttled to
// about half a CPU, measured by the cgroup's own counters (CPU time used
// per elapsed CFS period), not by wall time.
func TestRuntimeCPUQuota(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("cpu")
	s := rtSpec(id, "sh", "-c", "while :; do :; done")
	// A 20 ms period gives many periods to count in a short test.
	s.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: rtI64(10000), Period: rtU64(20000)}}
	b := e.bundle(id, s)
	e.create(id, b)
	e.must("start", id)
	time.Sleep(300 * time.Millisecond) // let the loop start
	defer e.must("delete", "--force", id)
	// Other tests share this host's CPUs: a window in which the loop could
	// not even get half a CPU says nothing, so up to 4 windows are tried.
	// Any window above the quota fails at once.
	var last string
	for try := 0; try < 4; try++ {
		u0, p0, th0 := rtCPUCounters(t, id)
		time.Sleep(1500 * time.Millisecond)
		u1, p1, th1 := rtCPUCounters(t, id)
		periods := p1 - p0
		if periods < 5 {
			t.Fatalf("only %d CFS periods elapsed", periods)
		}
		share := float64(u1-u0) / float64(periods*20000) // usage µs per period of 20000 µs
		last = fmt.Sprintf("usage %d µs over %d periods: %.2f CPU; throttled in %d periods", u1-u0, periods, share, th1-th0)
		t.Log(last)
		if share > 0.6 {
			t.Fatalf("busy loop got %.2f CPU per period under a 0.5 quota", share)
		}
		if share >= 0.35 && float64(th1-th0) >= 0.3*float64(periods) {
			return // about half a CPU, and the kernel throttled it to get there
		}
	}
	t.Errorf("never measured about half a CPU with throttling: %s", last)
}

// rtCPUCounters reads the cgroup's CPU usage (µs), elapsed CFS periods and
// throttled periods (v1: cpuacct.usage in ns and cpu.stat; v2: cpu.stat).
func rtCPUCounters(t *testing.T, id string) (usageUS, periods, throttled uint64) {
	t.Helper()
	stat := rtKV(t, rtCgroupFile(id, "cpu", "cpu.stat", "cpu.stat"))
	periods, throttled = stat["nr_periods"], stat["nr_throttled"]
	if testutil.DetectCgroupMode() == testutil.CgroupModeV2 {
		return stat["usage_usec"], periods, throttled
	}
	ns, err := strconv.ParseUint(rtReadTrim(t, rtCgroupFile(id, "cpuacct", "cpuacct.usage", "")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ns / 1000, periods, throttled
}

func rtKV(t *testing.T, file string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseUint(v, 10, 64)
		m[k] = n
	}
	return m
}
