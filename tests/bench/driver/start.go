package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime/views"
	"github.com/corral-dev/corral/tests/testutil"
)

// starter is one runtime and variant of section 3: a command that starts
// /bin/true in a container and waits for it.
type starter struct {
	row  *StartRow
	argv func(run int) []string
	// run runs argv and times it (timeRun unless the runtime needs a
	// namespace of its own, see v1Only).
	run func(argv []string) (time.Duration, error)
	// fallback, when set, replaces run if a warm-up run fails with an
	// error containing fallbackOn; fallbackNote says what changed.
	fallback     func(argv []string) (time.Duration, error)
	fallbackOn   string
	fallbackNote string
}

// benchStart is section 3: `corral run --rm` of /bin/true in a busybox
// bundle against `runc run` and `crun run` of the same bundle and a bare
// `unshare`, each without and with the corralfs views bound, interleaved
// run by run.
func (e *env) benchStart() error {
	var rootfs string
	if err := catch(func() { rootfs = testutil.BusyboxRootfs(e.t) }); err != nil {
		return err
	}
	base, err := baseSpec(e.t.TempDir())
	if err != nil {
		return err
	}
	state := filepath.Join(e.work, "state")
	var starters []*starter
	add := func(name string, views bool, why string, argv func(int) []string) *starter {
		s := &starter{row: &StartRow{Name: name, Views: views, Skipped: why}, argv: argv, run: timeRun}
		starters = append(starters, s)
		return s
	}
	for _, withViews := range []bool{false, true} {
		suffix := map[bool]string{false: "plain", true: "views"}[withViews]
		// corral binds the views itself (--views DIR), as users run it.
		corralBundle, err := e.writeBundle(base, rootfs, "corral-"+suffix, false)
		if err != nil {
			return err
		}
		viewsArg := "none"
		if withViews {
			viewsArg = e.corralfs.mount
		}
		why := ""
		if _, err := os.Stat(e.corral); err != nil {
			why = "no corral binary: " + err.Error()
		}
		add("corral", withViews, why, func(i int) []string {
			return []string{e.corral, "--root", filepath.Join(state, "corral"), "run", "--rm", "--bundle", corralBundle,
				"--views", viewsArg, "--sysinfo", "off", "--name", fmt.Sprintf("bench-corral-%s-%d", suffix, i)}
		})
		// runc and crun get the same view binds in their bundle.
		for _, rt := range []string{"runc", "crun"} {
			bundle, err := e.writeBundle(base, rootfs, rt+"-"+suffix, withViews)
			if err != nil {
				return err
			}
			path, lerr := lookPath(rt)
			why := ""
			if lerr != nil {
				why = lerr.Error()
			}
			s := add(rt, withViews, why, func(i int) []string {
				return []string{path, "--root", filepath.Join(state, rt), "run", "--bundle", bundle, fmt.Sprintf("bench-%s-%s-%d", rt, suffix, i)}
			})
			if rt == "crun" {
				// crun (1.8) refuses a hybrid host whose cgroup2 mount
				// offers any controller (here: hugetlb). In a mount
				// namespace without that mount it sees a v1 host and
				// does the same cgroup work as runc.
				s.fallbackOn = "hybrid mode not supported"
				s.fallbackNote = "crun refuses this hybrid host (its cgroup2 mount offers hugetlb), so it ran in a private mount namespace without the cgroup2 mount: there it sees a v1 host and creates the same v1 cgroups runc does"
				s.fallback = v1Runner().run
			}
		}
	}
	add("unshare --pid --fork --mount --uts --ipc --net true", false, "", func(int) []string {
		return []string{"unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "true"}
	})
	defer removeBenchCgroups("bench-start-")

	// A runtime that cannot start the bundle at all is reported, not timed.
	var live []*starter
	for _, s := range starters {
		if s.row.Skipped != "" {
			continue
		}
		for w := range 2 { // warm-up: page cache, binaries, first cgroup
			_, err := s.run(s.argv(-1 - w))
			if err != nil && s.fallback != nil && strings.Contains(err.Error(), s.fallbackOn) {
				s.run, s.fallback = s.fallback, nil
				s.row.Note = s.fallbackNote
				_, err = s.run(s.argv(-1 - w))
			}
			if err != nil {
				s.row.Skipped = err.Error()
				break
			}
		}
		if s.row.Skipped == "" {
			live = append(live, s)
		}
	}
	for i := range e.cfg.startRuns {
		for j := range live {
			parkIfInterrupted()
			s := live[(i+j)%len(live)]
			d, err := s.run(s.argv(i))
			if err != nil {
				s.row.Failures++
				if s.row.FirstError == "" {
					s.row.FirstError = err.Error()
				}
				continue
			}
			s.row.Runs++
			s.row.TimesMs = append(s.row.TimesMs, float64(d)/1e6)
		}
	}
	for _, s := range live {
		if s.row.Name == "corral" && s.row.Views {
			phases, err := e.traceStart(s.argv)
			if err != nil {
				e.report.Notes = append(e.report.Notes, "start trace: "+err.Error())
			}
			e.report.StartTrace = phases
		}
	}
	for _, s := range starters {
		r := s.row
		if r.Runs > 0 {
			r.MedianMs, r.P90Ms = quantile(r.TimesMs, 0.5), quantile(r.TimesMs, 0.9)
		}
		e.report.Start = append(e.report.Start, *r)
		if r.Skipped != "" {
			fmt.Fprintf(os.Stderr, "  %-8s views=%-5v not measured: %s\n", r.Name, r.Views, r.Skipped)
		} else {
			fmt.Fprintf(os.Stderr, "  %-8s views=%-5v median %6.1f ms  p90 %6.1f ms  (%d runs, %d failed)\n", r.Name, r.Views, r.MedianMs, r.P90Ms, r.Runs, r.Failures)
		}
	}
	return nil
}

// nsRunner runs commands from one OS thread that lives in a mount
// namespace of its own: a child forked from a thread gets that thread's
// namespaces.
type nsRunner struct {
	reqs chan nsReq
	err  error
}

type nsReq struct {
	argv []string
	done chan nsRes
}

type nsRes struct {
	d   time.Duration
	err error
}

var v1RunnerOnce = sync.OnceValue(func() *nsRunner {
	r := &nsRunner{reqs: make(chan nsReq)}
	ready := make(chan struct{})
	go func() {
		// Never unlocked: the thread exits with the goroutine, taking
		// the namespace with it.
		runtime.LockOSThread()
		r.err = enterV1Namespace()
		close(ready)
		for q := range r.reqs {
			if r.err != nil {
				q.done <- nsRes{err: r.err}
				continue
			}
			d, err := timeRun(q.argv)
			q.done <- nsRes{d, err}
		}
	}()
	<-ready
	return r
})

// v1Runner runs commands where the host looks like plain cgroup v1: a
// private mount namespace without the cgroup2 mount of a hybrid host.
func v1Runner() *nsRunner { return v1RunnerOnce() }

func enterV1Namespace() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Private first, so the unmount below stays in this namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount /sys/fs/cgroup/unified in the private namespace: %w", err)
	}
	return nil
}

