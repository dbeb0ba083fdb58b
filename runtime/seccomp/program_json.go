package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"golang.org/x/sys/unix"
)

// A Program travels from the runtime to the container's init (which loads
// it without compiling the profile again) inside the init's JSON config.
// The filter goes as its raw sock_filter bytes (base64 in JSON): Docker's
// profile is several hundred instructions, and a JSON object per
// instruction would cost the init more to decode than the copy saves.

type programJSON struct {
	Filter []byte `json:"filter"`
	Flags  uint   `json:"flags,omitempty"`
	Notify bool   `json:"notify,omitempty"`
}

// sockFilterSize is sizeof(struct sock_filter): code u16, jt u8, jf u8, k u32.
const sockFilterSize = 8

// MarshalJSON encodes p with its filter as raw sock_filter bytes.
func (p *Program) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(p.Filter)*sockFilterSize)
	for _, f := range p.Filter {
		b = binary.NativeEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.NativeEndian.AppendUint32(b, f.K)
	}
	return json.Marshal(programJSON{Filter: b, Flags: p.Flags, Notify: p.Notify})
}

// UnmarshalJSON decodes what MarshalJSON made.
func (p *Program) UnmarshalJSON(data []byte) error {
	var pj programJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return err
	}
	if len(pj.Filter)%sockFilterSize != 0 {
		return fmt.Errorf("seccomp program: %d bytes is not a whole number of instructions", len(pj.Filter))
	}
	p.Filter = make([]unix.SockFilter, len(pj.Filter)/sockFilterSize)
	for i := range p.Filter {
		b := pj.Filter[i*sockFilterSize:]
		p.Filter[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	p.Flags, p.Notify = pj.Flags, pj.Notify
	return nil
}
