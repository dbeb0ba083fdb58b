// Package subid hands out host id ranges for `corral run --userns=auto`.
//
// podman's convention: the ids the host sets aside for containers are the
// subordinate ranges of a user named "containers" in /etc/subuid and
// /etc/subgid (`containers:2147483647:2147483648`). Each container gets a
// block of 65,536 of them (uid and gid), so its root and every user of an
// image map to host ids no other container and no host user has.
//
// Two running containers must never share a block: a container could then
// signal, ptrace or write the files of the other. The allocations live in
// one state file, changed only under an flock; an allocation is kept while
// its container's state directory exists or the process that took it (a
// `corral run` about to create the container) still runs, and is reclaimed
// by the next allocation after that. No release step can be forgotten:
// a container deleted by any path frees its block.
package subid

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Range is a run of host ids: Start, Start+1, ..., Start+Size-1.
type Range struct {
	Start uint32 `json:"start"`
	Size  uint32 `json:"size"`
}

func (r Range) end() uint64 { return uint64(r.Start) + uint64(r.Size) }

func (r Range) overlaps(o Range) bool {
	return uint64(r.Start) < o.end() && uint64(o.Start) < r.end()
}

// Parse returns the ranges of user (by name, or by its numeric uid when
// uid >= 0) in a subuid/subgid file: lines "name-or-uid:start:count".
// Comments and blank lines are skipped; a malformed line is an error
// naming it (a silently skipped range could be handed out twice).
func Parse(file, user string, uid int) ([]Range, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Range
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s:%d: want name:start:count, got %q", file, n, line)
		}
		if parts[0] != user && (uid < 0 || parts[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		count, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 || start+count > 1<<32 {
			return nil, fmt.Errorf("%s:%d: bad range %q", file, n, line)
		}
		out = append(out, Range{Start: uint32(start), Size: uint32(count)})
	}
	return out, sc.Err()
}

// Allocation is one container's blocks.
type Allocation struct {
	Owner string `json:"owner"` // the container's state directory
	Pid   int    `json:"pid"`   // the process that allocated it
	UID   Range  `json:"uid"`
	GID   Range  `json:"gid"`
}

// Allocator takes blocks from a user's subordinate ranges.
type Allocator struct {
	SubUIDFile, SubGIDFile string // "" = /etc/subuid, /etc/subgid
	User                   string // "" = "containers"
	// StateFile records the allocations; its lock is StateFile+".lock".
	StateFile string
	// Alive says whether an allocation is still in use; nil: its owner
	// directory exists or its pid runs.
	Alive func(Allocation) bool
}

// DefaultUser is podman's user for automatic user namespaces.
const DefaultUser = "containers"

// Allocate gives owner (a container's state directory) a free block of
// size ids in both files. It fails, saying what to add, when the user has
// no ranges or every block is taken.
func (a *Allocator) Allocate(owner string, size uint32) (Allocation, error) {
	uidRanges, err := a.ranges(a.SubUIDFile, "/etc/subuid")
	if err != nil {
		return Allocation{}, err
	}
	gidRanges, err := a.ranges(a.SubGIDFile, "/etc/subgid")
	if err != nil {
		return Allocation{}, err
	}
	var out Allocation
	err = a.locked(func(allocs []Allocation) ([]Allocation, error) {
		live := allocs[:0]
		for _, al := range allocs {
			if al.Owner != owner && a.alive(al) {
				live = append(live, al)
			}
		}
		uid, ok := freeBlock(uidRanges, size, live, func(al Allocation) Range { return al.UID })
		if !ok {
			return nil, fmt.Errorf("--userns=auto: no free block of %d ids left in %s for %s (%d containers hold one): add a range", size, orDefault(a.SubUIDFile, "/etc/subuid"), a.user(), len(live))
		}
		gid, ok := freeBlock(gidRanges, size, live, func(al Allocation) Range { return al.GID })
		if !ok {
			return nil, fmt.Errorf("--userns=auto: no free block of %d ids left in %s for %s (%d containers hold one): add a range", size, orDefault(a.SubGIDFile, "/etc/subgid"), a.user(), len(live))
		}
		out = Allocation{Owner: owner, Pid: os.Getpid(), UID: uid, GID: gid}
		return append(live, out), nil
	})
	return out, err
}

// Release frees owner's block at once (a failed create); deleted
// containers are reclaimed without it.
func (a *Allocator) Release(owner string) error {
	return a.locked(func(allocs []Allocation) ([]Allocation, error) {
		kept := allocs[:0]
		for _, al := range allocs {
			if al.Owner != owner {
				kept = append(kept, al)
			}
		}
		return kept, nil
	})
}

func (a *Allocator) user() string { return orDefault(a.User, DefaultUser) }

func (a *Allocator) ranges(file, def string) ([]Range, error) {
	file = orDefault(file, def)
	uid := -1
	if u, err := lookupUID(a.user()); err == nil {
		uid = u
	}
	rs, err := Parse(file, a.user(), uid)
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("--userns=auto: %s has no range for user %q: add one, e.g. `%s:2147483647:2147483648` (podman's convention), or use --userns=host", file, a.user(), a.user())
	}
	return rs, nil
}

func (a *Allocator) alive(al Allocation) bool {
	if a.Alive != nil {
		return a.Alive(al)
	}
	if _, err := os.Stat(al.Owner); err == nil {
		return true
	}
	return al.Pid > 0 && unix.Kill(al.Pid, 0) == nil
}

// freeBlock returns the lowest block of size ids, aligned to size from
// the start of a range, that overlaps no live allocation.
func freeBlock(ranges []Range, size uint32, live []Allocation, of func(Allocation) Range) (Range, bool) {
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].Start < ranges[j].Start })
	for _, r := range ranges {
		for s := uint64(r.Start); s+uint64(size) <= r.end(); s += uint64(size) {
			cand := Range{Start: uint32(s), Size: size}
			taken := false
			for _, al := range live {
				if of(al).overlaps(cand) {
					taken = true
					break
				}
			}
			if !taken {
				return cand, true
			}
		}
	}
	return Range{}, false
}

// locked runs change on the recorded allocations under an exclusive
// flock and writes its result atomically (a crash mid-write leaves the
// old file, never half a file).
func (a *Allocator) locked(change func([]Allocation) ([]Allocation, error)) error {
	if a.StateFile == "" {
		return errors.New("subid: no state file")
	}
	if err := os.MkdirAll(filepath.Dir(a.StateFile), 0o711); err != nil {
		return err
	}
	lock, err := os.OpenFile(a.StateFile+".lock", os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	var allocs []Allocation
	data, err := os.ReadFile(a.StateFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &allocs); err != nil {
			return fmt.Errorf("%s: %w (remove it only when no container started with --userns=auto runs)", a.StateFile, err)
		}
	}
	allocs, err = change(allocs)
	if err != nil {
		return err
	}
	data, err = json.MarshalIndent(allocs, "", "  ")
	if err != nil {
		return err
	}
	tmp := a.StateFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.StateFile)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lookupUID finds user in /etc/passwd (no cgo, static binary).
func lookupUID(user string) (int, error) {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return -1, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == user {
			return strconv.Atoi(f[2])
		}
	}
	return -1, fmt.Errorf("no user %q", user)
}
