package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/corral-dev/corral/tests/testutil"
)

// entry is one tar entry of a hand-made layer.
type entry struct {
	name, link, body string
	typ              byte
}

func layerTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func imageOf(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, testutil.LayerFromTar(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// storeIsEmpty: no layer directory (complete or temporary), no image.
func storeIsEmpty(t *testing.T, s *Store) {
	t.Helper()
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "layers", "sha256")); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the store kept layer entries after a failed add: %v", names)
	}
	if recs, err := s.List(); err != nil || len(recs) != 0 {
		t.Errorf("the store lists %d images (%v) after a failed add", len(recs), err)
	}
}

func TestAddRefusesUnsafeLayers(t *testing.T) {
	testutil.RequireRoot(t) // ownership and device nodes of layer entries
	outside := t.TempDir()
	cases := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dotdot path", []entry{{name: "../escaped", body: "x", typ: tar.TypeReg}}, `climbs out of the layer`},
		{"dotdot inside path", []entry{{name: "a/../../escaped", body: "x", typ: tar.TypeReg}}, `climbs out of the layer`},
		{"through an absolute symlink", []entry{
			{name: "evil", link: outside, typ: tar.TypeSymlink},
			{name: "evil/pwned", body: "x", typ: tar.TypeReg},
		}, `written through the symlink "evil"`},
		{"through a relative symlink", []entry{
			{name: "up", link: "../../../../../../../../" + outside, typ: tar.TypeSymlink},
			{name: "up/pwned", body: "x", typ: tar.TypeReg},
		}, `written through the symlink "up"`},
		{"hard link out", []entry{{name: "hl", link: "../../etc/passwd", typ: tar.TypeLink}}, `outside the layer`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Store{Root: t.TempDir()}
			_, err := s.Add(imageOf(t, layerTar(t, c.entries...)), []string{"example.org/bad:1"})
			var ue *UnsafeLayerError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Add: %v; want an UnsafeLayerError saying %q", err, c.want)
			}
			if _, err := os.Lstat(filepath.Join(outside, "pwned")); err == nil {
				t.Fatal("the layer wrote outside its directory")
			}
			storeIsEmpty(t, s)
		})
	}
}

// TestAddChecksDigestAndLength: a layer whose content does not match the
// config's diff id, and a truncated layer, are refused and leave nothing.
func TestAddChecksDigestAndLength(t *testing.T) {
	testutil.RequireRoot(t)
	good := layerTar(t, entry{name: "bin/", typ: tar.TypeDir}, entry{name: "bin/file", body: strings.Repeat("data", 4096), typ: tar.TypeReg})

	t.Run("digest mismatch", func(t *testing.T) {
		s := &Store{Root: t.TempDir()}
		img := imageOf(t, good)
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		other := imageOf(t, layerTar(t, entry{name: "other", body: "y", typ: tar.TypeReg}))
		ocf, _ := other.ConfigFile()
		cf.RootFS.DiffIDs = ocf.RootFS.DiffIDs // the config claims another layer
		bad, err := mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(bad, nil); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
			t.Fatalf("Add: %v; want a digest mismatch", err)
		}
		storeIsEmpty(t, s)
	})
	t.Run("truncated", func(t *testing.T) {
		s := &Store{Root: t.TempDir()}
		if _, err := s.Add(imageOf(t, good[:len(good)/2]), nil); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
			t.Fatalf("Add: %v; want the truncation reported", err)
		}
		storeIsEmpty(t, s)
	})
}

// TestAddWhiteoutsAndShare: whiteouts become overlay whiteouts, absolute
// symlinks inside the image are kept (they resolve in the container's
// root), and a layer two images share is unpacked once.
func TestAddWhiteoutsAndShare(t *testing.T) {
	testutil.RequireRoot(t)
	s := &Store{Root: t.TempDir()}
	base := layerTar(t, entry{name: "etc/", typ: tar.TypeDir}, entry{name: "etc/gone", body: "x", typ: tar.TypeReg},
		entry{name: "bin/", typ: tar.TypeDir}, entry{name: "bin/sh", link: "/bin/busybox", typ: tar.TypeSymlink})
	top := layerTar(t, entry{name: "etc/.wh.gone", typ: tar.TypeReg}, entry{name: "bin/.wh..wh..opq", typ: tar.TypeReg})
	a, err := s.Add(imageOf(t, base, top), []string{"example.org/a:1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Add(imageOf(t, base), []string{"example.org/b:1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Layers[0] != b.Layers[0] {
		t.Fatalf("the shared layer has two ids: %s %s", a.Layers[0], b.Layers[0])
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "layers", "sha256")); len(ents) != 4 { // 2 dirs + 2 .size
		t.Errorf("%d entries under layers/sha256, want 2 layers and their sizes", len(ents))
	}
	topDir := s.layerDir(a.Layers[1])
	fi, err := os.Lstat(filepath.Join(topDir, "etc", "gone"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("whiteout etc/gone: %v %v, want a character device", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(s.layerDir(a.Layers[0]), "bin", "sh")); err != nil || l != "/bin/busybox" {
		t.Errorf("bin/sh -> %q (%v), want /bin/busybox", l, err)
	}
	// rmi of one keeps the shared layer; of the other, removes all.
	if _, err := s.Remove("example.org/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.layerDir(b.Layers[0])); err != nil {
		t.Errorf("rmi removed a layer another image uses: %v", err)
	}
	if _, err := s.Remove("example.org/b:1"); err != nil {
		t.Fatal(err)
	}
	storeIsEmpty(t, s)
}
