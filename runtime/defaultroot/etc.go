package defaultroot

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// etcAllow is what a program run from the host's /usr needs from /etc, and
// nothing secret: users and groups (names for ls and id), name resolution,
// the dynamic linker's cache, the alternatives symlinks (java and friends
// live behind /etc/alternatives), CA certificates, time zone, OS identity,
// shells' profiles, terminfo. Entries ending in "*" are globs (each JDK has
// its own /etc/java-NN-openjdk that its /usr/lib/jvm tree links into).
var etcAllow = []string{
	"passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
	"ssl/certs", "ssl/openssl.cnf", "ca-certificates.conf",
	"localtime", "timezone", "os-release", "debian_version", "lsb-release",
	"services", "protocols", "networks", "ethertypes", "rpc", "mime.types",
	"shells", "profile", "bash.bashrc", "inputrc", "environment", "locale.alias",
	"locale.conf", "default/locale", "terminfo", "mtab", "magic", "magic.mime",
	"java-*",
}

// etcDeny are /etc paths never copied, whatever points at them and
// whatever their mode: password hashes, private keys, sudo rules, host
// identity and credentials. A path is denied when it or an ancestor is
// listed. The world-readable rule in copyTree is the second line.
var etcDeny = []string{
	"shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh",
	"ssl/private", "security", "machine-id", "krb5.keytab", "subuid", "subgid",
	"NetworkManager", "wpa_supplicant", "openvpn", "wireguard", "ipsec.secrets",
	"ipsec.d", "ppp", "docker", "containers/auth.json", "credstore", "credstore.encrypted",
	"polkit-1", "pam.d", "ldap", "letsencrypt",
}

