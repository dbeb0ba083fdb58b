package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// ctrEnv is a private containerd (own root, state and socket; no CRI
// plugin) and ctr talking to it.
type ctrEnv struct {
	t      *testing.T
	ctr    string
	addr   string
	image  string
	cgName string // containers' cgroups go below /corral-test/<cgName>
}

// newCtrEnv starts containerd and imports a busybox image (an OCI archive
// saved by podman from testutil.BusyboxRootfs).
func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	testutil.RequireRoot(t)
	if testutil.InVM() {
		t.Skip("no containerd in the VM; the host run covers it")
	}
	containerd := testutil.RequireCommand(t, "containerd")
	testutil.RequireCommand(t, "containerd-shim-runc-v2")
	e := &ctrEnv{t: t, ctr: testutil.RequireCommand(t, "ctr"), cgName: fmt.Sprintf("ctr-%d", os.Getpid())}
	// containerd-shim-runc-v2 passes --root /run/containerd/runc/<namespace>
	// to the runtime, and ctr and the shim keep fifos and sockets below
	// /run/containerd, whatever containerd's own root is; remove what they
	// create there if the host had none of it.
	var shimDirs []string
	for _, d := range []string{"/run/containerd/runc/default", "/run/containerd/runc", "/run/containerd/fifo", "/run/containerd/s", "/run/containerd"} {
		if _, err := os.Stat(d); err != nil {
			shimDirs = append(shimDirs, d)
		}
	}
	t.Cleanup(func() {
		for _, d := range shimDirs {
			_ = os.Remove(d) // only if empty
		}
	})
	dir := t.TempDir()
	e.addr = filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.addr)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(containerd, "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Containers first (their shims exit with them), then the daemon.
		for _, id := range strings.Fields(e.mustQuiet("container", "ls", "--quiet")) {
			e.ctrCmd(nil, "task", "kill", "--signal", "SIGKILL", id)
			e.ctrCmd(nil, "task", "delete", "--force", id)
			e.ctrCmd(nil, "container", "rm", id)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		removeMountsBelow(t, dir)
		removePodmanCgroups(t, e.cgName)
		if t.Failed() {
			t.Logf("containerd log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", e.addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s in 30 s:\n%s", e.addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An OCI archive of the busybox rootfs, made by a throwaway podman store.
	pm := newPodmanEnv(t, testutil.RequireCommand(t, "runc"))
	archive := filepath.Join(dir, "busybox-oci.tar")
	pm.must("save", "--format", "oci-archive", "--output", archive, pm.image)
	e.image = "localhost/corral-test-busybox:ctr"
	if out, err := e.ctrCmd(nil, "image", "import", "--index-name", e.image, archive); err != nil {
		t.Fatalf("ctr image import: %v\n%s", err, out)
	}
	return e
}

func (e *ctrEnv) ctrCmd(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.ctr, append([]string{"--address", e.addr}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *ctrEnv) must(args ...string) string {
	e.t.Helper()
	out, err := e.ctrCmd(nil, args...)
	if err != nil {
		e.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *ctrEnv) mustQuiet(args ...string) string {
	out, _ := e.ctrCmd(nil, args...)
	return out
}

// taskStatus is the STATUS column of `ctr task ls` for id ("" if absent).
func (e *ctrEnv) taskStatus(id string) (pid int, status string) {
	e.t.Helper()
	for _, line := range strings.Split(e.must("task", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			pid, _ = strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	return 0, ""
}

// TestContainerdCorralRuntime: containerd's runc shim (containerd-shim-runc-v2)
// drives bin/corral given as --runc-binary: run (create/start/delete with
// --root, --log and --log-format json), the exit status, the memory limit,
// exec, pause/resume and kill.
func TestContainerdCorralRuntime(t *testing.T) {
	e := newCtrEnv(t)
	corral := testutil.Binary(t, "corral")
	cg := func(id string) string { return testutil.TestCgroupParent + "/" + e.cgName + "/" + id }

	out, err := e.ctrCmd(nil, "run", "--rm", "--runc-binary", corral, "--cgroup", cg("c1"), e.image, "c1", "sh", "-c", "echo hello from corral; exit 5")
	if strings.TrimSpace(out) != "hello from corral" || exitCode(err) != 5 {
		t.Errorf("ctr run: %q, exit %d (%v); want the greeting and exit 5", out, exitCode(err), err)
	}

	e.must("run", "--detach", "--runc-binary", corral, "--cgroup", cg("c2"), "--memory-limit", strconv.Itoa(256<<20), e.image, "c2", "sleep", "600")
	pid, status := e.taskStatus("c2")
	if status != "RUNNING" || pid <= 0 {
		t.Fatalf("ctr task ls: c2 %d %q, want RUNNING", pid, status)
	}
	if got := hostMemoryLimit(t, pid); got != strconv.Itoa(256<<20) {
		t.Errorf("memory limit of c2's cgroup: %s, want %d", got, 256<<20)
	}
	if out := e.must("task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "ps -o pid,comm"); !strings.Contains(out, "sleep") || !strings.Contains(out, " 1 ") {
		t.Errorf("ctr task exec: ps inside does not show sleep as pid 1:\n%s", out)
	}
	e.must("task", "pause", "c2")
	if _, st := e.taskStatus("c2"); st != "PAUSED" {
		t.Errorf("after ctr task pause: %q", st)
	}
	e.must("task", "resume", "c2")
	if _, st := e.taskStatus("c2"); st != "RUNNING" {
		t.Errorf("after ctr task resume: %q", st)
	}
	e.must("task", "kill", "--signal", "SIGKILL", "c2")
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, st := e.taskStatus("c2")
		if st == "STOPPED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c2 is %q 20 s after SIGKILL", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.must("task", "delete", "c2")
	e.must("container", "rm", "c2")
	if _, st := e.taskStatus("c2"); st != "" {
		t.Errorf("c2 still listed after delete: %q", st)
	}
}
