// Package testutil holds the helpers every test that needs the real machine
// uses, so that root-only tests are gated one way everywhere: they skip on a
// developer laptop and FAIL when CI=true, so CI can never pass by skipping.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// InCI reports whether we run under CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test outside CI and fails it inside CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a requirement is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot needs uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
}

// RequireFUSE needs root and a usable /dev/fuse.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		skipOrFail(t, "needs /dev/fuse: %v", err)
		return
	}
	f.Close()
}

// RequireCommand needs an executable on PATH and returns its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "needs %s on PATH (make test-deps installs it)", name)
	}
	return p
}

// ModuleRoot returns the repository root (the directory holding go.mod),
// found from this source file; "" inside a VM where sources are absent.
func ModuleRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return ""
	}
	return root
}

// Binary returns the path of a project binary (corral, corralfs, ...):
// $CORRAL_BIN_DIR/NAME, else next to the test executable (the VM copies
// them there), else MODULEROOT/bin/NAME (built by `make build`).
func Binary(t testing.TB, name string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("CORRAL_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if root := ModuleRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("binary %s not found in %v: run `make build` first", name, dirs)
	return ""
}
