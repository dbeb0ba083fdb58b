package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	secprobe "github.com/corral-dev/corral/tests/secprobe/probe"
	"github.com/corral-dev/corral/tests/testutil"
)

// The test binary is secprobe too when run under that name (as it is
// sysinfoprobe: sysinfo_helpers_test.go).
func init() {
	if filepath.Base(os.Args[0]) == "secprobe" {
		os.Exit(secprobe.Main(os.Args[1:]))
	}
}

// staticBuild is one probe's build, done once per test binary.
type staticBuild struct {
	once sync.Once
	path string
	err  error
}

var (
	staticMu     sync.Mutex
	staticBuilds = map[string]*staticBuild{}
)

// staticProbe returns the path of a static probe program called name in a
// directory of the test's own (containers bind or copy it): this test
// binary when it is static (make test, the VM: it becomes the probe when
// run under that name), else one built from pkg (a plain `go test` links
// libc, which a busybox rootfs does not have).
func staticProbe(t testing.TB, name, pkg string) string {
	t.Helper()
	staticMu.Lock()
	b := staticBuilds[name]
	if b == nil {
		b = &staticBuild{}
		staticBuilds[name] = b
	}
	staticMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildStaticProbe(name, pkg) })
	if b.err != nil {
		t.Fatalf("%s: %v", name, b.err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Link(b.path, dst); err != nil {
		if err := copyFile(b.path, dst, 0o755); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return dst
}

func buildStaticProbe(name, pkg string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	root := testutil.ModuleRoot()
	if root == "" || isStatic(self) {
		return self, nil
	}
	// One fixed place, rebuilt by every run: nothing piles up.
	dir := filepath.Join(os.TempDir(), "corral-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	tmp := fmt.Sprintf("%s.%d", out, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building a static %s: %v\n%s", name, err, b)
	}
	return out, os.Rename(tmp, out)
}
