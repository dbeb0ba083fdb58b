package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// A key names exactly one cgroup, and only a cgroup whose views depend on
// it alone.
func TestBoundKey(t *testing.T) {
	v1 := func(p string, over map[string]string) map[string]string {
		m := map[string]string{"memory": p, "cpu": p, "cpuacct": p, "cpuset": p, "blkio": p, "pids": p, "name=systemd": "/elsewhere"}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name string
		p    cgroupreader.Paths
		want string // "" = no key
	}{
		{"v2", cgroupreader.Paths{Unified: "/corral/abc"}, "corral%2Fabc"},
		{"v2 root", cgroupreader.Paths{Unified: "/"}, ""},
		{"hybrid, cgroup2 at the root", cgroupreader.Paths{Unified: "/", V1: v1("/corral/abc", nil)}, "corral%2Fabc"},
		{"hybrid, cgroup2 at the same path", cgroupreader.Paths{Unified: "/corral/abc", V1: v1("/corral/abc", nil)}, "corral%2Fabc"},
		{"hybrid, cgroup2 elsewhere", cgroupreader.Paths{Unified: "/other", V1: v1("/corral/abc", nil)}, ""},
		{"v1, cpu elsewhere", cgroupreader.Paths{V1: v1("/corral/abc", map[string]string{"cpu": "/x"})}, ""},
		{"v1 root", cgroupreader.Paths{V1: v1("/", nil)}, ""},
		{"escaped", cgroupreader.Paths{Unified: "/a%2Fb"}, "a%252Fb"},
	} {
		got, ok := BoundKey(c.p)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: BoundKey = %q, %v; want %q", c.name, got, ok, c.want)
		}
		if ok && !validKey(got) {
			t.Errorf("%s: key %q is not a valid name below %s", c.name, got, BoundDir)
		}
	}
	// "/a/b" and "/a%2Fb" are different cgroups: different keys.
	k1, _ := facts.BoundKeyOfCgroup("/a/b")
	k2, _ := facts.BoundKeyOfCgroup("/a%2Fb")
	if k1 == k2 {
		t.Errorf("two cgroups share the key %q", k1)
	}
	for _, bad := range []string{"", "a/b", "a%zz", "a%2fb" /* not what PathEscape makes */} {
		if validKey(bad) {
			t.Errorf("validKey(%q) = true", bad)
		}
	}
}

// The bound tree on a real mount, read by this test (host pid namespace:
// no key): it can be walked, listed and stat'ed, never opened; the shared
// files work as before.
func TestBoundTreeRefusesTheHost(t *testing.T) {
	_, mp := mountTestFS(t)
	key := filepath.Join(mp, BoundDir, "corral%2Fx")
	ents, err := os.ReadDir(filepath.Join(key, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "meminfo") || !slices.Contains(names, "stat") {
		t.Errorf("listing of %s/proc: %v", key, names)
	}
	if fi, err := os.Stat(filepath.Join(key, "proc/meminfo")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("stat of a bound meminfo: %v, %v", fi, err)
	}
	if _, err := os.ReadFile(filepath.Join(key, "proc/meminfo")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("host read of a bound meminfo: %v, want EACCES", err)
	}
	for _, p := range []string{"corral%zz/proc/meminfo", "corral%2Fx/sys", "corral%2Fx/proc/nope"} {
		if _, err := os.Stat(filepath.Join(mp, BoundDir, p)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat %s: %v, want ENOENT", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); err != nil || len(b) == 0 {
		t.Errorf("shared meminfo: %v", err)
	}
}
