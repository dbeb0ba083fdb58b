package views

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLiveInMountinfo(t *testing.T) {
	const info = `22 1 0:21 / /proc rw,nosuid - proc proc rw
40 22 0:40 / /var/lib/corralfs rw,nosuid,nodev,relatime shared:5 - fuse.corralfs corralfs rw,user_id=0,group_id=0
41 22 0:41 / /var/lib/lxcfs rw - fuse.lxcfs lxcfs rw
42 22 0:42 / /mnt/with\040space rw - fuse corralfs rw
43 22 0:43 / /var/lib/stale rw - fuse.corralfs corralfs rw
44 22 0:44 / /var/lib/stale rw - tmpfs tmpfs rw
`
	cases := map[string]bool{
		"/var/lib/corralfs":  true,
		"/var/lib/corralfs/": true, // cleaned
		"/var/lib/lxcfs":     false,
		"/mnt/with space":    true,  // octal escape, plain "fuse" type with source corralfs
		"/var/lib/stale":     false, // hidden by a later mount at the same point
		"/nowhere":           false,
	}
	for dir, want := range cases {
		got, err := liveIn(strings.NewReader(info), dir)
		if err != nil || got != want {
			t.Errorf("liveIn(%q) = %v, %v; want %v", dir, got, err, want)
		}
	}
}

func TestLiveOnHostDoesNotError(t *testing.T) {
	// /proc/self/mountinfo exists on every Linux host; the answer depends
	// on whether a daemon runs, so only the absence of an error is checked
	// here (the integration tests check a live mount).
	if _, err := Live(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Live(t.TempDir()); ok {
		t.Fatal("a fresh temp dir cannot be a corralfs mount")
	}
}

func TestMountsOfPartialTree(t *testing.T) {
	dir := t.TempDir()
	for _, rel := range []string{"proc/meminfo", "proc/uptime", "proc/pressure/cpu"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sys/devices/system/cpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostPSI := false
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		hostPSI = true
	}
	defer func(f func() bool) { ContainersHavePSI = f }(ContainersHavePSI)
	for _, own := range []bool{true, false} {
		ContainersHavePSI = func() bool { return own }
		want := []string{"/proc/meminfo", "/proc/uptime"}
		if hostPSI && own {
			want = append(want, "/proc/pressure/cpu")
		}
		want = append(want, "/sys/devices/system/cpu")
		checkMounts(t, dir, want)
		// Pressure that cannot be the container's is masked, never
		// the host's left in place.
		if got := PressureMask(Present(dir)); got != (hostPSI && !own) {
			t.Errorf("containers have PSI %v, host %v: PressureMask = %v", own, hostPSI, got)
		}
	}
}

func checkMounts(t *testing.T, dir string, want []string) {
	t.Helper()
	ms, err := Mounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range ms {
		dests = append(dests, m.Destination)
		if m.Type != "bind" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "bind") ||
			!slices.Contains(m.Options, "nosuid") || !slices.Contains(m.Options, "nodev") || !slices.Contains(m.Options, "noexec") {
			t.Errorf("mount %+v: want a ro,nosuid,nodev,noexec bind", m)
		}
		if !strings.HasPrefix(m.Source, dir+"/") {
			t.Errorf("mount %+v: source outside %s", m, dir)
		}
	}
	if !slices.Equal(dests, want) {
		t.Fatalf("destinations %v, want %v", dests, want)
	}
}

func TestMountsErrors(t *testing.T) {
	if _, err := Mounts(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing dir: want an error")
	}
	if _, err := Mounts(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no view files") {
		t.Errorf("empty dir: got %v, want 'no view files'", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Mounts(f); err == nil {
		t.Error("file: want an error")
	}
}

func TestListDestinationsMatchRelativePaths(t *testing.T) {
	// The layout is LXCFS's: MOUNT/<x> goes over /<x>. Keep it that way
	// so LXCFS recipes work with only the prefix changed.
	for _, v := range List {
		if v.Kernel != "/"+v.Rel {
			t.Errorf("%s -> %s breaks the MOUNT/x -> /x layout", v.Rel, v.Kernel)
		}
	}
}

func TestAnswers(t *testing.T) {
	dir := t.TempDir()
	if err := Answers(dir, time.Second); err == nil {
		t.Error("a directory without proc/meminfo must not answer")
	}
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	os.WriteFile(filepath.Join(dir, "proc/meminfo"), nil, 0o444)
	if err := Answers(dir, time.Second); err != nil {
		t.Errorf("a served view: %v", err)
	}
}
