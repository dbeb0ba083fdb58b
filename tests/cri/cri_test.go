package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/corral-dev/corral/tests/testutil"
)

// The kubelet's view of a node: pods created through the CRI on
// containerd 2, each container limited to 256Mi and 500m, must read their
// limits in /proc/meminfo, /proc/cpuinfo, /sys/devices/system/cpu/online
// and sysinfo(2) (busybox free), on both ways a node can give them:
//
//   - runc, the default handler, with the corral-nri plugin adding the
//     views and the sysinfo rule to every container;
//   - the "corral" RuntimeClass handler (the runc shim with BinaryName =
//     bin/corral), corral adding them itself, in a pod that opts out of the
//     plugin (corral.dev/views=off) so only corral can have done it.
//
// Then the pod's cgroup (the kubelet's pod-level cgroup) is given a lower
// memory limit than the container's, and the view follows it; and
// corralfs's worker is killed with SIGKILL while ExecSync reads go on,
// none of which may fail.

const (
	containerMem = 256 << 20
	podMem       = 128 << 20
)

func TestCRIPodsSeeTheirLimits(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	if testutil.InVM() {
		t.Skip("no containerd 2 in the VM; the host run covers it")
	}
	requireContainerd(t)
	runc := testutil.RequireCommand(t, "runc")
	corral := testutil.Binary(t, "corral")
	testutil.Binary(t, "corral-nri")
	busybox := testutil.StaticBusybox(t)

	work := t.TempDir()
	cfs := startCorralfs(t, work)
	// CORRAL_VIEWS/CORRAL_SECCOMP_SOCKET reach `corral create` through the
	// shim, which inherits containerd's environment: the test's corralfs
	// instead of the node's /var/lib/corralfs.
	e := startContainerd(t, runc, corral, []string{"CORRAL_VIEWS=" + cfs.mp, "CORRAL_SECCOMP_SOCKET=" + cfs.seccompSock})
	plugin := startNRIPlugin(t, e, cfs)

	archive := filepath.Join(work, "image.tar")
	writeImageArchive(t, busybox, archive)
	e.ctr(t, "images", "import", archive)

	for _, tc := range []struct {
		name, handler string
		annotations   map[string]string
	}{
		{"runc+nri", "", nil},
		{"corral-runtimeclass", "corral", map[string]string{"corral.dev/views": "off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runPod(t, e, tc.name, tc.handler, tc.annotations)
			p.checkLimits(t, containerMem)
			if tc.handler == "corral" {
				if !strings.Contains(plugin.out.String(), "skipped default/"+p.name+" container app: the pod opted out") {
					t.Errorf("the NRI plugin did not skip the opted-out pod:\n%s", plugin.out.String())
				}
			} else if !strings.Contains(plugin.out.String(), "added default/"+p.name+" container app: views") {
				t.Errorf("the NRI plugin did not add the views:\n%s", plugin.out.String())
			}
			// The pod-level cgroup limited below the container's.
			p.setPodMemoryLimit(t, podMem)
			// corralfs reuses a container's readings for 100 ms
			// (--snapshot-ttl): wait for the new limit, then check all.
			want := fmt.Sprintf("MemTotal: %d kB", podMem>>10)
			testutil.WaitFor(t, 10*time.Second, "the view showing the pod's limit", func() bool {
				out, err := p.tryExec("head", "-1", "/proc/meminfo")
				return err == nil && strings.Join(strings.Fields(out), " ") == want
			})
			p.checkLimits(t, podMem)
			p.readsSurviveWorkerKills(t, cfs, podMem)
			p.remove(t, e)
		})
	}

	// With corralfs stopped, both ways start containers as plain runc
	// would: the host's files, no error.
	cfs.stop(t)
	hostTotal := memTotalRE.FindStringSubmatch(readFile(t, "/proc/meminfo"))
	for _, handler := range []string{"", "corral"} {
		name := "no-corralfs-" + handler
		if handler == "" {
			name += "runc"
		}
		p := runPod(t, e, name, handler, nil)
		if got := memTotalRE.FindStringSubmatch(p.exec(t, "cat", "/proc/meminfo")); got == nil || hostTotal == nil || got[1] != hostTotal[1] {
			t.Errorf("%s without corralfs: MemTotal %v, want the host's %v", name, got, hostTotal)
		}
		if handler == "" && !strings.Contains(plugin.out.String(), "skipped default/"+p.name+" container app: no corralfs mounted at "+cfs.mp) {
			t.Errorf("the NRI plugin did not say it skipped %s for want of corralfs:\n%s", p.name, plugin.out.String())
		}
		p.remove(t, e)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

// pod is one pod sandbox in its own pod cgroup with two containers of
// 256Mi/500m: "app" under the RuntimeDefault seccomp profile and "plain"
// Unconfined (the kubelet's default), so the sysinfo rule is tested merged
// into containerd's profile and alone.
type pod struct {
	name, id string
	ctr      string // app's id: exec and tryExec run there
	ctrs     []container
	rt       *containerdEnv
	cg       *testutil.Cgroup
}

type container struct{ name, id string }

// runPod creates the pod's cgroup (empty, as the kubelet's before it sets
// a pod limit), then the sandbox and the container as the kubelet does.
func runPod(t *testing.T, e *containerdEnv, name, handler string, annotations map[string]string) *pod {
	t.Helper()
	p := &pod{name: "corral-" + name, rt: e}
	p.cg = testutil.NewCgroup(t, fmt.Sprintf("cri-%d-%s", os.Getpid(), strings.ReplaceAll(name, "+", "-")), testutil.CgroupLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sandbox := &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: "default", Uid: p.name + "-uid"},
		Annotations: annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: p.cg.Path,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				// The kubelet's defaults: host network here (no CNI), a pid
				// namespace per container (shareProcessNamespace: false).
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	var err error
	if p.id, err = e.rt.RunPodSandbox(ctx, sandbox, handler); err != nil {
		t.Fatalf("RunPodSandbox (handler %q): %v", handler, err)
	}
	for _, c := range []struct {
		name    string
		profile runtimeapi.SecurityProfile_ProfileType
	}{{"app", runtimeapi.SecurityProfile_RuntimeDefault}, {"plain", runtimeapi.SecurityProfile_Unconfined}} {
		id := p.createContainer(ctx, t, sandbox, c.name, c.profile)
		p.ctrs = append(p.ctrs, container{c.name, id})
	}
	p.ctr = p.ctrs[0].id
	return p
}

func (p *pod) createContainer(ctx context.Context, t *testing.T, sandbox *runtimeapi.PodSandboxConfig, name string, profile runtimeapi.SecurityProfile_ProfileType) string {
	t.Helper()
	ctrConfig := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: testImage},
		Command:  []string{"sleep", "3600"},
		Linux: &runtimeapi.LinuxContainerConfig{
			// resources: limits: memory: 256Mi, cpu: 500m, as the kubelet
			// translates them for cgroupfs.
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: containerMem, CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: profile},
			},
		},
	}
	id, err := p.rt.rt.CreateContainer(ctx, p.id, ctrConfig, sandbox)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := p.rt.rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

