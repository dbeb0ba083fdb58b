package runspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// imageRoot is a root with an /etc/passwd that names an "app" user.
func imageRoot(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644)
	return root
}

func TestBuildImage(t *testing.T) {
	root := imageRoot(t)
	img := &Image{Ref: "example.org/app:1", Rootfs: root, Bundle: filepath.Dir(root),
		Entrypoint: []string{"/entry"}, Cmd: []string{"serve"}, Env: []string{"APP=1"}, WorkingDir: "/srv", User: "app"}
	empty := ""
	other := "/other"
	cases := []struct {
		name       string
		args       []string
		entrypoint *string
		user       string
		want       []string
		wantUID    uint32
	}{
		{"config", nil, nil, "", []string{"/entry", "serve"}, 1000},
		{"args replace Cmd", []string{"debug", "-v"}, nil, "", []string{"/entry", "debug", "-v"}, 1000},
		{"--entrypoint drops Cmd", nil, &other, "", []string{"/other"}, 1000},
		{"--entrypoint '' with args", []string{"sh"}, &empty, "0", []string{"sh"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{ID: "x", Image: img, Entrypoint: c.entrypoint, Views: "none", Sysinfo: "off"}
			cfg.Options.Args, cfg.Options.User = c.args, c.user
			res, err := Build(cfg, buildHost(t))
			if err != nil {
				t.Fatal(err)
			}
			p := res.Spec.Process
			if !slices.Equal(p.Args, c.want) || p.User.UID != c.wantUID || p.Cwd != "/srv" {
				t.Errorf("args %v uid %d cwd %s; want %v uid %d cwd /srv", p.Args, p.User.UID, p.Cwd, c.want, c.wantUID)
			}
			if !slices.Contains(p.Env, "APP=1") || !slices.Contains(p.Env, DefaultPath) {
				t.Errorf("env %v: want the image's and the default PATH", p.Env)
			}
			if res.Rootfs != root || res.Spec.Root.Readonly || res.Spec.Annotations[ImageAnnotation] != img.Ref {
				t.Errorf("rootfs %s readonly %v annotations %v", res.Rootfs, res.Spec.Root.Readonly, res.Spec.Annotations)
			}
		})
	}
	if _, err := Build(Config{ID: "x", Image: &Image{Rootfs: root}, Views: "none", Sysinfo: "off"}, buildHost(t)); err == nil || !strings.Contains(err.Error(), "no Entrypoint or Cmd") {
		t.Errorf("an image without a command and no args: %v", err)
	}
}

func TestBuildReadOnlyAndInit(t *testing.T) {
	root := imageRoot(t)
	cfg := Config{ID: "x", Rootfs: root, Views: "none", Sysinfo: "off", ReadOnlyGiven: true}
	cfg.Options.Args = []string{"sh"}
	res, err := Build(cfg, buildHost(t)) // --read-only=false on --rootfs: writable, as without
	if err != nil || res.Spec.Root.Readonly {
		t.Fatalf("--read-only=false on --rootfs: %v", err)
	}
	cfg.Rootfs = ""
	if _, err := Build(cfg, buildHost(t)); err == nil || !strings.Contains(err.Error(), "always read only") {
		t.Errorf("--read-only=false on the default root: %v, want a refusal", err)
	}
	cfg.Rootfs, cfg.Init = root, "/usr/local/bin/corral"
	res, err = Build(cfg, buildHost(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Spec.Process.Args, []string{InitPath, InitCommand, "--", "sh"}) ||
		!slices.ContainsFunc(res.Spec.Mounts, func(m specs.Mount) bool { return m.Destination == InitPath && m.Source == cfg.Init }) {
		t.Errorf("--init: args %v, mounts %v", res.Spec.Process.Args, res.Spec.Mounts)
	}
}
