package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRunDefaultRoot: with no rootfs to prepare, the container runs the
// host's programs from a read-only root with a minimal /etc and a private
// writable /tmp; no secret of the host is inside.
func TestRunDefaultRoot(t *testing.T) {
	e := runNewEnv(t, false)
	out := e.sh(t, nil, `
for f in /etc/shadow /etc/gshadow /etc/ssh /etc/sudoers /etc/ssl/private; do
  [ -e "$f" ] && echo "LEAK $f"
done
[ -s /etc/passwd ] && echo passwd-ok
touch /usr/corral-test 2>/dev/null && echo "usr-writable"
touch /corral-test 2>/dev/null && echo "root-writable"
touch /etc/corral-test 2>/dev/null && echo "etc-writable"
echo hi > /tmp/x && cat /tmp/x
id -u
`)
	for _, bad := range []string{"LEAK", "usr-writable", "root-writable", "etc-writable"} {
		if strings.Contains(out, bad) {
			t.Errorf("default root: %s\n%s", bad, out)
		}
	}
	for _, want := range []string{"passwd-ok", "hi", "0"} {
		if !strings.Contains(out, want) {
			t.Errorf("default root output lacks %q:\n%s", want, out)
		}
	}
	// /tmp is private: a file written by one container is not in the next.
	if out := e.sh(t, nil, "ls /tmp"); out != "" {
		t.Errorf("/tmp of a new container holds %q", out)
	}
}

// TestRunDefaultRootJava: `java -version` runs on the default root (the
// JDK lives behind /etc/alternatives and links its conf into /etc).
func TestRunDefaultRootJava(t *testing.T) {
	runNeedTool(t, "java")
	e := runNewEnv(t, false)
	r := e.run(t, append(e.runFlags(), "--name", runName("java"), "--memory", "256m", "--", "java", "-version")...)
	if r.code != 0 || !strings.Contains(r.stderr, "version") {
		t.Fatalf("java -version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunProcessFlags: env, user, workdir, hostname, volumes, read-only
// root and network isolation as the flags say.
func TestRunProcessFlags(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Setenv("CORRAL_TEST_INHERIT", "inherited")
	defer os.Unsetenv("CORRAL_TEST_INHERIT")
	base := []string{"--rootfs", root}

	t.Run("env", func(t *testing.T) {
		out := e.sh(t, append(base, "-e", "A=1", "-e", "CORRAL_TEST_INHERIT", "-e", "UNSET_CORRAL_VAR"),
			`echo "$A $CORRAL_TEST_INHERIT ${UNSET_CORRAL_VAR-unset} $HOME"`)
		runExpectEqual(t, out, "1 inherited unset /root")
	})
	t.Run("user", func(t *testing.T) {
		runExpectEqual(t, e.sh(t, append(base, "-u", "1000:1000"), "echo $(id -u):$(id -g)"), "1000:1000")
		runExpectEqual(t, e.sh(t, append(base, "-u", "nobody"), "id -u"), "65534")
	})
	t.Run("workdir", func(t *testing.T) {
		runExpectEqual(t, e.sh(t, append(base, "-w", "/tmp"), "pwd"), "/tmp")
	})
	t.Run("hostname", func(t *testing.T) {
		runExpectEqual(t, e.sh(t, append(base, "-h", "box1"), "hostname"), "box1")
		name := runName("host")
		r := e.run(t, append(e.runFlags(), "--rootfs", root, "--name", name, "--", "hostname")...)
		runExpectEqual(t, r.stdout, name)
	})
	t.Run("volumes", func(t *testing.T) {
		out := e.sh(t, append(base, "-v", vol+":/data:ro"), "cat /data/in; echo x > /data/new 2>/dev/null && echo WROTE; true")
		runExpectEqual(t, out, "from host")
		e.sh(t, append(base, "-v", vol+":/data"), "echo made > /data/new")
		if b, err := os.ReadFile(filepath.Join(vol, "new")); err != nil || string(b) != "made\n" {
			t.Errorf("rw volume: host file %q, %v", b, err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		out := e.sh(t, append(base, "--read-only"), "touch /x 2>/dev/null && echo WROTE; echo done")
		runExpectEqual(t, out, "done")
	})
	t.Run("net none", func(t *testing.T) {
		// Only lo, and it is up (IFF_UP|IFF_LOOPBACK = 0x9).
		out := e.sh(t, append(base, "--net", "none"), "ls /sys/class/net; cat /sys/class/net/lo/flags")
		runExpectEqual(t, out, "lo\n0x9")
	})
	t.Run("net host", func(t *testing.T) {
		hostIfs, _ := os.ReadDir("/sys/class/net")
		out := e.sh(t, append(base, "--net", "host"), "ls /sys/class/net | wc -l")
		runExpectEqual(t, out, strconv.Itoa(len(hostIfs)))
	})
}
