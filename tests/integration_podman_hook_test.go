package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// podmanHooksDir writes a hooks directory holding the shipped
// install/hooks.d/corralfs.json, pointed at the built corral and at the
// test's corralfs mount instead of the installed paths.
func podmanHooksDir(t *testing.T, viewsDir string) string {
	t.Helper()
	root := testutil.ModuleRoot()
	if root == "" {
		t.Fatal("no source tree: cannot find install/hooks.d/corralfs.json")
	}
	raw, err := os.ReadFile(filepath.Join(root, "install", "hooks.d", "corralfs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	hook := h["hook"].(map[string]any)
	hook["path"] = testutil.Binary(t, "corral")
	args := hook["args"].([]any)
	for i := range args {
		if args[i] == "/var/lib/corralfs" {
			args[i] = viewsDir
		}
	}
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "corralfs.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPodmanRuncHook: podman with Debian's runc and the shipped hooks.d
// entry: a container limited to 256 MiB and cpu 0 reads its limits from
// /proc/meminfo and /sys/devices/system/cpu, and `podman exec` sessions
// (which join the container's mount namespace) see the same binds.
func TestPodmanRuncHook(t *testing.T) {
	if testutil.InVM() {
		t.Skip("root podman runs on the host; the VM runs rootless podman (TestPodmanRootless)")
	}
	e := newPodmanEnv(t, testutil.RequireCommand(t, "runc"))
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	hooks := podmanHooksDir(t, mp)
	e.globals = append(e.globals, "--hooks-dir", hooks)

	out := e.must(e.runArgs("--rm", "--memory", "256m", "--cpuset-cpus", "0", e.image,
		"sh", "-c", `echo "== meminfo"; cat /proc/meminfo; echo "== online"; cat /sys/devices/system/cpu/online`)...)
	s := sections(out)
	if got := meminfoKB(t, s["meminfo"], "MemTotal"); got != 256<<10 {
		t.Fatalf("MemTotal %d kB in a podman+runc container with --memory 256m, want 262144\n%s", got, out)
	}
	if got := strings.TrimSpace(s["online"]); got != "0" {
		t.Errorf("/sys/devices/system/cpu/online %q with --cpuset-cpus 0, want 0", got)
	}

	id := strings.TrimSpace(e.must(e.runArgs("-d", "--memory", "128m", e.image, "sleep", "600")...))
	out = e.must("exec", id, "head", "-1", "/proc/meminfo")
	if got := meminfoKB(t, out, "MemTotal"); got != 128<<10 {
		t.Errorf("podman exec: MemTotal %d kB, want 131072", got)
	}
	e.must("rm", "--force", "--time", "0", id)
}

// TestPodmanCorralRuntimeHook: podman driving bin/corral (not runc) with
// the shipped hooks.d entry. podman passes its hooks to the runtime in
// config.json, so this proves corral runs OCI hooks: the container reads
// MemTotal 262144 kB with --memory 256m, as issue 7 asks of
// `podman --runtime corral run --memory 256m IMAGE cat /proc/meminfo`.
func TestPodmanCorralRuntimeHook(t *testing.T) {
	e := newPodmanEnv(t, testutil.Binary(t, "corral"))
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	e.globals = append(e.globals, "--hooks-dir", podmanHooksDir(t, mp))

	out := e.must(e.runArgs("--rm", "--memory", "256m", e.image, "cat", "/proc/meminfo")...)
	if got := meminfoKB(t, out, "MemTotal"); got != 256<<10 {
		t.Fatalf("MemTotal %d kB in a podman+corral container with --memory 256m, want 262144\n%s", got, out)
	}
}
