package defaultroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hostDirs are the top-level host directories that hold programs and
// libraries. Each is bound read-only when it is a directory and replicated
// as the same symlink when it is one (usrmerge: /bin -> usr/bin).
var hostDirs = []string{"usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"}

// entry is one top-level host directory: a real directory (link == "") or
// a symlink with its target.
type entry struct {
	name string
	link string
}

// layout is the host's top-level program layout.
type layout struct {
	entries []entry
}

// hostLayout reads which of hostDirs the host has and how.
func hostLayout(host string) (*layout, error) {
	l := &layout{}
	for _, name := range hostDirs {
		p := filepath.Join(host, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("default root: %w", err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("default root: %w", err)
			}
			l.entries = append(l.entries, entry{name: name, link: t})
		case fi.IsDir():
			l.entries = append(l.entries, entry{name: name})
		}
	}
	if len(l.dirs()) == 0 {
		return nil, fmt.Errorf("default root: the host %s has none of /%v as a directory: nothing to run", host, hostDirs)
	}
	return l, nil
}

// dirs returns the names of the entries that are real directories.
func (l *layout) dirs() []string {
	var out []string
	for _, e := range l.entries {
		if e.link == "" {
			out = append(out, e.name)
		}
	}
	return out
}

// BindOptions are the options of the host directory binds: recursive (a
// separate /usr/local filesystem comes along), read-only (the container
// must not change the host's programs), and no device nodes or setuid
// through them (the container runs with no_new_privs anyway).
var BindOptions = []string{"rbind", "ro", "nosuid", "nodev"}

// TmpOptions are those of the container's writable /tmp: the rest of the
// default root is read-only and shared, so /tmp is private to a container.
var TmpOptions = []string{"nosuid", "nodev", "mode=1777"}

// mounts returns the OCI mounts that complete the root: a bind per host
// program directory and a tmpfs on /tmp.
func (l *layout) mounts(host string) []specs.Mount {
	var ms []specs.Mount
	for _, name := range l.dirs() {
		ms = append(ms, specs.Mount{
			Destination: "/" + name,
			Type:        "bind",
			Source:      filepath.Join(host, name),
			Options:     append([]string(nil), BindOptions...),
		})
	}
	ms = append(ms, specs.Mount{
		Destination: "/tmp",
		Type:        "tmpfs",
		Source:      "tmpfs",
		Options:     append([]string(nil), TmpOptions...),
	})
	return ms
}
