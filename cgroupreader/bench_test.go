package cgroupreader_test

import (
	"os"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/cgroupreader/fixtures"
)

// What each view asks for (see fusefs): meminfo and swaps read memory only,
// cpuinfo and sys/devices/system/cpu the quota and the cpuset, stat the CPU
// usage too; "default" is DefaultParts (what a zero Part reads); "all" adds io, psi and tasks.
var benchOptions = []struct {
	name string
	opt  cgroupreader.Part
}{
	{"meminfo", cgroupreader.PartMemory},
	{"cpuinfo", cgroupreader.PartCPUQuota | cgroupreader.PartCpuset},
	{"stat", cgroupreader.PartCPUQuota | cgroupreader.PartCPUUsage | cgroupreader.PartCpuset},
	{"default", cgroupreader.DefaultParts},
	{"all", all},
}

func benchSnapshot(b *testing.B, r cgroupreader.Reader, p cgroupreader.Paths) {
	for _, o := range benchOptions {
		b.Run(o.name, func(b *testing.B) {
			if _, err := r.Snapshot(p, o.opt); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Snapshot(p, o.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshot reads the fixture case with a limit in an ancestor
// (the deepest walk) from the fixture trees.
func BenchmarkSnapshot(b *testing.B) {
	for _, layout := range layouts {
		b.Run(layout, func(b *testing.B) {
			r, _ := sharedReader(b, layout)
			p, err := r.PathsOf(fixtures.Ancestor.Pid)
			if err != nil {
				b.Fatal(err)
			}
			benchSnapshot(b, r, p)
		})
	}
}

// BenchmarkSnapshotHost reads this process's own cgroups on the real
// /sys/fs/cgroup (read-only): cgroupfs costs differ from a disk tree.
func BenchmarkSnapshotHost(b *testing.B) {
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		b.Skip(err)
	}
	p, err := r.PathsOf(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	benchSnapshot(b, r, p)
}

func BenchmarkPathsOf(b *testing.B) {
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		b.Skip(err)
	}
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.PathsOf(pid); err != nil {
			b.Fatal(err)
		}
	}
}
