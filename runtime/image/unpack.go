package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteouts: ".wh.NAME" deletes NAME of the layers below, and a
// ".wh..wh..opq" entry makes its directory opaque (hides everything below).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// UnsafeLayerError is a layer that would write outside its own directory
// or cannot be what it claims to be: it is refused as a whole.
type UnsafeLayerError struct {
	Entry  string
	Reason string
}

func (e *UnsafeLayerError) Error() string {
	return fmt.Sprintf("unsafe layer entry %q: %s", e.Entry, e.Reason)
}

// unpackLayer extracts the uncompressed tar stream r into dir (which must
// exist and be empty) and returns the sha256 of the stream (the layer's
// diff id) and the bytes written. Extraction never follows a symlink:
// every parent of an entry must be a real directory inside dir, so a
// symlink (absolute or with "../") cannot make a later entry land outside
// the layer. Whiteouts become overlayfs whiteouts (0:0 character devices,
// trusted.overlay.opaque). A truncated stream is an error (tar's
// ErrUnexpectedEOF); the caller removes dir on any error.
func unpackLayer(r io.Reader, dir string) (digest string, size int64, err error) {
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	type dirTime struct {
		path string
		mod  time.Time
	}
	var dirs []dirTime // directory mtimes are set last: entries change them
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("read layer: %w", err)
		}
		rel, err := cleanEntryPath(hdr.Name)
		if err != nil {
			return "", 0, err
		}
		if rel == "." {
			continue // the layer's root itself
		}
		if err := checkParents(dir, rel); err != nil {
			return "", 0, err
		}
		target := filepath.Join(dir, rel)
		base := path.Base(rel)
		parent := filepath.Dir(target)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", 0, err
		}
		switch {
		case base == whiteoutOpaque:
			if err := unix.Lsetxattr(parent, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return "", 0, fmt.Errorf("opaque whiteout %s: %w", rel, err)
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			wh := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
				return "", 0, fmt.Errorf("whiteout %s: %w", rel, err)
			}
			continue
		}
		// A later entry of the same path replaces the earlier one (tar
		// semantics), except that a directory stays a directory.
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return "", 0, err
			}
		}
		mode := os.FileMode(hdr.Mode) & os.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", 0, err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			n, err := writeFile(target, tr)
			if err != nil {
				return "", 0, fmt.Errorf("layer entry %s: %w", rel, err)
			}
			size += n
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return "", 0, err
			}
		case tar.TypeLink:
			src, err := cleanEntryPath(hdr.Linkname)
			if err != nil || src == "." {
				return "", 0, &UnsafeLayerError{Entry: hdr.Name, Reason: fmt.Sprintf("hard link to %q, outside the layer", hdr.Linkname)}
			}
			if err := checkParents(dir, src); err != nil {
				return "", 0, err
			}
			fi, err := os.Lstat(filepath.Join(dir, src))
			if err != nil || !fi.Mode().IsRegular() {
				return "", 0, &UnsafeLayerError{Entry: hdr.Name, Reason: fmt.Sprintf("hard link to %q, which is no earlier regular file of the layer", hdr.Linkname)}
			}
			if err := os.Link(filepath.Join(dir, src), target); err != nil {
				return "", 0, err
			}
			continue // shares the source's inode: mode and owner are its
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			m := uint32(unix.S_IFIFO)
			switch hdr.Typeflag {
			case tar.TypeChar:
				m = unix.S_IFCHR
			case tar.TypeBlock:
				m = unix.S_IFBLK
			}
			dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
			if err := unix.Mknod(target, m|uint32(mode), int(dev)); err != nil {
				return "", 0, fmt.Errorf("layer entry %s: %w", rel, err)
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			return "", 0, &UnsafeLayerError{Entry: hdr.Name, Reason: fmt.Sprintf("unsupported tar entry type %q", hdr.Typeflag)}
		}
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return "", 0, fmt.Errorf("layer entry %s: %w", rel, err)
		}
		if hdr.Typeflag != tar.TypeSymlink {
			// After chown, which clears setuid/setgid bits.
			if err := os.Chmod(target, mode|setBits(hdr.Mode)); err != nil {
				return "", 0, err
			}
			if hdr.Typeflag != tar.TypeDir {
				os.Chtimes(target, hdr.ModTime, hdr.ModTime)
			}
		}
	}
	// Whatever follows the end-of-archive blocks still belongs to the
	// blob whose digest is being checked.
	if _, err := io.Copy(io.Discard, io.TeeReader(r, h)); err != nil {
		return "", 0, fmt.Errorf("read layer: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i].path, dirs[i].mod, dirs[i].mod)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), size, nil
}

// setBits maps tar's setuid, setgid and sticky bits to Go's file mode.
func setBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// writeFile creates target (which does not exist: O_EXCL never follows a
// symlink planted there) with the content of r.
func writeFile(target string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// cleanEntryPath makes a tar entry name relative to the layer root. A
// leading "/" is dropped (tar writes some layers that way), but a name
// that climbs out with ".." is refused rather than clamped: such a layer
// was made to attack whoever unpacks it.
func cleanEntryPath(name string) (string, error) {
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", &UnsafeLayerError{Entry: name, Reason: `the path climbs out of the layer with ".."`}
		}
	}
	rel := path.Clean("/" + name)[1:]
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// checkParents refuses an entry one of whose parent directories, inside
// dir, is anything but a real directory: writing through a symlink is
// how a layer with `link -> /etc` followed by `link/passwd` would reach
// the host.
func checkParents(dir, rel string) error {
	parts := strings.Split(rel, "/")
	cur := dir
	for i, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created as a directory by MkdirAll
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			t, _ := os.Readlink(cur)
			return &UnsafeLayerError{Entry: rel, Reason: fmt.Sprintf("it would be written through the symlink %q -> %q, out of the layer", strings.Join(parts[:i+1], "/"), t)}
		}
		if !fi.IsDir() {
			return &UnsafeLayerError{Entry: rel, Reason: fmt.Sprintf("its parent %q is not a directory", strings.Join(parts[:i+1], "/"))}
		}
	}
	return nil
}
