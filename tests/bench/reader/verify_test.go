package main

import (
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/bench/internal/proto"
)

// The checks the scale section counts as "wrong answers" must catch a
// wrong MemTotal and a wrong CPU count, and accept right ones.
func TestVerify(t *testing.T) {
	meminfo := []byte("MemTotal:         307200 kB\nMemFree:          300000 kB\n")
	stat := []byte("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5\ncpufreq 1\n")
	cases := []struct {
		path    string
		content []byte
		check   proto.Check
		bad     string
	}{
		{"/x/proc/meminfo", meminfo, proto.Check{MemTotalKB: 307200}, ""},
		{"/x/proc/meminfo", meminfo, proto.Check{MemTotalKB: 1024}, "MemTotal 307200 kB"},
		{"/x/proc/meminfo", []byte("MemFree: 1 kB\n"), proto.Check{MemTotalKB: 1}, "no MemTotal"},
		{"/x/proc/stat", stat, proto.Check{CPUs: 2}, ""},
		{"/x/proc/stat", stat, proto.Check{CPUs: 1}, "2 cpuN lines"},
		{"/x/proc/stat", stat, proto.Check{MemTotalKB: 5}, ""}, // not a meminfo: MemTotal not looked at
	}
	for _, c := range cases {
		got := verify(c.path, c.content, &c.check)
		if (c.bad == "") != (got == "") || !strings.Contains(got, c.bad) {
			t.Errorf("verify(%s, %+v) = %q, want %q", c.path, c.check, got, c.bad)
		}
	}
}
