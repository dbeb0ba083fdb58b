// Package defaultroot builds the root filesystem `corral run` uses when no
// --rootfs or --bundle is given: the host's own programs and libraries, read
// only, plus a minimal /etc, so `corral run -- free -m` or `java -version`
// work on a fresh machine with nothing to prepare.
//
// Nothing big is copied. The root directory holds only a small copy of the
// harmless parts of /etc and empty mount points; the host's /usr, /bin,
// /sbin and /lib* directories come in as read-only recursive bind mounts
// (OCI mounts in the container's spec), and where the host has usrmerge
// symlinks (/bin -> usr/bin) the root has the same symlinks.
//
// The root is cached under Config.Dir in a generation directory named by a
// fingerprint of what it was built from (the host's /etc entries it copies,
// the top-level layout, the package database), so a package install or an
// edited /etc/passwd yields a fresh generation on the next run. Builds take
// an flock, so concurrent `corral run`s build it once.
package defaultroot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultDir is where the cached generations live. /var/lib rather than
// /run: the cache is valid across reboots (the fingerprint says when not).
const DefaultDir = "/var/lib/corral/defaultroot"

// layoutVersion is part of the fingerprint: bump it whenever the builder
// changes what it puts into a root, so old generations are not reused.
const layoutVersion = "defaultroot-v1"

// Config says where to cache the root and which host to copy it from.
type Config struct {
	Dir  string // cache directory; "" = DefaultDir
	Host string // host root to take /usr and /etc from; "" = "/" (tests use a fixture tree)
	// InUse reports whether some container still uses the generation
	// rootfs at path. Old generations are removed after a rebuild only
	// when it says no; nil keeps every old generation (never delete a root
	// from under a running container).
	InUse func(rootfs string) bool
}

// Root is a ready default root.
type Root struct {
	// Path is the root directory for spec.root.path. It must be used read
	// only: it is shared by every container that runs on the default root.
	Path string
	// Mounts are the read-only binds of the host's program and library
	// directories and the writable /tmp, in the order they must be mounted.
	Mounts []specs.Mount
}

// Ensure returns the current default root, building it first when the
// cache is missing or stale.
func Ensure(cfg Config) (*Root, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.Host == "" {
		cfg.Host = "/"
	}
	layout, err := hostLayout(cfg.Host)
	if err != nil {
		return nil, err
	}
	fp := fingerprint(cfg.Host, layout)
	gen := filepath.Join(cfg.Dir, "gen-"+fp)
	root := &Root{Path: filepath.Join(gen, "rootfs"), Mounts: layout.mounts(cfg.Host)}
	// Fast path, no lock: a generation directory only ever appears by an
	// atomic rename of a complete build.
	if _, err := os.Stat(root.Path); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("default root: %w", err)
	}
	unlock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(root.Path); err == nil {
		return root, nil // built by whoever held the lock before us
	}
	if err := build(cfg, layout, gen); err != nil {
		return nil, err
	}
	collect(cfg, gen)
	return root, nil
}

// lockDir takes an exclusive flock on DIR/lock, blocking until it is free.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("default root: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("default root: lock: %w", err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// build creates the generation directory gen: everything is written into a
// temporary sibling first and renamed into place at the end, so a crash
// leaves no half-built generation that the fast path would trust.
func build(cfg Config, layout *layout, gen string) error {
	tmp, err := os.MkdirTemp(cfg.Dir, ".build-")
	if err != nil {
		return fmt.Errorf("default root: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	if err := makeSkeleton(rootfs, layout); err != nil {
		return fmt.Errorf("default root: skeleton: %w", err)
	}
	if err := copyEtc(cfg.Host, rootfs, layout); err != nil {
		return fmt.Errorf("default root: /etc: %w", err)
	}
	if err := os.Rename(tmp, gen); err != nil {
		return fmt.Errorf("default root: %w", err)
	}
	ok = true
	return nil
}

// makeSkeleton creates the empty directories a container root needs (mount
// points and the places programs expect) and replicates the host's
// top-level symlinks.
func makeSkeleton(rootfs string, l *layout) error {
	dirs := []struct {
		path string
		mode os.FileMode
	}{
		{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"etc", 0o755},
		// /tmp is a tmpfs mount; the directory is only its mount point.
		{"tmp", fs.ModeSticky | 0o777}, {"root", 0o700}, {"home", 0o755}, {"run", 0o755},
		{"var", 0o755}, {"var/tmp", fs.ModeSticky | 0o777}, {"mnt", 0o755}, {"opt", 0o755},
	}
	for _, d := range dirs {
		p := filepath.Join(rootfs, d.path)
		if err := os.Mkdir(p, d.mode); err != nil {
			return err
		}
		// Mkdir applies the umask; sticky and 0o777 bits must be exact.
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	for _, e := range l.entries {
		p := filepath.Join(rootfs, e.name)
		switch {
		case e.link != "":
			if err := os.Symlink(e.link, p); err != nil {
				return err
			}
		default:
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// fingerprint hashes what a generation is built from: the layout, the
// stat of each allow-listed /etc entry we copy (mtime, size, inode: an edit
// in place or by rename both show), and of the package database (a package
// install can add /usr symlinks into /etc that we must copy).
//
// TODO: an edit of a file copied only because a /usr symlink points at it
// (say /etc/maven/m2.conf) is picked up at the next package change, not at
// once; stamping those would need the 0.5 s /usr scan on every run.
func fingerprint(host string, l *layout) string {
	h := sha256.New()
	fmt.Fprintln(h, layoutVersion)
	for _, e := range l.entries {
		fmt.Fprintf(h, "top %s %s\n", e.name, e.link)
	}
	stamp := func(p string) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(host, p), &st); err != nil {
			fmt.Fprintf(h, "%s absent\n", p)
			return
		}
		fmt.Fprintf(h, "%s %d %d %d %d.%d\n", p, st.Mode, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	}
	for _, name := range etcEntries(host) {
		stamp(filepath.Join("etc", name))
	}
	for _, p := range []string{"etc/alternatives", "etc/ssl/certs", "var/lib/dpkg/status", "usr/lib/jvm", "usr/lib/os-release"} {
		stamp(p)
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}

// collect removes old generations that no container uses any more, and
// builds that crashed half-way. Failures are ignored: a leftover directory
// costs a little disk, removing a root in use would break a container.
func collect(cfg Config, current string) {
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(cfg.Dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), ".build-"):
			// We hold the lock: no build is in progress.
			os.RemoveAll(p)
		case strings.HasPrefix(e.Name(), "gen-") && p != current:
			if cfg.InUse != nil && !cfg.InUse(filepath.Join(p, "rootfs")) {
				os.RemoveAll(p)
			}
		}
	}
}

// walkErr ignores entries that vanish while we walk (a package upgrade
// running at the same time) rather than failing the container start.
func walkErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
