package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Files in a container's state directory (<root>/<id>/).
const (
	stateFile = "state.json" // persistedState, replaced atomically
	fifoFile  = "exec.fifo"  // the init blocks opening it until `start` reads it
)

// persistedState is everything a later `corral` invocation needs to find the
// container again. Status is only the last status a verb recorded (creating
// or created); the live status is derived from the init process, the fifo
// and the freezer (see Container.refresh).
type persistedState struct {
	ID            string            `json:"id"`
	Bundle        string            `json:"bundle"`
	Rootfs        string            `json:"rootfs"`
	Status        Status            `json:"status"`
	Pid           int               `json:"pid,omitempty"`
	PidStartTime  uint64            `json:"pidStartTime,omitempty"` // /proc/PID/stat field 22: tells a recycled pid apart
	Created       time.Time         `json:"created"`
	CgroupPath    string            `json:"cgroupPath"` // absolute from each hierarchy's root
	NoPivot       bool              `json:"noPivot,omitempty"`
	NoNewKeyring  bool              `json:"noNewKeyring,omitempty"`
	Spec          *specs.Spec       `json:"config"`
	NamespacePath map[string]string `json:"namespacePaths,omitempty"` // ns type -> /proc/PID/ns/X at create time
	ImageRoot     string            `json:"imageRoot,omitempty"`      // image overlay root to release on delete
	Started       time.Time         `json:"started,omitempty"`
	Exit          *ExitRecord       `json:"exit,omitempty"` // set by whoever waited for the init (RecordExit)
}

// writeState replaces dir/state.json atomically: a reader sees the old file
// or the new one, never a torn write (temp file + fsync-free rename; the
// state lives on tmpfs under /run and does not need to survive a reboot).
func writeState(dir string, st *persistedState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readState(dir string) (*persistedState, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st persistedState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("corrupt state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Spec == nil {
		return nil, fmt.Errorf("corrupt state file %s: no config", filepath.Join(dir, stateFile))
	}
	return &st, nil
}
