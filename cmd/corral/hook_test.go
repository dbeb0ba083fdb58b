package main

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime/views"
)

// TestHookSkipsViewsTheConfigBinds: on CRI-O with both NRI and the hook,
// corral-nri has put the views into config.json; the hook binds only what
// is missing instead of stacking copies.
func TestHookSkipsViewsTheConfigBinds(t *testing.T) {
	present := []views.Bound{{View: facts.Meminfo}, {View: facts.Cpuinfo}, {View: facts.CPUDir, Dir: true}}
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc"},
		{Destination: "/proc/meminfo", Type: "bind", Source: "/var/lib/corralfs/proc/meminfo"},
		{Destination: "/sys/devices/system/cpu", Type: "bind", Source: "/var/lib/corralfs/sys/devices/system/cpu"},
	}}
	var got []string
	for _, b := range notBoundBy(spec, present) {
		got = append(got, b.Kernel)
	}
	if !slices.Equal(got, []string{"/proc/cpuinfo"}) {
		t.Errorf("left to bind %v, want only /proc/cpuinfo", got)
	}
	if n := len(notBoundBy(&specs.Spec{}, present)); n != len(present) {
		t.Errorf("a config without binds: %d of %d left", n, len(present))
	}
}
