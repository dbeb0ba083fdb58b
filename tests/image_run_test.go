package tests

// `corral pull`/`load`/`images`/`rmi` and `corral run IMAGE` (issue 18),
// against go-containerregistry's registry served on loopback and a
// `docker save`-format archive, with images the tests build from the
// static busybox.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/corral-dev/corral/tests/testutil"
)

// imageEnv is a runEnv plus an image store of its own (--store).
type imageEnv struct {
	*runEnv
	store string
}

func newImageEnv(t *testing.T, withViews bool) *imageEnv {
	t.Helper()
	e := &imageEnv{runEnv: runNewEnv(t, withViews), store: t.TempDir()}
	t.Cleanup(func() { e.checkStoreClean(t) })
	return e
}

// newImageSysinfoEnv is an imageEnv whose views come from a corralfs that
// also runs its sysinfo(2) agent, on a socket of the test's own (returned;
// `corral run --sysinfo SOCKET` uses it), so the default socket and a
// real daemon are left alone.
func newImageSysinfoEnv(t *testing.T) (*imageEnv, string) {
	t.Helper()
	e := newImageEnv(t, false)
	testutil.RequireFUSE(t)
	sock := sysinfoSocket(t)
	e.views = startSysinfoCorralfs(t, sock).mp
	return e, sock
}

// corral runs `corral --root R --store S ARGS...`.
func (e *imageEnv) corral(t *testing.T, args ...string) runResult {
	t.Helper()
	return e.run(t, append([]string{"--store", e.store}, args...)...)
}

