package tests

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime/seccomp"
	"github.com/corral-dev/corral/tests/testutil"
)

// TestSysinfoRunc: a bundle run by Debian's runc, with linux.seccomp
// trapping sysinfo and listenerPath pointing at corralfs's socket, gets the
// container's answers too: the agent speaks the OCI seccomp-notify
// protocol, not a corral-only one. The corralfs views are bound over
// /proc/uptime, /proc/loadavg and /proc/meminfo as an LXCFS user would.
func TestSysinfoRunc(t *testing.T) {
	testutil.RequireRoot(t)
	runc := testutil.RequireCommand(t, "runc")
	sock := sysinfoSocket(t)
	d := startSysinfoCorralfs(t, sock)
	cg := testutil.NewCgroup(t, cgroupName(t), testutil.CgroupLimits{})

	rootfs := testutil.BusyboxRootfs(t)
	probe, err := os.ReadFile(sysinfoProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "sysinfoprobe"), probe, 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	state := t.TempDir()
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	var spec specs.Spec
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Root = &specs.Root{Path: rootfs, Readonly: true}
	spec.Process.Terminal = false
	// Two probes, so the second sees the sampler's numbers settled.
	spec.Process.Args = []string{"/bin/sh", "-c", "/bin/sysinfoprobe; sleep 0.3; /bin/sysinfoprobe"}
	limit := int64(sysinfoMemLimit)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	spec.Linux.CgroupsPath = cg.Path
	spec.Linux.Seccomp = seccomp.SysinfoOnly(sock)
	for _, f := range []string{"uptime", "loadavg", "meminfo"} {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/proc/" + f, Source: filepath.Join(d.mp, "proc", f), Type: "bind", Options: []string{"bind", "ro"}})
	}
	raw, err = json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	id := "sysinfo-runc-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command(runc, "--root", state, "delete", "--force", id).Run() })
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runc run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("runc run did not finish in 60 s\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two probe results, got:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	r := parseProbe[probeResult](t, lines[1])
	if r.Errno != 0 || r.TotalBytes != sysinfoTotalRAM {
		t.Fatalf("sysinfo in runc's 256 MiB container: %+v, want totalram*mem_unit %d", r, sysinfoTotalRAM)
	}
	// sh is waiting for the probe: its threads plus the shell.
	if int(r.Procs) < r.ThreadsBefore || int(r.Procs) > r.ThreadsBefore+1 {
		t.Errorf("procs %d; the probe has %d threads and the shell is the only other task", r.Procs, r.ThreadsBefore)
	}
	viewUp, err := strconv.ParseFloat(strings.Fields(r.ProcUptime)[0], 64)
	if err != nil {
		t.Fatalf("/proc/uptime %q: %v", r.ProcUptime, err)
	}
	if math.Abs(float64(r.Uptime)-viewUp) > 1 || viewUp > 30 {
		t.Errorf("sysinfo uptime %d s, the container's /proc/uptime %.2f s", r.Uptime, viewUp)
	}
	if r.LoadavgBefore == r.LoadavgAfter {
		if view := strings.Join(strings.Fields(r.LoadavgBefore)[:3], " "); r.LoadsText != view {
			t.Errorf("sysinfo loads %s, the container's /proc/loadavg %s", r.LoadsText, view)
		}
	}
}
