package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/runtime/image/containerroot"
	"github.com/corral-dev/corral/tests/testutil"
)

// TestMountRoot: a container's root shows the image, keeps its writes to
// itself, is never taken from a live container of the same name, and
// ReleaseRoot removes only what MountRoot made.
func TestMountRoot(t *testing.T) {
	testutil.RequireRoot(t)
	s := &Store{Root: t.TempDir()}
	rec, err := s.Add(imageOf(t, layerTar(t, entry{name: "etc/", typ: tar.TypeDir}, entry{name: "etc/os", body: "img", typ: tar.TypeReg})), []string{"example.org/r:1"})
	if err != nil {
		t.Fatal(err)
	}
	dir, root, err := s.MountRoot("c1", rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { containerroot.Release(dir) })
	if b, err := os.ReadFile(filepath.Join(root, "etc", "os")); err != nil || string(b) != "img" {
		t.Fatalf("the root does not show the image: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "os"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.layerDir(rec.Layers[0]), "etc", "os")); string(b) != "img" {
		t.Errorf("a container's write reached the image's layer: %q", b)
	}
	if _, _, err := s.MountRoot("c1", rec); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second root of the same name while the first is mounted: %v, want a refusal", err)
	}
	if _, err := s.Remove("example.org/r:1"); err == nil || !strings.Contains(err.Error(), "c1") {
		t.Errorf("rmi of an image in use: %v", err)
	}
	if err := containerroot.Release(t.TempDir()); err == nil {
		t.Error("ReleaseRoot removed a directory without the store's marker")
	}
	if err := containerroot.Release(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("ReleaseRoot left %s: %v", dir, err)
	}
}
