package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime/views"
	"github.com/corral-dev/corral/tests/testutil"
)

// deployDir returns <repo>/deploy/kubernetes (the manifests are not
// copied into the VM: the host run checks them).
func deployDir(t *testing.T) string {
	t.Helper()
	if testutil.InVM() {
		t.Skip("the manifests are checked by the host run (no source tree in the VM)")
	}
	root := testutil.ModuleRoot()
	if root == "" {
		t.Fatal("no source tree: cannot find deploy/kubernetes")
	}
	return filepath.Join(root, "deploy", "kubernetes")
}

// k8sDocs splits a manifest file into its YAML documents.
func k8sDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range bytes.Split(raw, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// strictDecode decodes a YAML document into a Kubernetes API type and fails
// on any field the type does not have: a misspelt mountPropagation would
// otherwise be dropped silently by the API server's older clients.
func strictDecode(t *testing.T, name string, doc []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// ociHookFile is the podman/CRI-O hooks schema 1.0.0
// (containers/common pkg/hooks/1.0.0).
type ociHookFile struct {
	Version string `json:"version"`
	Hook    struct {
		Path    string   `json:"path"`
		Args    []string `json:"args"`
		Env     []string `json:"env"`
		Timeout *int     `json:"timeout"`
	} `json:"hook"`
	When struct {
		Always        *bool             `json:"always"`
		Annotations   map[string]string `json:"annotations"`
		Commands      []string          `json:"commands"`
		HasBindMounts *bool             `json:"hasBindMounts"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// checkHookFile validates a hooks.d entry and returns it.
func checkHookFile(t *testing.T, name string, raw []byte) ociHookFile {
	t.Helper()
	var h ociHookFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if h.Version != "1.0.0" {
		t.Errorf("%s: version %q, want 1.0.0", name, h.Version)
	}
	if !filepath.IsAbs(h.Hook.Path) || filepath.Base(h.Hook.Path) != "corral" {
		t.Errorf("%s: hook.path %q, want an absolute path to corral", name, h.Hook.Path)
	}
	if len(h.Hook.Args) < 2 || h.Hook.Args[0] != "corral" || h.Hook.Args[1] != "hook" {
		t.Errorf("%s: hook.args %q, want [corral hook ...]", name, h.Hook.Args)
	}
	if i := slices.Index(h.Hook.Args, "--views"); i >= 0 && (i+1 >= len(h.Hook.Args) || h.Hook.Args[i+1] != facts.DefaultDir) {
		t.Errorf("%s: --views is not %s: %q", name, facts.DefaultDir, h.Hook.Args)
	}
	if h.When.Always == nil || !*h.When.Always {
		t.Errorf("%s: when.always is not true (the hook decides itself whether there is anything to bind)", name)
	}
	// Only the stages at which the container's mounts exist and pivot_root
	// has not happened yet: the ones `corral hook` is built for.
	if len(h.Stages) != 1 || (h.Stages[0] != "createContainer" && h.Stages[0] != "prestart") {
		t.Errorf("%s: stages %q, want [createContainer] or [prestart]", name, h.Stages)
	}
	return h
}

// TestInstallHooksDJSON: the hooks.d entry `make install` installs is a
// valid hooks 1.0.0 file pointing at the installed binary.
func TestInstallHooksDJSON(t *testing.T) {
	dir := deployDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "..", "..", "install", "hooks.d", "corralfs.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := checkHookFile(t, "install/hooks.d/corralfs.json", raw)
	if h.Hook.Path != "/usr/local/bin/corral" {
		t.Errorf("hook.path %q, want /usr/local/bin/corral (make install's BINDIR)", h.Hook.Path)
	}
}

// TestK8sManifests checks the DaemonSet and its companions: strict decoding
// into the Kubernetes API types, then the properties corralfs needs on a
// node (see the comments in corralfs-daemonset.yaml).
func TestK8sManifests(t *testing.T) {
	dir := deployDir(t)

	// kustomization.yaml lists every manifest, and only existing files.
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	strictDecode(t, "kustomization.yaml", k8sDocs(t, filepath.Join(dir, "kustomization.yaml"))[0], &kust)
	if kust.Kind != "Kustomization" || len(kust.Resources) == 0 {
		t.Fatalf("kustomization.yaml: %+v", kust)
	}

	var (
		ns  *corev1.Namespace
		cm  *corev1.ConfigMap
		ds  *appsv1.DaemonSet
		got []string
	)
	for _, file := range kust.Resources {
		for _, doc := range k8sDocs(t, filepath.Join(dir, file)) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got = append(got, meta.Kind)
			switch meta.Kind {
			case "Namespace":
				ns = &corev1.Namespace{}
				strictDecode(t, file, doc, ns)
			case "ConfigMap":
				cm = &corev1.ConfigMap{}
				strictDecode(t, file, doc, cm)
			case "DaemonSet":
				ds = &appsv1.DaemonSet{}
				strictDecode(t, file, doc, ds)
				if meta.APIVersion != "apps/v1" {
					t.Errorf("DaemonSet apiVersion %q", meta.APIVersion)
				}
			default:
				t.Errorf("%s: unexpected kind %q", file, meta.Kind)
			}
		}
	}
	if ns == nil || cm == nil || ds == nil {
		t.Fatalf("want a Namespace, a ConfigMap and a DaemonSet, got %v", got)
	}
	for _, m := range []struct{ kind, name, ns string }{{"ConfigMap", cm.Name, cm.Namespace}, {"DaemonSet", ds.Name, ds.Namespace}} {
		if m.name == "" || m.ns != ns.Name {
			t.Errorf("%s %q is in namespace %q, want %q", m.kind, m.name, m.ns, ns.Name)
		}
	}

	spec := ds.Spec.Template.Spec
	// The selector must match the template, or the API server refuses it.
	if ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchLabels) == 0 {
		t.Fatal("DaemonSet has no selector")
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if !spec.HostPID {
		t.Error("hostPID is not set: corralfs must see every container's processes")
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	hostPath := func(name string) string {
		if v, ok := volumes[name]; ok && v.HostPath != nil {
			return v.HostPath.Path
		}
		return ""
	}
	checkMounts := func(c corev1.Container, privileged bool) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts volume %q, which is not defined", c.Name, m.Name)
			}
		}
		if c.Image == "" {
			t.Errorf("container %s has no image", c.Name)
		}
		isPrivileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
		if isPrivileged != privileged {
			t.Errorf("container %s: privileged %v, want %v", c.Name, isPrivileged, privileged)
		}
	}

	// The daemon.
	var daemon, plugin *corev1.Container
	for i, c := range spec.Containers {
		runs := func(name string) bool {
			return slices.ContainsFunc(c.Command, func(a string) bool { return !strings.HasPrefix(a, "-") && filepath.Base(a) == name })
		}
		switch {
		case runs("corralfs"):
			daemon = &spec.Containers[i]
			checkMounts(c, true)
		case runs("corral-nri"):
			plugin = &spec.Containers[i]
			checkMounts(c, false) // a socket client: no privilege
		default:
			t.Errorf("container %s runs %q: neither corralfs nor corral-nri", c.Name, c.Command)
		}
	}
	if daemon == nil || plugin == nil {
		t.Fatal("want a container running corralfs and one running corral-nri")
	}
	checkNRIPlugin(t, daemon, plugin, hostPath)
	if last := daemon.Command[len(daemon.Command)-1]; last != facts.DefaultDir {
		t.Errorf("corralfs mounts at %q, want %s (where the hook looks)", last, facts.DefaultDir)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range daemon.VolumeMounts {
		mounts[m.MountPath] = m
	}
	viewMount, ok := mounts[facts.DefaultDir]
	switch {
	case !ok:
		t.Errorf("corralfs container does not mount %s", facts.DefaultDir)
	case viewMount.MountPropagation == nil || *viewMount.MountPropagation != corev1.MountPropagationBidirectional:
		t.Errorf("%s is not mounted with Bidirectional propagation: the FUSE mount would stay inside the pod", facts.DefaultDir)
	case hostPath(viewMount.Name) != facts.DefaultDir:
		t.Errorf("%s comes from host path %q", facts.DefaultDir, hostPath(viewMount.Name))
	}
	if m, ok := mounts["/dev/fuse"]; !ok || hostPath(m.Name) != "/dev/fuse" || *volumes[m.Name].HostPath.Type != corev1.HostPathCharDev {
		t.Error("corralfs container has no /dev/fuse character device from the host")
	}
	cgroupRoot := ""
	for _, a := range daemon.Command {
		if v, ok := strings.CutPrefix(a, "--cgroup-root="); ok {
			cgroupRoot = v
		}
	}
	if m, ok := mounts[cgroupRoot]; cgroupRoot == "" || !ok || hostPath(m.Name) != "/sys/fs/cgroup" {
		t.Errorf("--cgroup-root %q is not the host's /sys/fs/cgroup", cgroupRoot)
	}
	// nsenter into pid 1's cgroup namespace: /proc/PID/cgroup paths are
	// relative to the reader's cgroup namespace.
	if !slices.Contains(daemon.Command, "--cgroup") || !slices.Contains(daemon.Command, "--target=1") {
		t.Errorf("corralfs does not run in the node's cgroup namespace: %q", daemon.Command)
	}

	// The hook installer: it copies the binary to where the ConfigMap's
	// hook.path says, and the hook file into the hooks directory.
	if len(spec.InitContainers) != 1 {
		t.Fatalf("want one init container (the hook installer), got %d", len(spec.InitContainers))
	}
	inst := spec.InitContainers[0]
	checkMounts(inst, true)
	raw, ok := cm.Data["corralfs.json"]
	if !ok {
		t.Fatalf("ConfigMap %s has no corralfs.json", cm.Name)
	}
	h := checkHookFile(t, "ConfigMap corralfs.json", []byte(raw))
	script := strings.Join(inst.Command, " ")
	instMounts := map[string]string{} // mount path -> host path
	for _, m := range inst.VolumeMounts {
		instMounts[m.MountPath] = hostPath(m.Name)
		if v := volumes[m.Name]; v.ConfigMap != nil && v.ConfigMap.Name != cm.Name {
			t.Errorf("init container mounts ConfigMap %q, want %q", v.ConfigMap.Name, cm.Name)
		}
	}
	binDir := filepath.Dir(h.Hook.Path)
	if instMounts["/host"+binDir] != binDir || !strings.Contains(script, "/host"+h.Hook.Path) {
		t.Errorf("the init container does not install the hook binary at the node's %s", h.Hook.Path)
	}
	// corral runs its containers' inits from the corral-init beside it.
	if !strings.Contains(script, "/host"+filepath.Join(binDir, "corral-init")) {
		t.Errorf("the init container does not install corral-init beside %s", h.Hook.Path)
	}
	if instMounts["/host/hooks.d"] != "/usr/share/containers/oci/hooks.d" || !strings.Contains(script, "/host/hooks.d/corralfs.json") {
		t.Errorf("the init container does not install corralfs.json into CRI-O's hooks directory")
	}
}

// TestK8sHostPathExample: the hostPath example binds exactly the views
// runc lets a config mount cover (all of views.List except the PSI files,
// which only the hook can bind), from the corralfs mount.
func TestK8sHostPathExample(t *testing.T) {
	dir := deployDir(t)
	var pod corev1.Pod
	strictDecode(t, "pod-hostpath-views.yaml", k8sDocs(t, filepath.Join(dir, "examples", "pod-hostpath-views.yaml"))[0], &pod)
	sources := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			sources[v.Name] = v.HostPath.Path
		}
	}
	got := map[string]string{}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		got[m.MountPath] = sources[m.Name]
		if !m.ReadOnly {
			t.Errorf("%s is not mounted read-only", m.MountPath)
		}
	}
	for _, v := range views.List {
		if v.PSI {
			continue
		}
		if want := filepath.Join(facts.DefaultDir, v.Rel); got[v.Kernel] != want {
			t.Errorf("%s: bound from %q, want %s", v.Kernel, got[v.Kernel], want)
		}
		delete(got, v.Kernel)
	}
	if len(got) != 0 {
		t.Errorf("binds that are not views: %v", got)
	}
	var free corev1.Pod
	strictDecode(t, "pod-free.yaml", k8sDocs(t, filepath.Join(dir, "examples", "pod-free.yaml"))[0], &free)
	if free.Spec.Containers[0].Resources.Limits.Memory().Value() != 256<<20 {
		t.Errorf("pod-free.yaml: memory limit %v, the docs promise 256Mi", free.Spec.Containers[0].Resources.Limits.Memory())
	}
}
