package fusefs

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/render"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The virtual tree is static: it is built once at startup from the view
// table and the host's /sys/devices/system/cpu, and never changes while the
// daemon runs. Every node's id (and inode number) is a hash of its path, so
// the same binary - or a newer one - started on the same kernel connection
// answers the node ids the kernel already holds (docs/design.md decision 6).
// What a node SAYS depends on the caller; what nodes EXIST does not, except
// that sys/devices/system/cpu/cpuN is only visible to callers with more
// than N CPUs (see Lookup, which gives those entries no cache lifetime).

// nodeKind says where a node's content comes from.
type nodeKind uint8

const (
	kindDir       nodeKind = iota // a plain directory
	kindView                      // rendered from a render.View (meminfo, stat, online, ...)
	kindHostFile                  // the host file, copied at open (kernel_max, vulnerabilities/*)
	kindCPUList                   // a host CPU list renumbered to the caller's CPUs (offline, isolated)
	kindCPUDir                    // sys/devices/system/cpu/cpuN: exists for N < visible CPUs
	kindCPUFile                   // under cpuN: the file of the host CPU it stands for
	kindCPUOnline                 // cpuN/online: always "1"
)

// cpuFormat is how a per-CPU file's content is translated from the host
// CPU's numbering to the container's.
type cpuFormat uint8

const (
	formatAsIs cpuFormat = iota // ids and sizes: copied unchanged
	formatList                  // "0-1,4": restricted to visible CPUs, renumbered
	formatMask                  // "00000003": the same as a hex bitmap
)

// node is one file or directory of the virtual tree.
type node struct {
	id       uint64
	path     string // relative to the mount point; "" is the root
	name     string
	parent   *node
	kind     nodeKind
	children []*node // sorted by name: directory listings are stable
	byName   map[string]*node

	view     *render.View // kindView
	hostPath string       // kindHostFile, kindCPUList: absolute host path
	cpu      int          // kindCPUDir and below: the container CPU number
	rel      string       // kindCPUFile: path below cpuN, e.g. "topology/core_id"
	format   cpuFormat    // kindCPUFile
}

func (n *node) isDir() bool { return n.kind == kindDir || n.kind == kindCPUDir }

// perCaller reports whether the node's existence depends on the caller.
func (n *node) perCaller() bool { return n.kind == kindCPUDir }

// cpuDirRel is where the CPU tree lives, relative to the mount and to /sys.
const cpuDirRel = "sys/devices/system/cpu"

// TreeConfig says where the host's files are; zero values mean the real host.
type TreeConfig struct {
	SysRoot string // default /sys
	NoBound bool   // no BoundDir (per-container bound views)
}

// Tree is the static virtual tree.
type Tree struct {
	root  *node
	byID  map[uint64]*node
	sysCP string // host /sys/devices/system/cpu
	cpus  *node  // the sys/devices/system/cpu directory
	bound *node  // BoundDir
}

