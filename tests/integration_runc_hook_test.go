package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/tests/testutil"
)

// hookMemLimit is the memory limit of the containers the hook tests run.
const hookMemLimit = 256 << 20

// hookStage names where config.json lists `corral hook`.
type hookStage string

const (
	stageCreateContainer hookStage = "createContainer" // runc runs it inside the container's namespaces
	stagePrestart        hookStage = "prestart"        // runc runs it in the host's namespaces
)

// TestHookRunc: Debian's runc runs a busybox bundle whose config.json
// names `corral hook --views MP` as a hook; the container sees its own
// memory limit in /proc/meminfo and its cpuset in the sysfs cpu tree,
// read through the binds the hook made, for both hook stages runc offers
// at that point (createContainer runs the hook inside the container's
// namespaces, prestart outside: different code paths in the hook).
func TestHookRunc(t *testing.T) {
	testutil.RequireRoot(t)
	if testutil.InVM() {
		t.Skip("no runc in the VM; the host run covers it")
	}
	runc := testutil.RequireCommand(t, "runc")
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)

	for _, stage := range []hookStage{stageCreateContainer, stagePrestart} {
		t.Run(string(stage), func(t *testing.T) {
			out, hookLog := runcWithHook(t, runc, stage, mp,
				`echo "== meminfo"; cat /proc/meminfo; echo "== online"; cat /sys/devices/system/cpu/online; echo "== mounts"; cat /proc/self/mountinfo`)
			s := sections(out)
			if got := meminfoKB(t, s["meminfo"], "MemTotal"); got != hookMemLimit/1024 {
				t.Fatalf("MemTotal %d kB in runc's container, want its limit %d kB\nhook said: %s\n%s", got, hookMemLimit/1024, hookLog, out)
			}
			if got := strings.TrimSpace(s["online"]); got != "0" {
				t.Errorf("/sys/devices/system/cpu/online = %q in a container with cpuset 0, want 0", got)
			}
			// Every view bind is read-only and shows up at the container's
			// own paths (after pivot_root), not at the host's rootfs path.
			for _, dest := range []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/loadavg", "/proc/swaps", "/proc/diskstats", "/sys/devices/system/cpu"} {
				line := mountinfoLine(s["mounts"], dest)
				if line == "" {
					t.Errorf("no mount at %s in the container:\n%s", dest, s["mounts"])
					continue
				}
				if opts := strings.Fields(line)[5]; !strings.Contains(","+opts+",", ",ro,") || !strings.Contains(opts, "nosuid") {
					t.Errorf("%s mounted %s, want ro,nosuid,...", dest, opts)
				}
				// The /proc views are the container's own (bound views,
				// docs/design.md decision 49), the CPU tree the shared one.
				if root := strings.Fields(line)[3]; offersBound(mp) && strings.HasPrefix(dest, "/proc/") != strings.HasPrefix(root, "/.bound/") {
					t.Errorf("%s is bound from %s (hook: %s)", dest, root, hookLog)
				}
			}
			if !strings.Contains(hookLog, "bound ") {
				t.Errorf("the hook did not report what it bound: %q", hookLog)
			}
		})
	}

	// No corralfs at --views: the container starts and sees the host.
	t.Run("no-corralfs", func(t *testing.T) {
		empty := t.TempDir()
		out, hookLog := runcWithHook(t, runc, stageCreateContainer, empty, `echo "== meminfo"; cat /proc/meminfo`)
		if got := meminfoKB(t, sections(out)["meminfo"], "MemTotal"); got == hookMemLimit/1024 {
			t.Errorf("MemTotal is the limit without any corralfs: %d kB", got)
		}
		if !strings.Contains(hookLog, "no corralfs mounted at "+empty) {
			t.Errorf("the hook did not say why it bound nothing: %q", hookLog)
		}
	})
}

// mountinfoLine returns the /proc/self/mountinfo line of the last mount at point.
func mountinfoLine(mountinfo, point string) string {
	last := ""
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == point {
			last = line
		}
	}
	return last
}