// exec runs a command in app with ExecSync and returns its stdout,
// failing the test on an error or a non-zero exit.
func (p *pod) exec(t *testing.T, cmd ...string) string {
	t.Helper()
	return p.execIn(t, p.ctr, cmd...)
}

func (p *pod) execIn(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	out, err := p.tryExecIn(id, cmd...)
	if err != nil {
		t.Fatalf("ExecSync %q: %v", cmd, err)
	}
	return out
}

func (p *pod) tryExec(cmd ...string) (string, error) { return p.tryExecIn(p.ctr, cmd...) }

func (p *pod) tryExecIn(id string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, stderr, err := p.rt.rt.ExecSync(ctx, id, cmd, 20*time.Second)
	if err != nil {
		return string(stdout), fmt.Errorf("%w (stderr %q)", err, stderr)
	}
	return string(stdout), nil
}

// setPodMemoryLimit limits the pod's cgroup, as the kubelet's pod-level
// cgroup is (the sum of its containers' limits, or a resized pod's).
func (p *pod) setPodMemoryLimit(t *testing.T, limit int64) {
	t.Helper()
	file := filepath.Join(p.cg.Dir("memory"), "memory.limit_in_bytes")
	if p.cg.Mode == testutil.CgroupModeV2 {
		file = filepath.Join(p.cg.Dir(""), "memory.max")
	}
	must(t, os.WriteFile(file, []byte(fmt.Sprint(limit)), 0o644))
}

