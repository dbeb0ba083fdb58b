package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/fusefs/sysinfoagent"
	"github.com/corral-dev/corral/tests/testutil"
)

// corralfs starts its seccomp keeper from the small corralfs-keeper binary
// installed next to it (a process that only holds descriptors should not
// carry corralfs's 15 MB binary), and from its own `seccomp-keeper`
// subcommand when it was copied alone; either way the agent attaches.
func TestSysinfoKeeperBinary(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	keeperExe := func(t *testing.T, sock string) (string, string) {
		t.Helper()
		var pid int
		testutil.WaitFor(t, 10*time.Second, "the keeper's pidfile", func() bool {
			p, err := sysinfoagent.KeeperPid(sock)
			pid = p
			return err == nil && isKeeperOf(p, sock)
		})
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			t.Fatal(err)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return filepath.Base(exe), strings.ReplaceAll(string(cmdline), "\x00", " ")
	}
	t.Run("installed next to corralfs", func(t *testing.T) {
		sock := sysinfoSocket(t)
		startSysinfoCorralfs(t, sock)
		if exe, cmd := keeperExe(t, sock); exe != "corralfs-keeper" {
			t.Errorf("keeper runs %s (%s), want the corralfs-keeper binary", exe, cmd)
		}
	})
	t.Run("corralfs copied alone", func(t *testing.T) {
		dir := t.TempDir()
		alone := filepath.Join(dir, "corralfs")
		if err := copyFile(testutil.Binary(t, "corralfs"), alone, 0o755); err != nil {
			t.Fatal(err)
		}
		sock := sysinfoSocket(t)
		d := launchCorralfsBinary(t, alone, corralfsMountpoint(t), "--seccomp-socket", sock)
		if err := d.waitNotify("READY=1", 30*time.Second); err != nil {
			t.Fatalf("no READY=1: %v\n%s", err, d.out.String())
		}
		testutil.WaitFor(t, 10*time.Second, "the agent attached", func() bool {
			return strings.Contains(d.out.String(), "attached to the seccomp keeper")
		})
		if exe, cmd := keeperExe(t, sock); exe != "corralfs" || !strings.Contains(cmd, " seccomp-keeper ") {
			t.Errorf("keeper runs %s (%s), want corralfs seccomp-keeper", exe, cmd)
		}
	})
}
