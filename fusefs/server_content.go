package fusefs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/inputs"
	"github.com/corral-dev/corral/fusefs/render"
)

// content computes what node n says to process pid. It is the whole
// per-generation work (at OPEN, and at each READ at offset 0 after the first): identify the caller, gather the Input, render. It needs
// nothing but the node and the pid, so any process serving the connection
// can answer (docs/design.md decision 6).
func (fs *FS) content(n *node, pid int) ([]byte, syscall.Errno) {
	return fs.contentFor(n, pid, nil)
}

// contentFor is content for a caller already resolved (c non-nil: its
// Resolve result), so an OPEN resolves its caller once for the handle quota,
// the bound gate and the rendering.
func (fs *FS) contentFor(n *node, pid int, c *resolved) ([]byte, syscall.Errno) {
	fs.Stats.Renders.Add(1)
	switch n.kind {
	case kindView:
		if c == nil {
			c = fs.resolve(pid)
		}
		return fs.viewContent(n, pid, c)
	case kindHostFile:
		b, err := os.ReadFile(n.hostPath)
		if err != nil {
			return nil, errnoOf(err)
		}
		return b, 0
	case kindCPUList:
		visible, _ := fs.visibleCPUs(pid)
		b, err := os.ReadFile(n.hostPath)
		if err != nil {
			return nil, errnoOf(err)
		}
		return renumberCPUList(b, visible, formatList)
	case kindCPUOnline:
		if visible, _ := fs.visibleCPUs(pid); n.cpu >= len(visible) {
			return nil, syscall.ENOENT
		}
		return []byte("1\n"), 0
	case kindCPUFile:
		visible, _ := fs.visibleCPUs(pid)
		if n.cpu >= len(visible) {
			return nil, syscall.ENOENT
		}
		b, err := os.ReadFile(fs.tree.sysCP + "/cpu" + strconv.Itoa(visible[n.cpu]) + "/" + n.rel)
		if err != nil {
			return nil, errnoOf(err)
		}
		if n.format == formatAsIs {
			return b, 0
		}
		return renumberCPUList(b, visible, n.format)
	}
	return nil, syscall.EISDIR
}

// viewContent renders a view for the caller, or serves the host's file
// when that is impossible (unknown caller, cgroup vanished, render error),
// logging once per container and view. When the daemon itself ran out of
// descriptors or memory the open fails instead (EMFILE): the host's
// numbers, or a view missing what could not be read, would be wrong.
// The one exception to the fallback is pressure: a container whose cgroup
// has no PSI of its own (cgroup v1 and hybrid hosts, where PSI is per
// cgroup2 group and containers sit at its root) gets ENOENT, the answer of
// a kernel without PSI, never the host's pressure presented as its own.
// The host itself gets the host's file.
func (fs *FS) viewContent(n *node, pid int, r *resolved) ([]byte, syscall.Errno) {
	v := n.view
	c, err := r.c, r.err
	if err != nil {
		return fs.fallback(v, inputs.ContainerKey{}, fallbackUnknownCaller, fmt.Errorf("caller %d: %w", pid, err))
	}
	ib, err := fs.input(&c, v.Needs, v.Snap, v.Load, v.HostPath)
	if err != nil {
		if noOwnPSI(err) && !c.HostNamespace {
			return nil, syscall.ENOENT
		}
		return fs.fallback(v, c.Key, fallbackCgroupUnreadable, err)
	}
	out, err := v.Render(nil, &ib.in)
	if err == nil && ib.aliases(out) {
		// The render returned (part of) a scratch buffer that is about
		// to be recycled: keep a copy.
		out = append([]byte(nil), out...)
	}
	fs.putInput(ib)
	if noOwnPSI(err) && !c.HostNamespace {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return fs.fallback(v, c.Key, fallbackRenderError, err)
	}
	return out, 0
}

// noOwnPSI: the caller's cgroup has no pressure of its own (the cgroup2
// root, whose pressure is the host's, or no pressure files at all).
func noOwnPSI(err error) bool {
	return errors.Is(err, render.ErrNoPSI) || errors.Is(err, cgroupreader.ErrRootPSI)
}

// Why a view was served from the host's file: indexes into
// survival.FallbackReasons (the shared counters' fixed order).
const (
	fallbackUnknownCaller = iota
	fallbackCgroupUnreadable
	fallbackRenderError
)

func (fs *FS) fallback(v *render.View, key inputs.ContainerKey, reason int, why error) ([]byte, syscall.Errno) {
	if inputs.OutOfResources(why) {
		fs.Stats.Exhausted.Add(1)
		fs.logOnce(key, v.Path, "refusing an open: corralfs is out of descriptors or memory", why)
		return nil, syscall.EMFILE
	}
	fs.Stats.Fallbacks.Add(1)
	fs.cfg.Counters.Fallback(fs.counterFile(v.Path), reason)
	fs.fallbacks.note(key.NSInode, v.Path, reason, why)
	fs.logOnce(key, v.Path, "serving the host's file", why)
	b, err := os.ReadFile(v.HostPath)
	if err != nil {
		fs.logOnce(key, v.HostPath, "host file unreadable too", err)
		return nil, errnoOf(err)
	}
	return b, 0
}

type logKey struct {
	c    inputs.ContainerKey
	path string
}

// logOnce logs a fallback once per container and path. The set is bounded:
// when it fills up it starts over (a log line repeats, nothing grows).
func (fs *FS) logOnce(key inputs.ContainerKey, path, msg string, err error) {
	k := logKey{key, path}
	fs.loggedMu.Lock()
	if fs.logged == nil || len(fs.logged) > 10000 {
		fs.logged = map[logKey]bool{}
	}
	seen := fs.logged[k]
	fs.logged[k] = true
	fs.loggedMu.Unlock()
	if !seen {
		fs.log.Warn(msg, "path", path, "pidns", key.NSInode, "cgroup", key.HostPaths, "err", err)
	}
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// resolved is a caller's Resolve result, error included, carried through
// one request.
type resolved struct {
	c   inputs.Caller
	err error
}

func (fs *FS) resolve(pid int) *resolved {
	c, err := fs.resolver.Resolve(pid)
	return &resolved{c, err}
}
