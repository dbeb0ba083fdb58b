package cri

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/corral-dev/corral/tests/testutil"
)

// containerdVersion is the containerd 2 release the test runs, installed
// by `make test-deps` (tests/cri/install-containerd.sh) into
// cacheDir()/containerd-VERSION: Debian's containerd 1.6 has no usable NRI.
const containerdVersion = "v2.4.2"

func cacheDir() string {
	if d := os.Getenv("CORRAL_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/corral-test"
}

// requireContainerd returns the directory holding containerd,
// containerd-shim-runc-v2 and ctr, failing under CI=true when absent.
func requireContainerd(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(cacheDir(), "containerd-"+containerdVersion)
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			msg := fmt.Sprintf("containerd %s is not installed in %s (make test-deps installs it): %v", containerdVersion, dir, err)
			if testutil.InCI() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return dir
}

// containerdEnv is a private containerd 2 with the CRI and NRI enabled:
// its own root, state, sockets and config; runtime handlers "runc"
// (default) and "corral" (the runc shim with BinaryName = bin/corral).
type containerdEnv struct {
	dir     string // everything of this containerd lives below
	sock    string // CRI/containerd gRPC socket
	nriSock string
	bins    string // containerd's install directory
	log     *testutil.SyncBuffer
	cmd     *exec.Cmd
	rt      internalapi.RuntimeService
}

// containerdConfig is a config version 3 (containerd 2.x). The CRI's
// streaming server listens on a free loopback port (ExecSync needs none,
// but the server starts anyway); no CNI: every pod uses the host network.
const containerdConfig = `version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[4]q

[plugins."io.containerd.cri.v1.runtime"]
  # Sandboxes ask for oom_score_adj -998; a containerd without
  # CAP_SYS_RESOURCE (this CI's, rootless ones) cannot lower a score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[5]q]
    conf_dir = %[5]q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %[6]q
        SystemdCgroup = false

[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
  socket_path = %[8]q
  plugin_path = %[5]q
  plugin_config_path = %[5]q
  plugin_registration_timeout = "10s"
  plugin_request_timeout = "5s"

# The corral handler: deploy/kubernetes/runtime-handlers/containerd-corral.toml
%[7]s
`

// shippedHandlerConfig is the containerd snippet the project ships for the
// "corral" RuntimeClass, with the node's binary path replaced by corral:
// the test runs what the documentation tells users to configure.
func shippedHandlerConfig(t *testing.T, corral string) string {
	t.Helper()
	const nodeBinary = "/opt/corral/bin/corral"
	b, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(), "deploy", "kubernetes", "runtime-handlers", "containerd-corral.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `BinaryName = "`+nodeBinary+`"`) {
		t.Fatalf("containerd-corral.toml does not name %s as BinaryName:\n%s", nodeBinary, b)
	}
	return strings.ReplaceAll(string(b), `"`+nodeBinary+`"`, fmt.Sprintf("%q", corral))
}

// startContainerd starts containerd with env added to its environment
// (its shims and runtimes inherit it) and connects a CRI client. Cleanup
// removes every pod, stops containerd, and checks that no shim, mount or
// runtime state of it is left.
func startContainerd(t *testing.T, runc, corral string, env []string) *containerdEnv {
	t.Helper()
	e := &containerdEnv{bins: requireContainerd(t), log: &testutil.SyncBuffer{}}
	// Sockets have a 108-byte limit: a short directory of our own.
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	e.dir = dir
	e.sock = filepath.Join(dir, "containerd.sock")
	e.nriSock = filepath.Join(dir, "nri.sock")
	empty := filepath.Join(dir, "empty")
	must(t, os.Mkdir(empty, 0o755))
	// The runc shim keeps its runtime's state below /run/containerd/runc
	// and its sockets below /run/containerd/s whatever containerd's own
	// state is: remove what it creates there if the host had none of it.
	var shimDirs []string
	for _, d := range []string{"/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd/s", "/run/containerd"} {
		if _, err := os.Stat(d); err != nil {
			shimDirs = append(shimDirs, d)
		}
	}
	conf := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.sock,
		testImage, empty, runc, shippedHandlerConfig(t, corral), e.nriSock)
	must(t, os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644))

	e.cmd = exec.Command(filepath.Join(e.bins, "containerd"), "--config", filepath.Join(dir, "config.toml"))
	e.cmd.Env = append(append(os.Environ(), "PATH="+e.bins+":"+os.Getenv("PATH")), env...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	must(t, e.cmd.Start())
	exited := make(chan struct{})
	go func() { e.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		e.removeAllPods(t)
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("containerd ignored SIGTERM for 20 s")
			e.cmd.Process.Kill()
			<-exited
		}
		e.checkNoShims(t)
		unmountBelow(t, dir)
		if t.Failed() {
			t.Logf("containerd log:\n%s", e.log.String())
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing containerd's directory: %v", err)
		}
		for _, d := range shimDirs {
			_ = os.Remove(d) // only if empty: another containerd may use it
		}
	})
	testutil.WaitFor(t, 60*time.Second, "containerd listening on "+e.sock, func() bool {
		c, err := net.Dial("unix", e.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	e.rt, err = remote.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + e.sock).
		WithConnectionTimeout(30 * time.Second).Build(context.Background())
	if err != nil {
		t.Fatalf("CRI client: %v", err)
	}
	return e
}

// ctr runs containerd's ctr against this containerd in the k8s.io
// namespace (the CRI's).
func (e *containerdEnv) ctr(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bins, "ctr"), append([]string{"--address", e.sock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeAllPods stops and removes every pod sandbox the CRI knows (their
// containers go with them), as the kubelet does when pods are deleted.
func (e *containerdEnv) removeAllPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pods, err := e.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Errorf("ListPodSandbox: %v", err)
		return
	}
	for _, p := range pods {
		if err := e.rt.StopPodSandbox(ctx, p.Id); err != nil {
			t.Errorf("StopPodSandbox %s: %v", p.Id, err)
		}
		if err := e.rt.RemovePodSandbox(ctx, p.Id); err != nil {
			t.Errorf("RemovePodSandbox %s: %v", p.Id, err)
		}
	}
	if pods, err := e.rt.ListPodSandbox(ctx, nil); err != nil || len(pods) != 0 {
		t.Errorf("after removing every pod: %d sandboxes left (%v)", len(pods), err)
	}
}

// checkNoShims fails the test for any shim of this containerd still
// running (they are told apart by its socket on their command line), and
// kills them: only processes this test started.
func (e *containerdEnv) checkNoShims(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := processesWithArg(e.sock)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("shims of the test's containerd still running 10 s after it stopped: %v", pids)
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesWithArg lists the pids whose command line has an argument
// containing s.
func processesWithArg(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		var pid int
		if _, err := fmt.Sscanf(ent.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if len(a) > 0 && strings.Contains(string(a), s) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// unmountBelow detaches every mount below dir (deepest first) and fails
// the test if there were any: containerd must have removed its sandboxes'
// shm and rootfs mounts itself.
func unmountBelow(t *testing.T, dir string) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Errorf("mountinfo: %v", err)
		return
	}
	var left []string
	for i := len(ms) - 1; i >= 0; i-- {
		// containerd's own root/state bind of itself is not a leak.
		left = append(left, ms[i].Mountpoint)
		if err := unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", ms[i].Mountpoint, err)
		}
	}
	if len(left) > 0 {
		t.Errorf("mounts left below %s after every pod was removed and containerd stopped: %v", dir, left)
	}
}
