package fusefs

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
	cpus, err := ParseCPUList(read("online"))
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
	out, err := v.Render(in)
	if err != nil {
		return []byte("fallback: " + err.Error() + "\n")
	}
	return out
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
		if _, err := v.Render(in); !errors.Is(err, errNoMemory) {
			t.Errorf("%s without memory controller: err = %v, want errNoMemory", p, err)
		}
	}
	if _, err := ComputeMemory(in); !errors.Is(err, errNoMemory) {
		t.Errorf("ComputeMemory without memory controller: err = %v", err)
	}
	// The other views do not need the memory controller.
	for _, p := range []string{"proc/cpuinfo", "proc/stat", "proc/uptime", "sys/devices/system/cpu/online"} {
		v, _ := ViewByPath(p)
		if _, err := v.Render(in); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// No PSI in the snapshot: the pressure files fall back.
	in = loadCase(t, "nolimit")
	for _, p := range []string{"proc/pressure/cpu", "proc/pressure/memory", "proc/pressure/io"} {
		v, _ := ViewByPath(p)
		if _, err := v.Render(in); !errors.Is(err, errNoPSI) {
			t.Errorf("%s without PSI: err = %v", p, err)
		}
	}
}
