package render

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// Format tests hold our output and the host's real files (this machine's
// /proc, live, and the embedded samples) to the same line grammar, so a
// tool that parses the kernel's file parses ours.

var grammar = map[string]struct {
	line *regexp.Regexp
	// allowEmpty: the file may have no lines at all (diskstats of a
	// container that did no I/O).
	allowEmpty bool
}{
	"proc/meminfo":                    {line: regexp.MustCompile(`^[A-Za-z0-9_()]+:\s+\d+( kB)?$`)},
	"proc/cpuinfo":                    {line: regexp.MustCompile(`^$|^[A-Za-z0-9_ ()#.-]+:( .*)?$|^[A-Za-z0-9_ ()#.-]+\t+:( .*)?$`)},
	"proc/stat":                       {line: regexp.MustCompile(`^cpu\d* +\d+( \d+){9}$|^[a-z_]+( \d+)+$`)},
	"proc/uptime":                     {line: regexp.MustCompile(`^\d+\.\d\d \d+\.\d\d$`)},
	"proc/loadavg":                    {line: regexp.MustCompile(`^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$`)},
	"proc/swaps":                      {line: regexp.MustCompile(`^Filename\t+Type\t+Size\t+Used\t+Priority$|^\S+ +\S+\t+\d+\t+\d+\t+-?\d+$`)},
	"proc/diskstats":                  {line: regexp.MustCompile(`^ *\d+ +\d+ \S+( \d+){11}(( \d+){4})?(( \d+){2})?$`), allowEmpty: true},
	"proc/pressure/cpu":               {line: pressureLine},
	"proc/pressure/memory":            {line: pressureLine},
	"proc/pressure/io":                {line: pressureLine},
	"sys/devices/system/cpu/online":   {line: cpuListLine},
	"sys/devices/system/cpu/possible": {line: cpuListLine},
	"sys/devices/system/cpu/present":  {line: cpuListLine},
}

var (
	pressureLine = regexp.MustCompile(`^(some|full) avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+$`)
	cpuListLine  = regexp.MustCompile(`^\d+(-\d+)?(,\d+(-\d+)?)*$`)
)

// checkViewGrammar fails t when a line of b breaks the kernel grammar of
// the file at path (relative to the mount), or b does not end in a newline.
func checkViewGrammar(t *testing.T, path string, b []byte) {
	t.Helper()
	g, ok := grammar[path]
	if !ok {
		t.Fatalf("no grammar for %s", path)
	}
	if len(b) == 0 {
		if !g.allowEmpty {
			t.Errorf("%s: empty", path)
		}
		return
	}
	if b[len(b)-1] != '\n' {
		t.Errorf("%s: does not end with a newline: %q", path, tail(b))
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !g.line.MatchString(line) {
			t.Errorf("%s line %d breaks the kernel's format: %q", path, i+1, line)
		}
	}
	if path == "proc/stat" {
		checkStatCPULines(t, b)
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-40):] }

// checkStatCPULines: the aggregate "cpu" line comes first, then cpu0..N-1
// in order, and nothing else starts with "cpu".
func checkStatCPULines(t *testing.T, b []byte) {
	t.Helper()
	lines := strings.Split(string(b), "\n")
	if !strings.HasPrefix(lines[0], "cpu  ") {
		t.Errorf("stat: first line is not the aggregate cpu line: %q", lines[0])
	}
	n := 0
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "cpu") {
			continue
		}
		if want := "cpu" + strconv.Itoa(n) + " "; !strings.HasPrefix(l, want) {
			t.Errorf("stat: cpu line %d is %q, want prefix %q", n, l, want)
		}
		n++
	}
	if n == 0 {
		t.Errorf("stat: no per-CPU lines")
	}
}

