package fusefs

import (
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/inputs"
)

// Bound views (docs/design.md decisions 49-53): below BOUND/<key>/ each
// container has inodes of its own for the /proc views, whose content
// depends on the inode's container only, never on who reads. So the
// kernel may keep their content in the page cache (FOPEN_KEEP_CACHE), and
// re-reads cost no round trip to the daemon. <key> names the container's
// cgroup (BoundKey). These nodes are not in the static tree: any name
// below BOUND is a directory, and a node's id is nodeID of its path, as
// for every other node (decision 8).
//
// The one rule that keeps containers apart: every request that could
// return or compute content (OPEN, GETATTR, and a READ this worker has no
// content for) is answered only for a caller whose own key is the node's.
// The check is also how a worker that never saw the node's LOOKUP (after
// a restart or an upgrade) learns which file it is: it derives the ids of
// the caller's own bound files and finds the node among them.

// BoundDir is the directory of the per-container trees, below the mount.
const BoundDir = facts.BoundDir

// boundNode is a node below BOUND learnt from a LOOKUP.
type boundNode struct {
	key  string // the container's key (the name below BOUND)
	rel  string // below the key: "" (the key's directory), "proc", "proc/meminfo", ...
	view *node  // the static tree's view node it stands for; nil for directories
	// caller: the request's resolved caller, when the node was made for
	// it by the gate (boundCaller), so rendering does not resolve again.
	caller *resolved
}

func (b *boundNode) isDir() bool { return b.view == nil }

// boundNodes remembers the nodes LOOKUP handed out, so that a LOOKUP below
// a key directory knows its key. Bounded: at boundNodesMax it starts over
// (the kernel's LOOKUPs fill it again: bound entries get no entry
// lifetime, so every path walk on the host asks again).
type boundNodes struct {
	mu sync.RWMutex
	m  map[uint64]*boundNode
}

const boundNodesMax = 1 << 16

func (b *boundNodes) get(id uint64) (*boundNode, bool) {
	b.mu.RLock()
	n, ok := b.m[id]
	b.mu.RUnlock()
	return n, ok
}

func (b *boundNodes) put(id uint64, n *boundNode) {
	b.mu.Lock()
	if b.m == nil || len(b.m) >= boundNodesMax {
		b.m = map[uint64]*boundNode{}
	}
	b.m[id] = n
	b.mu.Unlock()
}

// boundPath is a bound node's path below the mount.
func boundPath(key, rel string) string {
	if rel == "" {
		return BoundDir + "/" + key
	}
	return BoundDir + "/" + key + "/" + rel
}

// BoundKey is the key of the container whose init has cgroup paths p
// (facts.BoundKeyOf).
func BoundKey(p cgroupreader.Paths) (string, bool) { return facts.BoundKeyOf(p.Unified, p.V1) }

// validKey: a name below BOUND that some cgroup could have as its key.
func validKey(name string) bool {
	if name == "" || len(name) > 255 || strings.Contains(name, "/") {
		return false
	}
	p, err := url.PathUnescape(name)
	return err == nil && url.PathEscape(p) == name
}

// boundFiles are the views a key directory holds: the /proc views of the
// static tree (the CPU directory stays shared: which cpuN exist depends on
// the reader's cpuset).
func (t *Tree) boundFiles() []*node {
	var out []*node
	var walk func(n *node)
	walk = func(n *node) {
		for _, c := range n.children {
			switch {
			case c.isDir():
				walk(c)
			case c.kind == kindView:
				out = append(out, c)
			}
		}
	}
	if proc := t.lookupPath("proc"); proc != nil {
		walk(proc)
	}
	return out
}

// boundChild finds name in the bound directory dir, or nil.
func (fs *FS) boundChild(dir *boundNode, name string) *boundNode {
	rel := name
	if dir.rel != "" {
		rel = dir.rel + "/" + name
	}
	n := fs.tree.lookupPath(rel)
	if n == nil || !strings.HasPrefix(rel, "proc") {
		return nil
	}
	switch {
	case n.kind == kindView:
		return &boundNode{key: dir.key, rel: rel, view: n}
	case n.isDir() && n.kind == kindDir:
		return &boundNode{key: dir.key, rel: rel}
	}
	return nil
}

// boundCaller is the gate: the bound file node id is, for the caller pid,
// one of its own container's, and which. errno EACCES for anyone else
// (another container, the host, a caller without a key).
func (fs *FS) boundCaller(id uint64, pid int) (*boundNode, syscall.Errno) {
	r := fs.resolve(pid)
	if r.err != nil {
		return nil, syscall.EACCES
	}
	key, ok := callerKey(&r.c)
	if !ok {
		return nil, syscall.EACCES
	}
	for _, v := range fs.boundViews {
		if nodeID(boundPath(key, v.path)) == id {
			return &boundNode{key: key, rel: v.path, view: v, caller: r}, 0
		}
	}
	return nil, syscall.EACCES
}

// callerKey: a container's key; none for callers in the host's pid
// namespace (what they would read depends on their own cgroup, not a
// container's: they read the shared files, or a container's through
// nsenter).
func callerKey(c *inputs.Caller) (string, bool) {
	if c.HostNamespace {
		return "", false
	}
	return BoundKey(c.Paths)
}
