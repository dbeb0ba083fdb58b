package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestPodmanNoCloseRange (a short name: podman refuses a runroot, which
// holds it, longer than 50 characters): `podman --runtime bin/corral
// run --security-opt seccomp=PROFILE` with a profile that refuses
// close_range (as older default profiles do) starts, and no runtime fd
// reaches the container's process. podman leaves no_new_privs off, so the
// filter is in place before the runtime closes its fds.
func TestPodmanNoCloseRange(t *testing.T) {
	e := newPodmanEnv(t, testutil.Binary(t, "corral"))
	profile := filepath.Join(t.TempDir(), "no-close-range.json")
	err := os.WriteFile(profile, []byte(`{
	"defaultAction": "SCMP_ACT_ALLOW",
	"syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out := e.must(e.runArgs("--rm", "--security-opt", "seccomp="+profile, e.image,
		"sh", "-c", "echo fds=$(ls /proc/self/fd | tr '\\n' ' '); grep Seccomp: /proc/self/status")...)
	if strings.TrimSpace(rtLines(out)["fds"]) != "0 1 2 3" {
		t.Errorf("fds open in the container's process: %q, want only 0 1 2 and ls's own 3", out)
	}
	if !strings.Contains(out, "Seccomp:\t2") {
		t.Errorf("the container's process runs without the seccomp filter: %q", out)
	}
}
