package sysinfoagent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The keeper <-> agent protocol: SOCK_SEQPACKET messages on the control
// socket (SOCKET.ctl), so every message arrives whole and the fds it
// carries (SCM_RIGHTS) belong to it. Every message starts with a 16-byte
// header: type (1 byte), 7 bytes zero, entry id (little-endian u64).
//
// keeper -> agent
//
//	msgEntry   id, JSON entryInfo, 1 fd   an fd the keeper holds (sent for every
//	                                      entry on attach, then for each new one)
//	msgNotify  id, struct seccomp_notif   a notification the keeper received on
//	                                      entry id; the agent answers it itself
//	msgGone    id                         the entry's fd hung up (its container
//	                                      ended): close your copy
//	msgReplaced                           another agent attached; stop answering
//	msgIDTable 0, 1 fd (memfd)            the shared id table (shm.go), first
//	msgDirect  id, slot (u32)             receive on entry id yourself from now
//	                                      on, storing each id in table slot
//
// agent -> keeper
//
//	msgStore   0, JSON entryInfo, 1 fd    keep this fd (the keeper echoes a
//	                                      msgEntry with its new id)
//	msgDrop    id                         forget and close entry id
//	msgBye                                clean shutdown of the agent
//	msgHello                              the agent can receive by itself
//
// In-flight notifications are safe because the keeper can always name
// them: it knows the id of every notification it forwarded, and for a
// listener the agent receives on directly (direct.go) the ids the agent
// stores in the shared table, plus the consecutive ids after the last one.
// When the agent's socket closes (it died), the keeper answers each one
// still waiting with CONTINUE.
const (
	msgEntry    = 'E'
	msgNotify   = 'N'
	msgGone     = 'X'
	msgReplaced = 'R'
	msgStore    = 'S'
	msgDrop     = 'D'
	msgBye      = 'B'
	msgIDTable  = 'T'
	msgDirect   = 'G'
	msgHello    = 'H'
)

const (
	headerSize = 16
	// maxMessage bounds a message (an OCI state JSON with annotations).
	maxMessage = 64 << 10
)

// Entry kinds.
const (
	// KindSeccomp is a seccomp listener fd: the keeper serves its
	// notifications (CONTINUE alone, or forwarded to the agent).
	KindSeccomp = "seccomp"
	// KindFd is any other fd the agent wants to survive it (for example
	// the /dev/fuse connection): the keeper only holds it and hands it
	// back to the next agent.
	KindFd = "fd"
)

// entryInfo describes an fd the keeper holds.
type entryInfo struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// Meta is opaque to the keeper. For KindSeccomp it is the OCI
	// ContainerProcessState the runtime sent with the fd.
	Meta json.RawMessage `json:"meta,omitempty"`
	// Ref is the agent's token on a msgStore; the keeper echoes it in
	// the msgEntry that confirms it holds the fd. Until then the agent
	// keeps its own copy: an fd in flight to a keeper that dies before
	// reading it is closed by the kernel, and the container's listener
	// with it.
	Ref uint64 `json:"ref,omitempty"`
}

func header(typ byte, id uint64) []byte {
	h := make([]byte, headerSize, headerSize+notifSize)
	h[0] = typ
	binary.LittleEndian.PutUint64(h[8:], id)
	return h
}

func encodeNotify(id uint64, n *Notif) []byte {
	b := header(msgNotify, id)
	return append(b, unsafe.Slice((*byte)(unsafe.Pointer(n)), notifSize)...)
}

func decodeNotify(payload []byte) (Notif, error) {
	var n Notif
	if len(payload) != notifSize {
		return n, fmt.Errorf("notify message of %d bytes, want %d", len(payload), notifSize)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&n)), notifSize), payload)
	return n, nil
}

func encodeEntry(typ byte, id uint64, info entryInfo) ([]byte, error) {
	js, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	b := append(header(typ, id), js...)
	if len(b) > maxMessage {
		return nil, fmt.Errorf("entry message of %d bytes exceeds %d", len(b), maxMessage)
	}
	return b, nil
}

// message is one received message.
type message struct {
	typ     byte
	id      uint64
	payload []byte
	fds     []int
}

var errClosed = errors.New("connection closed")

// readMessage reads one message. Fds that arrive with it are returned in
// message.fds (close-on-exec); the caller owns them.
func readMessage(c *net.UnixConn, buf, oob []byte) (message, error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	return decodeMessage(buf, oob, max(n, 0), max(oobn, 0), flags, err)
}

// readMessageFd is readMessage on a raw socket fd; flags may add
// MSG_DONTWAIT.
func readMessageFd(fd int, buf, oob []byte, flags int) (message, error) {
	var n, oobn int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC|flags)
		if err != unix.EINTR {
			break
		}
	}
	return decodeMessage(buf, oob, n, oobn, flags, err)
}

// decodeMessage turns what one recvmsg returned into a message, closing
// the fds it carried when the message is refused.
func decodeMessage(buf, oob []byte, n, oobn, flags int, err error) (message, error) {
	var fds []int
	if oobn > 0 {
		fds = parseRights(oob[:oobn])
	}
	if err != nil {
		closeAll(fds)
		return message{}, err
	}
	if n == 0 && oobn == 0 {
		return message{}, errClosed
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n < headerSize {
		closeAll(fds)
		return message{}, fmt.Errorf("malformed message (%d bytes, flags %#x)", n, flags)
	}
	return message{typ: buf[0], id: binary.LittleEndian.Uint64(buf[8:16]), payload: buf[headerSize:n], fds: fds}, nil
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
