package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeJoinNamespacesByPath: a mount and a UTS namespace given by
// path are joined (runc accepts both), the rootfs is built in the joined
// mount namespace, and the hostname is set in the joined UTS namespace,
// not the host's.
func TestRuntimeJoinNamespacesByPath(t *testing.T) {
	e := rtNewEnv(t)
	holder := exec.Command("unshare", "--mount", "--uts", "--propagation", "private", "sleep", "1000")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		holder.Process.Kill()
		holder.Wait()
	}()
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	nsPath := func(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", holder.Process.Pid, kind) }
	// unshare execs sleep once its namespaces exist.
	deadline := time.Now().Add(30 * time.Second)
	var holderMnt string
	for {
		holderMnt, _ = os.Readlink(nsPath("mnt"))
		if holderMnt != "" && holderMnt != hostMnt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the namespace holder has no mount namespace of its own after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostName, _ := os.Hostname()

	id := rtID("nspath")
	s := rtSpec(id, "sh", "-c", "echo mnt=$(readlink /proc/self/ns/mnt); echo host=$(hostname)")
	for i, ns := range s.Linux.Namespaces {
		switch ns.Type {
		case specs.MountNamespace:
			s.Linux.Namespaces[i].Path = nsPath("mnt")
		case specs.UTSNamespace:
			s.Linux.Namespaces[i].Path = nsPath("uts")
		}
	}
	s.Hostname = "joined-uts"
	got := rtLines(e.run(id, s))
	if got["mnt"] != holderMnt {
		t.Errorf("container's mount namespace %q, want the joined %q", got["mnt"], holderMnt)
	}
	if got["host"] != "joined-uts" {
		t.Errorf("hostname in the container %q, want joined-uts", got["host"])
	}
	out, err := exec.Command("nsenter", "--uts", "-t", fmt.Sprint(holder.Process.Pid), "hostname").Output()
	if err != nil || strings.TrimSpace(string(out)) != "joined-uts" {
		t.Errorf("hostname in the joined namespace: %q %v, want joined-uts", out, err)
	}
	if h, _ := os.Hostname(); h != hostName {
		t.Errorf("the host was renamed to %q", h)
	}
}

// TestRuntimeNoMountNamespace: a spec without a mount namespace runs in
// the caller's (runc accepts it), chrooted into its rootfs, also for an
// exec; its mounts (proc, dev, ...) are made below the runtime's bind of
// the rootfs and are all gone after delete, and after a create that fails
// half way (rtNewEnv's cleanup checks the mount table for the ids).
func TestRuntimeNoMountNamespace(t *testing.T) {
	e := rtNewEnv(t)
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	noMountNS := func(s *specs.Spec) {
		var keep []specs.LinuxNamespace
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != specs.MountNamespace {
				keep = append(keep, ns)
			}
		}
		s.Linux.Namespaces = keep
	}
	id := rtID("nomntns")
	s := rtSpec(id, "sh", "-c", "echo mnt=$(readlink /proc/self/ns/mnt); echo marker=$(cat /corral-marker); sleep 1000")
	noMountNS(s)
	b := e.bundle(id, s)
	if err := os.WriteFile(s.Root.Path+"/corral-marker", []byte("in-rootfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.create(id, b)
	e.must("start", id)
	rtWaitFile(t, out, "marker=")
	got := rtLines(rtRead(t, out))
	if got["mnt"] != hostMnt || got["marker"] != "in-rootfs" {
		t.Errorf("container: mount namespace %q (want the caller's %q), marker %q (want in-rootfs)", got["mnt"], hostMnt, got["marker"])
	}
	if r := e.corral("exec", id, "cat", "/corral-marker"); r.code != 0 || r.stdout != "in-rootfs" {
		t.Errorf("exec in the container's root: %v", r)
	}
	e.must("delete", "--force", id)

	// A create that fails after the rootfs is bound leaves no mount.
	id2 := rtID("nomntns-fail")
	s2 := rtSpec(id2, "true")
	noMountNS(s2)
	s2.Mounts = append(s2.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/nonexistent-corral-source", Options: []string{"bind"}})
	if r := e.corral("create", "--bundle", e.bundle(id2, s2), id2); r.code == 0 {
		t.Errorf("create with a missing bind source succeeded: %v", r)
	}
}

// TestRuntimeJoinUserNSByPath: a user namespace given by path, with new pid,
// mount, uts, ipc and net namespaces: they must belong to it (the init is
// pid 1 of a new pid namespace, sets the hostname, mounts /proc) and its
// root is the namespace's, host id 1500000.
func TestRuntimeJoinUserNSByPath(t *testing.T) {
	e := rtNewEnv(t)
	holder := exec.Command("sleep", "1000")
	holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1500000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1500000, Size: 65536}},
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		holder.Process.Kill()
		holder.Wait()
	}()
	userNS := fmt.Sprintf("/proc/%d/ns/user", holder.Process.Pid)
	want, _ := os.Readlink(userNS)
	id := rtID("userpath")
	s := rtSpec(id, "sh", "-c", "echo user=$(readlink /proc/self/ns/user); echo uid=$(id -u); echo pid=$$; echo host=$(hostname); echo map=$(cat /proc/self/uid_map)")
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: userNS})
	s.Hostname = "in-joined-userns"
	got := rtLines(e.run(id, s))
	if got["user"] != want || got["uid"] != "0" || got["pid"] != "1" || got["host"] != "in-joined-userns" || strings.Join(strings.Fields(got["map"]), " ") != "0 1500000 65536" {
		t.Errorf("container in a joined user namespace: %v; want user=%s uid=0 pid=1 host=in-joined-userns map=0 1500000 65536", got, want)
	}
}