// nodeID derives a node's fixed id from its path. FUSE reserves 0 and 1
// (the root) and go-fuse reserves ^0 for its poll hack.
func nodeID(path string) uint64 {
	if path == "" {
		return fuse.FUSE_ROOT_ID
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	id := h.Sum64()
	if id <= fuse.FUSE_ROOT_ID || id == ^uint64(0) {
		id ^= 0x5555_5555_5555_5555
	}
	return id
}

// Host entries of /sys/devices/system/cpu passed through read-only: files
// that say the same for every container, and CPU lists that need the
// caller's numbering. Others (cpufreq, cpuidle, power, hotplug) are left
// out. TODO: cpufreq/policyN for htop's frequency column.
var (
	cpuPassFiles = map[string]bool{"kernel_max": true, "modalias": true, "uevent": true}
	cpuPassDirs  = map[string]bool{"vulnerabilities": true, "smt": true}
	cpuListFiles = map[string]bool{"offline": true, "isolated": true, "nohz_full": true, "enabled": true}
	// Below each host cpuN, the subdirectories whose files we copy.
	cpuSubdirs = []string{"topology", "cache"}
)

// NewTree builds the tree from the view table and the host's
// /sys/devices/system/cpu. Views whose host file does not exist on this
// kernel (e.g. /proc/pressure without PSI) are left out.
func NewTree(views []render.View, cfg TreeConfig) (*Tree, error) {
	sysRoot := cfg.SysRoot
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	t := &Tree{byID: map[uint64]*node{}, sysCP: filepath.Join(sysRoot, "devices/system/cpu")}
	t.root = &node{id: fuse.FUSE_ROOT_ID, kind: kindDir, byName: map[string]*node{}}
	t.byID[t.root.id] = t.root
	var err error
	if t.cpus, err = t.mkdirAll(cpuDirRel); err != nil {
		return nil, err
	}
	// The per-container trees' parent (bound.go): empty here, every
	// name looked up in it is a container's directory.
	if !cfg.NoBound {
		if t.bound, err = t.mkdirAll(facts.BoundDir); err != nil {
			return nil, err
		}
	}
	for i := range views {
		v := &views[i]
		if v.HostPath != "" && !strings.HasPrefix(v.HostPath, "/sys/") {
			if _, err := os.Stat(v.HostPath); err != nil {
				continue
			}
		}
		if _, err := t.add(v.Path, &node{kind: kindView, view: v}); err != nil {
			return nil, err
		}
	}
	if err := t.addHostCPUEntries(); err != nil {
		return nil, err
	}
	t.sortChildren(t.root)
	return t, nil
}

// add inserts n at path (creating parent directories) and gives it its id.
func (t *Tree) add(path string, n *node) (*node, error) {
	dir, name := filepath.Split(path)
	parent, err := t.mkdirAll(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	if old, ok := parent.byName[name]; ok {
		if old.isDir() && n.isDir() {
			return old, nil
		}
		return nil, fmt.Errorf("tree: %s defined twice", path)
	}
	n.path, n.name, n.parent, n.id = path, name, parent, nodeID(path)
	if other, dup := t.byID[n.id]; dup {
		return nil, fmt.Errorf("tree: node id of %s collides with %s", path, other.path)
	}
	if n.isDir() {
		n.byName = map[string]*node{}
	}
	parent.byName[name] = n
	parent.children = append(parent.children, n)
	t.byID[n.id] = n
	return n, nil
}

func (t *Tree) mkdirAll(path string) (*node, error) {
	cur := t.root
	if path == "" {
		return cur, nil
	}
	for _, name := range strings.Split(path, "/") {
		next, ok := cur.byName[name]
		if !ok {
			var err error
			sub := name
			if cur.path != "" {
				sub = cur.path + "/" + name
			}
			if next, err = t.add(sub, &node{kind: kindDir}); err != nil {
				return nil, err
			}
		}
		if !next.isDir() {
			return nil, fmt.Errorf("tree: %s is a file, not a directory", next.path)
		}
		cur = next
	}
	return cur, nil
}

// addHostCPUEntries adds the pass-through entries of the host's
// /sys/devices/system/cpu and one cpuN directory per host CPU (a
// container never sees more CPUs than the host has).
func (t *Tree) addHostCPUEntries() error {
	ents, err := os.ReadDir(t.sysCP)
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	maxCPU := -1
	for _, e := range ents {
		name := e.Name()
		hostPath := filepath.Join(t.sysCP, name)
		rel := cpuDirRel + "/" + name
		if _, exists := t.cpus.byName[name]; exists {
			continue // a view already serves it (online, possible, present)
		}
		switch {
		case isCPUDirName(name):
			n, _ := strconv.Atoi(name[3:])
			maxCPU = max(maxCPU, n)
		case cpuListFiles[name] && e.Type().IsRegular():
			if _, err := t.add(rel, &node{kind: kindCPUList, hostPath: hostPath}); err != nil {
				return err
			}
		case cpuPassFiles[name] && e.Type().IsRegular():
			if _, err := t.add(rel, &node{kind: kindHostFile, hostPath: hostPath}); err != nil {
				return err
			}
		case cpuPassDirs[name] && e.IsDir():
			if err := t.addHostFiles(rel, hostPath); err != nil {
				return err
			}
		}
	}
	// The files below cpuN are the union over all host CPUs, so a
	// container CPU standing for any host CPU finds what it needs.
	files := map[string]bool{}
	for c := 0; c <= maxCPU; c++ {
		for _, sub := range cpuSubdirs {
			collectFiles(filepath.Join(t.sysCP, "cpu"+strconv.Itoa(c)), sub, files)
		}
	}
	rels := make([]string, 0, len(files))
	for r := range files {
		rels = append(rels, r)
	}
	sort.Strings(rels)
	for c := 0; c <= maxCPU; c++ {
		dir := cpuDirRel + "/cpu" + strconv.Itoa(c)
		if _, err := t.add(dir, &node{kind: kindCPUDir, cpu: c}); err != nil {
			return err
		}
		if _, err := t.add(dir+"/online", &node{kind: kindCPUOnline, cpu: c}); err != nil {
			return err
		}
		for _, r := range rels {
			if _, err := t.mkdirAll(filepath.Dir(dir + "/" + r)); err != nil {
				return err
			}
			n := &node{kind: kindCPUFile, cpu: c, rel: r, format: cpuFileFormat(r, files)}
			if _, err := t.add(dir+"/"+r, n); err != nil {
				return err
			}
		}
	}
	// Directories created below cpuN (topology, cache/index0) carry the
	// CPU number too: their existence follows cpuN's.
	for c := 0; c <= maxCPU; c++ {
		markCPU(t.cpus.byName["cpu"+strconv.Itoa(c)], c)
	}
	return nil
}

func markCPU(n *node, c int) {
	n.cpu = c
	for _, ch := range n.children {
		markCPU(ch, c)
	}
}

func isCPUDirName(name string) bool {
	if len(name) < 4 || !strings.HasPrefix(name, "cpu") {
		return false
	}
	for _, c := range name[3:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// addHostFiles adds the regular files of host directory dir at rel.
func (t *Tree) addHostFiles(rel, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // vanished or unreadable: leave it out
	}
	if _, err := t.mkdirAll(rel); err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if _, err := t.add(rel+"/"+e.Name(), &node{kind: kindHostFile, hostPath: filepath.Join(dir, e.Name())}); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectFiles records the regular files below base/sub (recursively, as
// paths relative to base) in files.
func collectFiles(base, sub string, files map[string]bool) {
	ents, err := os.ReadDir(filepath.Join(base, sub))
	if err != nil {
		return
	}
	for _, e := range ents {
		rel := sub + "/" + e.Name()
		switch {
		case e.IsDir():
			collectFiles(base, rel, files)
		case e.Type().IsRegular():
			files[rel] = true
		}
	}
}

// cpuFileFormat decides how a per-CPU file is renumbered: X_list files are
// CPU lists, and a file X next to an X_list is the same set as a bitmap
// (core_siblings, thread_siblings, shared_cpu_map, ...).
func cpuFileFormat(rel string, files map[string]bool) cpuFormat {
	switch {
	case strings.HasSuffix(rel, "_list"):
		return formatList
	case files[rel+"_list"]:
		return formatMask
	case strings.HasSuffix(rel, "/shared_cpu_map"):
		return formatMask
	}
	return formatAsIs
}

func (t *Tree) sortChildren(n *node) {
	sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
	for _, c := range n.children {
		if c.isDir() {
			t.sortChildren(c)
		}
	}
}

// Node returns the node with the given id.
func (t *Tree) node(id uint64) *node { return t.byID[id] }

// lookupPath finds a node by its path relative to the mount (for tests and
// the stateless read fallback).
func (t *Tree) lookupPath(path string) *node {
	cur := t.root
	if path == "" {
		return cur
	}
	for _, name := range strings.Split(path, "/") {
		if cur = cur.byName[name]; cur == nil {
			return nil
		}
	}
	return cur
}
