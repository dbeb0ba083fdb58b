package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeUserAndCaps: a non-root user with supplementary groups, an
// ambient capability, rlimits, umask and oom_score_adj from the spec.
func TestRuntimeUserAndCaps(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("user")
	s := rtSpec(id, "sh", "-c", `echo "id=$(id -u):$(id -g):$(id -G | tr ' ' ,)"
echo "eff=$(grep CapEff /proc/self/status | cut -f2)"
echo "amb=$(grep CapAmb /proc/self/status | cut -f2)"
echo "bnd=$(grep CapBnd /proc/self/status | cut -f2)"
echo "nproc=$(ulimit -u)"
echo "umask=$(umask)"
echo "oom=$(cat /proc/self/oom_score_adj)"
echo "home=$HOME"`)
	s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1001, 5}}
	umask := uint32(0o027)
	s.Process.User.Umask = &umask
	oom := 500
	s.Process.OOMScoreAdj = &oom
	// CAP_NET_BIND_SERVICE ambient: a non-root process keeps it across exec.
	nbs := []string{"CAP_NET_BIND_SERVICE"}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: nbs, Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs}
	s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: 77, Hard: 77})
	m := rtLines(e.run(id, s))
	want := map[string]string{
		"id":    "1000:1000:1000,5,1001", // the kernel keeps groups sorted
		"eff":   "0000000000000400",
		"amb":   "0000000000000400",
		"bnd":   "0000000000000400",
		"nproc": "77",
		"umask": "0027",
		"oom":   "500",
		"home":  "/",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}

// TestRuntimeAmbientWithoutInheritable: `runc spec` (runc >= 1.1.2) lists
// ambient capabilities but no inheritable set; the kernel refuses to raise
// them, and runc runs the container anyway with a warning. So must corral:
// the container starts, with an empty ambient set.
func TestRuntimeAmbientWithoutInheritable(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("ambient")
	s := rtSpec(id, "sh", "-c", `echo "amb=$(grep CapAmb /proc/self/status | cut -f2)"`)
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps}
	if m := rtLines(e.run(id, s)); m["amb"] != "0000000000000000" {
		t.Errorf("ambient set %q, want empty (not raisable without inheritable)", m["amb"])
	}
}

// TestRuntimeNoPivot: --no-pivot (MS_MOVE + chroot, for roots that cannot
// be pivoted) still gives the container its rootfs as "/".
func TestRuntimeNoPivot(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("nopivot")
	s := rtSpec(id, "sh", "-c", `echo "bin=$(ls /bin/busybox)"; echo "hosthome=$(ls -d /work /home/* 2>/dev/null | wc -l)"`)
	b := e.bundle(id, s)
	out := e.create(id, b, "--no-pivot")
	e.must("start", id)
	e.waitStatus(id, "stopped", 10*time.Second)
	e.must("delete", id)
	m := rtLines(rtRead(t, out))
	if m["bin"] != "/bin/busybox" || m["hosthome"] != "0" {
		t.Errorf("--no-pivot container saw %v", m)
	}
}

// TestRuntimeProcessFileAndPreservedFDs: `exec --process FILE` (how
// containerd execs) and `create --preserve-fds N` (socket activation: the
// caller's fd 3 becomes the container's fd 3, and nothing else leaks).
func TestRuntimeProcessFileAndPreservedFDs(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("procfile")
	s := rtSpec(id, "sh", "-c", `cat <&3; echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"; sleep 1000`)
	s.Process.Env = append(s.Process.Env, "LISTEN_FDS=1")
	b := e.bundle(id, s)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pw.WriteString("passed-fd-data\n")
	pw.Close()
	out := filepath.Join(t.TempDir(), "out")
	of, _ := os.Create(out)
	r := e.corralWith(func(c *exec.Cmd) {
		c.Stdout, c.Stderr = of, of
		c.ExtraFiles = []*os.File{pr}
	}, "create", "--preserve-fds", "1", "--bundle", b, id)
	of.Close()
	pr.Close()
	if r.code != 0 {
		t.Fatalf("create: %v", r)
	}
	e.must("start", id)
	rtWaitFile(t, out, "fds=")
	if got := rtRead(t, out); !strings.Contains(got, "passed-fd-data") || !strings.Contains(got, "fds=0 1 2 3 4 ") {
		t.Errorf("container output %q: want the preserved fd 3 (and ls's own 4)", got)
	}
	p := specs.Process{Args: []string{"sh", "-c", "echo from-process-file $X $(pwd) $(id -u)"}, Env: []string{"X=42", "PATH=/bin"}, Cwd: "/tmp", User: specs.User{UID: 1000}}
	pf := filepath.Join(t.TempDir(), "process.json")
	data, _ := json.Marshal(p)
	os.WriteFile(pf, data, 0o644)
	if got := e.must("exec", "--process", pf, id); got != "from-process-file 42 /tmp 1000\n" {
		t.Errorf("exec --process: %q", got)
	}
	e.must("delete", "--force", id)
}
