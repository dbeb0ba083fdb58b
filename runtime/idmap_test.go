package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	"golang.org/x/sys/unix"
)

// testUserNS starts a process in a new user namespace mapping 0-65535 to
// host ids base.., and returns an fd of that namespace; the process is
// killed at cleanup (the fd keeps the namespace alive while open).
func testUserNS(t *testing.T, base uint32) *os.File {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}},
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in a user namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "ns/user"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestIdmappedMount: a file owned by the host's root (0:0 on disk) shows
// as owned by the namespace's root (host 100000) through an idmapped
// clone, on each file system this host offers for a rootfs. An ext4, xfs or
// btrfs disk must work; tmpfs and overlay are measured and logged.
func TestIdmappedMount(t *testing.T) {
	testutil.RequireRoot(t)
	const base = 100000
	userns := testUserNS(t, base)
	check := func(t *testing.T, dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "f"), 0, 0); err != nil {
			t.Fatal(err)
		}
		clone, err := idmappedClone(dir, int(userns.Fd()), true)
		if err != nil {
			return err
		}
		defer clone.Close()
		target := t.TempDir()
		if err := attachMount(clone, target); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(target, unix.MNT_DETACH)
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(target, "f"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != base || st.Gid != base {
			t.Fatalf("through the idmapped mount: owner %d:%d, want %d:%d", st.Uid, st.Gid, base, base)
		}
		return nil
	}
	t.Run("host-disk", func(t *testing.T) {
		// ext4, xfs and btrfs have idmapped since Linux 5.12-5.15: there
		// it must work. Elsewhere (the VM's root is a tmpfs) it is
		// measured only.
		dir := t.TempDir()
		err := check(t, dir)
		switch fs := fsTypeName(dir); {
		case err == nil:
		case fs == "ext4" || fs == "xfs" || fs == "btrfs":
			t.Fatalf("%s: %v", fs, err)
		default:
			t.Logf("%s: %v (fallback applies)", fs, err)
		}
	})
	t.Run("tmpfs", func(t *testing.T) {
		dir := t.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
		if err := check(t, dir); err != nil {
			t.Logf("tmpfs: %v (fallback applies)", err)
		}
	})
	t.Run("overlay", func(t *testing.T) {
		base := t.TempDir()
		for _, d := range []string{"lower", "upper", "work", "merged"} {
			os.Mkdir(filepath.Join(base, d), 0o755)
		}
		opts := "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work"
		if err := unix.Mount("overlay", base+"/merged", "overlay", 0, opts); err != nil {
			t.Skipf("no overlay here: %v", err)
		}
		defer unix.Unmount(base+"/merged", unix.MNT_DETACH)
		if err := check(t, base+"/merged"); err != nil {
			t.Logf("overlay: %v (fallback applies)", err)
		}
	})
}
