package tests

// The JVM in an image (issue 18): an image the test builds around the
// host's JRE, pulled and run with --memory 256m, must size its heap from
// the limit, through the cgroup (the JDK's container support) and through
// sysinfo(2) alone (-XX:-UseContainerSupport: what corralfs's agent
// answers).

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/corral-dev/corral/tests/testutil"
)

// hostJavaHome is the JRE of the java on PATH (/usr/bin/java is a chain of
// symlinks into /usr/lib/jvm/NAME/bin/java).
func hostJavaHome(t *testing.T) string {
	t.Helper()
	java, err := filepath.EvalSymlinks(testutil.RequireCommand(t, "java"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(java))
}

// jreImage is the static busybox plus what the host's JRE at javaHome needs
// from outside it: the shared libraries its launcher and core libraries
// link (found by ldd) and the files its absolute symlinks point at
// (Debian's lib/jvm.cfg -> /etc/java-17-openjdk/...). The JRE itself
// (some 260 MB) is not copied into the layer, which would cost seconds of
// tar and gzip: the container binds it read-only at the same path.
func jreImage(t *testing.T, javaHome string) v1.Image {
	t.Helper()
	root := testutil.BusyboxRootfs(t)
	copyIn := func(path string) {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(real, dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ldd := []string{filepath.Join(javaHome, "bin", "java")}
	for _, lib := range []string{"server/libjvm.so", "libjli.so", "libjava.so", "libjimage.so", "libzip.so", "libnio.so", "libnet.so"} {
		if p := filepath.Join(javaHome, "lib", lib); fileExists(p) {
			ldd = append(ldd, p)
		}
	}
	out, err := exec.Command("ldd", ldd...).Output()
	if err != nil {
		t.Fatalf("ldd %v: %v", ldd, err)
	}
	// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and the
	// loader, "/lib64/ld-linux-x86-64.so.2 (0x...)".
	libs := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if filepath.IsAbs(f) && !strings.HasPrefix(f, javaHome+"/") && !strings.HasSuffix(f, ":") {
				libs[f] = true
			}
		}
	}
	if len(libs) == 0 {
		t.Fatalf("ldd found no libraries for the JRE:\n%s", out)
	}
	for lib := range libs {
		copyIn(lib)
	}
	err = filepath.WalkDir(filepath.Join(javaHome, "lib"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if target, _ := os.Readlink(p); filepath.IsAbs(target) && !strings.HasPrefix(target, javaHome+"/") {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				copyIn(target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ImageFromRootfs(t, root, v1.Config{Env: []string{"PATH=/bin:" + javaHome + "/bin"}})
}

// checkImageJava pushes the JRE image to reg, pulls it into e and checks
// the JVM's default heap in a 256 MiB container, with the JDK's container
// support and without it (then only sysinfo(2), answered by the agent at
// sock, can tell it the limit). The JDK's ergonomics are not "a quarter"
// at this size: below about 512 MiB it takes half (MinRAMPercentage),
// capped at its default MaxHeapSize, so 256 MiB gives 126 MiB with JDK 17
// and 25. The expected value is therefore the host JVM's own answer for
// -XX:MaxRAM=256m, and it must not be the host's.
func checkImageJava(t *testing.T, e *imageEnv, reg, sock string) {
	if testutil.InVM() {
		t.Skip("the VM has no java")
	}
	javaHome := hostJavaHome(t)
	java := filepath.Join(javaHome, "bin", "java")
	want, host := maxHeapSize(t, java, "-XX:MaxRAM=256m"), maxHeapSize(t, java)
	if want == host {
		t.Fatalf("the JVM sizes its heap the same (%s) for 256 MiB as for the host: this check would prove nothing", want)
	}
	ref := reg + "/corral/jre:1"
	testutil.PushImage(t, ref, jreImage(t, javaHome))
	e.must(t, "pull", ref)
	out := e.runImage(t, "--sysinfo", sock, "--memory", "256m", "-v", javaHome+":"+javaHome+":ro", ref, "sh", "-c",
		"java -XX:+PrintFlagsFinal -version | grep -w MaxHeapSize && java -XX:-UseContainerSupport -XX:+PrintFlagsFinal -version | grep -w MaxHeapSize")
	heaps := maxHeapRE.FindAllStringSubmatch(out, -1)
	if len(heaps) != 2 {
		t.Fatalf("java in the JRE image did not print MaxHeapSize twice:\n%s", out)
	}
	for i, how := range []string{"with container support", "with -XX:-UseContainerSupport (sysinfo(2) only)"} {
		if heaps[i][1] != want {
			t.Errorf("MaxHeapSize %s in a 256 MiB container of the JRE image: %s, want %s as for -XX:MaxRAM=256m (the host's is %s)", how, heaps[i][1], want, host)
		}
	}
	e.must(t, "rmi", ref)
}

var maxHeapRE = regexp.MustCompile(`MaxHeapSize\s*=\s*(\d+)`)

// maxHeapSize is the MaxHeapSize the host's java picks with flags.
func maxHeapSize(t *testing.T, java string, flags ...string) string {
	t.Helper()
	out, err := exec.Command(java, append(flags, "-XX:+PrintFlagsFinal", "-version")...).Output()
	m := maxHeapRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("%s %v -XX:+PrintFlagsFinal -version: %v\n%s", java, flags, err, out)
	}
	return m[1]
}
