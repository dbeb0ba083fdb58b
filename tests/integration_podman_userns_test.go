package tests

import (
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestPodmanCorralUserNS: podman's own user namespace spec (--uidmap, which
// chowns its vfs copy of the image) run by corral: root inside is host id
// 1400000 outside, the image's files are root's inside, the memory limit
// is in the container's cgroup (cgroup v1 without a cgroup namespace: the
// host's mount is cloned), and podman exec joins the user namespace.
func TestPodmanCorralUserNS(t *testing.T) {
	e := newPodmanEnv(t, testutil.Binary(t, "corral"))
	maps := []string{"--uidmap", "0:1400000:65536", "--gidmap", "0:1400000:65536"}
	out := e.must(e.runArgs(append(append([]string{"--rm", "--memory", "192m"}, maps...), e.image, "sh", "-c",
		"id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")...)...)
	f := strings.Fields(out)
	if len(f) != 6 || f[0] != "0" || strings.Join(f[1:4], " ") != "0 1400000 65536" || f[4] != "0:0" || f[5] != "201326592" {
		t.Fatalf("podman --uidmap through corral: want uid 0, map 0 1400000 65536, busybox 0:0, limit 201326592; got:\n%s", out)
	}
	id := strings.TrimSpace(e.must(e.runArgs(append(append([]string{"-d"}, maps...), e.image, "sleep", "600")...)...))
	if out := e.must("exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != "0 0 1400000 65536" {
		t.Errorf("podman exec in the user namespace: %q", out)
	}
	e.must("rm", "--force", "--time", "0", id)
}
