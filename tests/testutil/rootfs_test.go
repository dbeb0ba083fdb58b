package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestBusyboxRootfsLayout(t *testing.T) {
	root := BusyboxRootfs(t)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "etc", "bin"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("/%s: %v", d, err)
		}
	}
	static, err := isStaticELF(filepath.Join(root, "bin", "busybox"))
	if err != nil || !static {
		t.Errorf("bin/busybox static=%v err=%v", static, err)
	}
	for _, applet := range []string{"sh", "sleep", "cat", "free", "mount", "nproc"} {
		target, err := os.Readlink(filepath.Join(root, "bin", applet))
		if err != nil || target != "busybox" {
			t.Errorf("bin/%s -> %q, %v", applet, target, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc", "passwd")); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Errorf("etc/passwd = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp mode = %v, %v", fi.Mode(), err)
	}
}

// TestBusyboxRootfsRuns chroots into the rootfs: the shell, applets via
// the /usr/bin symlink and /etc/passwd all resolve without the host.
func TestBusyboxRootfsRuns(t *testing.T) {
	RequireRoot(t)
	root := BusyboxRootfs(t)
	cmd := exec.Command("/bin/sh", "-c", "id -un; /usr/bin/basename /a/b; ls /bin | wc -l")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot sh: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 3 || lines[0] != "root" || lines[1] != "b" {
		t.Fatalf("output %q", out)
	}
	if n, _ := strconv.Atoi(lines[2]); n < 100 {
		t.Errorf("only %d entries in /bin", n)
	}
}

func nsInode(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestStartInPidNS(t *testing.T) {
	RequireRoot(t)
	bb := StaticBusybox(t)
	var pid int
	t.Run("inner", func(t *testing.T) {
		cmd := StartInPidNS(t, nil, bb, "sh", "-c", "sleep 1000 & wait")
		pid = cmd.Process.Pid
		for _, ns := range []string{"pid", "mnt"} {
			if nsInode(t, pid, ns) == nsInode(t, os.Getpid(), ns) {
				t.Errorf("child shares our %s namespace", ns)
			}
		}
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "NSpid:" {
				if len(f) != 3 || f[2] != "1" {
					t.Errorf("NSpid line %q: want host pid and 1", line)
				}
			}
		}
	})
	if pid == 0 {
		t.Fatal("inner test did not start")
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("pid namespace init %d alive after cleanup: %v", pid, err)
	}
}
