// Package image is corral's image store: OCI and Docker images pulled
// from a registry or loaded from a `docker save`/`podman save` archive,
// kept content-addressed under one directory (default /var/lib/corral):
//
//	ROOT/lock                          flock: one writer at a time
//	ROOT/images.json                   the index: names -> image id, layers
//	ROOT/configs/sha256/HEX.json       each image's config (id = its digest)
//	ROOT/layers/sha256/HEX/            each layer unpacked once, by diff id
//	ROOT/containers/ID/{upper,work,rootfs}  a container's overlay root
//
// A layer is unpacked into a temporary directory and renamed into place
// only once its diff id (the sha256 of the uncompressed tar) matches the
// image config's, so a layer directory that exists is complete and
// verified; an image enters the index only after all its layers do.
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where images live unless Store.Root (corral's --store,
// $CORRAL_STORE) says otherwise.
const DefaultRoot = "/var/lib/corral"

// ErrNotFound is returned (wrapped) for a name or id no local image has.
var ErrNotFound = errors.New("no such image")

// Store is one image store directory.
type Store struct {
	Root string
}

// Record is one image in the index.
type Record struct {
	ID      string    `json:"id"`     // sha256:HEX of the config
	Names   []string  `json:"names"`  // canonical references, e.g. index.docker.io/library/alpine:3.19
	Layers  []string  `json:"layers"` // diff ids, bottom first
	Size    int64     `json:"size"`   // bytes of the unpacked files
	Created time.Time `json:"created"`
	Added   time.Time `json:"added"`
	// Given are the names the Add that returned this record gave it,
	// what pull and load report (Names also has the image's older
	// names); not stored.
	Given []string `json:"-"`
}

// ShortID is the first 12 hex digits of the id, as docker prints it.
func (r *Record) ShortID() string {
	h := strings.TrimPrefix(r.ID, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

type index struct {
	Images []*Record `json:"images"`
}

func (s *Store) path(parts ...string) string {
	return filepath.Join(append([]string{s.Root}, parts...)...)
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func (s *Store) layerDir(diffID string) string {
	return s.path("layers", "sha256", hexOf(diffID))
}

func (s *Store) configPath(id string) string {
	return s.path("configs", "sha256", hexOf(id)+".json")
}

// lock takes the store's lock (exclusive for writers) and returns its
// release. Readers take it shared so they never see a half-updated index.
// A reader of a store that does not exist yet creates nothing (`corral
// run CMD` looks CMD up as an image first) and sees it empty.
func (s *Store) lock(exclusive bool) (func(), error) {
	if exclusive {
		if err := os.MkdirAll(s.Root, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	f, err := os.OpenFile(s.path("lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if !exclusive && errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image store lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func (s *Store) readIndex() (*index, error) {
	data, err := os.ReadFile(s.path("images.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &index{}, nil
	}
	if err != nil {
		return nil, err
	}
	var ix index
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, fmt.Errorf("image store index %s is corrupt: %w", s.path("images.json"), err)
	}
	return &ix, nil
}

// writeIndex replaces the index atomically (temp file, fsync, rename).
func (s *Store) writeIndex(ix *index) error {
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path("images.json"), data)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// List returns the local images, newest first.
func (s *Store) List() ([]*Record, error) {
	ix, unlock, err := s.openIndex(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sort.SliceStable(ix.Images, func(i, j int) bool { return ix.Images[i].Added.After(ix.Images[j].Added) })
	return ix.Images, nil
}

// CanonicalName is the full reference docker would pull for ref:
// "alpine" is index.docker.io/library/alpine:latest.
func CanonicalName(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	return r.Name(), nil
}

// Lookup finds a local image by name (as given to pull: "alpine",
// "localhost:5000/app:1"), by full id or by an id prefix of at least 4
// hex digits.
func (s *Store) Lookup(ref string) (*Record, error) {
	ix, unlock, err := s.openIndex(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, _, err := findOrFail(ix, ref)
	return rec, err
}

// openIndex takes the store's lock (exclusive for a writer) and reads
// the index; the caller calls unlock when done with both.
func (s *Store) openIndex(exclusive bool) (ix *index, unlock func(), err error) {
	if unlock, err = s.lock(exclusive); err != nil {
		return nil, nil, err
	}
	if ix, err = s.readIndex(); err != nil {
		unlock()
		return nil, nil, err
	}
	return ix, unlock, nil
}

// findOrFail is find with ErrNotFound for no match.
func findOrFail(ix *index, ref string) (*Record, int, error) {
	rec, at := find(ix, ref)
	if rec == nil {
		return nil, -1, fmt.Errorf("%q: %w", ref, ErrNotFound)
	}
	return rec, at, nil
}

// find returns the image ref names and its position in the index.
func find(ix *index, ref string) (*Record, int) {
	canon, err := CanonicalName(ref)
	for i, r := range ix.Images {
		for _, n := range r.Names {
			if n == ref || (err == nil && n == canon) {
				return r, i
			}
		}
	}
	h := hexOf(ref)
	if len(h) >= 4 && strings.Trim(h, "0123456789abcdef") == "" {
		var hit *Record
		at := -1
		for i, r := range ix.Images {
			if strings.HasPrefix(hexOf(r.ID), h) {
				if hit != nil {
					return nil, -1 // ambiguous prefix
				}
				hit, at = r, i
			}
		}
		return hit, at
	}
	return nil, -1
}

// Config returns the image's config file (Entrypoint, Cmd, Env, ...).
func (s *Store) Config(rec *Record) (*v1.ConfigFile, error) {
	f, err := os.Open(s.configPath(rec.ID))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", rec.ShortID(), err)
	}
	defer f.Close()
	return v1.ParseConfigFile(f)
}
