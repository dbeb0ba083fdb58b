package reader

import (
	"encoding/json"
	"os"
	"time"
)

// HoldReport is what -hold prints: how many opens succeeded before the
// first failure, and that failure.
type HoldReport struct {
	Held  int    `json:"held"`
	Error string `json:"error"`
}

// holdOpen opens path n times (stopping at the first error), prints a
// HoldReport, then keeps the files open for dur: a container holding
// handles of the daemon (the handle flood of issue 11). It lets go early
// once the file until exists (the test's signal to end).
func holdOpen(path string, n int, dur time.Duration, until string) int {
	var rep HoldReport
	files := make([]*os.File, 0, n)
	for len(files) < n {
		f, err := os.Open(path)
		if err != nil {
			rep.Error = err.Error()
			break
		}
		files = append(files, f)
	}
	rep.Held = len(files)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	for deadline := time.Now().Add(dur); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(until); until != "" && err == nil {
			break
		}
	}
	for _, f := range files {
		f.Close()
	}
	return 0
}
