package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// platform is the one image of a multi-platform index that runs here.
var platform = v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}

// Pull fetches ref from its registry (docker's rules for short names:
// "alpine" is index.docker.io/library/alpine:latest; plain http for
// localhost and loopback registries) with the credentials of the usual
// docker config ($DOCKER_CONFIG, ~/.docker/config.json, credential
// helpers), and stores it. Every blob is checked against its digest.
func (s *Store) Pull(ctx context.Context, ref string) (*Record, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %q: %w", ref, err)
	}
	img, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(platform))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	rec, err := s.Add(img, []string{r.Name()})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	return rec, nil
}

// Load stores every image of an archive as `docker save` (docker-archive:
// manifest.json) or `podman save --format oci-archive` (an OCI layout:
// index.json) write it, named by the tags it carries.
func (s *Store) Load(path string) ([]*Record, error) {
	has, err := archiveMembers(path, "manifest.json", "index.json")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	switch {
	case has["manifest.json"]: // docker-archive (docker 25+ writes index.json too)
		return s.loadDockerArchive(path)
	case has["index.json"]:
		return s.loadOCIArchive(path)
	}
	return nil, fmt.Errorf("load %s: neither a docker-archive (no manifest.json) nor an OCI archive (no index.json)", path)
}

// archiveMembers reads the tar's headers and says which of names it holds.
func archiveMembers(path string, names ...string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	has := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return has, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not a readable tar archive: %w", err)
		}
		if n := filepath.Clean(hdr.Name); want[n] {
			has[n] = true
		}
	}
}

func (s *Store) loadDockerArchive(path string) ([]*Record, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("load %s: manifest.json: %w", path, err)
	}
	var out []*Record
	for i, d := range m {
		var tag *name.Tag
		var names []string
		for _, t := range d.RepoTags {
			nt, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("load %s: image %d: tag %q: %w", path, i+1, t, err)
			}
			if tag == nil {
				tag = &nt
			}
			names = append(names, nt.Name())
		}
		if tag == nil && len(m) > 1 {
			return nil, fmt.Errorf("load %s: image %d has no tag, and the archive holds %d images: cannot tell it apart", path, i+1, len(m))
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		rec, err := s.Add(img, names)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// loadOCIArchive unpacks the archive's OCI layout into a temporary
// directory of the store (regular files only, same safety rules as a
// layer) and stores each image of its index.
func (s *Store) loadOCIArchive(path string) ([]*Record, error) {
	if err := os.MkdirAll(s.path("tmp"), 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.path("tmp"), fmt.Sprintf("oci-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := extractLayout(path, dir); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	var out []*Record
	for _, d := range im.Manifests {
		img, err := imageFor(idx, d)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		var names []string
		// containerd and docker record the full name; podman and skopeo
		// put it in the OCI ref name (a bare tag there names nothing).
		for _, key := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if n := d.Annotations[key]; n != "" {
				if t, err := name.NewTag(n, name.StrictValidation); err == nil {
					names = append(names, t.Name())
					break
				}
				if t, err := name.NewTag(n); err == nil && filepath.Base(n) != n {
					names = append(names, t.Name())
					break
				}
			}
		}
		rec, err := s.Add(img, names)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load %s: the archive's index.json lists no image", path)
	}
	return out, nil
}

// imageFor resolves an index entry to an image, choosing this platform's
// image from a nested multi-platform index.
func imageFor(idx v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	if !d.MediaType.IsIndex() {
		return idx.Image(d.Digest)
	}
	sub, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	im, err := sub.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.Satisfies(platform) {
			return imageFor(sub, m)
		}
	}
	return nil, fmt.Errorf("no image for %s/%s in the archive", platform.OS, platform.Architecture)
}

// extractLayout writes the regular files of an OCI archive into dir.
func extractLayout(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		rel, err := cleanEntryPath(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg, tar.TypeRegA:
		default:
			return &UnsafeLayerError{Entry: hdr.Name, Reason: "an OCI archive holds only regular files and directories"}
		}
		if err := checkParents(dir, rel); err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		os.Remove(target)
		if _, err := writeFile(target, tr); err != nil {
			return fmt.Errorf("archive entry %s: %w", rel, err)
		}
	}
}
