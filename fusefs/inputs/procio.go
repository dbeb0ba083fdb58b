package inputs

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// The sampler and the caller lookup read small /proc files on every
// render of a container's stat or loadavg (its tasks' states) and on
// every new caller. os.Open/os.ReadFile cost about ten system calls per
// file (fcntl and epoll registration attempts, fstat, a read to EOF);
// these cost three (openat, one read, close), as cgroupreader's reads do.
// A profile of 200 containers reading stat put the sampler at a third of
// the worker's CPU.

// readProc reads a file of one record (/proc/PID/stat, status) into buf
// (grown as needed): the kernel renders such a file whole into a large
// enough buffer in one read, so a short read ends it.
func readProc(path string, buf []byte) ([]byte, error) { return ReadSmall(path, buf, false) }

// ReadSmall reads the small (pseudo-) file at path into buf's storage,
// grown as needed, with openat, read and close. toEOF reads on to a 0-byte
// read, for files the kernel hands out record by record (/proc/cpuinfo,
// /proc/stat on many CPUs); otherwise a short read ends it. On error the
// returned slice is buf emptied, so the caller keeps its storage.
func ReadSmall(path string, buf []byte, toEOF bool) ([]byte, error) {
	buf = buf[:0]
	fd, err := openRaw(path, 0)
	if err != nil {
		return buf, err
	}
	defer unix.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(512, cap(buf)))...)[:len(buf)]
		}
		room := cap(buf) - len(buf)
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], &fs.PathError{Op: "read", Path: path, Err: err}
		}
		buf = buf[:len(buf)+n]
		if n == 0 || (!toEOF && n < room) {
			return buf, nil
		}
	}
}

// dirNames lists the names in directory path but "." and "..".
func dirNames(path string) ([]string, error) {
	fd, err := openRaw(path, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	var buf [4096]byte
	for {
		n, err := unix.ReadDirent(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, &fs.PathError{Op: "getdents", Path: path, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func openRaw(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
