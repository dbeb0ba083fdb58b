package runspec

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
)

// When corral is an engine's OCI runtime (containerd's runc shim with
// BinaryName = corral, i.e. a Kubernetes RuntimeClass; podman --runtime;
// ctr --runc-binary), `corral create` is all it is asked, with runc's
// flags only: nothing per container can tell it to bind the views. So a
// bundle gets the views and the sysinfo(2) rule exactly when a corralfs
// serves, as `corral run` does by default (design decision 38).
// What decides, in order:
//
//   - the bundle's annotation corral.dev/views=off (the NRI plugin's pod
//     annotation, where the engine passes pod annotations through:
//     containerd's pod_annotations, CRI-O's allowed_annotations);
//   - CORRAL_VIEWS in the environment (the engine's, which its shims and
//     runtimes inherit): "none", or the directory corralfs serves at;
//   - otherwise facts.DefaultDir.
//
// Nothing here fails a container: no corralfs, a dead one, or anything
// wrong, and the bundle runs as it is, as under runc.

const (
	// EnvViews names the views directory for `corral create`, or "none".
	EnvViews = "CORRAL_VIEWS"
	// EnvSeccompSocket names the sysinfo agent's socket for `corral
	// create` ("" or unset: facts.SeccompSocket).
	EnvSeccompSocket = "CORRAL_SECCOMP_SOCKET"
)

// ForEngine adds the views and the sysinfo rule to a bundle's spec s for
// `corral create`, and returns what is worth telling the engine's log
// (nothing when no corralfs serves: that is a node without corral's
// views, not a problem).
func ForEngine(s *specs.Spec, host Host) (notes []string) {
	if s == nil || s.Linux == nil {
		return nil
	}
	if v := strings.ToLower(strings.TrimSpace(s.Annotations[facts.ViewsAnnotation])); v == "off" || v == "false" {
		return []string{fmt.Sprintf("views: the container opted out (%s=%s)", facts.ViewsAnnotation, v)}
	}
	dir := ""
	if host.LookupEnv != nil {
		dir, _ = host.LookupEnv(EnvViews)
	}
	switch dir {
	case "none":
		return nil
	case "", "auto":
		dir = facts.DefaultDir
	}
	live, err := host.ProbeViews(dir)
	if !live {
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("the corralfs at %s does not answer (%v): no views", dir, err)}
	}
	res := &Result{Spec: s}
	// No id here: the container's own files (bound views) when the spec
	// names its cgroup, the shared ones otherwise.
	if err := addViews(res, "", dir, host); err != nil {
		return []string{err.Error()}
	}
	if err := addSysinfo(s, "auto", host); err != nil {
		notes = append(notes, err.Error())
	}
	return notes
}