// hostProcFiles maps view paths to the host's real files.
var hostProcFiles = map[string]string{
	"proc/meminfo":                    "/proc/meminfo",
	"proc/cpuinfo":                    "/proc/cpuinfo",
	"proc/stat":                       "/proc/stat",
	"proc/uptime":                     "/proc/uptime",
	"proc/loadavg":                    "/proc/loadavg",
	"proc/swaps":                      "/proc/swaps",
	"proc/diskstats":                  "/proc/diskstats",
	"proc/pressure/cpu":               "/proc/pressure/cpu",
	"proc/pressure/memory":            "/proc/pressure/memory",
	"proc/pressure/io":                "/proc/pressure/io",
	"sys/devices/system/cpu/online":   "/sys/devices/system/cpu/online",
	"sys/devices/system/cpu/possible": "/sys/devices/system/cpu/possible",
	"sys/devices/system/cpu/present":  "/sys/devices/system/cpu/present",
}

// TestGrammarHoldsForRealHost: the grammar is the kernel's, checked
// against this machine's live files (and whatever kernel the test binary
// runs on, e.g. the cgroup v2 VM).
func TestGrammarHoldsForRealHost(t *testing.T) {
	for view, file := range hostProcFiles {
		b, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			t.Logf("%s: not on this kernel", file)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if view == "proc/cpuinfo" && !bytes.Contains(b, []byte("processor\t: ")) {
			t.Logf("cpuinfo of this architecture is not per-processor blocks; skipped")
			continue
		}
		t.Run(file, func(t *testing.T) {
			if view == "proc/stat" {
				checkViewGrammarNoCPUOrder(t, b)
				return
			}
			checkViewGrammar(t, view, b)
		})
	}
}

// checkViewGrammarNoCPUOrder checks the host's stat by line grammar only:
// on a host with offline CPUs its cpuN numbers have gaps.
func checkViewGrammarNoCPUOrder(t *testing.T, b []byte) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !grammar["proc/stat"].line.MatchString(line) {
			t.Errorf("host stat line %d: %q", i+1, line)
		}
	}
}

// TestGrammarHoldsForSamples: the embedded host samples (the inputs of the
// golden tests) are kernel files too.
func TestGrammarHoldsForSamples(t *testing.T) {
	for _, dir := range []string{"host", "host4"} {
		h := loadHost(t, dir)
		files := map[string][]byte{
			"proc/meminfo": h.Meminfo, "proc/cpuinfo": h.Cpuinfo, "proc/uptime": h.Uptime,
			"proc/loadavg": h.Loadavg, "proc/swaps": h.Swaps, "proc/diskstats": h.Diskstats,
		}
		for view, b := range files {
			checkViewGrammar(t, view, b)
		}
		checkViewGrammarNoCPUOrder(t, h.Stat)
	}
}

// realHostInput builds an Input from this machine's live files with a
// plausible container snapshot (256 MiB limit, one CPU of quota, swap).
func realHostInput(t *testing.T) *Input {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	online, err := facts.ParseCPUList(read("/sys/devices/system/cpu/online"))
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{
		Host: Host{
			Meminfo: read("/proc/meminfo"), Cpuinfo: read("/proc/cpuinfo"), Stat: read("/proc/stat"),
			Uptime: read("/proc/uptime"), Loadavg: read("/proc/loadavg"), Swaps: read("/proc/swaps"),
			Diskstats: read("/proc/diskstats"), CPUs: online,
		},
		Container: Container{InitStart: 5 * time.Second, Now: 65 * time.Second,
			Load: LoadAvg{Known: true, Avg: [3]float64{0.1, 0.2, 0.3}, Running: 1, Total: 3, LastPid: 9}},
		Opts: Options{SwapReporting: true, CPUQuotaView: true},
	}
	in.Snap.Mode = cgroupreader.ModeV2
	in.Snap.Memory = cgroupreader.Memory{
		Limit: cgroupreader.Limit{Value: 256 << 20, Set: true}, Usage: 100 << 20,
		SwapLimit: cgroupreader.Limit{Value: 64 << 20, Set: true}, SwapAccounting: true,
		Stat: cgroupreader.MemoryStat{Anon: 50 << 20, File: 40 << 20, ActiveFile: 20 << 20, InactiveFile: 15 << 20},
	}
	in.Snap.CPU = cgroupreader.CPU{Quota: cgroupreader.Limit{Value: 100000, Set: true}, Period: 100000,
		Cpuset: online, UsageUser: 3e9, UsageSystem: 1e9}
	// The first device of the host, so diskstats has a line.
	if f := field(in.Host.Diskstats, 0); f != nil {
		maj, _ := facts.ParseUint(f)
		min, _ := facts.ParseUint(field(in.Host.Diskstats, 1))
		in.Snap.IO = []cgroupreader.IODevice{{Major: uint32(maj), Minor: uint32(min), ReadBytes: 4096, ReadIOs: 1}}
	}
	return in
}

