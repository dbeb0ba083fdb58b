package render

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
	"github.com/corral-dev/corral/fusefs/facts"
)

// Golden tests: every view rendered from fixture inputs, compared with
// testdata/<case>/<view>.golden. Regenerate with
//
//	go test ./fusefs -run Golden -update
//
// and review the diff. The fixtures are embedded so the compiled test binary
// runs where the source tree is absent (the cgroup v2 VM).

var update = flag.Bool("update", false, "rewrite the .golden files from the current renders")

//go:embed testdata
var testdataFS embed.FS

// caseFile is testdata/<case>/input.json: a hand-written Input. Durations
// are strings ("380s"), pressure text is plain text, Missing is a list of
// group names (Snapshot.Missing holds errors, which JSON cannot carry).
type caseFile struct {
	Host          string                `json:"host"` // host sample directory under testdata/
	HostNamespace bool                  `json:"hostNamespace"`
	InitStart     string                `json:"initStart"`
	Now           string                `json:"now"`
	Load          LoadAvg               `json:"load"`
	Opts          Options               `json:"opts"`
	Missing       []string              `json:"missing"`
	PSI           map[string]string     `json:"psi"` // "cpu", "memory", "io"
	Snapshot      cgroupreader.Snapshot `json:"snapshot"`
}

// loadHost reads a host sample directory (testdata/host, testdata/host4)
// into a Host with every file filled in.
func loadHost(t testing.TB, dir string) Host {
	t.Helper()
	read := func(name string) []byte {
		b, err := testdataFS.ReadFile(path.Join("testdata", dir, name))
		if err != nil {
			t.Fatalf("host sample: %v", err)
		}
		return b
	}
	cpus, err := facts.ParseCPUList(read("online"))
	if err != nil {
		t.Fatal(err)
	}
	return Host{
		Meminfo:   read("meminfo"),
		Cpuinfo:   read("cpuinfo"),
		Stat:      read("stat"),
		Uptime:    read("uptime"),
		Loadavg:   read("loadavg"),
		Swaps:     read("swaps"),
		Diskstats: read("diskstats"),
		CPUs:      cpus,
	}
}

func loadCase(t testing.TB, name string) *Input {
	t.Helper()
	raw, err := testdataFS.ReadFile(path.Join("testdata", name, "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf caseFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("%s/input.json: %v", name, err)
	}
	in := &Input{Host: loadHost(t, cf.Host), Snap: cf.Snapshot, Opts: cf.Opts}
	in.Container = Container{HostNamespace: cf.HostNamespace, Load: cf.Load}
	if in.Container.InitStart, err = time.ParseDuration(cf.InitStart); err != nil {
		t.Fatalf("%s: initStart: %v", name, err)
	}
	if in.Container.Now, err = time.ParseDuration(cf.Now); err != nil {
		t.Fatalf("%s: now: %v", name, err)
	}
	for _, g := range cf.Missing {
		if in.Snap.Missing == nil {
			in.Snap.Missing = map[string]error{}
		}
		in.Snap.Missing[g] = fmt.Errorf("fixture: %s not readable", g)
	}
	for res, text := range cf.PSI {
		switch res {
		case "cpu":
			in.Snap.PSI.CPU = []byte(text)
		case "memory":
			in.Snap.PSI.Memory = []byte(text)
		case "io":
			in.Snap.PSI.IO = []byte(text)
		default:
			t.Fatalf("%s: unknown psi resource %q", name, res)
		}
	}
	return in
}

// handCases lists testdata directories holding an input.json.
func handCases(t testing.TB) []string {
	t.Helper()
	ents, err := testdataFS.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if _, err := fs.Stat(testdataFS, path.Join("testdata", e.Name(), "input.json")); err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) < 7 {
		t.Fatalf("only %d golden cases found: %v", len(names), names)
	}
	return names
}

// goldenName is the file a view's output is kept in: "proc/pressure/cpu"
// -> "proc_pressure_cpu.golden".
func goldenName(v View) string { return strings.ReplaceAll(v.Path, "/", "_") + ".golden" }

// renderForGolden renders a view; a render error is part of the expected
// output ("fallback: ..."), so a view that should fall back to the host
// file is pinned as firmly as one that renders.
func renderForGolden(v View, in *Input) []byte {
	out, err := v.Render(nil, in)
	if err != nil {
		return []byte("fallback: " + stableError(err) + "\n")
	}
	return out
}

