package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/corral-dev/corral/tests/testutil"
)

// User namespaces (issue 16): `corral run --userns=auto` containers next to
// ordinary ones. The subordinate ranges come from fixture files
// (CORRAL_SUBUID/CORRAL_SUBGID), so the host's /etc/subuid is not touched.

// usernsEnv is a run environment with a corralfs (views and the sysinfo
// agent on a private socket) and a fixture range for the containers user.
type usernsEnv struct {
	*runEnv
	sock     string
	subStart int
}

func newUsernsEnv(t *testing.T) *usernsEnv {
	t.Helper()
	e := runNewEnv(t, false)
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	e.views = d.mp
	// A range no real user has (and beyond the ones the runtime unit
	// tests use), big enough for the containers that run at once here.
	const start = 1200000
	sub := filepath.Join(t.TempDir(), "subid")
	if err := os.WriteFile(sub, []byte(fmt.Sprintf("containers:%d:%d\n", start, 4*65536)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CORRAL_SUBUID", sub)
	t.Setenv("CORRAL_SUBGID", sub)
	return &usernsEnv{runEnv: e, sock: sock, subStart: start}
}

// runIn runs argv in a --rm container with flags and returns stdout,
// stderr and the exit status.
func (e *usernsEnv) runIn(t *testing.T, flags []string, argv ...string) runResult {
	t.Helper()
	args := append([]string{"run", "--rm", "--views", e.views, "--sysinfo", e.sock, "--name", runName("userns")}, flags...)
	return e.run(t, append(append(args, "--"), argv...)...)
}

func TestRunUserNS(t *testing.T) {
	testutil.RequireRoot(t)
	runNeedTool(t, "free")
	runNeedTool(t, "top")
	e := newUsernsEnv(t)
	probeDir := filepath.Dir(sysinfoProbe(t))

	// The container's root is not the host's: a root-only host file bound
	// in read-only cannot be opened. The same run without a user
	// namespace reads it (so the check can fail).
	t.Run("root-only-file", func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(secret, []byte("host-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Below /tmp (the container's own tmpfs): a rootfs that cannot be
		// idmapped (the VM's tmpfs on Linux 6.1) is not the container
		// root's to make a mount point in.
		vol := []string{"-v", secret + ":/tmp/secret:ro"}
		r := e.runIn(t, append([]string{"--userns", "auto"}, vol...), "cat", "/tmp/secret")
		if r.code == 0 || strings.Contains(r.stdout, "host-secret") || !strings.Contains(r.stderr, "Permission denied") {
			t.Fatalf("the userns'd root read a root-only host file: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = e.runIn(t, append([]string{"--userns", "host"}, vol...), "cat", "/tmp/secret")
		if r.code != 0 || !strings.Contains(r.stdout, "host-secret") {
			t.Fatalf("control without a user namespace: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})

	// The rootfs (the host's root's files) shows as owned by the
	// container's root, through the idmapped mount; the process is root
	// inside and an id of the allocated block outside. Where the rootfs's
	// file system cannot idmap (the VM: tmpfs on Linux 6.1), the
	// documented fallback: a warning, and the files show as nobody.
	t.Run("rootfs-owner", func(t *testing.T) {
		r := e.runIn(t, []string{"--userns", "auto"}, "sh", "-c", "stat -c %u:%g / /etc/passwd; id -u; cat /proc/self/uid_map; touch /tmp/x && stat -c %u /tmp/x; readlink /proc/self/ns/time")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		f := strings.Fields(r.stdout)
		// The time namespace (made inside the user namespace) too.
		if hostTime, _ := os.Readlink("/proc/self/ns/time"); len(f) == 8 && f[7] == hostTime {
			t.Errorf("the container shares the host's time namespace %s", hostTime)
		}
		owner := "0:0"
		if strings.Contains(r.stderr, "idmapped mounts are not supported") {
			owner = "65534:65534"
			t.Logf("no idmapped rootfs here, the fallback applies: %s", strings.TrimSpace(r.stderr))
		}
		if len(f) != 8 || f[0] != owner || f[1] != owner || f[2] != "0" || f[6] != "0" {
			t.Fatalf("want / and /etc/passwd %s, uid 0, a file it creates owned by 0; got:\n%s\n%s", owner, r.stdout, r.stderr)
		}
		host, _ := strconv.Atoi(f[4])
		if f[3] != "0" || host < e.subStart || host >= e.subStart+4*65536 || f[5] != "65536" {
			t.Fatalf("uid_map %v: want 0 -> a block of the containers range %d", f[3:6], e.subStart)
		}
	})

	// Two containers side by side, one in a user namespace, one not: each
	// sees its own memory limit in free and top and from sysinfo(2).
	t.Run("views-side-by-side", func(t *testing.T) {
		// The probe below /tmp: see root-only-file.
		script := "free -m; top -bn1 | head -5; /tmp/probe/sysinfoprobe"
		kinds := []struct {
			userns string
			mib    uint64
		}{{"auto", 256}, {"host", 192}}
		outs := make([]runResult, len(kinds))
		var wg sync.WaitGroup
		for i, k := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				flags := []string{"--userns", k.userns, "--memory", fmt.Sprintf("%dm", k.mib), "--memory-swap", fmt.Sprintf("%dm", k.mib), "-v", probeDir + ":/tmp/probe:ro"}
				outs[i] = e.runIn(t, flags, "sh", "-c", script)
			}()
		}
		wg.Wait()
		for i, k := range kinds {
			r := outs[i]
			if r.code != 0 {
				t.Fatalf("--userns %s: exit %d\n%s\n%s", k.userns, r.code, r.stdout, r.stderr)
			}
			runExpectFreeTotal(t, r.stdout, k.mib)
			if got := topTotalKiB(r.stdout); got != k.mib<<10 {
				t.Errorf("--userns %s: top shows %d KiB in all, want %d MiB:\n%s", k.userns, got, k.mib, r.stdout)
			}
			p := parseProbe[probeResult](t, r.stdout)
			if want := uint64(k.mib<<20) + uint64(os.Getpagesize()); p.Errno != 0 || p.TotalBytes != want {
				t.Errorf("--userns %s: sysinfo %+v, want totalram %d", k.userns, p, want)
			}
		}
	})

	// exec joins the container's user namespace and is its root there.
	t.Run("exec", func(t *testing.T) {
		name := runName("userns-exec")
		r := e.run(t, "run", "-d", "--views", "none", "--sysinfo", "off", "--userns", "auto", "--name", name, "--", "sleep", "1000")
		if r.code != 0 {
			t.Fatalf("run -d: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		defer func() {
			e.run(t, "delete", "--force", name)
			os.Remove(filepath.Join(e.root, name+".log")) // run -d's output file
		}()
		r = e.run(t, "exec", name, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/1/ns/user")
		f := strings.Fields(r.stdout)
		if r.code != 0 || len(f) != 6 || f[0] != "0" || f[1] != "0" || f[4] != f[5] {
			t.Fatalf("exec in a userns'd container: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// topTotalKiB is the memory total in `top -bn1`'s header: procps prints
// "MiB Mem :    256.0 total", busybox (the VM's top) "Mem: 456K used,
// 261688K free" (used + free).
func topTotalKiB(out string) uint64 {
	if m := regexp.MustCompile(`MiB Mem :\s+([0-9.]+) total`).FindStringSubmatch(out); m != nil {
		mib, _ := strconv.ParseFloat(m[1], 64)
		return uint64(mib * 1024)
	}
	if m := regexp.MustCompile(`Mem: (\d+)K used, (\d+)K free`).FindStringSubmatch(out); m != nil {
		used, _ := strconv.ParseUint(m[1], 10, 64)
		free, _ := strconv.ParseUint(m[2], 10, 64)
		return used + free
	}
	return 0
}
