package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
)

func cpuinfoSample(t testing.TB, arch string) []byte {
	t.Helper()
	b, err := testdataFS.ReadFile("testdata/cpuinfo/" + arch)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cpuInput(cpuinfo []byte, hostCPUs, cpuset []int) *Input {
	in := &Input{Host: Host{Cpuinfo: cpuinfo, CPUs: hostCPUs}, Opts: Options{CPUQuotaView: true}}
	in.Snap.CPU.Cpuset = cpuset
	return in
}

// processors returns the "processor" values of a cpuinfo, in order.
func processors(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "processor" {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func TestCpuinfoX86(t *testing.T) {
	host := loadHost(t, "host4")
	in := cpuInput(host.Cpuinfo, host.CPUs, []int{1, 3})
	out, err := Cpuinfo(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(processors(out), ","); got != "0,1" {
		t.Errorf("processors %s, want 0,1", got)
	}
	// The blocks are host CPUs 1 and 3: their own core ids and apicids.
	for _, want := range []string{"core id\t\t: 1\n", "core id\t\t: 3\n", "apicid\t\t: 3\n", "siblings\t: 2\n", "cpu cores\t: 2\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpuinfo lacks %q", want)
		}
	}
	if strings.Contains(string(out), "siblings\t: 4") || strings.Contains(string(out), "core id\t\t: 0\n") {
		t.Error("cpuinfo still shows the host's topology or CPU 0")
	}
	// Same layout as the host: blocks end in a blank line; every line of
	// a kept block other than the rewritten ones is byte-identical.
	if !bytes.HasSuffix(out, []byte("power management:\n\n")) {
		t.Errorf("cpuinfo does not end like the host's: %q", tail(out))
	}
	hostLines := map[string]bool{}
	for _, l := range strings.Split(string(host.Cpuinfo), "\n") {
		hostLines[l] = true
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, _, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(k) {
		case "processor", "siblings", "cpu cores":
			continue
		}
		if !hostLines[l] {
			t.Errorf("line %q is not the host's", l)
		}
	}
}

func TestCpuinfoOtherArchitectures(t *testing.T) {
	arm64 := cpuinfoSample(t, "arm64")
	out, err := Cpuinfo(nil, cpuInput(arm64, []int{0, 1, 2, 3}, []int{2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(processors(out), ","); got != "0,1" {
		t.Errorf("arm64: processors %s", got)
	}
	if !strings.Contains(string(out), "CPU architecture: 8\n") {
		t.Error("arm64: fields lost")
	}

	// arm32: the machine block after the processors is kept.
	arm32 := cpuinfoSample(t, "arm32")
	out, err = Cpuinfo(nil, cpuInput(arm32, []int{0, 1, 2, 3}, []int{0}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(processors(out), ","); got != "0" {
		t.Errorf("arm32: processors %s", got)
	}
	if !strings.HasSuffix(string(out), "Model\t\t: Raspberry Pi 3 Model B Rev 1.2\n\n") {
		t.Errorf("arm32: machine block lost: %q", tail(out))
	}

	// s390x has no per-processor blocks: fall back to the host's file.
	_, err = Cpuinfo(nil, cpuInput(cpuinfoSample(t, "s390x"), []int{0, 1, 2, 3}, []int{0}))
	if !errors.Is(err, errCpuinfoFormat) {
		t.Errorf("s390x: err = %v, want errCpuinfoFormat", err)
	}
}

func TestCpuinfoFallbacks(t *testing.T) {
	host := loadHost(t, "host4")
	for name, cpuinfo := range map[string]string{"empty": "", "no blocks": "garbage\n", "blank lines": "\n\n\n"} {
		if _, err := Cpuinfo(nil, cpuInput([]byte(cpuinfo), host.CPUs, nil)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// The visible CPUs have no block (host file and CPU list disagree).
	if _, err := Cpuinfo(nil, cpuInput(host.Cpuinfo, []int{6, 7}, nil)); !errors.Is(err, errCpuinfoNoVisible) {
		t.Errorf("no visible block: err = %v", err)
	}
}

func TestCpuinfoQuota(t *testing.T) {
	host := loadHost(t, "host4")
	in := cpuInput(host.Cpuinfo, host.CPUs, nil)
	in.Snap.CPU.Quota = cgroupreader.Limit{Value: 250000, Set: true}
	in.Snap.CPU.Period = 100000
	out, _ := Cpuinfo(nil, in)
	if got := strings.Join(processors(out), ","); got != "0,1,2" {
		t.Errorf("2.5 CPUs of quota: processors %s, want 0,1,2", got)
	}
}

// bigCpuinfo makes an n-CPU x86 cpuinfo from the real block of CPU 0.
func bigCpuinfo(t testing.TB, n int) ([]byte, []int) {
	t.Helper()
	block, _, _ := bytes.Cut(loadHost(t, "host").Cpuinfo, []byte("\n\n"))
	_, rest, _ := bytes.Cut(block, []byte("\n"))
	var b bytes.Buffer
	var cpus []int
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "processor\t: %d\n%s\n\n", i, rest)
		cpus = append(cpus, i)
	}
	return b.Bytes(), cpus
}

func BenchmarkCpuinfo(b *testing.B) {
	for _, bc := range []struct {
		name   string
		n      int
		cpuset []int
	}{{"host4-2visible", 4, []int{1, 3}}, {"host64-4visible", 64, []int{8, 9, 10, 11}}, {"host64-all", 64, nil}} {
		b.Run(bc.name, func(b *testing.B) {
			info, cpus := bigCpuinfo(b, bc.n)
			in := cpuInput(info, cpus, bc.cpuset)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Cpuinfo(nil, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
