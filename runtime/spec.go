package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociVersionRe is what Create accepts: the runtime spec versions corral
// implements, 1.0.x through 1.3.x (with an optional pre-release suffix such
// as 1.0.2-dev, which runc and podman write).
var ociVersionRe = regexp.MustCompile(`^1\.[0-3]\.\d+(-[0-9A-Za-z.+-]+)?$`)

// LoadSpec reads BUNDLE/config.json with errors that say where it is broken.
func LoadSpec(bundle string) (*specs.Spec, error) {
	file := filepath.Join(bundle, "config.json")
	fi, err := os.Stat(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s has no config.json (create one with `corral spec`)", bundle)
		}
		return nil, err
	}
	if err := checkConfigSize(file, fi.Size()); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("malformed %s: %s", file, describeJSONError(data, err))
	}
	return &spec, nil
}

// LoadBundle is LoadSpec for callers that need the container's root too
// (`corral run --bundle`, `corral hook`): it refuses a config without
// root.path and returns the root as a clean absolute path (root.path is
// absolute, or relative to the bundle: runtime spec, root.path). Create
// resolves it further (symlinks, existence) in validateSpec.
func LoadBundle(bundle string) (spec *specs.Spec, rootfs string, err error) {
	if spec, err = LoadSpec(bundle); err != nil {
		return nil, "", err
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, "", fmt.Errorf("%s has no root.path", filepath.Join(bundle, "config.json"))
	}
	return spec, bundleRootfs(bundle, spec.Root.Path), nil
}

// bundleRootfs resolves a root.path against its bundle.
func bundleRootfs(bundle, root string) string {
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	return filepath.Clean(root)
}

// describeJSONError adds the line and column to a decoding error.
func describeJSONError(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// validateSpec checks what Create relies on, before anything is created, and
// resolves root.path against the bundle. It returns the absolute rootfs.
func validateSpec(spec *specs.Spec, bundle string) (string, error) {
	if !ociVersionRe.MatchString(spec.Version) {
		return "", fmt.Errorf("unsupported ociVersion %q: corral implements runtime-spec 1.0.x to 1.3.x", spec.Version)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return "", errors.New("config: process.args is empty: nothing to run")
	}
	if err := checkRlimits(spec.Process); err != nil {
		return "", err
	}
	if err := checkSpecSize(spec); err != nil {
		return "", err
	}
	if spec.Process.Cwd != "" && !filepath.IsAbs(spec.Process.Cwd) {
		return "", fmt.Errorf("config: process.cwd %q must be absolute", spec.Process.Cwd)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return "", errors.New("config: root.path is missing")
	}
	if spec.Linux == nil {
		return "", errors.New("config: the linux section is missing")
	}
	rootfs, err := filepath.Abs(bundleRootfs(bundle, spec.Root.Path))
	if err != nil {
		return "", err
	}
	// The rootfs is bind-mounted onto itself and pivoted into: resolve
	// symlinks now so the state records the real place.
	if real, err := filepath.EvalSymlinks(rootfs); err == nil {
		rootfs = real
	}
	fi, err := os.Stat(rootfs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("rootfs %s does not exist", rootfs)
	case err != nil:
		return "", fmt.Errorf("rootfs %s: %w", rootfs, err)
	case !fi.IsDir():
		return "", fmt.Errorf("rootfs %s is not a directory", rootfs)
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range spec.Linux.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok {
			return "", fmt.Errorf("config: unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return "", fmt.Errorf("config: namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
	}
	if err := checkUserNS(spec); err != nil {
		return "", err
	}
	if spec.Linux.TimeOffsets != nil && !seen[specs.TimeNamespace] {
		return "", errors.New("config: linux.timeOffsets needs a time namespace")
	}
	for i, m := range spec.Mounts {
		if m.Destination == "" {
			return "", fmt.Errorf("config: mounts[%d] has no destination", i)
		}
		if !strings.HasPrefix(m.Destination, "/") {
			return "", fmt.Errorf("config: mounts[%d] destination %q is not absolute", i, m.Destination)
		}
	}
	if p := spec.Process; p.Terminal && p.ConsoleSize != nil && (p.ConsoleSize.Width == 0 || p.ConsoleSize.Height == 0) {
		p.ConsoleSize = nil
	}
	return rootfs, nil
}