// TestRenderOnRealHost renders every view from this machine's live host
// files: our output keeps the kernel's grammar, meminfo keeps the host's
// field order and column layout, stat keeps the host's other lines.
func TestRenderOnRealHost(t *testing.T) {
	in := realHostInput(t)
	for _, v := range Views() {
		out, err := v.Render(nil, in)
		if err != nil {
			if strings.HasPrefix(v.Path, "proc/pressure/") {
				continue // no PSI in this snapshot: ENOENT for a container, the host file for the host
			}
			if v.Path == "proc/cpuinfo" && err == errCpuinfoFormat {
				continue // an architecture without per-processor blocks
			}
			t.Errorf("%s: %v", v.Path, err)
			continue
		}
		checkViewGrammar(t, v.Path, out)
	}
	out, err := Meminfo(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	checkMeminfoLikeHost(t, in.Host.Meminfo, out)
	if got := meminfoValue(t, out, "MemTotal"); got != 262144 {
		t.Errorf("MemTotal = %d kB, want 262144", got)
	}
	stat, err := Stat(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nonCPULines(stat), nonCPULines(in.Host.Stat); len(got) != len(want) {
		t.Errorf("stat has %d non-cpu lines, host %d", len(got), len(want))
	}
}

// checkMeminfoLikeHost: same field names in the same order as the host's
// file, and where both values fit the kernel's 8-column field, the same
// line length (so the columns line up exactly as in the kernel's file).
func checkMeminfoLikeHost(t *testing.T, host, ours []byte) {
	t.Helper()
	hl := strings.Split(strings.TrimSuffix(string(host), "\n"), "\n")
	ol := strings.Split(strings.TrimSuffix(string(ours), "\n"), "\n")
	if len(hl) != len(ol) {
		t.Fatalf("meminfo has %d lines, host %d", len(ol), len(hl))
	}
	for i := range hl {
		hn, hv, _ := strings.Cut(hl[i], ":")
		on, ov, _ := strings.Cut(ol[i], ":")
		if hn != on {
			t.Errorf("meminfo line %d is %q, host has %q", i+1, on, hn)
			continue
		}
		if digits(hv) <= 8 && digits(ov) <= 8 && len(hl[i]) != len(ol[i]) {
			t.Errorf("meminfo line %d %q is laid out unlike the host's %q", i+1, ol[i], hl[i])
		}
	}
}

func digits(v string) int {
	return len(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
}

// meminfoValue returns the value of a meminfo line in kB.
func meminfoValue(t testing.TB, b []byte, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(string(b), "\n") {
		if n, v, ok := strings.Cut(l, ":"); ok && n == name {
			x, ok := facts.MeminfoKB([]byte(v))
			if !ok {
				t.Fatalf("meminfo %s: bad value %q", name, v)
			}
			return x
		}
	}
	t.Fatalf("meminfo has no %s line", name)
	return 0
}

func nonCPULines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(l, "cpu") {
			out = append(out, l)
		}
	}
	return out
}
