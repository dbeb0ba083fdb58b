package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/views"
)

// hookOptions are `corral hook`'s flags.
type hookOptions struct {
	views   string
	timeout time.Duration
}

func init() {
	var opts hookOptions
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "OCI hook (createContainer or prestart): bind corralfs's views into a container started by any runtime",
		Long: `corral hook is an OCI runtime hook for the createContainer (or prestart)
stage. It reads the container's state JSON on stdin, finds the rootfs in the
bundle's config.json and binds the views of the corralfs mounted at --views
read-only over the same /proc and /sys files that 'corral run' binds.

It never fails a container start: when there is no corralfs, or anything
goes wrong, it says why on stderr and exits 0, and the container starts
with the host's /proc files.

Podman and CRI-O pick it up from a hooks directory (install/hooks.d/corralfs.json);
runc and crun bundles name it in config.json:
  "hooks": {"createContainer": [{"path": "/usr/local/bin/corral", "args": ["corral", "hook"]}]}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			msg, err := runHook(os.Stdin, opts)
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "corral hook: %v; the container starts without views\n", err)
			case msg != "":
				fmt.Fprintf(os.Stderr, "corral hook: %s\n", msg)
			}
			return nil // a hook that fails would fail the container start
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.views, "views", facts.DefaultDir, "directory where corralfs (or LXCFS) serves the views")
	f.DurationVar(&opts.timeout, "timeout", 10*time.Second, "give up (and let the container start without views) after this long")
	rootCmd.AddCommand(cmd)
}

// runHook does the hook's work and returns what to tell the user.
func runHook(stdin io.Reader, opts hookOptions) (string, error) {
	state, err := readHookState(stdin)
	if err != nil {
		return "", err
	}
	dir, err := filepath.Abs(opts.views)
	if err != nil {
		return "", err
	}
	// Same checks as `corral run`: a directory left behind by a stopped
	// daemon, or a dead FUSE mount (every access ENOTCONN), must not be
	// bound over the container's /proc.
	live, err := views.Live(dir)
	if err != nil {
		return "", fmt.Errorf("reading the mount table: %w", err)
	}
	if !live {
		return fmt.Sprintf("no corralfs mounted at %s: nothing to bind into %s", dir, state.ID), nil
	}
	if err := views.Answers(dir, 2*time.Second); err != nil {
		return "", fmt.Errorf("the corralfs at %s does not answer: %w", dir, err)
	}
	present := views.Present(dir)
	if len(present) == 0 {
		return "", fmt.Errorf("no view files below %s", dir)
	}
	spec, rootfs, err := runtime.LoadBundle(state.Bundle)
	if err != nil {
		return "", fmt.Errorf("reading the bundle's config: %w", err)
	}
	if present = notBoundBy(spec, present); len(present) == 0 {
		return fmt.Sprintf("%s binds every view already (NRI plugin, volumes): nothing to do", state.ID), nil
	}
	key, why := hookKey(spec, state.Pid)
	present = views.Own(dir, present, key)
	bound, err := views.BindIntoContainer(state.Pid, rootfs, present, opts.timeout)
	if err != nil {
		if len(bound) > 0 {
			return "", fmt.Errorf("bound %s, then: %w", strings.Join(bound, " "), err)
		}
		return "", err
	}
	own := "its own files " + facts.BoundDir + "/" + key
	if key == "" {
		own = "the shared files (" + why + ")"
	}
	return fmt.Sprintf("bound %d views of %s into %s, %s: %s", len(bound), dir, state.ID, own, strings.Join(bound, " ")), nil
}

// readHookState decodes the OCI state the runtime writes to a hook's stdin.
func readHookState(r io.Reader) (*specs.State, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the container state on stdin: %w", err)
	}
	var st specs.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("the container state on stdin is not OCI state JSON (%w): %.200q", err, raw)
	}
	if st.Bundle == "" {
		return nil, fmt.Errorf("the container state on stdin has no bundle: %.200q", raw)
	}
	return &st, nil
}

// notBoundBy drops the views the container's config already mounts: an
// NRI plugin (corral-nri on CRI-O with NRI enabled) or the pod's own
// LXCFS-style volumes put them there, and binding again would only stack
// a second copy over the first.
func notBoundBy(spec *specs.Spec, present []views.Bound) []views.Bound {
	var out []views.Bound
	for _, b := range present {
		if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == b.Kernel }) {
			out = append(out, b)
		}
	}
	return out
}

// hookKey is the bound-view key of the container (its cgroup as corralfs
// resolves its readers, from the host's cgroup namespace); "" and why when
// it has none, and the shared views are bound. A wrong key would lock the
// container out of its own /proc files (the daemon refuses every reader
// whose cgroup is not the key's), so the key is given only when two
// sources agree: the bundle's cgroupsPath, absolute (the cgroupfs form;
// systemd's slice:prefix:name has no path), and the init's cgroups as the
// hook sees them, which are that path, or the root when the hook runs in
// the container's cgroup namespace (createContainer: the init's cgroup is
// the namespace's root there).
func hookKey(spec *specs.Spec, pid int) (key, why string) {
	if spec.Linux == nil || !strings.HasPrefix(spec.Linux.CgroupsPath, "/") {
		return "", "the bundle's cgroupsPath is not an absolute path"
	}
	path := filepath.Clean(spec.Linux.CgroupsPath)
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		return "", err.Error()
	}
	p, err := r.PathsOf(pid)
	if err != nil {
		return "", err.Error()
	}
	for _, q := range []string{p.V1["memory"], p.Unified} {
		if q != "" && q != "/" && q != path {
			return "", fmt.Sprintf("the init's cgroup %s is not the bundle's %s", q, path)
		}
	}
	key, ok := facts.BoundKeyOfCgroup(path)
	if !ok {
		return "", "the root cgroup"
	}
	return key, ""
}
