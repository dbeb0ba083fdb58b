package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime/seccomp"
	"github.com/corral-dev/corral/runtime/views"
)

// ViewsAnnotation is the pod annotation that opts a pod out ("off") of the
// views, or, when the plugin runs with --opt-in, in ("on"). A pod-level
// switch: every container of a pod reads its limits the same way.
const ViewsAnnotation = facts.ViewsAnnotation

// config is what the plugin was started with.
type config struct {
	views   string // where corralfs serves the views (the node's path)
	optIn   bool   // only pods annotated corral.dev/views=on get the views
	sysinfo string // the seccomp agent's socket; "" never wires sysinfo(2)
}

// decision is what the plugin does with one container, and why: the
// reason is logged for every container so an operator can tell a pod that
// opted out from a node whose corralfs is down.
type decision struct {
	adjust *api.ContainerAdjustment // nil: leave the container as it is
	reason string
}

// wanted reads the pod's annotation against the plugin's mode.
func (c config) wanted(pod *api.PodSandbox) (bool, string) {
	v, set := pod.GetAnnotations()[ViewsAnnotation]
	switch v = strings.ToLower(strings.TrimSpace(v)); {
	case !set && c.optIn:
		return false, "opt-in mode and the pod has no " + ViewsAnnotation + "=on"
	case !set:
		return true, ""
	case v == "on" || v == "true":
		return true, ""
	case v == "off" || v == "false":
		return false, "the pod opted out (" + ViewsAnnotation + "=" + v + ")"
	default:
		// A typo must not silently decide for the pod: the default of the
		// mode holds, and the log says the value was not understood.
		if c.optIn {
			return false, fmt.Sprintf("%s=%q is neither on nor off; opt-in mode leaves the pod alone", ViewsAnnotation, v)
		}
		return true, fmt.Sprintf("%s=%q is neither on nor off; the views are added", ViewsAnnotation, v)
	}
}

// decide builds the adjustment for one container: the view binds that
// `corral run` and `corral hook` bind (runtime/views), and sysinfo(2)
// trapped to corralfs's agent. It never returns an error: a container
// must start whatever happens to corralfs, with the host's files at worst.
func (c config) decide(pod *api.PodSandbox, ctr *api.Container) decision {
	want, note := c.wanted(pod)
	if !want {
		return decision{reason: note}
	}
	// The same checks as `corral run` and `corral hook`: a directory left
	// behind by a stopped daemon, or a dead FUSE mount whose every access
	// fails, must not be bound over the container's /proc.
	live, err := views.Live(c.views)
	if err != nil {
		return decision{reason: "reading the mount table: " + err.Error()}
	}
	if !live {
		return decision{reason: "no corralfs mounted at " + c.views}
	}
	// Within containerd's default 2 s plugin request timeout, past which
	// it drops the plugin's answer and creates the container without it.
	if err := views.Answers(c.views, time.Second); err != nil {
		return decision{reason: fmt.Sprintf("the corralfs at %s does not answer: %v", c.views, err)}
	}
	adj := &api.ContainerAdjustment{}
	var bound []string
	for _, b := range views.Present(c.views) {
		// runc (and crun) accept mounts over /proc only for a fixed list
		// of files, which /proc/pressure/* is not on: asking for one would
		// fail the container's creation. Only `corral hook` binds those.
		if b.PSI {
			continue
		}
		if hasMount(ctr, b.Kernel) {
			continue // the pod binds it itself (LXCFS-style volumes)
		}
		adj.AddMount(&api.Mount{
			Destination: b.Kernel,
			Type:        "bind",
			Source:      b.Source,
			Options:     append([]string(nil), views.MountOptions...),
		})
		bound = append(bound, b.Kernel)
	}
	if len(bound) == 0 {
		return decision{reason: "no view files below " + c.views}
	}
	reason := "views " + strings.Join(bound, " ")
	if c.sysinfo != "" {
		reason += "; " + c.addSysinfo(adj, ctr)
	}
	if note != "" {
		reason += "; " + note
	}
	return decision{adjust: adj, reason: reason}
}

// addSysinfo merges a seccomp user-notification rule for sysinfo(2) into
// the container's policy, with corralfs's agent as the listener: the OCI
// runtime hands the listener fd to the agent at the container's start, as
// for `corral run`. The policy is the one containerd or CRI-O computed
// (RuntimeDefault, Localhost, or none for Unconfined/privileged);
// AddSysinfoNotify never widens it.
func (c config) addSysinfo(adj *api.ContainerAdjustment, ctr *api.Container) string {
	if fi, err := os.Stat(c.sysinfo); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return "sysinfo(2) not trapped: no agent socket at " + c.sysinfo
	}
	var cur *specs.LinuxSeccomp
	if p := ctr.GetLinux().GetSeccompPolicy(); p != nil {
		cur = toOCISeccomp(p)
	}
	out, added, err := seccomp.AddSysinfoNotify(cur, c.sysinfo)
	switch {
	case err != nil:
		return "sysinfo(2) not trapped: " + err.Error()
	case !added:
		return "sysinfo(2) not trapped: the container's seccomp policy denies it or already has a listener"
	}
	adj.SetLinuxSeccompPolicy(api.FromOCILinuxSeccomp(out))
	return "sysinfo(2) answered by " + c.sysinfo
}

func hasMount(ctr *api.Container, dest string) bool {
	for _, m := range ctr.GetMounts() {
		if m.GetDestination() == dest {
			return true
		}
	}
	return false
}

// toOCISeccomp is the inverse of api.FromOCILinuxSeccomp, which NRI has
// only for the syscall list.
func toOCISeccomp(p *api.LinuxSeccomp) *specs.LinuxSeccomp {
	o := &specs.LinuxSeccomp{
		DefaultAction:    specs.LinuxSeccompAction(p.GetDefaultAction()),
		ListenerPath:     p.GetListenerPath(),
		ListenerMetadata: p.GetListenerMetadata(),
		Syscalls:         api.ToOCILinuxSyscalls(p.GetSyscalls()),
	}
	if e := p.GetDefaultErrno(); e != nil {
		v := uint(e.GetValue())
		o.DefaultErrnoRet = &v
	}
	for _, a := range p.GetArchitectures() {
		o.Architectures = append(o.Architectures, specs.Arch(a))
	}
	for _, f := range p.GetFlags() {
		o.Flags = append(o.Flags, specs.LinuxSeccompFlag(f))
	}
	return o
}
