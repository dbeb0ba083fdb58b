package cgroupreader

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"syscall"

	"github.com/corral-dev/corral/fusefs/facts"
)

// collect records which groups of a Snapshot were read and which failed.
type collect struct {
	s     *Snapshot
	ok    int
	paths Paths
}

func (c *collect) add(group string, err error) {
	if err == nil {
		c.ok++
		return
	}
	if errno, ok := err.(syscall.Errno); ok {
		// A bare errno (ENOENT from a read): say which cgroup.
		err = &fs.PathError{Op: "read", Path: c.where(group), Err: errno}
	}
	if c.s.Missing == nil {
		c.s.Missing = make(map[string]error, 4)
	}
	c.s.Missing[group] = err
}

// where names the cgroup a group was read from, /proc/PID/cgroup style.
func (c *collect) where(group string) string {
	if c.s.Mode == ModeV2 || group == GroupPSI {
		return "cgroup2:" + c.paths.Unified
	}
	ctrl := group
	switch group {
	case GroupIO:
		ctrl = "blkio"
	case GroupTasks:
		ctrl = "memory"
	}
	return ctrl + ":" + c.paths.V1[ctrl]
}

// result returns the snapshot, or an error when no requested group could
// be read. A vanished cgroup fails every group with ENOENT, so the joined
// error satisfies errors.Is(err, fs.ErrNotExist).
func (c *collect) result() (Snapshot, error) {
	if c.ok > 0 || len(c.s.Missing) == 0 {
		return *c.s, nil
	}
	groups := make([]string, 0, len(c.s.Missing))
	for g := range c.s.Missing {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	errs := make([]error, 0, len(groups))
	for _, g := range groups {
		errs = append(errs, fmt.Errorf("%s: %w", g, c.s.Missing[g]))
	}
	return *c.s, fmt.Errorf("cgroupreader: nothing readable: %w", errors.Join(errs...))
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func isUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// classify turns a not-exist error for the file at the scratch path into
// ErrUnavailable when the cgroup directory is still there (the controller
// is absent). It then deliberately stops wrapping ENOENT: errors.Is(err,
// fs.ErrNotExist) must mean "the cgroup is gone". Other errors pass through.
func (s *scratch) classify(err error) error {
	if notExist(err) && s.dirExists() {
		return fmt.Errorf("%s: %w", s.pathString(), ErrUnavailable)
	}
	return err
}

func readUint(s *scratch, dir, cg, file string) (uint64, error) {
	data, err := s.read(dir, cg, file)
	if err != nil {
		return 0, err
	}
	v, ok := facts.ParseUint(data)
	if !ok {
		return 0, malformed(s, data)
	}
	return v, nil
}

// walkLimit is the minimum of file over cg and every ancestor up to the
// hierarchy root. A level without the file is skipped: the v2 root has no
// limit files, and a v2 cgroup without the controller enabled has none.
// skipRoot saves the (failing) read at a root known to have no limits.
func walkLimit(s *scratch, dir, cg, file string, parse func([]byte) (Limit, bool), skipRoot bool) (Limit, error) {
	var lim Limit
	for a := cg; ; a = parentPath(a) {
		if a == "/" && skipRoot {
			return lim, nil
		}
		data, err := s.read(dir, a, file)
		switch {
		case err == nil:
			l, ok := parse(data)
			if !ok {
				return Limit{}, malformed(s, data)
			}
			lim = lim.Min(l)
		case !notExist(err):
			return Limit{}, err
		}
		if a == "/" {
			return lim, nil
		}
	}
}

// readNearest reads file from the nearest of cg and its ancestors that has
// it, returning that level: in v2 a cgroup whose parent does not enable a
// controller is charged to the nearest ancestor that has it. Not found:
// ENOENT if cg itself vanished, else ErrUnavailable.
func readNearest(s *scratch, dir, cg, file string) (string, []byte, error) {
	var first error
	for a := cg; ; a = parentPath(a) {
		data, err := s.read(dir, a, file)
		switch {
		case err == nil:
			return a, data, nil
		case !notExist(err):
			return "", nil, err
		case first == nil:
			first = s.classify(err)
			if notExist(first) {
				return "", nil, first // the cgroup itself is gone
			}
		}
		if a == "/" {
			return "", nil, first
		}
	}
}

// readPSI copies the cgroup's three pressure files. They already have the
// exact /proc/pressure/* format, so the raw bytes are what the views serve.
func readPSI(s *scratch, dir, cg string, psi *PSI) error {
	switch {
	case dir == "":
		return fmt.Errorf("no cgroup2 hierarchy: %w", ErrUnavailable)
	case cg == "":
		return errNoPath("cgroup2")
	case !validCgroupPath(cg):
		return errBadPath(cg)
	case cg == "/":
		return ErrRootPSI
	}
	var first error
	read := func(file string) []byte {
		data, err := s.read(dir, cg, file)
		if err != nil {
			if first == nil {
				first = s.classify(err)
			}
			return nil
		}
		return bytes.Clone(data)
	}
	psi.CPU = read("cpu.pressure")
	psi.Memory = read("memory.pressure")
	psi.IO = read("io.pressure")
	if psi.CPU == nil && psi.Memory == nil && psi.IO == nil {
		return first
	}
	return nil
}

// readTasks lists the pids in cgroup.procs of cg and all its descendants,
// sorted. A descendant removed while we walk is skipped.
func readTasks(s *scratch, dir, cg string) ([]int, error) {
	if !validCgroupPath(cg) {
		return nil, errBadPath(cg)
	}
	var tasks []int
	var walk func(cg string, top bool) error
	walk = func(cg string, top bool) error {
		data, err := s.readList(dir, cg, "cgroup.procs")
		if err != nil {
			if !top && notExist(err) {
				return nil
			}
			return err
		}
		for rest := data; len(rest) > 0; {
			var f []byte
			f, rest = nextField(rest)
			if len(f) == 0 {
				continue
			}
			pid, ok := facts.ParseUint(f)
			if !ok || pid > 1<<31 {
				return malformed(s, f)
			}
			tasks = append(tasks, int(pid))
		}
		s.setPath(dir, cg, "")
		entries, err := os.ReadDir(s.pathString())
		if err != nil {
			if !top && notExist(err) {
				return nil
			}
			return err
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			child := cg + "/" + e.Name()
			if cg == "/" {
				child = "/" + e.Name()
			}
			if err := walk(child, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(cg, true); err != nil {
		return nil, err
	}
	slices.Sort(tasks)
	return tasks, nil
}

// ioDevice returns the entry for major:minor in list, appending one if new.
func ioDevice(list *[]IODevice, major, minor uint32) *IODevice {
	for i := range *list {
		if d := &(*list)[i]; d.Major == major && d.Minor == minor {
			return d
		}
	}
	*list = append(*list, IODevice{Major: major, Minor: minor})
	return &(*list)[len(*list)-1]
}

// finishIO drops devices that saw no I/O and sorts the rest by major, minor.
func finishIO(list []IODevice) []IODevice {
	out := list[:0]
	for _, d := range list {
		if d.ReadBytes|d.WriteBytes|d.ReadIOs|d.WriteIOs|d.DiscardBytes|d.DiscardIOs != 0 {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b IODevice) int {
		if c := cmp.Compare(a.Major, b.Major); c != 0 {
			return c
		}
		return cmp.Compare(a.Minor, b.Minor)
	})
	return out
}

func satSub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
