package render

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
)

// parseMeminfoLines parses "Name: N kB" lines of a rendered meminfo.
func parseMeminfoLines(t *testing.T, b []byte) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("meminfo line %q: %v", sc.Text(), err)
		}
		out[strings.TrimSuffix(f[0], ":")] = n
	}
	return out
}

// TestSysinfoAgreesWithViews: for random container states, sysinfo(2)'s
// memory fields are the container's meminfo lines, and its loads print as
// its loadavg.
func TestSysinfoAgreesWithViews(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	host := loadHost(t, "host")
	for i := 0; i < 2000; i++ {
		in := randomMemoryInput(r, host)
		in.Container.Load = LoadAvg{Known: true, Avg: [3]float64{r.Float64() * 8, r.Float64() * 100, float64(r.IntN(5000)) / 100}, Total: 3}
		in.Container.Now = 1000 * time.Second
		in.Container.InitStart = time.Duration(r.Int64N(int64(900 * time.Second)))
		in.Snap.Pids.Current = uint64(r.IntN(100) + 1)
		si, err := Sysinfo(in)
		if err != nil {
			t.Fatal(err)
		}
		mi, err := Meminfo(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		kb := parseMeminfoLines(t, mi)
		v, _ := ComputeMemory(in)
		total := si.Totalram
		if v.Limited {
			// One page above a limit (LimitedTotalRAM).
			if total != v.Total+uint64(os.Getpagesize()) {
				t.Fatalf("case %d: totalram %d for a limit of %d, want one page more", i, total, v.Total)
			}
			total = v.Total
		}
		for name, got := range map[string]uint64{
			"MemTotal": total, "MemFree": si.Freeram, "Shmem": si.Sharedram, "Buffers": si.Bufferram,
			"SwapTotal": si.Totalswap, "SwapFree": si.Freeswap,
		} {
			if got/1024 != kb[name] {
				t.Fatalf("case %d: sysinfo %s = %d bytes (%d kB), meminfo says %d kB", i, name, got, got/1024, kb[name])
			}
		}
		if si.Unit != 1 || si.Procs != uint16(in.Snap.Pids.Current) {
			t.Fatalf("case %d: unit %d procs %d", i, si.Unit, si.Procs)
		}
		want := ContainerUptime(&in.Container)
		if d := time.Duration(si.Uptime)*time.Second - want; d < 0 || d >= time.Second {
			t.Fatalf("case %d: uptime %d s for an age of %v", i, si.Uptime, want)
		}
		la, _ := Loadavg(nil, in)
		fields := strings.Fields(string(la))
		for k := 0; k < 3; k++ {
			x := si.Loads[k]
			rounded := fmt.Sprintf("%.2f", float64(x)/65536)
			truncated := fmt.Sprintf("%d.%02d", x>>16, ((x&0xffff)*100)>>16)
			if rounded != fields[k] || truncated != fields[k] {
				t.Fatalf("case %d: load %d = %d prints %s (rounded) / %s (truncated), loadavg says %s", i, k, x, rounded, truncated, fields[k])
			}
		}
	}
}

// TestSysinfoProcsWithoutPidsController falls back to the sampler's count.
func TestSysinfoProcsWithoutPidsController(t *testing.T) {
	in := &Input{Host: loadHost(t, "host")}
	in.Snap.Missing = map[string]error{cgroupreader.GroupPids: fmt.Errorf("no pids controller")}
	in.Container.Load = LoadAvg{Known: true, Total: 17}
	si, err := Sysinfo(in)
	if err != nil {
		t.Fatal(err)
	}
	if si.Procs != 17 {
		t.Errorf("procs %d, want the sampler's 17", si.Procs)
	}
	in.Snap.Missing = map[string]error{cgroupreader.GroupMemory: fmt.Errorf("gone")}
	if _, err := Sysinfo(in); err == nil {
		t.Error("no memory controller: want an error (the agent then lets the real syscall run)")
	}
}
