package render

import "errors"

// ErrNoPSI: the cgroup has no pressure files of its own (kernel without
// PSI, the cgroup2 root on a v1/hybrid host, or the reader skipped them).
// The FUSE layer then answers ENOENT, as a kernel without PSI does (the
// host's own callers get the host's file: that is their pressure).
var ErrNoPSI = errors.New("cgroup has no pressure information")

// PressureCPU renders proc/pressure/cpu from the cgroup's cpu.pressure,
// which already has the exact /proc/pressure format.
func PressureCPU(dst []byte, in *Input) ([]byte, error) { return psi(dst, in.Snap.PSI.CPU) }

// PressureMemory renders proc/pressure/memory from memory.pressure.
func PressureMemory(dst []byte, in *Input) ([]byte, error) { return psi(dst, in.Snap.PSI.Memory) }

// PressureIO renders proc/pressure/io from io.pressure.
func PressureIO(dst []byte, in *Input) ([]byte, error) { return psi(dst, in.Snap.PSI.IO) }

func psi(dst, b []byte) ([]byte, error) {
	if b == nil {
		return nil, ErrNoPSI
	}
	// A copy: outputs never alias the Input (the reader may reuse its
	// buffers once the snapshot is released).
	return append(dst, b...), nil
}
