package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/image"
	"github.com/corral-dev/corral/runtime/runspec"
)

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

// mountImage mounts the root of container id from the image and returns
// it with the image's config as runspec's base, and the directory to
// release.
func mountImage(ri *runImage, id string) (*runspec.Image, string, error) {
	store := newStore()
	cfg, err := store.Config(ri.rec)
	if err != nil {
		return nil, "", err
	}
	dir, rootfs, err := store.MountRoot(id, ri.rec)
	if err != nil {
		return nil, "", err
	}
	c := cfg.Config
	return &runspec.Image{Ref: ri.ref, Rootfs: rootfs, Bundle: dir, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		Env: c.Env, WorkingDir: c.WorkingDir, User: c.User}, dir, nil
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
