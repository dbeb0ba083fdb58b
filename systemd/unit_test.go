package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// The unit must pass `systemd-analyze verify`, which also checks that the
// binaries it starts exist: the copy under test points at the built
// bin/corralfs.
func TestCorralfsServiceVerifies(t *testing.T) {
	if testutil.InVM() {
		t.Skip("the VM has no systemd; the host run covers this")
	}
	analyze := testutil.RequireCommand(t, "systemd-analyze")
	bin := testutil.Binary(t, "corralfs")
	unit := strings.ReplaceAll(CorralfsService, "/usr/local/bin/corralfs", bin)
	if unit == CorralfsService {
		t.Fatal("the unit does not start /usr/local/bin/corralfs (make install rewrites that path)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "corralfs.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// What the issue asks of the unit, checked line by line so an edit that
// drops one fails here rather than in production.
func TestCorralfsServiceSettings(t *testing.T) {
	for _, want := range []string{
		"Type=notify",
		"Restart=on-failure",
		"OOMScoreAdjust=-1000",
		"ExecStartPre=/bin/mkdir -p /var/lib/corralfs",
		"ExecStart=/usr/local/bin/corralfs --pidfile /run/corralfs.pid /var/lib/corralfs",
		"KillSignal=SIGTERM",
		// issue 5: reload upgrades in place, the fd store keeps the
		// connection across a restart of the supervisor.
		"ExecReload=/bin/kill -HUP $MAINPID",
		"FileDescriptorStoreMax=8",
		"NotifyAccess=main",
	} {
		found := false
		for _, line := range strings.Split(CorralfsService, "\n") {
			if strings.TrimSpace(line) == want {
				found = true
			}
		}
		if !found {
			t.Errorf("corralfs.service lacks %q", want)
		}
	}
}
