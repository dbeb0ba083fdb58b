package cgroupreader

import (
	"io/fs"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// scratch is the working memory of one Snapshot or PathsOf call: the path
// being opened (built in place, NUL-terminated for the raw openat) and the
// buffer a file is read into. It is pooled, so reading a cgroup file
// allocates nothing: the FUSE daemon reads a handful of them on every read
// of a view, and os.ReadFile would allocate a path, an *os.File and a
// buffer for each.
type scratch struct {
	path []byte
	buf  []byte
}

const (
	scratchBuf = 16 << 10
	// A buffer grown above this (a huge cgroup.procs) is not kept in the pool.
	scratchKeepMax = 1 << 20
)

var scratchPool = sync.Pool{New: func() any {
	return &scratch{path: make([]byte, 0, 256), buf: make([]byte, scratchBuf)}
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.buf) > scratchKeepMax {
		s.buf = make([]byte, scratchBuf)
	}
	scratchPool.Put(s)
}

// setPath builds DIR + CG + "/" + FILE (CG is a cgroup path starting with
// "/"; the root "/" adds nothing). file may be "" for the directory itself.
func (s *scratch) setPath(dir, cg, file string) {
	p := append(s.path[:0], dir...)
	if cg != "/" {
		p = append(p, cg...)
	}
	if file != "" {
		p = append(p, '/')
		p = append(p, file...)
	}
	s.path = append(p, 0)
}

// pathString is the current path without its NUL, for error messages.
func (s *scratch) pathString() string { return string(s.path[:len(s.path)-1]) }

var atFDCWD = -100 // AT_FDCWD; a variable because uintptr(-100) does not compile

// read returns the whole content of the control file dir+cg+"/"+file. The
// slice aliases the scratch buffer: it is valid until the next read.
func (s *scratch) read(dir, cg, file string) ([]byte, error) {
	s.setPath(dir, cg, file)
	return s.readPath(false)
}

// readList is read for files the kernel generates record by record
// (cgroup.procs): they need reading until a 0-byte read.
func (s *scratch) readList(dir, cg, file string) ([]byte, error) {
	s.setPath(dir, cg, file)
	return s.readPath(true)
}

// readPath reads the file at s.path. Syscalls dominate the cost of a
// Snapshot, so a short read ends it unless untilZero: a cgroup control file
// is one seq_file record that the kernel renders whole and hands out in one
// read when the buffer is large enough, and a regular file (a fixture)
// reads short only at EOF. Multi-record files (cgroup.procs) stop at the
// seq_file's page-sized buffer, so they need the loop to a 0-byte read.
func (s *scratch) readPath(untilZero bool) ([]byte, error) {
	var fd uintptr
	for {
		r, _, e := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD),
			uintptr(unsafe.Pointer(&s.path[0])), uintptr(syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
		if e == 0 {
			fd = r
			break
		}
		if e == syscall.ENOENT {
			// Expected while walking up for a file only some levels
			// have: no allocation. Errors leaving a Snapshot get the
			// cgroup's path attached (collect.add); classify names the file.
			return nil, syscall.ENOENT
		}
		if e != syscall.EINTR {
			return nil, &fs.PathError{Op: "open", Path: s.pathString(), Err: e}
		}
	}
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := syscall.Read(int(fd), s.buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(int(fd))
			return nil, &fs.PathError{Op: "read", Path: s.pathString(), Err: err}
		}
		if m == 0 {
			break
		}
		n += m
		if !untilZero && n < len(s.buf) {
			break
		}
	}
	syscall.Close(int(fd))
	return s.buf[:n], nil
}

// dirExists says whether the directory of the current path exists: it tells
// a vanished cgroup from one where a controller file is merely absent. It
// cuts the path at its last '/' in place, so it allocates nothing.
func (s *scratch) dirExists() bool {
	p := s.path
	for i := len(p) - 2; i > 0; i-- {
		if p[i] != '/' {
			continue
		}
		// An O_PATH open of the directory: the portable zero-allocation
		// stat (the fstatat syscall differs between architectures).
		p[i] = 0
		fd, _, e := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD),
			uintptr(unsafe.Pointer(&p[0])), uintptr(unix.O_PATH|syscall.O_DIRECTORY|syscall.O_CLOEXEC), 0, 0, 0)
		p[i] = '/'
		if e != 0 {
			return false
		}
		syscall.Close(int(fd))
		return true
	}
	return false
}
