package runtime

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"sync"
)

// InitBinaryName is the program container inits and exec inits run from
// when it is installed next to corral: cmd/corral-init, which links only
// what an init does (package runtime without its cgroup driver and image
// store). Every container start runs one Go program less of corral's
// size: corral links containerd/cgroups and the image registry client,
// whose package initialization alone made the init's Go start ~7 ms
// slower than corral-init's (docs/benchmarks.md).
const InitBinaryName = "corral-init"

// openInitBinary opens corral-init beside exe (the runtime's own binary)
// when it comes from the same build as the running runtime: the init
// protocol (environment, sync messages, the spec as JSON) is only stable
// within one build. `make build` stamps one build id into every binary
// (-ldflags -B, an ELF NT_GNU_BUILD_ID note); binaries built apart carry
// different ids (Go derives each from its own content) or none. Anything
// else (no corral-init, another build, an unreadable file) is nil: the
// runtime re-executes its own binary as the init, as before corral-init.
func openInitBinary(exe string) *os.File {
	// corral-init first: without one (a binary built with go build, a test
	// binary) the own build id is never read.
	f, err := os.Open(filepath.Join(filepath.Dir(exe), InitBinaryName))
	if err != nil {
		return nil
	}
	own := ownBuildID()
	if id := buildID(f); own == nil || id == nil || !bytes.Equal(id, own) {
		f.Close()
		return nil
	}
	return f
}

var ownBuild struct {
	once sync.Once
	id   []byte
}

// ownBuildID is the build id of the running binary.
func ownBuildID() []byte {
	ownBuild.once.Do(func() {
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			return
		}
		defer f.Close()
		ownBuild.id = buildID(f)
	})
	return ownBuild.id
}

// buildID is the descriptor of the GNU build-id note of the ELF file f,
// nil when it has none. (The Go linker puts the note in a section of its
// own, outside the PT_NOTE segment, so the section headers are read.)
func buildID(f *os.File) []byte {
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil
	}
	sec := ef.Section(".note.gnu.build-id")
	if sec == nil || sec.Type != elf.SHT_NOTE || sec.Size > 1024 {
		return nil
	}
	note, err := sec.Data()
	if err != nil || len(note) < 16 {
		return nil
	}
	// namesz, descsz, type, then "GNU\0" and the descriptor.
	bo := ef.ByteOrder
	namesz, descsz, typ := bo.Uint32(note[0:]), bo.Uint32(note[4:]), bo.Uint32(note[8:])
	const ntGNUBuildID = 3
	if typ != ntGNUBuildID || namesz != 4 || string(note[12:16]) != "GNU\x00" || uint64(descsz) > uint64(len(note)-16) || descsz == 0 {
		return nil
	}
	return note[16 : 16+descsz]
}
