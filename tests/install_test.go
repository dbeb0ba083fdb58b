package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// `make install` puts every file under PREFIX (and DESTDIR), says what it
// wrote, rewrites the units' binary paths to BINDIR, and installs the OCI
// hook, which reaches every podman and CRI-O container, only when asked
// (HOOK=1).
func TestMakeInstall(t *testing.T) {
	if testutil.InVM() {
		t.Skip("the VM has no make and no source tree; the host run covers this")
	}
	mk := testutil.RequireCommand(t, "make")
	testutil.Binary(t, "corralfs") // built: -o build below uses bin/ as it is
	testutil.Binary(t, "corral-nri")
	install := func(extra ...string) (string, string) {
		dest := t.TempDir()
		args := append([]string{"-C", testutil.ModuleRoot(), "-o", "build", "install", "DESTDIR=" + dest, "PREFIX=/opt/corral"}, extra...)
		out, err := exec.Command(mk, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, out)
		}
		return dest, string(out)
	}
	dest, out := install()
	for _, f := range []string{"bin/corral", "bin/corralfs", "bin/corralfs-keeper", "bin/corral-nri", "lib/systemd/system/corralfs.service", "lib/systemd/system/corralfs-seccomp-keeper.service"} {
		p := filepath.Join(dest, "opt/corral", f)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s not installed: %v", f, err)
		}
		if !strings.Contains(out, "installed "+p) {
			t.Errorf("make install did not say it installed %s:\n%s", p, out)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "opt/corral/lib/systemd/system/corralfs.service"))
	if !strings.Contains(string(unit), "ExecStart=/opt/corral/bin/corralfs ") || strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("corralfs.service does not start /opt/corral/bin/corralfs:\n%s", unit)
	}
	var outside []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(p, filepath.Join(dest, "opt/corral")+"/") {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) > 0 {
		t.Errorf("installed outside PREFIX: %v", outside)
	}
	if !strings.Contains(out, "HOOK=1") {
		t.Errorf("make install does not say how to add the hook:\n%s", out)
	}

	dest, out = install("HOOK=1")
	hook := filepath.Join(dest, "opt/corral/share/containers/oci/hooks.d/corralfs.json")
	b, err := os.ReadFile(hook)
	if err != nil || !strings.Contains(string(b), "/opt/corral/bin/corral") {
		t.Errorf("HOOK=1: hook %s: %v\n%s", hook, err, b)
	}
	if !strings.Contains(out, "installed "+hook) {
		t.Errorf("HOOK=1: make install did not say it installed the hook:\n%s", out)
	}
}
