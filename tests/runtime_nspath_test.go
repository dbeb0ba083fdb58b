package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
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
