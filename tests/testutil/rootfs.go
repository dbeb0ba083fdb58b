package testutil

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// busyboxCandidates are where a static busybox is looked for, in order:
// $CORRAL_BUSYBOX, then the busybox-static package's path (also where the
// VM harness puts it), then PATH.
func busyboxCandidates() []string {
	var c []string
	if p := os.Getenv("CORRAL_BUSYBOX"); p != "" {
		c = append(c, p)
	}
	c = append(c, "/bin/busybox", "/usr/bin/busybox")
	if p, err := exec.LookPath("busybox"); err == nil {
		c = append(c, p)
	}
	return c
}

// isStaticELF reports whether path is an ELF executable without a program
// interpreter, i.e. runs in a rootfs that has no libc.
func isStaticELF(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// StaticBusybox returns the path of a statically linked busybox (the one a
// rootfs without libc can run). Skips (fails under CI) when there is none:
// `apt-get install busybox-static`.
func StaticBusybox(t testing.TB) string {
	t.Helper()
	var why []string
	for _, p := range busyboxCandidates() {
		static, err := isStaticELF(p)
		switch {
		case err != nil:
			why = append(why, fmt.Sprintf("%s: %v", p, err))
		case !static:
			why = append(why, p+": dynamically linked")
		default:
			return p
		}
	}
	skipOrFail(t, "needs a static busybox (apt-get install busybox-static): %s", strings.Join(why, "; "))
	return ""
}

// BusyboxRootfs builds a minimal root filesystem in a fresh t.TempDir():
// a copy of the static busybox with a /bin symlink per applet (sbin, usr/bin
// and usr/sbin point at bin), /etc/passwd and /etc/group with root and
// nobody, and the empty mount points /proc /sys /dev /tmp /run /root.
// It returns the rootfs directory.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	bb := StaticBusybox(t)
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run", "root", "usr", "var", "mnt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir is 0700; a rootfs whose / is not world-readable breaks
	// anything that drops privileges inside it.
	for _, d := range []string{".", "tmp"} {
		mode := os.FileMode(0o755)
		if d == "tmp" {
			mode = 0o777 | os.ModeSticky
		}
		if err := os.Chmod(filepath.Join(root, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"sbin", "bin"}, {"usr/bin", "../bin"}, {"usr/sbin", "../bin"}} {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyExecutable(bb, filepath.Join(root, "bin", "busybox")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", bb, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/hostname": "corral-test\n",
		"etc/hosts":    "127.0.0.1 localhost\n::1 localhost\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// StartInPidNS starts argv as the init (pid 1) of new pid and mount
// namespaces, inside cg when cg is not nil, and kills it (and with it the
// whole pid namespace) when the test ends. The child's output is logged
// if the test failed.
//
// On v2 the child is cloned directly into the cgroup (CLONE_INTO_CGROUP),
// so it never runs outside it. On v1 it is moved into each hierarchy right
// after start: tests that read the cgroup after StartInPidNS returns see it
// there, but its very first instructions ran in the test's own cgroup.
//
// The new mount namespace inherits the host's propagation: a child that
// mounts something must first `mount --make-rprivate /`.
// If the test Waits for the command itself, it must do so before it ends.
func StartInPidNS(t testing.TB, cg *Cgroup, argv ...string) *exec.Cmd {
	t.Helper()
	RequireRoot(t)
	if len(argv) == 0 {
		t.Fatal("StartInPidNS: empty argv")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		// If the test binary dies without cleanup, the namespace dies too.
		Pdeathsig: syscall.SIGKILL,
	}
	if cg != nil && cg.Mode == CgroupModeV2 {
		fd, err := syscall.Open(cg.Dir(""), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("StartInPidNS: open cgroup: %v", err)
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("StartInPidNS %q: %v", argv, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if cmd.ProcessState == nil {
			_ = cmd.Wait()
		}
		if t.Failed() && out.Len() > 0 {
			t.Logf("output of %q:\n%s", argv, out.String())
		}
	})
	if cg != nil && cg.Mode != CgroupModeV2 {
		if err := cg.AddProc(cmd.Process.Pid); err != nil {
			t.Fatalf("StartInPidNS: moving %d into %s: %v", cmd.Process.Pid, cg.Path, err)
		}
	}
	return cmd
}

// SyncBuffer is an io.Writer safe for exec's copying goroutine and a
// concurrent reader: a process's output a test reads while it runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
