package tests

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runLimits are the limits of the acceptance checks.
var runLimits = []string{"--memory", "256m", "--memory-swap", "256m", "--cpus", "0.5", "--cpuset-cpus", "0"}

// runCheck is one command run in a limited container and what its output
// must satisfy, with and without the views.
type runCheck struct {
	name string
	tool string   // a host program the default root must have ("" = none)
	argv []string // run directly, not through sh: busybox's sh (the VM's)
	// prefers its own applets to the PATH, so `sh -c free` would not run
	// procps free there
	views func(t *testing.T, out string) // with corralfs's views bound
	host  func(t *testing.T, out string) // with --views none: the host's values
}

// runChecks are the acceptance checks. The JVM is not compared
// without views: it reads the cgroup limits itself (the cgroup tree is
// mounted read-only in the container), so its heap is small either way.
func runChecks(t *testing.T) []runCheck {
	hostMiB := runHostMemTotalKB(t) / 1024
	hostOnline := strings.TrimSpace(runReadFile(t, "/sys/devices/system/cpu/online"))
	hostProcs, _ := strconv.Atoi(runCountProcessors(runReadFile(t, "/proc/cpuinfo")))
	return []runCheck{
		{
			name: "free", tool: "free", argv: []string{"free", "-m"},
			views: func(t *testing.T, out string) { runExpectFreeTotal(t, out, 256) },
			host:  func(t *testing.T, out string) { runExpectFreeTotal(t, out, hostMiB) }, // ±1: rounding
		},
		{
			name: "top", tool: "top", argv: []string{"top", "-bn1"},
			views: func(t *testing.T, out string) {
				if !regexp.MustCompile(`MiB Mem :\s+256\.0 total`).MatchString(out) {
					t.Errorf("top does not show 256.0 MiB total:\n%s", out)
				}
			},
			host: func(t *testing.T, out string) {
				if regexp.MustCompile(`MiB Mem :\s+256\.0 total`).MatchString(out) {
					t.Errorf("without views top must show the host's memory:\n%s", out)
				}
			},
		},
		{
			name: "cpuinfo", argv: []string{"cat", "/proc/cpuinfo"},
			views: func(t *testing.T, out string) { runExpectEqual(t, runCountProcessors(out), "1") },
			host:  func(t *testing.T, out string) { runExpectEqual(t, runCountProcessors(out), strconv.Itoa(hostProcs)) },
		},
		{
			name: "getconf", tool: "getconf", argv: []string{"getconf", "_NPROCESSORS_ONLN"},
			views: func(t *testing.T, out string) { runExpectEqual(t, out, "1") },
			host: func(t *testing.T, out string) {
				// glibc counts /sys/devices/system/cpu/online: the host's.
				if hostProcs > 1 {
					runExpectEqual(t, out, strconv.Itoa(hostProcs))
				}
			},
		},
		{
			name: "online", argv: []string{"cat", "/sys/devices/system/cpu/online"},
			views: func(t *testing.T, out string) { runExpectEqual(t, out, "0") },
			host:  func(t *testing.T, out string) { runExpectEqual(t, out, hostOnline) },
		},
		{
			name: "uptime", argv: []string{"cat", "/proc/uptime"},
			views: func(t *testing.T, out string) {
				if up := runFirstFloat(t, out); up >= 5 {
					t.Errorf("container uptime %.2f s, want under 5 s", up)
				}
			},
		},
		{
			name: "java", tool: "java", argv: []string{"java", "-XX:+PrintFlagsFinal", "-version"},
			views: func(t *testing.T, out string) {
				if heap := runMaxHeap(t, out); heap > 128<<20 {
					t.Errorf("MaxHeapSize %d in a 256 MiB container, want at most 128 MiB", heap)
				}
			},
		},
	}
}

// TestRunViewsDefaultRoot runs the acceptance checks on the default root
// (the host's programs: procps free and top, glibc getconf, the JDK).
func TestRunViewsDefaultRoot(t *testing.T) {
	e := runNewEnv(t, true)
	for _, c := range runChecks(t) {
		t.Run(c.name, func(t *testing.T) {
			if c.tool != "" {
				runNeedTool(t, c.tool)
			}
			out := e.exec(t, append([]string{"--views", e.views}, runLimits...), c.argv...)
			c.views(t, out)
			if c.host != nil {
				flags := append([]string{"--views", "none"}, runLimits...)
				c.host(t, e.exec(t, flags, c.argv...))
			}
		})
	}
}