// denied reports whether rel (relative to /etc) is or lies below a denied
// path, or is named like a secret wherever it is.
func denied(rel string) bool {
	rel = filepath.Clean(rel)
	for _, d := range etcDeny {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	base := filepath.Base(rel)
	for _, pat := range []string{"*shadow*", "*.key", "*secret*", "*.keytab", "*password*"} {
		if ok, _ := filepath.Match(pat, base); ok {
			return true
		}
	}
	return false
}

// etcEntries expands etcAllow against the host's /etc (globs become the
// names that exist; plain names are kept whether or not they exist, so
// the fingerprint sees one appear).
func etcEntries(host string) []string {
	var out []string
	for _, name := range etcAllow {
		if !strings.ContainsAny(name, "*?[") {
			out = append(out, name)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(host, "etc", name))
		sort.Strings(matches)
		for _, m := range matches {
			out = append(out, strings.TrimPrefix(m, filepath.Join(host, "etc")+"/"))
		}
	}
	return out
}

// copyEtc fills ROOTFS/etc with the allow-listed entries and with every
// /etc path that a symlink in the bound program directories points at
// (Debian's JDK links /usr/lib/jvm/*/conf and lib/jvm.cfg into
// /etc/java-17-openjdk; without them java does not start).
func copyEtc(host, rootfs string, l *layout) error {
	etc := filepath.Join(host, "etc")
	dst := filepath.Join(rootfs, "etc")
	wanted := map[string]bool{}
	for _, rel := range etcEntries(host) {
		wanted[rel] = true
	}
	targets, err := etcTargetsOfLinks(host, l)
	if err != nil {
		return err
	}
	for _, rel := range targets {
		wanted[rel] = true
	}
	// Copy parents before children and skip what an ancestor already
	// brought along.
	rels := make([]string, 0, len(wanted))
	for rel := range wanted {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	var done []string
	for _, rel := range rels {
		if denied(rel) || coveredBy(rel, done) {
			continue
		}
		if err := copyEntry(host, etc, dst, rel, l); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		done = append(done, rel)
	}
	return nil
}

// coveredBy reports whether rel lies below one of the copied paths.
func coveredBy(rel string, copied []string) bool {
	for _, c := range copied {
		if strings.HasPrefix(rel, c+"/") {
			return true
		}
	}
	return false
}

// etcTargetsOfLinks walks the host program directories and returns, relative
// to /etc, the targets of every symlink that points into /etc.
func etcTargetsOfLinks(host string, l *layout) ([]string, error) {
	seen := map[string]bool{}
	for _, name := range l.dirs() {
		top := filepath.Join(host, name)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				// Unreadable corners of /usr do not stop a container.
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			t, err := os.Readlink(p)
			if err != nil {
				return nil
			}
			if !filepath.IsAbs(t) {
				// Relative to the link's directory, as seen from the host root.
				rel, _ := filepath.Rel(host, filepath.Dir(p))
				t = filepath.Join("/", rel, t)
			}
			t = filepath.Clean(t)
			if strings.HasPrefix(t, "/etc/") {
				seen[strings.TrimPrefix(t, "/etc/")] = true
			}
			return nil
		})
		if err != nil {
			return nil, walkErr(err)
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// copyEntry copies ETC/rel to DST/rel, creating the parents. A symlink that
// is an entry itself is kept when its target is reachable in the container
// (the bound program directories, /proc, or /etc itself); otherwise (say
// resolv.conf -> /run/systemd/resolve/stub-resolv.conf) its content is
// copied instead, since the target does not exist inside.
func copyEntry(host, etc, dst, rel string, l *layout) error {
	src := filepath.Join(etc, rel)
	fi, err := os.Lstat(src)
	if err != nil {
		return walkErr(err)
	}
	if err := mkdirParents(dst, rel); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(src)
		if err != nil {
			return walkErr(err)
		}
		abs := t
		if !filepath.IsAbs(t) {
			abs = filepath.Join("/etc", filepath.Dir(rel), t)
		}
		if reachableInside(filepath.Clean(abs), l) {
			return os.Symlink(t, filepath.Join(dst, rel))
		}
		// Resolve within the host root (a fixture host must not escape
		// into the real one) and copy what it points at.
		resolved, err := securejoin.SecureJoin(host, filepath.Join("etc", rel))
		if err != nil {
			return walkErr(err)
		}
		if fi, err = os.Stat(resolved); err != nil {
			return walkErr(err)
		}
		src = resolved
	}
	return copyTree(src, filepath.Join(dst, rel), rel)
}

// reachableInside reports whether an absolute path exists inside a
// default-root container: under a bound program directory (directly or
// through a replicated top-level symlink), /proc, or /etc.
func reachableInside(abs string, l *layout) bool {
	for _, top := range []string{"/proc", "/etc"} {
		if abs == top || strings.HasPrefix(abs, top+"/") {
			return true
		}
	}
	for _, e := range l.entries {
		top := "/" + e.name
		if abs == top || strings.HasPrefix(abs, top+"/") {
			return true
		}
	}
	return false
}

// mkdirParents creates the directories leading to DST/rel with mode 0755.
func mkdirParents(dst, rel string) error {
	return os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
}

// copyTree copies src to dst: directories recursively, symlinks verbatim,
// regular files by content. Only what every host user can read is copied
// (a 0600 key or a 0640 shadow file is skipped even if someone put it in
// an allow-listed directory); setuid/setgid bits are dropped; sockets,
// fifos and devices are skipped. rel is src's path relative to /etc, for
// the deny list.
func copyTree(src, dst, rel string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return walkErr(err)
	}
	switch {
	case denied(rel):
		return nil
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return walkErr(err)
		}
		return os.Symlink(t, dst)
	case fi.IsDir():
		if fi.Mode().Perm()&0o005 != 0o005 {
			return nil
		}
		if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return walkErr(err)
		}
		for _, e := range ents {
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), filepath.Join(rel, e.Name())); err != nil {
				return err
			}
		}
		return os.Chmod(dst, fi.Mode().Perm())
	case fi.Mode().IsRegular():
		if fi.Mode().Perm()&0o004 == 0 {
			return nil
		}
		return copyFile(src, dst, fi.Mode().Perm())
	}
	return nil
}

// copyFile copies a regular file's content with the given permissions.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return walkErr(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}
