package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// startUnmapped starts sleep in a new user namespace without mappings.
func startUnmapped(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in a user namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func readProc(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestWriteIDMapsAsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	pid := startUnmapped(t)
	uids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	gids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1000}, {ContainerID: 1000, HostID: 300000, Size: 10}}
	if err := writeIDMaps(pid, uids, gids); err != nil {
		t.Fatal(err)
	}
	if got := readProc(t, pid, "uid_map"); got != "0 100000 65536" {
		t.Fatalf("uid_map %q", got)
	}
	if got := readProc(t, pid, "gid_map"); got != "0 200000 1000 1000 300000 10" {
		t.Fatalf("gid_map %q", got)
	}
	if got := readProc(t, pid, "setgroups"); got != "allow" {
		t.Fatalf("root needs no setgroups deny; got %q", got)
	}
}

// An unprivileged caller (nobody, no subordinate ids) maps its own ids:
// the test binary re-executes itself as 65534 for the helper half.
func TestWriteIDMapsUnprivilegedOwnIDs(t *testing.T) {
	if os.Getenv("CORRAL_TEST_IDMAP_HELPER") == "1" {
		pid := startUnmapped(t)
		own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65534, Size: 1}}
		if err := writeIDMaps(pid, own, own); err != nil {
			t.Fatal(err)
		}
		t.Logf("MAPS uid=%s gid=%s setgroups=%s", readProc(t, pid, "uid_map"), readProc(t, pid, "gid_map"), readProc(t, pid, "setgroups"))
		// More than its own id needs newuidmap and a subuid range nobody has.
		pid2 := startUnmapped(t)
		more := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		if err := writeIDMaps(pid2, more, more); err == nil {
			t.Fatal("nobody mapped 65536 ids it has no range for")
		} else {
			t.Logf("REFUSED %v", err)
		}
		return
	}
	testutil.RequireRoot(t)
	// The test binary sits in a 0700 build directory: nobody needs a copy.
	dir, err := os.MkdirTemp("", "corral-idmap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "runtime.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestWriteIDMapsUnprivilegedOwnIDs$", "-test.v")
	cmd.Env = append(os.Environ(), "CORRAL_TEST_IDMAP_HELPER=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "MAPS uid=0 65534 1 gid=0 65534 1 setgroups=deny") || !strings.Contains(string(out), "REFUSED") {
		t.Fatalf("helper output:\n%s", out)
	}
}

func TestCheckUserNS(t *testing.T) {
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}}
	spec := func(path string, uids, gids []specs.LinuxIDMapping, withNS bool) *specs.Spec {
		s := &specs.Spec{Linux: &specs.Linux{UIDMappings: uids, GIDMappings: gids}}
		if withNS {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace, Path: path}}
		}
		return s
	}
	for _, c := range []struct {
		name string
		s    *specs.Spec
		ok   bool
	}{
		{"new with maps", spec("", maps, maps, true), true},
		{"new without gid maps", spec("", maps, nil, true), false},
		{"maps without ns", spec("", maps, maps, false), false},
		{"joined with maps", spec("/proc/1/ns/user", maps, maps, true), false},
		{"joined", spec("/proc/1/ns/user", nil, nil, true), true},
		{"root unmapped", spec("", []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}}, maps, true), false},
		{"overflowing map", spec("", []specs.LinuxIDMapping{{HostID: 1 << 31, Size: 1 << 31}, {HostID: 4294967295, Size: 2}}, maps, true), false},
	} {
		if err := checkUserNS(c.s); (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
