package runtime

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// nsPlan is how the init gets each namespace of the spec.
type nsPlan struct {
	// cloneFlags: new pid, net, ipc, uts and mount namespaces come from
	// clone(2) itself.
	cloneFlags uintptr
	// newTimeNS: a new time namespace, made on the spawning thread (its
	// offsets must be written before any process enters it).
	newTimeNS bool
	// newCgroupNS: the init unshares its cgroup namespace itself, once it
	// is in the container's cgroup (on v1 the parent moves it there after
	// clone; a cgroup namespace made by clone would be rooted at the
	// caller's cgroup).
	newCgroupNS bool
	// join: namespaces given by path (e.g. a CNI network namespace),
	// entered by the spawning thread before the fork.
	join []nsFD
	// joinMnt: a mount namespace given by path. The init enters it itself
	// (setns into a mount namespace needs an fs_struct of its own, which a
	// thread of a Go process never has) and builds the rootfs there.
	joinMnt *os.File
	// ownUTS: a UTS namespace of the container's own, new or joined, where
	// setting the hostname does not rename the host.
	ownUTS bool
	// sharedMount: no mount namespace in the spec: the container lives in
	// the caller's (runc accepts this; see sharedmount.go).
	sharedMount bool
	// newUser: a new user namespace (CLONE_NEWUSER is in cloneFlags);
	// joinUser: one given by path, which the raw-forked child joins
	// itself (setns into a user namespace needs a single-threaded
	// process). See userns.go.
	newUser  bool
	joinUser *os.File
}

func planNamespaces(spec *specs.Spec) (*nsPlan, error) {
	p := &nsPlan{}
	for _, ns := range spec.Linux.Namespaces {
		flag := nsFlags[ns.Type]
		if ns.Path == "" {
			switch ns.Type {
			case specs.TimeNamespace:
				p.newTimeNS = true
			case specs.CgroupNamespace:
				p.newCgroupNS = true
			case specs.UserNamespace:
				p.newUser = true
				p.cloneFlags |= flag
			default:
				p.cloneFlags |= flag
			}
			continue
		}
		if ns.Type == specs.TimeNamespace {
			// A time namespace can only be joined by a single-threaded
			// process, which a Go program never is.
			p.close()
			return nil, fmt.Errorf("config: joining an existing %s namespace (%s) is not supported", ns.Type, ns.Path)
		}
		f, err := os.OpenFile(ns.Path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("config: %s namespace %s: %w", ns.Type, ns.Path, err)
		}
		if ns.Type == specs.MountNamespace {
			p.joinMnt = f
			continue
		}
		if ns.Type == specs.UserNamespace {
			p.joinUser = f
			continue
		}
		p.join = append(p.join, nsFD{flag: flag, f: f})
	}
	p.sharedMount = sharesMountNS(spec)
	for _, ns := range spec.Linux.Namespaces {
		p.ownUTS = p.ownUTS || ns.Type == specs.UTSNamespace
	}
	return p, nil
}

func (p *nsPlan) close() {
	for _, ns := range p.join {
		ns.f.Close()
	}
	if p.joinMnt != nil {
		p.joinMnt.Close()
	}
	if p.joinUser != nil {
		p.joinUser.Close()
	}
}
