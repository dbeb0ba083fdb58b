// Package runtime runs OCI containers: an OCI runtime-spec bundle (or an
// in-memory *specs.Spec) becomes namespaces, cgroups, a pivoted rootfs and a
// process, driven through the lifecycle verbs create, start, kill, delete,
// exec, pause, resume and update (one file per verb, each opening with a
// status check against the table in status.go).
//
// The container's init is this very binary re-executed (see init.go): the
// program that links this package must call MaybeInit() first thing in main
// (cmd/corral does; tests do it in TestMain) so that the re-executed copy
// becomes the init instead of running the CLI.
//
// `corral run` is Create(Foreground) + Start + Wait + Delete:
//
//	r := &runtime.Runtime{Root: "/run/corral"}
//	c, err := r.Create(id, runtime.CreateOpts{Spec: spec, Bundle: dir, Foreground: true,
//		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
//	if spec.Process.Terminal { pty := c.Console() /* raw mode, copy, resize */ }
//	err = c.Start()
//	code, err := c.Wait()   // 128+N on signal; State().OOMKilled says why 137
//	c.Delete(true)
package runtime

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// DefaultRoot is where container state lives unless Runtime.Root says otherwise.
const DefaultRoot = "/run/corral"

// DefaultCgroupParent is the absolute cgroup under which containers without a
// spec.linux.cgroupsPath are created: /corral/<id> in every hierarchy.
const DefaultCgroupParent = "/corral"

// Runtime is the entry point: one state root, one cgroup driver, one logger.
type Runtime struct {
	// Root is the state directory (runc's --root); "" means DefaultRoot.
	Root string
	// SystemdCgroup asks for the systemd cgroup driver. corral only
	// implements cgroupfs; with this set, Create fails clearly when systemd
	// is not running (and, for now, also when it is: TODO systemd driver).
	SystemdCgroup bool
	// Log receives debug and warning messages; nil discards them.
	Log *slog.Logger
}

func (r *Runtime) root() string {
	if r.Root == "" {
		return DefaultRoot
	}
	return r.Root
}

func (r *Runtime) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r.Log
}

// validID is what runc accepts: the id names a directory under Root and a
// cgroup, so no slashes, no "..", nothing exotic.
var validID = regexp.MustCompile(`^[\w+\-.]+$`)

// ErrNotExist is returned (wrapped) by Load for an unknown container id.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is returned (wrapped) by Create for an id already in use.
var ErrExist = errors.New("container already exists")

func checkID(id string) error {
	if id == "" || id == "." || id == ".." || !validID.MatchString(id) {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.'", id)
	}
	return nil
}

func (r *Runtime) stateDir(id string) string { return filepath.Join(r.root(), id) }

// Load returns the container with this id from the state root.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	st, err := readState(r.stateDir(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	return &Container{rt: r, dir: r.stateDir(id), st: st}, nil
}

// List returns every container under the state root, sorted by id. A
// directory whose state cannot be read is skipped with a warning (it may be
// a container being created right now).
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.root())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || checkID(e.Name()) != nil {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			r.log().Warn("skipping unreadable container state", "id", e.Name(), "err", err)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}
