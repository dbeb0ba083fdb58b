package main

import (
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/image"
	"github.com/corral-dev/corral/runtime/runspec"
)

// imageAnnotation names the image a container runs (for list and
// inspect); informational only, nothing trusts it.
const imageAnnotation = "org.corral.image"

// runImage is the image `corral run IMAGE [CMD...]` runs.
type runImage struct {
	ref string // as the user wrote it
	rec *image.Record
}

// pickImage decides whether the first argument names a local image: only
// without --rootfs/--bundle and when it does not follow "--" (`corral run
// -- free` always runs a command). An image wins over a command of the
// same name: whoever pulled busybox means the image.
func pickImage(fs *pflag.FlagSet, f *runFlags) error {
	args := f.opts.Args
	if f.rootfs != "" || f.bundle != "" || len(args) == 0 || fs.ArgsLenAtDash() == 0 {
		return nil
	}
	rec, err := newStore().Lookup(args[0])
	if errors.Is(err, image.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	f.image = &runImage{ref: args[0], rec: rec}
	f.opts.Args = args[1:]
	return nil
}

// imageRunSpec is the base spec of a container of an image: its own
// overlay root (the caller releases dir when anything later fails) and
// the image config's command, environment, working directory and user,
// which the flags then override as for any run.
func imageRunSpec(f *runFlags, id string) (rs *runSpec, err error) {
	store := newStore()
	cfg, err := store.Config(f.image.rec)
	if err != nil {
		return nil, err
	}
	dir, rootfs, err := store.MountRoot(id, f.image.rec)
	if err != nil {
		return nil, err
	}
	rs = &runSpec{rootfs: rootfs, bundle: dir, imageRoot: dir}
	args, err := imageArgs(cfg.Config, f.entrypoint, f.opts.Args)
	if err != nil {
		image.ReleaseRoot(dir)
		return nil, err
	}
	rs.spec = runspec.Default(rootfs, args)
	f.opts.Args = nil // taken: the spec holds the full command
	applyImageConfig(rs.spec, cfg.Config)
	if f.opts.User == "" {
		f.opts.User = cfg.Config.User // names resolve in the image's /etc
	}
	if rs.spec.Annotations == nil {
		rs.spec.Annotations = map[string]string{}
	}
	rs.spec.Annotations[imageAnnotation] = f.image.ref
	return rs, nil
}

// imageArgs is docker's rule: the entrypoint (--entrypoint replaces the
// image's, and then the image's Cmd is dropped too) followed by the
// command line's arguments, else the image's Cmd.
func imageArgs(c v1.Config, entrypoint *string, args []string) ([]string, error) {
	ep, cmd := c.Entrypoint, c.Cmd
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

// applyImageConfig sets the environment (the image's, with the default
// PATH when it has none) and the working directory of the image.
func applyImageConfig(s *specs.Spec, c v1.Config) {
	env := append([]string(nil), c.Env...)
	if !hasPath(env) {
		env = append([]string{runspec.DefaultPath}, env...)
	}
	s.Process.Env = env
	if c.WorkingDir != "" {
		s.Process.Cwd = c.WorkingDir
	}
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

// notFoundHint explains a command that does not exist when it may have
// been meant as an image: corral runs commands by default, and images only
// once pulled.
func notFoundHint(err error, f *runFlags, args []string) error {
	if f.image != nil || f.rootfs != "" || f.bundle != "" || len(args) == 0 || !errors.Is(err, runtime.ErrExecNotFound) {
		return err
	}
	name := args[0]
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") {
		return err
	}
	if _, perr := image.CanonicalName(name); perr != nil {
		return err
	}
	return fmt.Errorf("%w\n%q is neither a command on the container's PATH nor a local image; to run the image: corral pull %s && corral run %s", err, name, name, strings.Join(args, " "))
}
