// Package vm holds the checks that the test VM booted by run.sh gives the
// other packages' tests what a cgroup v2 host has. They run on any host as
// root; the VM-only expectations (pure v2, swap) apply when CORRAL_IN_VM=1.
// When one of these fails, the failures of other packages in the same VM
// run are likely consequences.
package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

func TestGuestCgroups(t *testing.T) {
	mode := testutil.DetectCgroupMode()
	if !testutil.InVM() {
		t.Logf("host cgroup mode %s", mode)
		return
	}
	if mode != testutil.CgroupModeV2 {
		t.Fatalf("VM cgroup mode %s, want v2", mode)
	}
	on, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpu", "cpuset", "memory", "pids", "io"} {
		if !strings.Contains(" "+strings.TrimSpace(string(on))+" ", " "+c+" ") {
			t.Errorf("controller %s not enabled at the root: %q", c, on)
		}
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(self)) == "0::/" {
		t.Error("the test runs in the root cgroup; run.sh's init moves it to a leaf")
	}
}

func TestGuestSwap(t *testing.T) {
	if !testutil.InVM() || os.Getenv("CORRAL_VM_SWAP") != "1" {
		t.Skip("swap is only promised in the VM with VM_SWAP_MB > 0")
	}
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) < 2 {
		t.Fatalf("no swap device: %q", b)
	}
}

func TestGuestFilesystems(t *testing.T) {
	testutil.RequireFUSE(t)
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range []string{"fuse", "overlay", "cgroup2", "devpts", "tmpfs"} {
		if !strings.Contains(string(b), "\t"+fs+"\n") {
			t.Errorf("%s not in /proc/filesystems (module not loaded?)", fs)
		}
	}
}

// TestGuestPivotRoot: what every container start does, done with busybox:
// private mount namespace, bind the rootfs onto itself, pivot_root into it.
// It fails where / cannot be pivoted away from (an initramfs rootfs).
func TestGuestPivotRoot(t *testing.T) {
	testutil.RequireRoot(t)
	bb := testutil.StaticBusybox(t)
	root := testutil.BusyboxRootfs(t)
	script := `set -e
mount --make-rprivate /
mount --bind "$1" "$1"
cd "$1"
mkdir -p .old
pivot_root . .old
umount -l /.old
mount -t proc proc /proc
echo "pid=$$ procs=$(ls /proc | grep -c '^[0-9]')"`
	out, err := exec.Command(bb, "unshare", "-m", "-p", "-f", bb, "sh", "-c", script, "sh", root).CombinedOutput()
	if err != nil {
		t.Fatalf("pivot_root in a new mount namespace: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "pid=1 ") {
		t.Errorf("output %q, want the shell as pid 1 of its namespace", out)
	}
	if _, err := os.Stat(filepath.Join(root, ".old")); err != nil {
		t.Errorf("pivot_root left no .old in the rootfs: %v", err)
	}
}
