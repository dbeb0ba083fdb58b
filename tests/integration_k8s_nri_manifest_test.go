package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"

	"github.com/corral-dev/corral/fusefs/facts"
)

// flagValue returns the value of --name=VALUE in a command line.
func flagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// checkNRIPlugin: the DaemonSet's corral-nri container sees corralfs's
// mount (HostToContainer from the node's /var/lib/corralfs, where corralfs
// mounts it), the agent socket corralfs serves, and the node's NRI socket
// directory.
func checkNRIPlugin(t *testing.T, daemon, plugin *corev1.Container, hostPath func(string) string) {
	t.Helper()
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range plugin.VolumeMounts {
		mounts[m.MountPath] = m
	}
	dir := flagValue(plugin.Command, "views")
	if dir != facts.DefaultDir {
		t.Errorf("corral-nri --views=%q, want %s", dir, facts.DefaultDir)
	}
	switch m, ok := mounts[dir]; {
	case !ok:
		t.Errorf("corral-nri does not mount %s", dir)
	case m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer:
		t.Errorf("corral-nri mounts %s without HostToContainer propagation: it would never see corralfs's mount", dir)
	case hostPath(m.Name) != facts.DefaultDir:
		t.Errorf("corral-nri's %s comes from host path %q", dir, hostPath(m.Name))
	}
	sock := flagValue(plugin.Command, "seccomp-socket")
	if want := flagValue(daemon.Command, "seccomp-socket"); sock == "" || sock != want {
		t.Errorf("corral-nri --seccomp-socket=%q, corralfs serves %q", sock, want)
	}
	if m, ok := mounts[filepath.Dir(sock)]; !ok || hostPath(m.Name) != "/run/corralfs" {
		t.Errorf("corral-nri does not see the node's /run/corralfs at %s", filepath.Dir(sock))
	}
	nri := flagValue(plugin.Command, "nri-socket")
	if m, ok := mounts[filepath.Dir(nri)]; nri == "" || !ok || hostPath(m.Name) != filepath.Dir(nri) {
		t.Errorf("corral-nri --nri-socket=%q is not in the node's NRI socket directory", nri)
	}
}

// TestK8sRuntimeClass: the RuntimeClass decodes strictly, names the
// handler the shipped containerd and CRI-O snippets configure, and those
// run the binary the DaemonSet installs (the hook's path).
func TestK8sRuntimeClass(t *testing.T) {
	dir := deployDir(t)
	var rc nodev1.RuntimeClass
	strictDecode(t, "runtimeclass.yaml", k8sDocs(t, filepath.Join(dir, "runtimeclass.yaml"))[0], &rc)
	if rc.Kind != "RuntimeClass" || rc.Name == "" || rc.Handler == "" {
		t.Fatalf("runtimeclass.yaml: %+v", rc)
	}
	var cm corev1.ConfigMap
	strictDecode(t, "hook-configmap.yaml", k8sDocs(t, filepath.Join(dir, "hook-configmap.yaml"))[0], &cm)
	binary := checkHookFile(t, "ConfigMap corralfs.json", []byte(cm.Data["corralfs.json"])).Hook.Path
	for file, want := range map[string][]string{
		"containerd-corral.toml": {`containerd.runtimes.` + rc.Handler + `]`, `runtime_type = "io.containerd.runc.v2"`, `BinaryName = "` + binary + `"`},
		"crio-corral.conf":       {`[crio.runtime.runtimes.` + rc.Handler + `]`, `runtime_path = "` + binary + `"`},
	} {
		b, err := os.ReadFile(filepath.Join(dir, "runtime-handlers", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s has no %s", file, w)
			}
		}
	}
}
