package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartMarks finds the six marks in a real strace log of
// `corral run --rm true`, the init running from corral-init.
func TestStartMarks(t *testing.T) {
	log := `10699 1796405565.978356 execve("bin/corral", ["bin/corral", "run", "--rm", "--views", "none", "true"], 0x7ffebb60d468 /* 39 vars */) = 0
10705 1796405566.015064 exit_group(0)   = ?
10705 1796405566.015225 +++ exited with 0 +++
10706 1796405566.017749 execve("/work/main/bin/corral-init", ["corral-init"], 0x393923eaf680 /* 4 vars */) = 0
10706 1796405566.034844 pivot_root(".", ".") = 0
10706 1796405566.044890 execve("/usr/bin/true", ["true"], 0x29735e042900 /* 3 vars */ <unfinished ...>
10709 1796405566.045268 +++ exited with 0 +++
10706 1796405566.046863 <... execve resumed>) = 0
10706 1796405566.049679 exit_group(0)   = ?
10706 1796405566.050709 +++ exited with 0 +++
10701 1796405566.058313 exit_group(0)   = ?
10699 1796405566.060414 +++ exited with 0 +++
`
	path := filepath.Join(t.TempDir(), "trace")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	marks, err := startMarks(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1796405565.978356, 1796405566.017749, 1796405566.034844, 1796405566.044890, 1796405566.049679, 1796405566.060414}
	for i := range want {
		if marks[i] != want[i] {
			t.Errorf("mark %d = %f, want %f", i, marks[i], want[i])
		}
	}
}
