package runspec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/corral-dev/corral/fusefs/facts"
)

// TestForEngine: `corral create` under an engine binds the views and the
// sysinfo rule only from a live corralfs, at CORRAL_VIEWS or the default
// directory, and leaves the bundle as it is otherwise (opt-out, none, no
// corralfs, one that does not answer), never failing.
func TestForEngine(t *testing.T) {
	dir := fakeViews(t)
	for _, tc := range []struct {
		name       string
		env        string // CORRAL_VIEWS; "-" unset
		annotation string
		live       bool
		probeErr   error
		wantProbe  string // the directory probed; "" none
		wantViews  bool
		wantNote   string
	}{
		{name: "live at CORRAL_VIEWS", env: dir, live: true, wantProbe: dir, wantViews: true},
		{name: "default directory", env: "-", live: false, wantProbe: facts.DefaultDir},
		{name: "not a live corralfs", env: dir, live: false, wantProbe: dir},
		{name: "none", env: "none"},
		{name: "opted out", env: dir, annotation: "off", live: true, wantNote: "opted out"},
		{name: "not answering", env: dir, live: true, probeErr: errors.New("ENOTCONN"), wantProbe: dir, wantNote: "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHost(t)
			h.SysinfoSocket, h.Seccomp = "/run/test/seccomp.sock", true
			h.LookupEnv = func(k string) (string, bool) {
				if k == EnvViews && tc.env != "-" {
					return tc.env, true
				}
				return "", false
			}
			probed := ""
			h.ProbeViews = func(d string) (bool, error) { probed = d; return tc.live, tc.probeErr }
			s := Default("/r", []string{"true"})
			if tc.annotation != "" {
				s.Annotations = map[string]string{facts.ViewsAnnotation: tc.annotation}
			}
			mounts, seccomp := len(s.Mounts), s.Linux.Seccomp
			notes := ForEngine(s, h)
			if probed != tc.wantProbe {
				t.Errorf("probed %q, want %q", probed, tc.wantProbe)
			}
			got := viewDests(s, dir)
			if tc.wantViews {
				if !slices.Equal(got, []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/uptime", "/sys/devices/system/cpu"}) {
					t.Errorf("views %v", got)
				}
				if s.Linux.Seccomp == nil || s.Linux.Seccomp.ListenerPath != h.SysinfoSocket {
					t.Errorf("no sysinfo rule to %s: %+v", h.SysinfoSocket, s.Linux.Seccomp)
				}
			} else if len(s.Mounts) != mounts || s.Linux.Seccomp != seccomp {
				t.Errorf("spec changed: mounts %d -> %d, seccomp %p -> %p", mounts, len(s.Mounts), seccomp, s.Linux.Seccomp)
			}
			if joined := strings.Join(notes, "; "); (tc.wantNote == "") != (joined == "") || !strings.Contains(joined, tc.wantNote) {
				t.Errorf("notes %q, want one saying %q", joined, tc.wantNote)
			}
		})
	}
}
