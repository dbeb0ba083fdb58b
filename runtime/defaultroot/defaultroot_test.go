package defaultroot

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtureHost builds a small Debian-like host tree: usrmerge symlinks, a
// JDK whose conf links into /etc, secrets that must never be copied.
func fixtureHost(t *testing.T) string {
	t.Helper()
	h := t.TempDir()
	mk := func(rel string, mode fs.FileMode, content string) {
		p := filepath.Join(h, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		p := filepath.Join(h, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/bin/true", 0o755, "#!/bin/sh\n")
	mk("usr/lib/os-release", 0o644, "ID=fixture\n")
	mk("usr/lib/jvm/jdk/bin/java", 0o755, "")
	ln("/etc/java-17-openjdk", "usr/lib/jvm/jdk/conf")
	ln("/etc/java-17-openjdk/jvm-amd64.cfg", "usr/lib/jvm/jdk/lib/jvm.cfg")
	ln("/etc/alternatives/java", "usr/bin/java")
	ln("../../../etc/maven", "usr/share/maven/conf") // relative link into /etc
	ln("/etc/ssl/private", "usr/lib/ssl/private")    // into a denied path
	ln("usr/bin", "bin")
	ln("usr/lib", "lib")
	if err := os.MkdirAll(filepath.Join(h, "sbin"), 0o755); err != nil { // a non-merged dir
		t.Fatal(err)
	}
	mk("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")
	mk("etc/group", 0o644, "root:x:0:\n")
	mk("etc/shadow", 0o640, "root:$6$secret:19000::::::\n")
	mk("etc/gshadow", 0o640, "root:*::\n")
	mk("etc/ssh/ssh_host_ed25519_key", 0o600, "KEY\n")
	mk("etc/ssh/ssh_config", 0o644, "Host *\n")
	mk("etc/ssl/private/server.pem", 0o600, "KEY\n")
	mk("etc/ssl/certs/ca.pem", 0o644, "CERT\n")
	mk("etc/ssl/certs/unreadable.pem", 0o600, "not world readable\n")
	mk("etc/java-17-openjdk/jvm-amd64.cfg", 0o644, "-server KNOWN\n")
	mk("etc/java-17-openjdk/security/java.security", 0o644, "x=1\n")
	mk("etc/maven/m2.conf", 0o644, "main is x\n")
	mk("run/systemd/resolve/stub-resolv.conf", 0o644, "nameserver 127.0.0.53\n")
	ln("/run/systemd/resolve/stub-resolv.conf", "etc/resolv.conf")
	ln("/usr/lib/jvm/jdk/bin/java", "etc/alternatives/java")
	ln("../usr/lib/os-release", "etc/os-release")
	mk("etc/sudoers", 0o440, "root ALL=(ALL) ALL\n")
	mk("etc/hosts", 0o644, "127.0.0.1 localhost\n")
	return h
}

func TestEnsureFixtureHost(t *testing.T) {
	host := fixtureHost(t)
	cache := t.TempDir()
	r, err := Ensure(Config{Dir: cache, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	root := r.Path

	// usrmerge symlinks are replicated as symlinks, real dirs become mount points.
	for name, want := range map[string]string{"bin": "usr/bin", "lib": "usr/lib"} {
		if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != want {
			t.Errorf("/%s: readlink = %q, %v; want %q", name, got, err, want)
		}
	}
	var dests []string
	for _, m := range r.Mounts {
		dests = append(dests, m.Destination)
		if m.Type == "bind" && (m.Source != filepath.Join(host, strings.TrimPrefix(m.Destination, "/")) ||
			strings.Join(m.Options, ",") != "rbind,ro,nosuid,nodev") {
			t.Errorf("bind %+v: want a read-only rbind of the host dir", m)
		}
	}
	if got := strings.Join(dests, " "); got != "/usr /sbin /tmp" {
		t.Errorf("mount destinations %q, want \"/usr /sbin /tmp\"", got)
	}
	for _, d := range []string{"usr", "sbin", "proc", "sys", "dev", "root", "home"} {
		if fi, err := os.Lstat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("/%s: want an empty directory (%v)", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("/tmp mode %v (%v), want sticky 0777", fi.Mode(), err)
	}

	// Wanted /etc content.
	want := map[string]string{
		"etc/passwd":                                 "root:x:0:0:root:/root:/bin/sh\n",
		"etc/hosts":                                  "127.0.0.1 localhost\n",
		"etc/resolv.conf":                            "nameserver 127.0.0.53\n", // dereferenced: target not inside
		"etc/ssl/certs/ca.pem":                       "CERT\n",
		"etc/java-17-openjdk/jvm-amd64.cfg":          "-server KNOWN\n",
		"etc/java-17-openjdk/security/java.security": "x=1\n",
		"etc/maven/m2.conf":                          "main is x\n", // via a relative link from /usr
	}
	for rel, content := range want {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, content)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("resolv.conf must be a regular copy, got %v %v", fi, err)
	}
	for rel, target := range map[string]string{
		"etc/alternatives/java": "/usr/lib/jvm/jdk/bin/java",
		"etc/os-release":        "../usr/lib/os-release",
	} {
		if got, err := os.Readlink(filepath.Join(root, rel)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want -> %q", rel, got, err, target)
		}
	}

	// Never secrets.
	for _, rel := range []string{"etc/shadow", "etc/gshadow", "etc/ssh", "etc/ssl/private", "etc/sudoers", "etc/ssl/certs/unreadable.pem"} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
			t.Errorf("%s was copied into the default root", rel)
		}
	}
	assertNoSecrets(t, root)
}

// assertNoSecrets walks a built root for anything named like a secret.
func assertNoSecrets(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(root, "etc"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if strings.Contains(name, "shadow") || name == "ssh" || name == "private" || strings.HasPrefix(name, "sudoers") {
			t.Errorf("secret-looking %s in the default root", p)
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s is not world-readable on the host and must not be copied", p)
		}
		return nil
	})
}

func TestEnsureCachesAndRebuildsWhenStale(t *testing.T) {
	host := fixtureHost(t)
	cache := t.TempDir()
	inUse := map[string]bool{}
	var mu sync.Mutex
	cfg := Config{Dir: cache, Host: host, InUse: func(p string) bool { mu.Lock(); defer mu.Unlock(); return inUse[p] }}
	r1, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Ensure(cfg)
	if err != nil || r2.Path != r1.Path {
		t.Fatalf("second Ensure: %v, %v; want the cached %s", r2, err, r1.Path)
	}
	// Edit passwd (new mtime and size): a new generation; the old one,
	// in use, stays.
	mu.Lock()
	inUse[r1.Path] = true
	mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(host, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r3, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Path == r1.Path {
		t.Fatal("edited /etc/passwd but got the old generation")
	}
	if b, _ := os.ReadFile(filepath.Join(r3.Path, "etc/passwd")); !strings.Contains(string(b), "u:x:1000") {
		t.Errorf("new generation has stale passwd %q", b)
	}
	if _, err := os.Stat(r1.Path); err != nil {
		t.Fatalf("old generation in use was removed: %v", err)
	}
	// Another change, old ones no longer in use: they are collected.
	mu.Lock()
	inUse[r1.Path] = false
	mu.Unlock()
	if err := os.WriteFile(filepath.Join(host, "etc/hosts"), []byte("::1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r4, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cache)
	var gens []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "gen-") || strings.HasPrefix(e.Name(), ".build-") {
			gens = append(gens, e.Name())
		}
	}
	if len(gens) != 1 || filepath.Join(cache, gens[0], "rootfs") != r4.Path {
		t.Errorf("after collection the cache holds %v, want only %s", gens, r4.Path)
	}
}

func TestEnsureConcurrentBuildsOnce(t *testing.T) {
	host := fixtureHost(t)
	cache := t.TempDir()
	const n = 8
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Ensure(Config{Dir: cache, Host: host})
			errs[i] = err
			if r != nil {
				paths[i] = r.Path
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("Ensure #%d = %q, %v; want %q", i, paths[i], errs[i], paths[0])
		}
	}
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if e.Name() != "lock" && e.Name() != filepath.Base(filepath.Dir(paths[0])) {
			t.Errorf("leftover %s in the cache", e.Name())
		}
	}
}

func TestEnsureHostWithoutPrograms(t *testing.T) {
	host := t.TempDir()
	os.MkdirAll(filepath.Join(host, "etc"), 0o755)
	if _, err := Ensure(Config{Dir: t.TempDir(), Host: host}); err == nil {
		t.Fatal("a host without /usr or /bin: want an error")
	}
}

// TestEnsureRealHost builds the default root from this machine's own /etc
// (read only; the cache goes to a temp dir) and checks what a container
// needs is there and what must not be is not.
func TestEnsureRealHost(t *testing.T) {
	if _, err := os.Stat("/usr/bin"); err != nil {
		t.Skip("no /usr/bin on this host")
	}
	r, err := Ensure(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"etc/passwd", "etc/group"} {
		if _, err := os.Stat(filepath.Join(r.Path, rel)); err != nil {
			if _, herr := os.Stat("/" + rel); herr == nil {
				t.Errorf("%s missing from the default root: %v", rel, err)
			}
		}
	}
	// Whatever /usr links into /etc (Debian's JDK conf) must resolve
	// inside the root once /usr is bound: check the link targets exist
	// in the copy.
	l, _ := hostLayout("/")
	targets, err := etcTargetsOfLinks("/", l)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range targets {
		if denied(rel) {
			continue
		}
		if _, err := os.Stat(filepath.Join("/etc", rel)); err != nil {
			continue // dangling on the host too
		}
		if fi, err := os.Lstat(filepath.Join("/etc", rel)); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 == 0 {
			continue
		}
		if _, err := os.Lstat(filepath.Join(r.Path, "etc", rel)); err != nil {
			t.Errorf("/usr links to /etc/%s but the default root lacks it", rel)
		}
	}
	assertNoSecrets(t, r.Path)
}