// runcWithHook runs script in a busybox container with runc, with
// `corral hook --views views` at stage, in a test cgroup limited to
// hookMemLimit and cpu 0. It returns the container's output and what the
// hook wrote to its stderr (captured through a wrapper script, since runc
// drops a successful hook's output).
func runcWithHook(t *testing.T, runc string, stage hookStage, viewsDir, script string) (out, hookLog string) {
	t.Helper()
	return runcBusybox(t, runc, stage, viewsDir, nil, script)
}

// runcBusybox is runcWithHook with no hook when stage is "", and a last
// say over the spec with mutate (nil: none).
func runcBusybox(t *testing.T, runc string, stage hookStage, viewsDir string, mutate func(*specs.Spec), script string) (out, hookLog string) {
	t.Helper()
	cg := testutil.NewCgroup(t, "hook-"+strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), testutil.CgroupLimits{})
	rootfs := testutil.BusyboxRootfs(t)
	bundle, state := t.TempDir(), t.TempDir()
	logFile := filepath.Join(t.TempDir(), "hook.log")
	wrapper := filepath.Join(t.TempDir(), "hook.sh")
	// The wrapper is exec'd by runc with the hook's stdin (the state).
	if err := os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nexec %s hook --views %s 2>>%s\n", testutil.Binary(t, "corral"), viewsDir, logFile)), 0o755); err != nil {
		t.Fatal(err)
	}
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
	spec.Process.Args = []string{"/bin/sh", "-c", script}
	limit := int64(hookMemLimit)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, CPU: &specs.LinuxCPU{Cpus: "0"}}
	spec.Linux.CgroupsPath = cg.Path
	hook := specs.Hook{Path: wrapper, Args: []string{"hook.sh"}}
	spec.Hooks = &specs.Hooks{}
	switch stage {
	case stageCreateContainer:
		spec.Hooks.CreateContainer = []specs.Hook{hook}
	case stagePrestart:
		spec.Hooks.Prestart = []specs.Hook{hook} //nolint:staticcheck // deprecated in the spec, still what podman's hooks.d "prestart" means
	}
	if mutate != nil {
		mutate(&spec)
	}
	raw, err = json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	id := "hook-runc-" + strconv.Itoa(os.Getpid()) + "-" + strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	t.Cleanup(func() { exec.Command(runc, "--root", state, "delete", "--force", id).Run() })
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		err = <-done
		t.Errorf("runc run did not finish in 60 s")
	}
	logged, _ := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("runc run: %v\nstdout:\n%s\nstderr:\n%s\nhook:\n%s", err, stdout.String(), stderr.String(), logged)
	}
	return stdout.String(), string(logged)
}

// TestHookBadInput: whatever it is fed, the hook exits 0 (a failing hook
// fails the container start) and says on stderr what was wrong.
func TestHookBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	corral := testutil.Binary(t, "corral")
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	mp := corralfsMountpoint(t)
	startCorralfs(t, mp)
	for _, c := range []struct{ name, stdin, want string }{
		{"not-json", "hello", "not OCI state JSON"},
		{"no-bundle", `{"ociVersion":"1.0.2","id":"x","pid":1}`, "has no bundle"},
		{"missing-bundle", `{"ociVersion":"1.0.2","id":"x","pid":1,"bundle":"/nonexistent/bundle"}`, "reading the bundle's config"},
		{"no-root", fmt.Sprintf(`{"ociVersion":"1.0.2","id":"x","pid":1,"bundle":%q}`, bundle), "has no root.path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(corral, "hook", "--views", mp)
			cmd.Stdin = strings.NewReader(c.stdin)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("corral hook exited with %v (must always exit 0): %s", err, out)
			}
			if !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "starts without views") {
				t.Errorf("corral hook said %q, want it to mention %q", out, c.want)
			}
		})
	}
}