// TestRunViewsBusybox runs the file-based checks in a busybox rootfs: the
// views do not depend on the programs reading them.
func TestRunViewsBusybox(t *testing.T) {
	e := runNewEnv(t, true)
	root := runBusybox(t)
	flags := append([]string{"--rootfs", root, "--views", e.views}, runLimits...)
	out := e.sh(t, flags, "grep MemTotal /proc/meminfo; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; nproc")
	lines := strings.Split(out, "\n")
	if len(lines) != 4 {
		t.Fatalf("output %q", out)
	}
	if !regexp.MustCompile(`^MemTotal:\s+262144 kB$`).MatchString(lines[0]) {
		t.Errorf("meminfo %q, want MemTotal 262144 kB", lines[0])
	}
	runExpectEqual(t, lines[1], "1")
	runExpectEqual(t, lines[2], "0")
	runExpectEqual(t, lines[3], "1") // sched_getaffinity: the cpuset itself
	// Every view is bound read-only.
	r := e.run(t, append(append(e.runFlags(), "--rootfs", root), "--", "sh", "-c", "echo x > /proc/meminfo")...)
	if r.code == 0 {
		t.Error("writing /proc/meminfo in the container succeeded")
	}
}

// TestRunViewsAutoAndErrors: without --views, corral looks for a live
// corralfs at /var/lib/corralfs and says once that it runs without one;
// --views naming a directory without views is an error.
func TestRunViewsAutoAndErrors(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	if runIsMounted("/var/lib/corralfs") {
		t.Log("a corralfs serves /var/lib/corralfs here: checking that it is used")
		out := e.run(t, "run", "--rm", "--sysinfo", "off", "--rootfs", root, "--memory", "64m", "--", "grep", "MemTotal", "/proc/meminfo")
		if !strings.Contains(out.stdout, "65536 kB") {
			t.Errorf("auto views: %q, want MemTotal 65536 kB", out.stdout)
		}
	} else {
		out := e.run(t, "run", "--rm", "--sysinfo", "off", "--rootfs", root, "--", "true")
		if out.code != 0 {
			t.Fatalf("exit %d: %s", out.code, out.stderr)
		}
		if n := strings.Count(out.stderr, "no corralfs mounted at /var/lib/corralfs"); n != 1 {
			t.Errorf("want the no-corralfs notice exactly once on stderr, got %d:\n%s", n, out.stderr)
		}
	}
	out := e.run(t, "run", "--rm", "--views", "none", "--sysinfo", "off", "--rootfs", root, "--", "true")
	if out.code != 0 || strings.Contains(out.stderr, "corralfs") {
		t.Errorf("--views none must be silent: exit %d, stderr %q", out.code, out.stderr)
	}
	out = e.run(t, "run", "--rm", "--views", t.TempDir(), "--sysinfo", "off", "--rootfs", root, "--", "true")
	if out.code != 125 || !strings.Contains(out.stderr, "no view files") {
		t.Errorf("--views on an empty dir: exit %d, stderr %q; want 125 and a clear error", out.code, out.stderr)
	}
}

func runReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func runExpectEqual(t *testing.T, got, want string) {
	t.Helper()
	if strings.TrimSpace(got) != want {
		t.Errorf("got %q, want %q", strings.TrimSpace(got), want)
	}
}

// runCountProcessors counts the "processor" lines of a cpuinfo text.
func runCountProcessors(cpuinfo string) string {
	n := 0
	for _, line := range strings.Split(cpuinfo, "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return strconv.Itoa(n)
}

// runExpectFreeTotal checks the total column of free -m's Mem: line
// (within 1 MiB: free rounds a host's MemTotal in kB).
func runExpectFreeTotal(t *testing.T, out string, wantMiB uint64) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "Mem:" {
			got, _ := strconv.ParseUint(f[1], 10, 64)
			if got+1 < wantMiB || got > wantMiB+1 {
				t.Errorf("free -m total %d MiB, want %d:\n%s", got, wantMiB, out)
			}
			return
		}
	}
	t.Errorf("no Mem: line in free -m:\n%s", out)
}

func runFirstFloat(t *testing.T, out string) float64 {
	t.Helper()
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("empty output")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("not a number: %q", out)
	}
	return v
}

// runMaxHeap parses `size_t MaxHeapSize = N {product} {ergonomic}`.
func runMaxHeap(t *testing.T, out string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`MaxHeapSize\s+=\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MaxHeapSize in %q", out)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}
