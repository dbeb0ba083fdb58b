package runspec

import (
	"errors"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ImageAnnotation names the image a container runs (for list and
// inspect); informational only, nothing trusts it.
const ImageAnnotation = "org.corral.image"

// Image is the base of `corral run IMAGE`: the container's root, already
// mounted (image.Store.MountRoot), and the parts of the image config
// docker honours.
type Image struct {
	Ref        string // as the user named it
	Rootfs     string // the mounted overlay root
	Bundle     string // the container's directory in the image store
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// imageBase is the spec of a container of an image: the command from the
// entrypoint and Cmd (imageArgs), the image's environment (with the
// default PATH when it sets none) and working directory. The image's
// User is applied with the flags (Build), so that -u wins.
func imageBase(cfg Config) (*Result, error) {
	img := cfg.Image
	args, err := imageArgs(img, cfg.Entrypoint, cfg.Options.Args)
	if err != nil {
		return nil, err
	}
	s := Default(img.Rootfs, args)
	env := append([]string(nil), img.Env...)
	if !hasEnvIn(env, "PATH") {
		env = append([]string{DefaultPath}, env...)
	}
	s.Process.Env = env
	if img.WorkingDir != "" {
		s.Process.Cwd = img.WorkingDir
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[ImageAnnotation] = img.Ref
	return &Result{Spec: s, Bundle: img.Bundle, Rootfs: img.Rootfs}, nil
}

// imageArgs is docker's rule: the entrypoint (--entrypoint replaces the
// image's, and then the image's Cmd is dropped too) followed by the
// command line's arguments, else the image's Cmd.
func imageArgs(img *Image, entrypoint *string, args []string) ([]string, error) {
	ep, cmd := img.Entrypoint, img.Cmd
	if entrypoint != nil {
		ep, cmd = nil, nil
		if *entrypoint != "" {
			ep = []string{*entrypoint}
		}
	}
	if len(args) > 0 {
		cmd = args
	}
	out := append(append([]string(nil), ep...), cmd...)
	if len(out) == 0 {
		return nil, errors.New("the image has no Entrypoint or Cmd: give a command after the image name")
	}
	return out, nil
}

func hasEnvIn(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// applyRootMode honours an explicit --read-only=true or false. The
// default root is shared by every container and always read only: asking
// for it writable is refused rather than ignored.
func applyRootMode(s *specs.Spec, cfg Config) error {
	if !cfg.ReadOnlyGiven {
		return nil
	}
	if !cfg.Options.ReadOnly && cfg.Bundle == "" && cfg.Rootfs == "" && cfg.Image == nil {
		return errors.New("--read-only=false: the default root is shared by every container and always read only; run an IMAGE or give --rootfs for a writable root (or -v a directory)")
	}
	s.Root.Readonly = cfg.Options.ReadOnly
	return nil
}

// InitPath is where `corral run --init` binds its init (the static corral
// binary): /dev is the container's own tmpfs, writable in any root.
const InitPath = "/dev/.corral-init"

// InitCommand is the corral subcommand that is the init.
const InitCommand = "__init"

// addInit puts the init (bound read only from the host file init) in
// front of the command: `INIT __init -- COMMAND...`.
func addInit(s *specs.Spec, init string) {
	if init == "" {
		return
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: InitPath, Type: "bind", Source: init, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	s.Process.Args = append([]string{InitPath, InitCommand, "--"}, s.Process.Args...)
}
