package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A tiny classic-BPF assembler with symbolic labels.
//
// Classic BPF conditional jumps have 8-bit forward offsets (at most 255
// instructions) while BPF_JA has a 32-bit one. Code generation writes every
// jump with labels and lets assemble() pick the encoding: a conditional jump
// whose target is too far is relaxed into a conditional jump over a BPF_JA
// ("jcc k, 0, 1; ja target"). Relaxation only ever grows the program, so the
// fixed point is reached in a few passes.

// label names a position in the program. fall means "the next instruction".
type label int

const fall label = -1

type item struct {
	isLabel bool
	lbl     label // for labels: the label; for BPF_JA: the target

	op     uint16
	k      uint32
	jt, jf label // conditional jumps only
	// far marks a relaxed conditional jump (set by assemble).
	farT, farF bool
}

type asm struct {
	items  []item
	labels int
}

func (a *asm) newLabel() label { a.labels++; return label(a.labels - 1) }

func (a *asm) mark(l label) { a.items = append(a.items, item{isLabel: true, lbl: l}) }

// loadArch / loadNr / loadWord load a 32-bit word of struct seccomp_data:
// nr at 0, arch at 4, instruction_pointer at 8, args[i] at 16+8*i.
func (a *asm) loadWord(off uint32) {
	a.items = append(a.items, item{op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off})
}

func (a *asm) ret(k uint32) { a.items = append(a.items, item{op: unix.BPF_RET | unix.BPF_K, k: k}) }

func (a *asm) and(k uint32) {
	a.items = append(a.items, item{op: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k})
}

func (a *asm) jmp(l label) { a.items = append(a.items, item{op: unix.BPF_JMP | unix.BPF_JA, lbl: l}) }

// jcc emits "if A <cond> k goto jt else goto jf"; cond is BPF_JEQ, BPF_JGT
// or BPF_JGE (unsigned).
func (a *asm) jcc(cond uint16, k uint32, jt, jf label) {
	if jt == fall && jf == fall {
		return // both ways lead to the same place
	}
	a.items = append(a.items, item{op: unix.BPF_JMP | cond | unix.BPF_K, k: k, jt: jt, jf: jf})
}

func isCond(it item) bool {
	return !it.isLabel && it.op&0x07 == unix.BPF_JMP && it.op&0xf0 != unix.BPF_JA
}

func isJA(it item) bool {
	return !it.isLabel && it.op == unix.BPF_JMP|unix.BPF_JA
}

// size is the number of instructions an item encodes to.
func size(it item) int {
	switch {
	case it.isLabel:
		return 0
	case isCond(it):
		n := 1
		if it.farT {
			n++
		}
		if it.farF {
			n++
		}
		return n
	}
	return 1
}

// assemble resolves labels and returns the program.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	for pass := 0; ; pass++ {
		if pass > 64 {
			return nil, fmt.Errorf("seccomp: jump relaxation did not converge")
		}
		// Lay out: pc of each item and of each label.
		pcs := make([]int, len(a.items))
		where := make([]int, a.labels)
		for i := range where {
			where[i] = -1
		}
		pc := 0
		for i, it := range a.items {
			pcs[i] = pc
			if it.isLabel {
				where[it.lbl] = pc
			}
			pc += size(it)
		}
		if pc > unix.BPF_MAXINSNS {
			return nil, fmt.Errorf("seccomp: filter needs %d instructions, the kernel allows %d", pc, unix.BPF_MAXINSNS)
		}
		target := func(l label, next int) (int, error) {
			if l == fall {
				return next, nil
			}
			if where[l] < 0 {
				return 0, fmt.Errorf("seccomp: internal error: label %d never placed", l)
			}
			if where[l] < next {
				return 0, fmt.Errorf("seccomp: internal error: backward jump to label %d", l)
			}
			return where[l], nil
		}
		grew := false
		out := make([]unix.SockFilter, 0, pc)
		for i, it := range a.items {
			switch {
			case it.isLabel:
			case isJA(it):
				t, err := target(it.lbl, pcs[i]+1)
				if err != nil {
					return nil, err
				}
				out = append(out, unix.SockFilter{Code: it.op, K: uint32(t - (pcs[i] + 1))})
			case isCond(it):
				next := pcs[i] + size(it) // where "fall" leads
				t, err := target(it.jt, next)
				if err != nil {
					return nil, err
				}
				f, err := target(it.jf, next)
				if err != nil {
					return nil, err
				}
				// Short offsets are relative to pcs[i]+1; a far side is
				// reached through its own BPF_JA right after the jump.
				base := pcs[i] + 1
				jt, jf := t-base, f-base
				if !it.farT && jt > 255 {
					a.items[i].farT, grew = true, true
				}
				if !it.farF && jf > 255 {
					a.items[i].farF, grew = true, true
				}
				if grew {
					continue
				}
				ins := unix.SockFilter{Code: it.op, K: it.k}
				var tail []unix.SockFilter
				slot := 0 // index of the next trampoline after the jump
				if it.farT {
					tail = append(tail, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(t - (base + slot + 1))})
					jt = slot
					slot++
				}
				if it.farF {
					tail = append(tail, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(f - (base + slot + 1))})
					jf = slot
					slot++
				}
				// Non-far sides jump over the trampolines.
				if !it.farT {
					jt = t - base
				}
				if !it.farF {
					jf = f - base
				}
				ins.Jt, ins.Jf = uint8(jt), uint8(jf)
				out = append(out, ins)
				out = append(out, tail...)
			default:
				out = append(out, unix.SockFilter{Code: it.op, K: it.k})
			}
		}
		if !grew {
			return out, nil
		}
	}
}
