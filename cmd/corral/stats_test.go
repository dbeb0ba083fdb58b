package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
)

func TestStatsRowCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := statsSample{OK: true, At: t0, CPUNanos: 1e9}
	cur := statsSample{OK: true, At: t0.Add(2 * time.Second), CPUNanos: 2e9, MemUsage: 64 << 20, MemLimit: 256 << 20,
		Pids: 3, PidsLimit: cgroupreader.Limit{Value: 20, Set: true}}
	row := statsRowOf(statsTarget{ID: "x", Pid: 42}, prev, cur)
	if row.CPUPercent != 50 {
		t.Errorf("1 s of CPU over 2 s of wall: %.2f%%, want 50%%", row.CPUPercent)
	}
	if row.MemPercent != 25 || row.Pids != 3 || row.PidsLimit == nil || *row.PidsLimit != 20 || row.Pid != 42 {
		t.Errorf("row %+v", row)
	}
	// First reading: no CPU % yet; a counter going backwards (a new
	// container reusing the id): none either.
	if r := statsRowOf(statsTarget{ID: "x"}, statsSample{}, cur); r.CPUPercent != 0 {
		t.Errorf("no previous reading: %.2f%%", r.CPUPercent)
	}
	if r := statsRowOf(statsTarget{ID: "x"}, cur, prev); r.CPUPercent != 0 {
		t.Errorf("backwards: %.2f%%", r.CPUPercent)
	}
	if r := statsRowOf(statsTarget{ID: "x", Pid: 9}, prev, statsSample{}); !r.Stopped || r.Pid != 0 {
		t.Errorf("gone container: %+v", r)
	}
}

func TestStatsRenderTableAndJSON(t *testing.T) {
	lim := uint64(20)
	id := strings.Repeat("ab", 32)
	rows := []statsRow{
		{ID: id, Pid: 7, CPUPercent: 49.5, MemUsage: 100 << 20, MemLimit: 256 << 20, MemPercent: 39.06,
			NetRx: 1500, NetTx: 0, BlkRead: 4096, BlkWrite: 2_000_000, Pids: 2, PidsLimit: &lim},
		{ID: "web", Stopped: true},
	}
	var b bytes.Buffer
	if err := renderStatsTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"CONTAINER ID", "abababababab ", "49.50%", "100MiB / 256MiB", "39.06%", "1.5kB / 0B", "4.096kB / 2MB", "2 / 20", "web", "--"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := renderStatsJSON(&b, rows); err != nil {
		t.Fatal(err)
	}
	var back []statsRow
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 2 || back[0].MemLimit != 256<<20 || !back[1].Stopped {
		t.Errorf("json %s: %v %+v", b.String(), err, back)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("one reading must be one line: %q", b.String())
	}
	b.Reset()
	renderStatsJSON(&b, nil)
	if b.String() != "[]\n" {
		t.Errorf("no containers: %q, want []", b.String())
	}
}

func TestNetDevTotals(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dev")
	os.WriteFile(p, []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    1000       5    0    0    0     0          0         0     2000       6    0    0    0     0       0          0
  eth1:      24       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`), 0o644)
	rx, tx := netDevTotals(p)
	if rx != 1024 || tx != 2006 {
		t.Errorf("rx %d tx %d, want 1024 2006 (lo excluded)", rx, tx)
	}
	if rx, tx := netDevTotals(filepath.Join(t.TempDir(), "missing")); rx != 0 || tx != 0 {
		t.Error("missing file must read as zero")
	}
}

// TestSampleStatsOwnCgroup reads this test process's own cgroups (read
// only) through the real reader: the numbers must be plausible. (Not the
// pids count: our own process may sit in the root of the pids hierarchy,
// which has no pids.current.)
func TestSampleStatsOwnCgroup(t *testing.T) {
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	host := hostMemTotal()
	if host == 0 {
		t.Fatal("MemTotal unreadable")
	}
	s := sampleStats(r, statsTarget{ID: "self", Pid: os.Getpid()}, host, time.Now())
	if !s.OK {
		t.Fatal("could not read our own cgroups")
	}
	if s.MemUsage == 0 || s.MemLimit == 0 || s.MemLimit > host || s.CPUNanos == 0 {
		t.Errorf("implausible sample %+v (host memory %d)", s, host)
	}
}
