package image

import (
	"archive/tar"
	"slices"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestAddSecondName: adding an image the store has under a new name keeps
// the old one, and the record says which name this add gave (pull and load
// printed every name of the image, as if the archive carried them all).
func TestAddSecondName(t *testing.T) {
	testutil.RequireRoot(t)
	s := &Store{Root: t.TempDir()}
	img := imageOf(t, layerTar(t, entry{name: "etc/", typ: tar.TypeDir}))
	if _, err := s.Add(img, []string{"example.org/a:1"}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Add(img, []string{"example.org/b:1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Given, []string{"example.org/b:1"}) || !slices.Contains(rec.Names, "example.org/a:1") || !slices.Contains(rec.Names, "example.org/b:1") {
		t.Errorf("second add: given %q, names %q; want given [example.org/b:1] and both names", rec.Given, rec.Names)
	}
}
