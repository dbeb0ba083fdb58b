package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// versionRe reads the runc-style --version output of both binaries.
var versionRe = regexp.MustCompile(`(?m)^(corral|corralfs) version (\S+)\ncommit: (\S+)\n(?:spec: \S+\n)?go: (go\S+)\n$`)

// Both binaries say which build they are (runc's --version layout, which
// tools that probe a runtime parse); `make build` stamps the commit.
func TestVersions(t *testing.T) {
	for _, c := range [][]string{{"corralfs", "--version"}, {"corralfs", "version"}, {"corral", "--version"}} {
		out, err := exec.Command(testutil.Binary(t, c[0]), c[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
		m := versionRe.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%v printed %q", c, out)
		}
		if _, err := os.Stat(filepath.Join(testutil.ModuleRoot(), ".git")); err == nil && !testutil.InVM() {
			if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(m[3]) {
				t.Errorf("%v: commit %q: make build stamps the full commit", c, m[3])
			}
		}
	}
}

// `corralfs reload` (the unit's ExecReload) returns only once a new worker
// serves: right after it, status already shows the upgrade and the
// serving build. It brackets the upgrade with RELOADING=1 / READY=1 for
// systemd. A binary that cannot start makes it fail, and the old worker
// keeps serving.
func TestCorralfsReloadWaits(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "corralfs")
	if err := copyFile(testutil.Binary(t, "corralfs"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startCorralfsBinary(t, bin, corralfsMountpoint(t))
	for i := 1; i <= 2; i++ {
		before := d.status()
		out, err := exec.Command(bin, "reload", "--control-socket", d.ctl).CombinedOutput()
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		st := d.status() // no waiting: reload has waited
		if st.Upgrades != i || st.WorkerPid == before.WorkerPid || st.Pid != before.Pid {
			t.Fatalf("reload %d returned before the upgrade: %+v (before %+v)\n%s", i, st, before, out)
		}
		if err := d.waitNotify("RELOADING=1", 5*time.Second); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
		if err := d.waitNotify("READY=1", 5*time.Second); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
	}
	raw, err := exec.Command(bin, "status", "--json", "--control-socket", d.ctl).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		WorkerBuild struct{ Version, Commit string } `json:"worker_build"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(bin, "--version").Output(); !strings.Contains(string(out), "version "+st.WorkerBuild.Version+"\ncommit: "+st.WorkerBuild.Commit+"\n") {
		t.Errorf("status worker_build %+v does not match the binary's --version %q", st.WorkerBuild, out)
	}

	// A broken binary at the daemon's path: reload fails, nothing changes.
	serving := d.status()
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testutil.Binary(t, "corralfs"), "reload", "--timeout", "3s", "--control-socket", d.ctl).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "keeps serving") {
		t.Errorf("reload onto a broken binary: err %v, output %q; want a failure saying the old worker keeps serving", err, out)
	}
	if st := d.status(); st.WorkerPid != serving.WorkerPid || st.Upgrades != serving.Upgrades {
		t.Errorf("after a failed reload: %+v, want worker %d still serving", st, serving.WorkerPid)
	}
	if _, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil {
		t.Errorf("meminfo after a failed reload: %v", err)
	}
}

// Under systemd's WatchdogSec= the supervisor pings WATCHDOG=1 at half the
// interval, from its main loop.
func TestCorralfsPingsWatchdog(t *testing.T) {
	testutil.RequireRoot(t)
	t.Setenv("WATCHDOG_USEC", "400000") // 0.4 s: pings every 0.2 s
	d := startCorralfs(t, corralfsMountpoint(t))
	for i := 0; i < 3; i++ {
		if err := d.waitNotify("WATCHDOG=1", 5*time.Second); err != nil {
			t.Fatalf("ping %d: %v", i+1, err)
		}
	}
}
