package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuildID reads the GNU build id note the Go linker writes into every
// binary (this test binary has one of its own) and refuses files without.
func TestBuildID(t *testing.T) {
	if id := ownBuildID(); len(id) < 16 {
		t.Fatalf("own build id %x: want the linker's note", id)
	}
	notELF := filepath.Join(t.TempDir(), "corral-init")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(notELF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if id := buildID(f); id != nil {
		t.Errorf("a shell script has build id %x", id)
	}
	// A corral-init that is not an ELF file of our build is never used.
	if f := openInitBinary(filepath.Join(filepath.Dir(notELF), "corral")); f != nil {
		f.Close()
		t.Error("openInitBinary took a script as corral-init")
	}
	if f := openInitBinary(filepath.Join(t.TempDir(), "corral")); f != nil {
		f.Close()
		t.Error("openInitBinary found a corral-init in an empty directory")
	}
}
