package survival

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// What a worker needs of the connection the supervisor keeps: the INIT
// request it answered (to negotiate the same settings) and, when a worker
// dies, a way to put the requests it had read back in the queue.

// EncodeInit and DecodeInit carry the INIT request to a worker (in its
// environment: it is small and needs no extra descriptor).
func EncodeInit(in fuse.InitIn) string {
	return hex.EncodeToString(unsafe.Slice((*byte)(unsafe.Pointer(&in)), unsafe.Sizeof(in)))
}

func DecodeInit(s string) (fuse.InitIn, error) {
	var in fuse.InitIn
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != int(unsafe.Sizeof(in)) {
		return in, fmt.Errorf("bad INIT settings %q", s)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&in)), unsafe.Sizeof(in)), b)
	if in.Major != 7 {
		return in, fmt.Errorf("bad INIT settings: protocol %d.%d", in.Major, in.Minor)
	}
	return in, nil
}

// notifyResend is FUSE_NOTIFY_RESEND in include/uapi/linux/fuse.h (7.40,
// Linux 6.9).
const notifyResend = 7

// ErrNoResend: the kernel does not know FUSE_NOTIFY_RESEND (Linux < 6.9).
var ErrNoResend = errors.New("kernel has no FUSE_NOTIFY_RESEND (Linux < 6.9)")

// Resend asks the kernel to queue again every request a server has read
// from fd's file but not answered (a dead worker's). Any process holding
// the file may send it. Answers still to come for those requests from a
// live server are dropped by the kernel (the resent copies carry a new
// unique id), so sending it while a worker serves costs at most some
// requests answered twice.
func Resend(f *os.File) error {
	var h [16]byte // struct fuse_out_header: len, error (= notify code), unique (= 0)
	*(*uint32)(unsafe.Pointer(&h[0])) = uint32(len(h))
	*(*int32)(unsafe.Pointer(&h[4])) = notifyResend
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if cerr := rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), h[:])
		return true
	}); cerr != nil {
		return cerr
	}
	if errors.Is(werr, syscall.EINVAL) {
		return ErrNoResend
	}
	return werr
}