// stableError names a render error by its sentinel: the wrapped detail
// holds temporary paths that change from run to run.
func stableError(err error) string {
	for _, s := range []error{errNoMemory, ErrNoPSI, errNoCPUAcct, errNoIO, errCpuinfoFormat, errCpuinfoNoVisible, facts.ErrNoMemTotal} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return err.Error()
}

// checkGolden compares got with testdata/<dir>/<file> (or rewrites it with
// -update, which needs the source tree).
func checkGolden(t *testing.T, dir, file string, got []byte) {
	t.Helper()
	rel := path.Join("testdata", dir, file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rel, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := testdataFS.ReadFile(rel)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the render:\n--- want\n%s--- got\n%s", rel, want, got)
	}
}

func TestGoldenHandCases(t *testing.T) {
	for _, name := range handCases(t) {
		t.Run(name, func(t *testing.T) {
			for _, v := range Views() {
				in := loadCase(t, name)
				got := renderForGolden(v, in)
				checkGolden(t, name, goldenName(v), got)
				if !bytes.HasPrefix(got, []byte("fallback: ")) {
					checkViewGrammar(t, v.Path, got)
				}
			}
		})
	}
}

// TestFallbackCases pins which views fall back to the host file, and that
// they do so with an error rather than wrong numbers.
func TestFallbackCases(t *testing.T) {
	in := loadCase(t, "nomemory")
	for _, p := range []string{"proc/meminfo", "proc/swaps"} {
		v, _ := ViewByPath(p)
		if _, err := v.Render(nil, in); !errors.Is(err, errNoMemory) {
			t.Errorf("%s without memory controller: err = %v, want errNoMemory", p, err)
		}
	}
	if _, err := ComputeMemory(in); !errors.Is(err, errNoMemory) {
		t.Errorf("ComputeMemory without memory controller: err = %v", err)
	}
	// The other views do not need the memory controller.
	for _, p := range []string{"proc/cpuinfo", "proc/stat", "proc/uptime", "sys/devices/system/cpu/online"} {
		v, _ := ViewByPath(p)
		if _, err := v.Render(nil, in); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// No PSI in the snapshot: ErrNoPSI (ENOENT for a container).
	in = loadCase(t, "nolimit")
	for _, p := range []string{"proc/pressure/cpu", "proc/pressure/memory", "proc/pressure/io"} {
		v, _ := ViewByPath(p)
		if _, err := v.Render(nil, in); !errors.Is(err, ErrNoPSI) {
			t.Errorf("%s without PSI: err = %v", p, err)
		}
	}
}

// fixtureContainer is the non-cgroup part of every fixture-tree case: a
// container started 100 s after boot, read at 160.5 s, with a known load.
var fixtureContainer = Container{
	InitStart: 100 * time.Second,
	Now:       160500 * time.Millisecond,
	Load:      LoadAvg{Known: true, Avg: [3]float64{0.75, 0.5, 0.25}, Running: 1, Blocked: 0, Total: 2, LastPid: 1033},
}

// fixtureInputs reads every case of cgroupreader's fixture tree for a
// layout through the real reader (the same path the daemon takes) and
// pairs it with the 4-CPU host sample, which matches the fixture host.
// Besides the six fixture containers it adds "swapoff" (the swap case with
// swap reporting off) and "nomemory" (the nolimit case with its memory
// cgroup removed from the tree).
func fixtureInputs(t *testing.T, layout string) map[string]*Input {
	t.Helper()
	cfg := fixtures.Materialize(t, layout)
	host := loadHost(t, "host4")
	if len(host.CPUs) != fixtures.HostCPUs {
		t.Fatalf("host4 sample has %d CPUs, fixture host %d", len(host.CPUs), fixtures.HostCPUs)
	}
	on := Options{SwapReporting: true, CPUQuotaView: true}
	read := func(r cgroupreader.Reader, c fixtures.Case) cgroupreader.Snapshot {
		t.Helper()
		p, err := r.PathsOf(c.Pid)
		if err != nil {
			t.Fatalf("%s %s: PathsOf: %v", layout, c.Name, err)
		}
		snap, err := r.Snapshot(p, cgroupreader.DefaultParts|cgroupreader.PartIO|cgroupreader.PartPSI)
		if err != nil {
			t.Fatalf("%s %s: Snapshot: %v", layout, c.Name, err)
		}
		return snap
	}
	r, err := cgroupreader.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ins := map[string]*Input{}
	for _, c := range fixtures.Cases {
		ins[c.Name] = &Input{Host: host, Snap: read(r, c), Container: fixtureContainer, Opts: on}
	}
	swapoff := *ins[fixtures.Swap.Name]
	swapoff.Opts.SwapReporting = false
	ins["swapoff"] = &swapoff

	// Break the tree: nolimit's memory cgroup vanishes.
	if layout == fixtures.V1 {
		err = os.RemoveAll(filepath.Join(cfg.CgroupRoot, "memory", "nolimit"))
	} else {
		for _, f := range []string{"memory.max", "memory.current", "memory.stat", "memory.swap.max", "memory.swap.current"} {
			if err == nil {
				err = os.Remove(filepath.Join(cfg.CgroupRoot, "nolimit", f))
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	nomem := &Input{Host: host, Snap: read(r, fixtures.NoLimit), Container: fixtureContainer, Opts: on}
	if _, missing := nomem.Snap.Missing[cgroupreader.GroupMemory]; !missing {
		t.Fatalf("%s: removing the memory cgroup did not make memory Missing: %v", layout, nomem.Snap.Missing)
	}
	ins["nomemory"] = nomem
	return ins
}

// TestGoldenFixtureTrees renders every view for every fixture container of
// both cgroup layouts: testdata/fixtures/<layout>/<case>/<view>.golden.
func TestGoldenFixtureTrees(t *testing.T) {
	for _, layout := range []string{fixtures.V1, fixtures.V2} {
		for name, in := range fixtureInputs(t, layout) {
			t.Run(layout+"/"+name, func(t *testing.T) {
				for _, v := range Views() {
					got := renderForGolden(v, in)
					checkGolden(t, path.Join("fixtures", layout, name), goldenName(v), got)
					if !bytes.HasPrefix(got, []byte("fallback: ")) {
						checkViewGrammar(t, v.Path, got)
					}
				}
			})
		}
	}
}

// TestFixtureLayoutsAgree: the two trees describe the same containers, so
// everything that does not depend on what only one cgroup version reports
// (v1 per-CPU times, v2 slab and kernel stack, PSI) must render the same.
func TestFixtureLayoutsAgree(t *testing.T) {
	v1, v2 := fixtureInputs(t, fixtures.V1), fixtureInputs(t, fixtures.V2)
	same := []string{"proc/cpuinfo", "proc/swaps", "proc/diskstats", "proc/loadavg",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/possible", "sys/devices/system/cpu/present"}
	for name := range v1 {
		for _, p := range same {
			if name == fixtures.Ancestor.Name && p == "proc/diskstats" {
				// v2 only: the ancestor does not enable io for the
				// child, so the child has no io.stat and diskstats
				// falls back; v1's child has (empty) blkio files.
				continue
			}
			v, _ := ViewByPath(p)
			a, b := renderForGolden(v, v1[name]), renderForGolden(v, v2[name])
			if !bytes.Equal(a, b) {
				t.Errorf("%s %s: v1 and v2 differ:\n%s\n%s", name, p, a, b)
			}
		}
		m1, err1 := ComputeMemory(v1[name])
		m2, err2 := ComputeMemory(v2[name])
		if (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: ComputeMemory errors differ: %v / %v", name, err1, err2)
			continue
		}
		if m1.Total != m2.Total || m1.Free != m2.Free || m1.SwapTotal != m2.SwapTotal || m1.SwapFree != m2.SwapFree ||
			m1.Cached != m2.Cached || m1.Shared != m2.Shared {
			t.Errorf("%s: memory differs:\nv1 %+v\nv2 %+v", name, m1, m2)
		}
		s1, _ := Stat(nil, v1[name])
		s2, _ := Stat(nil, v2[name])
		if l1, l2 := firstLine(s1), firstLine(s2); l1 != l2 {
			t.Errorf("%s: stat cpu line v1 %q, v2 %q", name, l1, l2)
		}
	}
}

func firstLine(b []byte) string { l, _, _ := strings.Cut(string(b), "\n"); return l }
