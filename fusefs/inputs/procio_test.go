package inputs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readProc returns whole files, longer than the buffer it is given too,
// and its errors say "does not exist" the way os's do (callers skip tasks
// that exited); dirNames lists a directory without "." and "..".
func TestProcIO(t *testing.T) {
	dir := t.TempDir()
	long := bytes.Repeat([]byte("0123456789abcdef"), 700) // 11,200 bytes
	p := filepath.Join(dir, "long")
	if err := os.WriteFile(p, long, 0o644); err != nil {
		t.Fatal(err)
	}
	var small [64]byte
	got, err := readProc(p, small[:0])
	if err != nil || !bytes.Equal(got, long) {
		t.Fatalf("readProc: %d bytes, %v; want %d bytes", len(got), err, len(long))
	}
	self, err := readProc("/proc/self/status", nil)
	if err != nil || !bytes.Contains(self, []byte("\nNSpid:")) {
		t.Fatalf("readProc(/proc/self/status): %q, %v", self, err)
	}
	if _, err := readProc(filepath.Join(dir, "gone"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readProc of a missing file: %v, want ErrNotExist", err)
	}
	names, err := dirNames(dir)
	if err != nil || !slices.Equal(names, []string{"long"}) {
		t.Errorf("dirNames = %q, %v", names, err)
	}
	if _, err := dirNames(p); err == nil {
		t.Error("dirNames of a file succeeded")
	}
}