func (r *nsRunner) run(argv []string) (time.Duration, error) {
	q := nsReq{argv: argv, done: make(chan nsRes, 1)}
	r.reqs <- q
	res := <-q.done
	return res.d, res.err
}

// timeRun runs argv to completion and returns its wall-clock time.
func timeRun(argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return d, fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, msg)
	}
	return d, nil
}

// baseSpec is runc's default spec (`runc spec`, else `crun spec`): the
// bundle every runtime is given.
func baseSpec(dir string) (*specs.Spec, error) {
	var errs []error
	for _, rt := range []string{"runc", "crun"} {
		p, err := lookPath(rt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cmd := exec.Command(p, "spec", "--bundle", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s spec: %v: %s", rt, err, out))
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			return nil, err
		}
		var s specs.Spec
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		return &s, nil
	}
	return nil, fmt.Errorf("no default OCI spec: %w", errors.Join(errs...))
}

// writeBundle writes a bundle running /bin/true in rootfs, in its own
// cgroup under /corral-test, with the corralfs views bound when asked.
func (e *env) writeBundle(base *specs.Spec, rootfs, name string, withViews bool) (string, error) {
	b, err := json.Marshal(base)
	if err != nil {
		return "", err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Args = []string{"/bin/true"}
	s.Process.Terminal = false
	s.Linux.CgroupsPath = testutil.TestCgroupParent + "/bench-start-" + name
	if withViews {
		ms, err := views.Mounts(e.corralfs.mount)
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			// runc (1.1) refuses mounts inside /proc other than its
			// list of LXCFS files; /proc/pressure is not on it.
			if !strings.HasPrefix(m.Destination, "/proc/pressure") {
				s.Mounts = append(s.Mounts, m)
			}
		}
	}
	return writeSpec(filepath.Join(e.work, "bundles", name), &s)
}

// writeSpec writes dir/config.json and returns dir.
func writeSpec(dir string, s *specs.Spec) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644)
}
