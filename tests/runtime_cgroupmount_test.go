package tests

import (
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeCgroupMountShowsOwnCgroup: whether or not the spec asks for a
// cgroup namespace, the top of the container's /sys/fs/cgroup/<ctrl> (v1)
// or /sys/fs/cgroup (v2) is the container's own cgroup, read-only, so the
// JVM and Go's runtime read the 256 MiB limit there rather than the host
// root's "no limit". Without a cgroup namespace (podman on v1 asks for
// none) that takes narrowing the mount to the container's cgroup, as runc
// does; with one (corral run) the fresh mount is already rooted there.
func TestRuntimeCgroupMountShowsOwnCgroup(t *testing.T) {
	mode := testutil.DetectCgroupMode()
	// The file holding the limit and the mount it lives in, inside.
	limitFile, mountPoint, cgLine := "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory", ":memory:"
	if mode == testutil.CgroupModeV2 {
		limitFile, mountPoint, cgLine = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup", "0::"
	}
	const limit = 256 << 20
	script := `echo "limit=$(cat ` + limitFile + `)"
echo "cgroup=$(grep '` + cgLine + `' /proc/self/cgroup | cut -d: -f3)"
if (echo 268435456 > ` + limitFile + `) 2>/dev/null; then echo write=accepted; else echo write=refused; fi
grep ' ` + mountPoint + ` ' /proc/self/mountinfo | sed 's/^/mount=/'`

	for _, tc := range []struct {
		name     string
		cgroupNS bool
	}{
		{"no cgroup namespace", false},
		{"own cgroup namespace", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := rtNewEnv(t)
			id := rtID("cgmount")
			s := rtSpec(id, "sh", "-c", script)
			s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: rtI64(limit)}}
			if !tc.cgroupNS {
				var kept []specs.LinuxNamespace
				for _, ns := range s.Linux.Namespaces {
					if ns.Type != specs.CgroupNamespace {
						kept = append(kept, ns)
					}
				}
				s.Linux.Namespaces = kept
			}
			out := e.run(id, s)
			got := rtLines(out)

			if got["limit"] != "268435456" {
				t.Errorf("%s inside = %q, want 268435456 (the container's limit); output:\n%s", limitFile, got["limit"], out)
			}
			// The container's view of its own cgroup shows which case ran:
			// the host path without a namespace, "/" with one.
			wantCg := "/"
			if !tc.cgroupNS {
				wantCg = rtCgroupPath(id)
			}
			if got["cgroup"] != wantCg {
				t.Errorf("/proc/self/cgroup inside names %q, want %q", got["cgroup"], wantCg)
			}
			if got["write"] != "refused" {
				t.Errorf("writing %s inside: %s, want refused (read-only mount)", limitFile, got["write"])
			}
			// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...; the
			// mount's root is the cgroup it shows, relative to the reader's
			// cgroup namespace: the container's cgroup path, or "/" in its own.
			f := strings.Fields(got["mount"])
			if len(f) < 6 {
				t.Fatalf("no mount at %s inside; output:\n%s", mountPoint, out)
			}
			if f[3] != wantCg {
				t.Errorf("mount at %s shows cgroup %q, want %q", mountPoint, f[3], wantCg)
			}
			if !strings.Contains(","+f[5]+",", ",ro,") {
				t.Errorf("mount at %s has options %q, want read-only", mountPoint, f[5])
			}
		})
	}
}
