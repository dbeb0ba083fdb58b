package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime/views"
)

// When corral is an engine's OCI runtime (containerd's runc shim with
// BinaryName = corral, i.e. a Kubernetes RuntimeClass; podman --runtime;
// ctr --runc-binary), `corral create` is all it is asked, with no flag of
// ours: the engine passes only runc's. So a bundle gets the views and the
// sysinfo(2) rule exactly when a corralfs serves on the node, as `corral
// run` does by default. What decides, in order:
//
//   - the bundle's annotation corral.dev/views=off (the NRI plugin's pod
//     annotation, when the engine passes pod annotations through:
//     containerd's pod_annotations, CRI-O's allowed_annotations);
//   - CORRAL_VIEWS in the environment (the engine's, which its shims and
//     runtimes inherit): "none", or the directory corralfs serves at;
//   - otherwise /var/lib/corralfs.
//
// Nothing here fails a container: no corralfs, a dead one, or anything
// wrong, and the container starts with the host's files, as with runc.

// Environment variables read by `corral create`.
const (
	envViews         = "CORRAL_VIEWS"          // "none" or the views directory
	envSeccompSocket = "CORRAL_SECCOMP_SOCKET" // the sysinfo agent's socket, "" for /run/corralfs/seccomp.sock
	// viewsAnnotation is the NRI plugin's pod annotation (cmd/corral-nri).
	viewsAnnotation = "corral.dev/views"
)

// addEngineViews adds the views and the sysinfo rule to a bundle's spec
// for `corral create`, and says what it did on log (nil: nowhere).
func addEngineViews(s *specs.Spec, log io.Writer) {
	if log == nil {
		log = io.Discard
	}
	if s == nil || s.Linux == nil || s.Root == nil {
		return
	}
	if v := strings.ToLower(s.Annotations[viewsAnnotation]); v == "off" || v == "false" {
		fmt.Fprintf(log, "corral: views: the container opted out (%s=%s)\n", viewsAnnotation, v)
		return
	}
	dir := os.Getenv(envViews)
	switch dir {
	case "none":
		return
	case "", "auto":
		dir = views.DefaultDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		fmt.Fprintf(log, "corral: views: %s: %v\n", envViews, err)
		return
	}
	if live, err := views.Live(dir); err != nil || !live {
		return // no corralfs on this node: the host's files, silently, as runc
	}
	if err := views.Answers(dir, 2*time.Second); err != nil {
		fmt.Fprintf(log, "corral: the corralfs at %s does not answer (%v): no views\n", dir, err)
		return
	}
	if err := addViews(s, dir, log); err != nil {
		fmt.Fprintf(log, "corral: views: %v\n", err)
		return
	}
	sock := os.Getenv(envSeccompSocket)
	if sock == "" {
		sock = sysinfoSocket
	}
	if err := addSysinfoAt(s, "auto", sock); err != nil {
		fmt.Fprintf(log, "corral: sysinfo: %v\n", err)
	}
}
