package cri

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test's one image, built here from the host's static busybox: the
// pod's sandbox (pause) container runs its default command, a sleep, and
// the test's containers run busybox applets. No registry is reached.

// testImage is the name both the CRI config (the sandbox image) and
// CreateContainer use.
const testImage = "localhost/corral-test-busybox:cri"

// blob is one content-addressed file of an OCI image layout.
type blob struct {
	digest string // "sha256:..."
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

// busyboxLayer is an uncompressed layer: /bin/busybox, a symlink per
// applet, and the directories a runtime mounts over.
func busyboxLayer(t *testing.T, busybox string) []byte {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: mtime}))
	}
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}))
	_, err = tw.Write(bin)
	must(t, err)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: mtime}))
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// writeImageArchive writes an OCI image-layout tar of the busybox image to
// path, named testImage for containerd's importer.
func writeImageArchive(t *testing.T, busybox, path string) {
	t.Helper()
	layer := newBlob(busyboxLayer(t, busybox))
	config := newBlob(mustJSON(t, map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env": []string{"PATH=/bin"},
			"Cmd": []string{"sleep", "2147483647"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.digest}},
	}))
	manifest := newBlob(mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": len(config.data)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.digest, "size": len(layer.data)}},
	}))
	index := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest":    manifest.digest,
			"size":      len(manifest.data),
			"platform":  map[string]string{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{
				"io.containerd.image.name":          testImage,
				"org.opencontainers.image.ref.name": "cri",
			},
		}},
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}))
		_, err := tw.Write(data)
		must(t, err)
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", index)
	for _, b := range []blob{layer, config, manifest} {
		add("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data)
	}
	must(t, tw.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
