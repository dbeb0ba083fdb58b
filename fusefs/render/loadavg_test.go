package render

import (
	"math"
	"testing"
)

func TestLoadavg(t *testing.T) {
	for _, tc := range []struct {
		load LoadAvg
		want string
	}{
		{LoadAvg{Known: true, Avg: [3]float64{0.5, 0.255, 1.004}, Running: 2, Total: 7, LastPid: 42}, "0.50 0.26 1.00 2/7 42\n"},
		{LoadAvg{Known: true, Avg: [3]float64{12.345, 0, 100}, Running: 0, Total: 1, LastPid: 1}, "12.35 0.00 100.00 0/1 1\n"},
		// Not sampled yet: averages 0, at least the reader itself.
		{LoadAvg{Avg: [3]float64{3, 3, 3}}, "0.00 0.00 0.00 1/1 0\n"},
		{LoadAvg{Running: 3, Total: 9, LastPid: 77}, "0.00 0.00 0.00 3/9 77\n"},
		// Garbage from a sampler bug never reaches the file.
		{LoadAvg{Known: true, Avg: [3]float64{-1, math.NaN(), math.Inf(1)}, Running: -1, Total: -5, LastPid: -3}, "0.00 0.00 0.00 0/0 0\n"},
	} {
		in := &Input{Container: Container{Load: tc.load}}
		got, err := Loadavg(nil, in)
		if err != nil || string(got) != tc.want {
			t.Errorf("Loadavg(nil, %+v) = %q, %v; want %q", tc.load, got, err, tc.want)
		}
		checkViewGrammar(t, "proc/loadavg", got)
	}
}

func TestLoadCentis(t *testing.T) {
	for avg, want := range map[float64]uint64{0: 0, 0.004: 0, 0.005: 1, 0.994: 99, 0.995: 100, 1.5: 150} {
		if got := LoadCentis(avg); got != want {
			t.Errorf("LoadCentis(%v) = %d, want %d", avg, got, want)
		}
	}
}
