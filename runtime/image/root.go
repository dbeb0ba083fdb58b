package image

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/image/containerroot"
)

// Files of a container's directory ROOT/containers/ID/ (containerroot).
const (
	rootMarker = containerroot.Marker
	rootDir    = containerroot.Dir
)

// MountRoot makes the root filesystem of container id from the image: an
// overlay of the image's layers (read only, shared by every container of
// the image) under an upper directory of its own, so starting copies
// nothing and the container's writes never reach the image. It returns
// the container directory (for containerroot.Release) and the mounted root.
func (s *Store) MountRoot(id string, rec *Record) (dir, rootfs string, err error) {
	unlock, err := s.lock(true) // rmi must not collect these layers meanwhile
	if err != nil {
		return "", "", err
	}
	defer unlock()
	dir = s.path("containers", id)
	if _, err := os.Lstat(dir); err == nil {
		// Mounted: a live container of that name (under another state
		// root sharing this store); never take its root away.
		if mounted, _ := containerroot.IsMountPoint(filepath.Join(dir, rootDir)); mounted {
			return "", "", fmt.Errorf("container root %s is in use by a container named %s (another --root?): choose another --name", dir, id)
		}
		// A run killed before it could clean up: release what it left.
		if err := containerroot.Release(dir); err != nil {
			return "", "", fmt.Errorf("container root %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	ok := false
	defer func() {
		if !ok {
			containerroot.Release(dir)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, rootMarker), []byte(rec.ID+"\n"), 0o600); err != nil {
		return "", "", err
	}
	var lower []string
	for i := len(rec.Layers) - 1; i >= 0; i-- { // overlay wants the top layer first
		l := s.layerDir(rec.Layers[i])
		if _, err := os.Stat(l); err != nil {
			return "", "", fmt.Errorf("image %s: layer %s is missing from the store (pull the image again): %w", rec.ShortID(), short(rec.Layers[i]), err)
		}
		lower = append(lower, l)
	}
	for _, d := range []string{"upper", "work", rootDir, "empty"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return "", "", err
		}
	}
	if len(lower) == 0 { // an image without layers: an empty root
		lower = []string{filepath.Join(dir, "empty")}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"),
		filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if len(opts) >= os.Getpagesize() {
		return "", "", fmt.Errorf("image %s: %d layers make overlay options longer than the kernel takes (%d bytes)", rec.ShortID(), len(lower), os.Getpagesize())
	}
	rootfs = filepath.Join(dir, rootDir)
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return "", "", fmt.Errorf("mount the overlay root of %s: %w", id, err)
	}
	ok = true
	return dir, rootfs, nil
}

// containersUsing returns the ids of the containers whose roots use the
// image id (their marker names it). Called under the store lock.
func (s *Store) containersUsing(id string) []string {
	ents, _ := os.ReadDir(s.path("containers"))
	var out []string
	for _, e := range ents {
		data, err := os.ReadFile(s.path("containers", e.Name(), rootMarker))
		if err == nil && strings.TrimSpace(string(data)) == id {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}
