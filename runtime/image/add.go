package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Add stores img under names (canonical references; none for an archive
// entry without a tag): its layers are unpacked and verified first, the
// index is updated last, so a failure leaves the store as it was. A name
// another image had moves to this one, as a docker tag does.
func (s *Store) Add(img v1.Image, names []string) (*Record, error) {
	unlock, err := s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.removeStaleTemps(); err != nil {
		return nil, err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(rawCfg)))
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image %s: the manifest has %d layers, the config %d diff ids", id, len(layers), len(cfg.RootFS.DiffIDs))
	}
	rec := &Record{ID: id.String(), Names: slices.Clone(names), Given: slices.Clone(names), Created: cfg.Created.Time, Added: time.Now().UTC()}
	for i, l := range layers {
		want := cfg.RootFS.DiffIDs[i].String()
		n, err := s.addLayer(l, want)
		if err != nil {
			return nil, fmt.Errorf("layer %d of %d (%s): %w", i+1, len(layers), short(want), err)
		}
		rec.Layers = append(rec.Layers, want)
		rec.Size += n
	}
	if err := os.MkdirAll(filepath.Dir(s.configPath(rec.ID)), 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.configPath(rec.ID), rawCfg); err != nil {
		return nil, fmt.Errorf("store image config: %w", err)
	}
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	for _, r := range ix.Images {
		r.Names = slices.DeleteFunc(r.Names, func(n string) bool { return slices.Contains(names, n) })
	}
	if old := slices.IndexFunc(ix.Images, func(r *Record) bool { return r.ID == rec.ID }); old >= 0 {
		for _, n := range ix.Images[old].Names {
			if !slices.Contains(rec.Names, n) {
				rec.Names = append(rec.Names, n)
			}
		}
		ix.Images[old] = rec
	} else {
		ix.Images = append(ix.Images, rec)
	}
	if err := s.writeIndex(ix); err != nil {
		return nil, fmt.Errorf("image store index: %w", err)
	}
	return rec, nil
}

func short(digest string) string {
	h := hexOf(digest)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// addLayer unpacks l into its content-addressed directory unless it is
// there already, and returns its unpacked size. The directory appears
// (by rename) only once the content matched diffID.
func (s *Store) addLayer(l v1.Layer, diffID string) (int64, error) {
	final := s.layerDir(diffID)
	if _, err := os.Stat(final); err == nil {
		return readSize(final + ".size"), nil
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	// The layer's root directory is the container's "/": world-readable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, err
	}
	got, n, err := unpackLayer(rc, tmp)
	// Close reports what only the end of the stream shows: a registry
	// blob whose compressed digest does not match is caught here.
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		// A blob corrupted in transit breaks the decompression or the
		// tar format before its end, where its digest is checked: read
		// it once more to say so, rather than "invalid tar header".
		if verr := verifyBlob(l); verr != nil {
			return 0, fmt.Errorf("the blob does not match its digest: %w", verr)
		}
		return 0, err
	}
	if got != diffID {
		return 0, fmt.Errorf("digest mismatch: the layer's content is %s, the image config says %s", got, diffID)
	}
	if err := writeFileAtomic(final+".size", []byte(strconv.FormatInt(n, 10))); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, err
	}
	ok = true
	return n, nil
}

// verifyBlob reads the layer's compressed blob to its end: a registry
// layer's reader checks the digest there.
func verifyBlob(l v1.Layer) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func readSize(path string) int64 {
	data, _ := os.ReadFile(path)
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// removeStaleTemps deletes what an unpack killed midway left (its
// temporary directory; called under the exclusive lock, so no unpack is
// running) and the OCI archive extractions of load processes that are
// gone (tmp/oci-PID-*; a live one's is in use).
func (s *Store) removeStaleTemps() error {
	layers := s.path("layers", "sha256")
	ents, err := os.ReadDir(layers)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(layers, e.Name())); err != nil {
				return err
			}
		}
	}
	tmps, _ := os.ReadDir(s.path("tmp"))
	for _, e := range tmps {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "oci-%d-", &pid); err == nil && pid > 0 && unix.Kill(pid, 0) == unix.ESRCH {
			os.RemoveAll(s.path("tmp", e.Name()))
		}
	}
	return nil
}
