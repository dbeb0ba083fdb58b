package main

import (
	"bytes"
	"testing"

	"github.com/corral-dev/corral/runtime/runspec"
)

// TestEngineViewsNeedALiveCorralfs: `corral create` under an engine binds
// nothing from a directory that merely holds view files (a stopped
// daemon's leftovers, or a fake), nor with CORRAL_VIEWS=none or the
// opt-out annotation, and never fails or warns for it: the container
// starts as under runc. The bind path itself (a live corralfs) is
// covered end to end by tests/cri through containerd.
func TestEngineViewsNeedALiveCorralfs(t *testing.T) {
	dir := fakeViews(t)
	for _, tc := range []struct {
		name, env  string
		annotation string
	}{
		{"not a corralfs mount", dir, ""},
		{"CORRAL_VIEWS=none", "none", ""},
		{"opted out", dir, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envViews, tc.env)
			s := runspec.Default("/r", []string{"true"})
			if tc.annotation != "" {
				s.Annotations = map[string]string{viewsAnnotation: tc.annotation}
			}
			n, seccomp := len(s.Mounts), s.Linux.Seccomp
			var log bytes.Buffer
			addEngineViews(s, &log)
			if len(s.Mounts) != n || s.Linux.Seccomp != seccomp {
				t.Errorf("spec changed: mounts %d -> %d, seccomp %p -> %p", n, len(s.Mounts), seccomp, s.Linux.Seccomp)
			}
			if tc.annotation == "" && log.Len() != 0 {
				t.Errorf("logged %q", log.String())
			}
		})
	}
}
