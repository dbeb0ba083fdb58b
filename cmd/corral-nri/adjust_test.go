package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime/seccomp"
)

func pod(annotations map[string]string) *api.PodSandbox {
	return &api.PodSandbox{Name: "p", Namespace: "default", Annotations: annotations}
}

// TestWantedAnnotation: the opt-out annotation in the default mode, the
// opt-in annotation with --opt-in, and an unreadable value keeping the
// mode's default.
func TestWantedAnnotation(t *testing.T) {
	for _, tc := range []struct {
		optIn bool
		ann   map[string]string
		want  bool
	}{
		{false, nil, true},
		{false, map[string]string{ViewsAnnotation: "off"}, false},
		{false, map[string]string{ViewsAnnotation: "False"}, false},
		{false, map[string]string{ViewsAnnotation: "on"}, true},
		{false, map[string]string{ViewsAnnotation: "maybe"}, true},
		{true, nil, false},
		{true, map[string]string{ViewsAnnotation: "on"}, true},
		{true, map[string]string{ViewsAnnotation: " true "}, true},
		{true, map[string]string{ViewsAnnotation: "off"}, false},
		{true, map[string]string{ViewsAnnotation: "maybe"}, false},
		{true, map[string]string{"other": "on"}, false},
	} {
		got, why := config{optIn: tc.optIn}.wanted(pod(tc.ann))
		if got != tc.want {
			t.Errorf("opt-in %v, annotations %v: wanted %v (%s), want %v", tc.optIn, tc.ann, got, why, tc.want)
		}
		if !got && why == "" {
			t.Errorf("opt-in %v, annotations %v: skipped without a reason", tc.optIn, tc.ann)
		}
	}
}

// TestDecideSkipsWithoutCorralfs: a views directory that is not a
// corralfs mount (left behind by a stopped daemon) gets no adjustment, so
// the container starts with the host's files instead of failing.
func TestDecideSkipsWithoutCorralfs(t *testing.T) {
	dir := t.TempDir()
	d := config{views: dir}.decide(pod(nil), &api.Container{Name: "c"})
	if d.adjust != nil {
		t.Fatalf("adjusted a container with no corralfs at %s: %+v", dir, d.adjust)
	}
	if !strings.Contains(d.reason, "no corralfs mounted at "+dir) {
		t.Errorf("reason %q does not say corralfs is not mounted", d.reason)
	}
	d = config{views: dir}.decide(pod(map[string]string{ViewsAnnotation: "off"}), &api.Container{Name: "c"})
	if d.adjust != nil || !strings.Contains(d.reason, "opted out") {
		t.Errorf("opted-out pod: %+v", d)
	}
}

// TestAddSysinfo: the container's policy gets the notify rule and the
// agent's socket; a policy that denies sysinfo stays as it is; no socket,
// no change.
func TestAddSysinfo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "seccomp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := config{sysinfo: sock}

	errno := uint(1)
	runtimeDefault := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &errno,
		Architectures:   []specs.Arch{specs.ArchX86_64},
		Syscalls:        []specs.LinuxSyscall{{Names: []string{"read", "sysinfo", "write"}, Action: specs.ActAllow}},
	}
	adj := &api.ContainerAdjustment{}
	msg := c.addSysinfo(adj, &api.Container{Linux: &api.LinuxContainer{SeccompPolicy: api.FromOCILinuxSeccomp(runtimeDefault)}})
	got := adj.GetLinux().GetSeccompPolicy()
	if got == nil {
		t.Fatalf("no seccomp adjustment (%s)", msg)
	}
	want, _, _ := seccomp.AddSysinfoNotify(runtimeDefault, sock)
	if o := toOCISeccomp(got); !sameJSON(t, o, want) {
		t.Errorf("adjusted policy\n%+v\nwant\n%+v", o, want)
	}

	// Unconfined (no policy): the sysinfo-only filter.
	adj = &api.ContainerAdjustment{}
	c.addSysinfo(adj, &api.Container{})
	if p := adj.GetLinux().GetSeccompPolicy(); p == nil || p.ListenerPath != sock || p.DefaultAction != string(specs.ActAllow) {
		t.Errorf("unconfined container: %+v", p)
	}

	denies := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &errno,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}
	adj = &api.ContainerAdjustment{}
	if msg := c.addSysinfo(adj, &api.Container{Linux: &api.LinuxContainer{SeccompPolicy: api.FromOCILinuxSeccomp(denies)}}); adj.GetLinux() != nil || !strings.Contains(msg, "denies") {
		t.Errorf("policy denying sysinfo was adjusted (%s): %+v", msg, adj.GetLinux())
	}

	adj = &api.ContainerAdjustment{}
	if msg := (config{sysinfo: sock + ".missing"}).addSysinfo(adj, &api.Container{}); adj.GetLinux() != nil || !strings.Contains(msg, "no agent socket") {
		t.Errorf("no socket, yet adjusted (%s)", msg)
	}
}

// TestSeccompRoundTrip: toOCISeccomp undoes NRI's FromOCILinuxSeccomp,
// so a policy passes through the plugin unchanged but for the sysinfo rule.
func TestSeccompRoundTrip(t *testing.T) {
	errno := uint(38)
	in := &specs.LinuxSeccomp{
		DefaultAction:    specs.ActErrno,
		DefaultErrnoRet:  &errno,
		Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Flags:            []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		ListenerPath:     "/run/x.sock",
		ListenerMetadata: "meta",
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 2114060288, Op: specs.OpMaskedEqual}}},
			{Names: []string{"ptrace"}, Action: specs.ActErrno, ErrnoRet: &errno},
		},
	}
	if out := toOCISeccomp(api.FromOCILinuxSeccomp(in)); !sameJSON(t, out, in) {
		t.Errorf("round trip\n%+v\nwant\n%+v", out, in)
	}
}

// sameJSON compares policies as the runtime reads them (config.json):
// an empty list and a missing one are the same there.
func sameJSON(t *testing.T, a, b *specs.LinuxSeccomp) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}