// must runs corral and fails the test unless it exits 0; returns stdout.
func (e *imageEnv) must(t *testing.T, args ...string) string {
	t.Helper()
	r := e.corral(t, args...)
	if r.code != 0 {
		t.Fatalf("corral %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// runImage is `corral run --rm` of an image with the env's views.
func (e *imageEnv) runImage(t *testing.T, args ...string) string {
	t.Helper()
	return e.must(t, append(e.runFlags(), args...)...)
}

// checkStoreClean: no container root is left in the store and nothing of
// it is mounted.
func (e *imageEnv) checkStoreClean(t *testing.T) {
	ents, _ := os.ReadDir(filepath.Join(e.store, "containers"))
	for _, ent := range ents {
		t.Errorf("leftover container root in the image store: %s", ent.Name())
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), e.store) {
		t.Errorf("a mount below the image store %s is left on the host", e.store)
	}
}

// testImageConfig exercises every part of the config corral honours.
var testImageConfig = v1.Config{
	Entrypoint: []string{"/bin/sh", "-c"},
	Cmd:        []string{`echo "$GREETING $(pwd) $(id -u)"`},
	Env:        []string{"PATH=/bin:/usr/bin", "GREETING=hello"},
	WorkingDir: "/work",
	User:       "nobody",
}

func TestImagePullRun(t *testing.T) {
	e, sock := newImageSysinfoEnv(t)
	reg := testutil.StartRegistry(t)
	ref := reg + "/corral/busybox:1"
	testutil.PushImage(t, ref, testutil.BusyboxImage(t, testImageConfig, "work"))

	out := e.must(t, "pull", ref)
	if !strings.HasPrefix(out, ref+": sha256:") {
		t.Errorf("pull printed %q, want the name and the image id", out)
	}
	if out := e.must(t, "images"); !strings.Contains(out, reg+"/corral/busybox") {
		t.Errorf("images does not list the pulled image:\n%s", out)
	}

	// The image's Entrypoint, Cmd, Env, WorkingDir and User.
	if got := strings.TrimSpace(e.runImage(t, ref)); got != "hello /work 65534" {
		t.Errorf("run IMAGE printed %q, want the config's env, workdir and user: %q", got, "hello /work 65534")
	}
	// Arguments replace Cmd and keep the entrypoint; -u and -e win.
	if got := strings.TrimSpace(e.runImage(t, "-u", "0", "-e", "GREETING=bye", ref, `echo "$GREETING $(id -u)"`)); got != "bye 0" {
		t.Errorf("run IMAGE CMD printed %q, want %q", got, "bye 0")
	}
	// --entrypoint replaces the entrypoint and drops Cmd.
	if got := strings.TrimSpace(e.runImage(t, "--entrypoint", "/bin/echo", ref, "plain")); got != "plain" {
		t.Errorf("--entrypoint printed %q, want plain", got)
	}
	// The limit is what the container sees, in free, top and /proc: the
	// corralfs views are bound in an image's root too, and busybox free
	// takes its total from sysinfo(2), which the agent answers through
	// --sysinfo SOCKET.
	mem := e.runImage(t, "--sysinfo", sock, "--memory", "256m", "-u", "0", "--entrypoint", "", ref, "sh", "-c", "head -1 /proc/meminfo; free -m; top -bn1 | head -1")
	checkImageMemory(t, mem)
	// A named socket no agent serves is an error (auto would fall back to
	// the host's answer), and the image root mounted for it goes again
	// (checkStoreClean).
	if r := e.corral(t, append(e.runFlags(), "--sysinfo", sock+".none", ref, "true")...); r.code != 125 || !strings.Contains(r.stderr, "not a socket") {
		t.Errorf("--sysinfo with a socket nobody serves: exit %d, stderr %q; want 125 and why", r.code, r.stderr)
	}
	t.Run("java", func(t *testing.T) { checkImageJava(t, e, reg, sock) })
	// Writes go to the container's own layer: the next container does
	// not see them.
	e.runImage(t, "-u", "0", ref, "echo x > /bin/written")
	if got := strings.TrimSpace(e.runImage(t, ref, "test -e /bin/written && echo leaked || echo clean")); got != "clean" {
		t.Errorf("a second container sees the first one's write: %q", got)
	}

	// rmi is refused while a container uses the image, then removes it
	// with its layers.
	name := runName("img")
	e.must(t, "run", "-d", "--name", name, "--views", "none", "--sysinfo", "off", ref, "sleep 600")
	if row := lineWith(e.must(t, "list"), name); !strings.Contains(row, ref) || !strings.Contains(row, "sleep 600") {
		t.Errorf("list shows the image container as %q, want its image and command", row)
	}
	if r := e.corral(t, "rmi", ref); r.code == 0 || !strings.Contains(r.stderr, name) {
		t.Errorf("rmi of an image in use: exit %d, stderr %q; want a refusal naming %s", r.code, r.stderr, name)
	}
	e.must(t, "delete", "-f", name)
	e.must(t, "rmi", ref)
	if out := e.must(t, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after rmi: %q", out)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.store, "layers", "sha256")); len(ents) != 0 {
		t.Errorf("rmi left %d layer entries", len(ents))
	}
}

// checkImageMemory checks what `head -1 /proc/meminfo; free -m; top -bn1 |
// head -1` printed in a container limited to 256 MiB: the limit in all
// three, and free's columns adding up to its total.
func checkImageMemory(t *testing.T, out string) {
	t.Helper()
	if f := strings.Fields(lineWith(out, "MemTotal:")); len(f) < 2 || f[1] != "262144" {
		t.Errorf("/proc/meminfo in a 256m container of the image:\n%s", out)
	}
	// busybox free -m: "Mem: total used free shared buff/cache available",
	// total from sysinfo(2) (256 MiB and a page: docs/design.md 29).
	f := strings.Fields(lineWith(out, "Mem:"))
	if len(f) < 7 || f[1] != "256" {
		t.Fatalf("free -m in a 256m container of the image, want a total of 256:\n%s", out)
	}
	total, used, free, bufCache, avail := atoi(f[1]), atoi(f[2]), atoi(f[3]), atoi(f[5]), atoi(f[6])
	// Each column is rounded down to MiB on its own: the sum may fall
	// short of the total by up to one per column.
	// available comes from /proc/meminfo, the rest from sysinfo(2).
	if sum := used + free + bufCache; sum > total || sum < total-3 || avail > total || avail < free-2 {
		t.Errorf("free -m columns do not add up (used %d + free %d + buff/cache %d vs total %d, available %d):\n%s", used, free, bufCache, total, avail, out)
	}
	// busybox top: "Mem: USEDK used, FREEK free, ...", from /proc/meminfo.
	var topUsed, topFree int
	if _, err := fmt.Sscanf(out[max(0, strings.LastIndex(out, "Mem: ")):], "Mem: %dK used, %dK free", &topUsed, &topFree); err != nil || topUsed+topFree != 262144 {
		t.Errorf("top in a 256m container of the image: used+free %d KiB, want 262144 (%v):\n%s", topUsed+topFree, err, out)
	}
}

func TestImageLoadDockerArchive(t *testing.T) {
	e := newImageEnv(t, false)
	archive := testutil.DockerArchive(t, "example.org/corral/saved:2", testutil.BusyboxImage(t, v1.Config{Cmd: []string{"echo", "from-archive"}}))
	if out := e.must(t, "load", "-i", archive); !strings.Contains(out, "example.org/corral/saved:2") {
		t.Errorf("load printed %q", out)
	}
	if got := strings.TrimSpace(e.runImage(t, "example.org/corral/saved:2")); got != "from-archive" {
		t.Errorf("run of a loaded image printed %q", got)
	}
	// A truncated archive: a clear error, and the store keeps no layer.
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.tar")
	os.WriteFile(cut, data[:len(data)*2/3], 0o600)
	e.must(t, "rmi", "example.org/corral/saved:2")
	if r := e.corral(t, "load", "-i", cut); r.code == 0 {
		t.Errorf("load of a truncated archive succeeded: %s", r.stdout)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.store, "layers", "sha256")); len(ents) != 0 {
		t.Errorf("a failed load left %d layer entries", len(ents))
	}
}

// TestRunUnknownNameHint: a name that is neither a command nor a local
// image says how to pull it (it used to say only "not found in PATH").
func TestRunUnknownNameHint(t *testing.T) {
	e := newImageEnv(t, false)
	r := e.corral(t, append(e.runFlags(), "alpine")...)
	if r.code != 127 || !strings.Contains(r.stderr, "corral pull alpine") {
		t.Errorf("run alpine: exit %d, stderr %q; want 127 and how to pull it", r.code, r.stderr)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 31
	}
	return n
}

// TestImageLoadPodmanSave: what podman save writes, as docker-archive (its
// default) and as oci-archive, loads and runs.
func TestImageLoadPodmanSave(t *testing.T) {
	p := newPodmanEnv(t, testutil.Binary(t, "corral"))
	e := newImageEnv(t, false)
	for _, format := range []string{"docker-archive", "oci-archive"} {
		archive := filepath.Join(t.TempDir(), format+".tar")
		p.must("save", "--format", format, "-o", archive, p.image)
		out := e.must(t, "load", "-i", archive)
		if !strings.Contains(out, strings.TrimPrefix(p.image, "localhost/")) {
			t.Errorf("load of podman's %s printed %q, want the name %s", format, out, p.image)
		}
		if got := strings.TrimSpace(e.runImage(t, p.image, "sh", "-c", "echo $PATH")); got != "/bin:/sbin" {
			t.Errorf("run of podman's %s: PATH %q, want the image's /bin:/sbin", format, got)
		}
		e.must(t, "rmi", p.image)
	}
}
