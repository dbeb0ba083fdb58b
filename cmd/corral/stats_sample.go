package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// statsTarget is a container `corral stats` watches: its id and the host
// pid of its init (the cgroups are found from it).
type statsTarget struct {
	ID  string
	Pid int
}

// statsSample is one reading of a container's cgroups at one moment.
type statsSample struct {
	ID        string
	At        time.Time
	OK        bool   // false: the container is gone or unreadable
	CPUNanos  uint64 // total CPU time (user + system)
	MemUsage  uint64 // usage minus inactive page cache, as docker stats shows
	MemLimit  uint64 // effective limit, the host's RAM when unlimited
	Pids      uint64
	PidsLimit cgroupreader.Limit
	BlkRead   uint64
	BlkWrite  uint64
	NetRx     uint64
	NetTx     uint64
}

// statsRow is what one line of the table (or one JSON object) shows.
type statsRow struct {
	ID         string  `json:"id"`
	Pid        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_percent"`
	MemUsage   uint64  `json:"memory_usage_bytes"`
	MemLimit   uint64  `json:"memory_limit_bytes"`
	MemPercent float64 `json:"memory_percent"`
	NetRx      uint64  `json:"net_rx_bytes"`
	NetTx      uint64  `json:"net_tx_bytes"`
	BlkRead    uint64  `json:"block_read_bytes"`
	BlkWrite   uint64  `json:"block_write_bytes"`
	Pids       uint64  `json:"pids"`
	PidsLimit  *uint64 `json:"pids_limit,omitempty"`
	// Stopped: the container is not running (or its cgroups vanished);
	// the numbers are zero.
	Stopped bool `json:"stopped,omitempty"`
}

// sampleStats reads one container. hostMem is MemTotal in bytes, the limit
// shown for a container without one.
func sampleStats(r cgroupreader.Reader, t statsTarget, hostMem uint64, now time.Time) statsSample {
	s := statsSample{ID: t.ID, At: now}
	if t.Pid <= 0 {
		return s
	}
	paths, err := r.PathsOf(t.Pid)
	if err != nil {
		return s
	}
	snap, err := r.Snapshot(paths, cgroupreader.DefaultParts|cgroupreader.PartIO)
	if err != nil {
		return s
	}
	s.OK = true
	s.CPUNanos = snap.CPU.UsageUser + snap.CPU.UsageSystem
	s.MemUsage = snap.Memory.Usage
	// docker stats subtracts the inactive file cache: it can be dropped
	// at any time and is not what the container "uses".
	if ia := snap.Memory.Stat.InactiveFile; ia < s.MemUsage {
		s.MemUsage -= ia
	}
	s.MemLimit = snap.Memory.Limit.Cap(hostMem)
	s.Pids = snap.Pids.Current
	s.PidsLimit = snap.Pids.Limit
	for _, d := range snap.IO {
		s.BlkRead += d.ReadBytes
		s.BlkWrite += d.WriteBytes
	}
	s.NetRx, s.NetTx = netDevTotals(filepath.Join("/proc", strconv.Itoa(t.Pid), "net/dev"))
	return s
}

// statsRowOf turns the previous and current samples into a row: CPU % is
// the CPU time used between them over the wall time between them, so 100%
// is one full CPU (docker's convention; 200% is two).
func statsRowOf(t statsTarget, prev, cur statsSample) statsRow {
	row := statsRow{ID: t.ID, Pid: t.Pid}
	if !cur.OK {
		row.Stopped = true
		row.Pid = 0
		return row
	}
	if prev.OK && cur.At.After(prev.At) && cur.CPUNanos >= prev.CPUNanos {
		wall := cur.At.Sub(prev.At).Nanoseconds()
		row.CPUPercent = float64(cur.CPUNanos-prev.CPUNanos) / float64(wall) * 100
	}
	row.MemUsage, row.MemLimit = cur.MemUsage, cur.MemLimit
	if cur.MemLimit > 0 {
		row.MemPercent = float64(cur.MemUsage) / float64(cur.MemLimit) * 100
	}
	row.NetRx, row.NetTx = cur.NetRx, cur.NetTx
	row.BlkRead, row.BlkWrite = cur.BlkRead, cur.BlkWrite
	row.Pids = cur.Pids
	if cur.PidsLimit.Set {
		v := cur.PidsLimit.Value
		row.PidsLimit = &v
	}
	return row
}

// netDevTotals sums the received and sent bytes of every interface but lo
// in a /proc/PID/net/dev (the process's network namespace).
func netDevTotals(path string) (rx, tx uint64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fields[0], 10, 64)
		t, _ := strconv.ParseUint(fields[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}

// hostMemTotal reads MemTotal from the host's /proc/meminfo, in bytes (0
// when unreadable: the stats then show no percentage).
func hostMemTotal() uint64 {
	h, _ := facts.ReadHostMemory()
	return h.Total
}
