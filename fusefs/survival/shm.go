package survival

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Shared memory between the supervisor and its workers (the relay's
// journal, the handle store): a memfd of a fixed size, mapped shared.

// newSharedFile makes a memfd of size bytes named name.
func newSharedFile(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// mapSharedFile maps f, which must be size bytes long (another size: made
// by another corralfs version with another layout).
func mapSharedFile(f *os.File, size int) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if st.Size != int64(size) {
		return nil, fmt.Errorf("%s: %d bytes, want %d (made by another corralfs version?)", f.Name(), st.Size, size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return mem, nil
}
