package facts

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"0\n":         {0},
		"0-3\n":       {0, 1, 2, 3},
		"0-1,4,6-7\n": {0, 1, 4, 6, 7},
		"3,1,2-3":     {1, 2, 3},
		"3,0-1,1":     {0, 1, 3},
		"\n":          nil,
		"":            nil,
	} {
		got, err := ParseCPUList([]byte(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "1-", "3-1", "-1", "0-99999999", "1,,2", "1,", "0-65536", "x-2", "1 2", "0-4294967295", "0-60000,0-60000"} {
		if got, err := ParseCPUList([]byte(bad)); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestAppendCPUList(t *testing.T) {
	for want, in := range map[string][]int{"0-2,5": {0, 1, 2, 5}, "7": {7}, "": nil, "0,2,4-5": {0, 2, 4, 5}} {
		if got := string(AppendCPUList(nil, in)); got != want {
			t.Errorf("AppendCPUList(%v) = %q; want %q", in, got, want)
		}
		back, err := ParseCPUList([]byte(want))
		if err != nil || (len(in) > 0 && !reflect.DeepEqual(back, in)) {
			t.Errorf("round trip of %v: %v, %v", in, back, err)
		}
	}
}

// TestParseSize pins the one grammar of every size flag: `corral run -m
// 1.5g` and `corral update --memory 1.5g` must agree.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"256m": 256 << 20, "256MB": 256 << 20, "256mb": 256 << 20, "256MiB": 256 << 20, "4096b": 4096, "1GiB": 1 << 30, "1.5g": 3 << 29,
		"4096": 4096, "1k": 1024, " 2 t ": 2 << 40, "0": 0, "1P": 1 << 50,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1e9", "0x10", "m", "lots", "1.5x", "+5", "99999999999p", "NaN", "inf", "12q", "1.2.3m", "99999999999999t"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d; want an error", bad, got)
		}
	}
}

func TestParseHostMemory(t *testing.T) {
	h, err := ParseHostMemory([]byte("MemTotal:       16384 kB\nMemFree: 1 kB\nSwapTotal: 2048 kB\nSwapFree:\t1024 kB\nHugePages_Total: 0\n"))
	if err != nil || h != (HostMemory{Total: 16384 << 10, SwapTotal: 2048 << 10, SwapFree: 1024 << 10}) {
		t.Errorf("ParseHostMemory = %+v, %v", h, err)
	}
	if _, err := ParseHostMemory([]byte("MemFree: 1 kB\n")); err != ErrNoMemTotal {
		t.Errorf("meminfo without MemTotal: %v, want ErrNoMemTotal", err)
	}
	if _, err := ParseHostMemory([]byte("MemTotal: lots kB\n")); err == nil || !strings.Contains(err.Error(), "bad line") {
		t.Errorf("meminfo with a bad MemTotal: %v", err)
	}
	real, err := ReadHostMemory()
	if err != nil || real.Total == 0 {
		t.Errorf("ReadHostMemory on this host = %+v, %v", real, err)
	}
}

// TestViewTables: every bound view is either a served file or the CPU
// directory holding served files; every served file is reachable through a
// bind, and each one stands in for the kernel file of the same path.
func TestViewTables(t *testing.T) {
	bound := map[string]bool{}
	for _, b := range Binds {
		bound[b.Rel] = true
		if b.Kernel != "/"+b.Rel {
			t.Errorf("bind %q goes to %q, not its twin", b.Rel, b.Kernel)
		}
	}
	for _, v := range Views {
		if v.Kernel != "/"+v.Rel {
			t.Errorf("view %q stands in for %q, not its twin", v.Rel, v.Kernel)
		}
		if !bound[v.Rel] && !strings.HasPrefix(v.Rel, CPUDir.Rel+"/") {
			t.Errorf("view %q is never bound", v.Rel)
		}
		if v.PSI != strings.HasPrefix(v.Rel, "proc/pressure/") {
			t.Errorf("view %q: PSI flag %v", v.Rel, v.PSI)
		}
	}
}
