package image

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// Removed says what Remove did: a name dropped from an image that keeps
// others (Untagged only), or the image deleted with the layers nothing
// else uses.
type Removed struct {
	Untagged []string
	Deleted  string // image id, "" when only untagged
	Layers   int    // layer directories removed
}

// Remove is `corral rmi REF`: REF given by name drops that name; when
// the image has no name left (or REF is its id) the image goes, refused
// while a container's root uses it, and so do its layers unless another
// image shares them.
func (s *Store) Remove(ref string) (*Removed, error) {
	ix, unlock, err := s.openIndex(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, at, err := findOrFail(ix, ref)
	if err != nil {
		return nil, err
	}
	out := &Removed{}
	canon, _ := CanonicalName(ref)
	if byName := slices.IndexFunc(rec.Names, func(n string) bool { return n == ref || n == canon }); byName >= 0 {
		out.Untagged = append(out.Untagged, rec.Names[byName])
		rec.Names = slices.Delete(rec.Names, byName, byName+1)
		if len(rec.Names) > 0 {
			return out, s.writeIndex(ix)
		}
	} else if len(rec.Names) > 0 {
		out.Untagged = slices.Clone(rec.Names)
	}
	if users := s.containersUsing(rec.ID); len(users) > 0 {
		return nil, fmt.Errorf("image %s is used by container(s) %s: delete them first", rec.ShortID(), strings.Join(users, ", "))
	}
	ix.Images = slices.Delete(ix.Images, at, at+1)
	if err := s.writeIndex(ix); err != nil {
		return nil, err
	}
	out.Deleted = rec.ID
	os.Remove(s.configPath(rec.ID))
	out.Layers = s.collectLayers(ix, rec.Layers)
	return out, nil
}

// collectLayers removes those of candidates no image of ix still uses.
// Containers need no check: their image is in ix while they exist.
func (s *Store) collectLayers(ix *index, candidates []string) int {
	used := map[string]bool{}
	for _, r := range ix.Images {
		for _, l := range r.Layers {
			used[l] = true
		}
	}
	n := 0
	for _, l := range candidates {
		if used[l] {
			continue
		}
		if err := os.RemoveAll(s.layerDir(l)); err == nil {
			os.Remove(s.layerDir(l) + ".size")
			n++
		}
	}
	return n
}