var memTotalRE = regexp.MustCompile(`(?m)^MemTotal:\s+(\d+) kB$`)

// checkLimits reads the views in every container as a pod's program does.
func (p *pod) checkLimits(t *testing.T, mem int64) {
	t.Helper()
	want := fmt.Sprintf("MemTotal: %d kB", mem>>10)
	for _, c := range p.ctrs {
		if m := memTotalRE.FindStringSubmatch(p.execIn(t, c.id, "cat", "/proc/meminfo")); m == nil || "MemTotal: "+m[1]+" kB" != want {
			t.Errorf("%s: /proc/meminfo: %v, want %q", c.name, m, want)
		}
		if got := strings.TrimSpace(p.execIn(t, c.id, "grep", "-c", "^processor", "/proc/cpuinfo")); got != "1" {
			t.Errorf("%s: processors in /proc/cpuinfo: %s, want 1 (cpu: 500m)", c.name, got)
		}
		if got := strings.TrimSpace(p.execIn(t, c.id, "cat", "/sys/devices/system/cpu/online")); got != "0" {
			t.Errorf("%s: /sys/devices/system/cpu/online: %q, want \"0\"", c.name, got)
		}
		// busybox free asks sysinfo(2), answered by corralfs's agent with
		// the limit plus one page (design decision 29: the JDK's order of
		// physical memory over limit).
		free := strings.Fields(p.execIn(t, c.id, "free"))
		if want := fmt.Sprint(mem>>10 + 4); len(free) < 8 || free[7] != want {
			t.Errorf("%s: free (sysinfo(2)) total: %v, want %s", c.name, free, want)
		}
	}
}

// readsSurviveWorkerKills kills corralfs's worker (found through the
// daemon's status, never by name) twice while ExecSync reads of
// /proc/meminfo go on; every read must succeed with the pod's limit.
func (p *pod) readsSurviveWorkerKills(t *testing.T, cfs *corralfsDaemon, mem int64) {
	t.Helper()
	want := fmt.Sprintf("MemTotal: %d kB", mem>>10)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reads int
	var failures []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := p.tryExec("head", "-1", "/proc/meminfo")
			mu.Lock()
			reads++
			if err != nil || strings.Join(strings.Fields(out), " ") != want {
				failures = append(failures, fmt.Sprintf("%q (%v)", out, err))
			}
			mu.Unlock()
		}
	}()
	readsNow := func() int { mu.Lock(); defer mu.Unlock(); return reads }
	for kill := 0; kill < 2; kill++ {
		before := readsNow()
		testutil.WaitFor(t, 30*time.Second, "ExecSync reads going on", func() bool { return readsNow() >= before+2 })
		old := cfs.workerPid(t)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatalf("killing corralfs's worker %d: %v", old, err)
		}
		testutil.WaitFor(t, 30*time.Second, "a new corralfs worker", func() bool { return cfs.workerPid(t) != old })
	}
	before := readsNow()
	testutil.WaitFor(t, 30*time.Second, "reads after the last kill", func() bool { return readsNow() >= before+2 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d ExecSync reads failed across two worker kills: %v", len(failures), reads, failures)
	}
	t.Logf("%d ExecSync reads of /proc/meminfo across two SIGKILLs of corralfs's worker, none failed", reads)
}

// remove deletes the pod as the kubelet does and checks that nothing of
// it is left: no sandbox, no container cgroup below the pod's cgroup.
func (p *pod) remove(t *testing.T, e *containerdEnv) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.rt.StopPodSandbox(ctx, p.id); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if err := e.rt.RemovePodSandbox(ctx, p.id); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
	if pods, err := e.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: p.id}); err != nil || len(pods) != 0 {
		t.Errorf("sandbox %s still listed after RemovePodSandbox (%v)", p.id, err)
	}
	for _, ctrl := range []string{"memory", "cpu", "pids", ""} {
		dir := p.cg.Dir(ctrl)
		if dir == "" {
			continue
		}
		entries, _ := os.ReadDir(dir)
		for _, ent := range entries {
			if ent.IsDir() {
				t.Errorf("cgroup %s left below the pod's cgroup %s", ent.Name(), dir)
			}
		}
	}
}
