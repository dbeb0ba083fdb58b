package tests

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// TestInitBinary: corral runs a container's init and exec inits from the
// corral-init beside it when the two are of one build (make build stamps
// one build id into both), and from its own binary when it is alone or
// beside a corral-init of another build (an upgrade that replaced only
// one of them): the container runs either way, and never with an init
// that speaks another build's protocol.
func TestInitBinary(t *testing.T) {
	corral := testutil.Binary(t, "corral")
	init := filepath.Join(filepath.Dir(corral), "corral-init")
	cases := []struct {
		name     string
		install  func(t *testing.T, dir string)
		initRuns string
	}{
		{"same build", func(t *testing.T, dir string) { rtCopyFile(t, init, filepath.Join(dir, "corral-init")) }, "corral-init"},
		{"alone", func(t *testing.T, dir string) {}, "corral"},
		{"other build", func(t *testing.T, dir string) {
			cp := filepath.Join(dir, "corral-init")
			rtCopyFile(t, init, cp)
			flipBuildID(t, cp)
		}, "corral"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := rtNewEnv(t)
			dir := t.TempDir()
			e.bin = filepath.Join(dir, "corral")
			rtCopyFile(t, corral, e.bin)
			tc.install(t, dir)
			id := rtID("initbin")
			out := e.create(id, e.bundle(id, rtSpec(id, "sh", "-c", "sleep 100")))
			// Before start the init waits on the exec fifo: it is the
			// init binary still.
			want := filepath.Join(dir, tc.initRuns)
			rtCheckInitRuns(t, e.state(id).Pid, want)
			e.must("start", id)
			if got := e.must("exec", id, "sh", "-c", "echo exec-ran"); !strings.Contains(got, "exec-ran") {
				t.Errorf("exec printed %q", got)
			}
			e.must("kill", id, "KILL")
			e.waitStatus(id, "stopped", 30*time.Second)
			e.must("delete", id)
			if data, _ := os.ReadFile(out); len(data) != 0 {
				t.Errorf("container output %q", data)
			}
		})
	}
}

// rtCheckInitRuns fails unless process pid runs file. (Its /proc/PID/exe
// cannot be read as a path: the init has moved into the container's
// root. The file it names is the same file, bind mounts included.)
func rtCheckInitRuns(t *testing.T, pid int, file string) {
	t.Helper()
	got, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(got, want) {
		t.Fatalf("process %d does not run %s", pid, file)
	}
}

// flipBuildID changes the GNU build id note of the ELF file: the file of
// another build, for corral's check.
func flipBuildID(t *testing.T, file string) {
	t.Helper()
	ef, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	sec := ef.Section(".note.gnu.build-id")
	ef.Close()
	if sec == nil {
		t.Fatalf("%s has no build id note: built without make build's -B?", file)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := int64(sec.Offset + sec.Size - 1) // the id's last byte
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, last); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, last); err != nil {
		t.Fatal(err)
	}
}
