package fusefs

import (
	"sync"
	"syscall"

	"github.com/corral-dev/corral/fusefs/inputs"
)

// handleQuota bounds the open file handles (issue 11): each costs the
// daemon its content plus the kernel's request state, ~1.85 KiB, and one
// container holding 400,000 opens cost it 738 MiB. A container (everything
// reading in one cgroup, whatever its pid namespaces: a container that
// makes pid namespaces must not get a quota per namespace) may hold
// perContainer handles; beyond, its opens fail with EMFILE, as its own
// descriptor limit would. All containers together may hold total; beyond,
// opens fail with ENFILE, the system-wide table being full. The per
// container bound keeps one container from taking the whole table as long
// as fewer than total/perContainer containers flood at once.
type handleQuota struct {
	perContainer, total int

	mu    sync.Mutex
	n     int
	byKey map[string]int    // open handles per quota key
	owner map[uint64]string // handle -> its quota key
}

// Defaults: a few readers per container hold a handle for a millisecond
// each; a thousand open at once is already a leak or an attack.
const (
	DefaultMaxHandlesPerContainer = 1024
	DefaultMaxHandles             = 32768 // ~60 MiB at 1.85 KiB each
)

func newHandleQuota(perContainer, total int) *handleQuota {
	if perContainer <= 0 {
		perContainer = DefaultMaxHandlesPerContainer
	}
	if total <= 0 {
		total = DefaultMaxHandles
	}
	return &handleQuota{perContainer: perContainer, total: total, byKey: map[string]int{}, owner: map[uint64]string{}}
}

// take reserves a handle for key; the caller then names it with bind, or
// gives it back with untake when the open fails.
func (q *handleQuota) take(key string) syscall.Errno {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.byKey[key] >= q.perContainer {
		return syscall.EMFILE
	}
	if q.n >= q.total {
		return syscall.ENFILE
	}
	q.n++
	q.byKey[key]++
	return 0
}

func (q *handleQuota) untake(key string) {
	q.mu.Lock()
	q.dec(key)
	q.mu.Unlock()
}

func (q *handleQuota) bind(fh uint64, key string) {
	q.mu.Lock()
	q.owner[fh] = key
	q.mu.Unlock()
}

// release gives back a released handle's slot (handles a predecessor
// worker opened were never counted here).
func (q *handleQuota) release(fh uint64) {
	q.mu.Lock()
	if key, ok := q.owner[fh]; ok {
		delete(q.owner, fh)
		q.dec(key)
	}
	q.mu.Unlock()
}

func (q *handleQuota) dec(key string) {
	q.n--
	if q.byKey[key]--; q.byKey[key] <= 0 {
		delete(q.byKey, key)
	}
}

// quotaKey is the container a handle is charged to: the caller's cgroups
// (a caller that cannot be identified is charged to the shared key "").
func (fs *FS) quotaKey(r *resolved) (string, syscall.Errno) {
	c, err := r.c, r.err
	if err != nil {
		if inputs.OutOfResources(err) {
			return "", syscall.EMFILE
		}
		return "", 0
	}
	return c.CgroupKey(), 0
}

// takeHandle charges an open to its caller's container.
func (fs *FS) takeHandle(r *resolved) (string, syscall.Errno) {
	key, errno := fs.quotaKey(r)
	if errno != 0 {
		fs.Stats.Exhausted.Add(1)
		return key, errno
	}
	if errno = fs.quota.take(key); errno != 0 {
		fs.Stats.Refused.Add(1)
		fs.logOnce(inputs.ContainerKey{HostPaths: key}, "open", "refusing an open", errno)
	}
	return key, errno
}
