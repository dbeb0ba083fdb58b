// Package seccomp compiles an OCI seccomp policy (specs.LinuxSeccomp) to a
// classic BPF filter and installs it, in pure Go (no libseccomp, no cgo), and
// implements the runtime's side of the OCI seccomp-notify protocol
// (linux.seccomp.listenerPath).
//
// Filter shape (per ABI, x86 only: x86_64, x32 and i386):
//
//	load arch; dispatch to the ABI's section (unknown arch -> bad-arch action)
//	section: load nr; binary search over number ranges -> an action, or a
//	         rule block that compares arguments (64-bit compares are done on
//	         the high and low words) and falls back to the syscall's
//	         unconditional action or the default.
//
// Semantics follow runc+libseccomp where the OCI spec is silent:
//   - unknown syscall names are skipped (per ABI), not an error;
//   - a rule whose action equals the default action is dropped;
//   - several args on one rule are ANDed, except when two of them test the
//     same argument index: then each arg becomes its own rule (ORed), as runc
//     does for profiles like Docker's;
//   - conditional rules are tried in spec order, first match wins; a
//     syscall's unconditional rule (first in spec order) is its fallback;
//   - with a denying default action, numbers above every syscall the
//     policy names get ENOSYS (runc's "enosys stub"), so libc falls back
//     from syscalls newer than the profile instead of failing with EPERM;
//   - architectures not listed (and x32 when only x86_64 is listed) get
//     SECCOMP_RET_KILL_PROCESS, as libseccomp's bad-arch action does.
package seccomp

import (
	"errors"
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Program is a compiled filter.
type Program struct {
	Filter []unix.SockFilter
	// Flags are the SECCOMP_FILTER_FLAG_* bits the policy asked for
	// (NEW_LISTENER is added by Install when Notify is set).
	Flags uint
	// Notify is true when some rule returns SECCOMP_RET_USER_NOTIF: the
	// filter then needs a listener fd.
	Notify bool
}

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// Compile turns an OCI seccomp policy into a BPF program.
func Compile(cfg *specs.LinuxSeccomp) (*Program, error) {
	if cfg == nil {
		return nil, errors.New("seccomp: no policy to compile")
	}
	def, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	flags, err := parseFlags(cfg.Flags)
	if err != nil {
		return nil, err
	}
	abis, err := selectABIs(cfg.Architectures)
	if err != nil {
		return nil, err
	}
	rules, err := normalizeRules(cfg.Syscalls, def)
	if err != nil {
		return nil, err
	}
	c := &compiler{def: def, rules: rules}
	prog := &Program{Flags: flags}
	for _, r := range rules {
		if r.action == unix.SECCOMP_RET_USER_NOTIF {
			prog.Notify = true
		}
	}
	if def == unix.SECCOMP_RET_USER_NOTIF {
		prog.Notify = true
	}
	if prog.Filter, err = c.program(abis); err != nil {
		return nil, err
	}
	return prog, nil
}

// rule is one normalized OCI rule: a set of syscall names, the ANDed arg
// conditions (empty = unconditional) and the action.
type rule struct {
	names  []string
	args   []specs.LinuxSeccompArg
	action uint32
}

func normalizeRules(in []specs.LinuxSyscall, def uint32) ([]rule, error) {
	var out []rule
	for i, sc := range in {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, sc.Names, err)
		}
		if act == def {
			continue // redundant: libseccomp refuses it, runc skips it
		}
		for _, a := range sc.Args {
			if a.Index >= 6 {
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: argument index %d out of range (0-5)", i, sc.Names, a.Index)
			}
			if _, err := opOf(a.Op); err != nil {
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, sc.Names, err)
			}
		}
		if sameIndexTwice(sc.Args) {
			for _, a := range sc.Args {
				out = append(out, rule{names: sc.Names, args: []specs.LinuxSeccompArg{a}, action: act})
			}
			continue
		}
		out = append(out, rule{names: sc.Names, args: sc.Args, action: act})
	}
	return out, nil
}

func sameIndexTwice(args []specs.LinuxSeccompArg) bool {
	var seen [6]bool
	for _, a := range args {
		if seen[a.Index] {
			return true
		}
		seen[a.Index] = true
	}
	return false
}

// selectABIs maps spec architectures to the x86 ABIs this package can
// filter. x86_64 (native) is always included, as libseccomp does; other
// CPU families cannot run here and are ignored.
func selectABIs(archs []specs.Arch) ([]abi, error) {
	want := map[specs.Arch]bool{specs.ArchX86_64: true}
	for _, a := range archs {
		want[a] = true
	}
	var out []abi
	for _, a := range []abi{abiX86_64, abiX32, abiI386} {
		if want[a.arch] {
			out = append(out, a)
		}
	}
	return out, nil
}

// syscallBlock is what one syscall number does on one ABI: conditional
// rules in order, then the fallback action.
type syscallBlock struct {
	nr       uint32
	abi      abi
	cond     []rule
	uncond   bool // an unconditional rule set fallback
	fallback uint32
	lbl      label
}

type compiler struct {
	a     asm
	def   uint32
	rules []rule
}

func (c *compiler) program(abis []abi) ([]unix.SockFilter, error) {
	has := map[specs.Arch]bool{}
	for _, x := range abis {
		has[x.arch] = true
	}
	badArch := uint32(unix.SECCOMP_RET_KILL_PROCESS)
	c.a.loadWord(offArch)
	lblX86_64, lblI386 := c.a.newLabel(), c.a.newLabel()
	c.a.jcc(unix.BPF_JEQ, unix.AUDIT_ARCH_X86_64, lblX86_64, fall)
	if has[specs.ArchX86] {
		c.a.jcc(unix.BPF_JEQ, unix.AUDIT_ARCH_I386, lblI386, fall)
	}
	c.a.ret(badArch)

	var blocks []*syscallBlock
	// x86_64 and x32 share the audit arch; the x32 bit splits them.
	c.a.mark(lblX86_64)
	c.a.loadWord(offNr)
	lblX32 := c.a.newLabel()
	if has[specs.ArchX32] {
		c.a.jcc(unix.BPF_JGE, x32SyscallBit, lblX32, fall)
	} else {
		lblBad := c.a.newLabel()
		c.a.jcc(unix.BPF_JGE, x32SyscallBit, lblBad, fall)
		blocks = append(blocks, c.section(abiX86_64)...)
		c.a.mark(lblBad)
		c.a.ret(badArch)
	}
	if has[specs.ArchX32] {
		blocks = append(blocks, c.section(abiX86_64)...)
		c.a.mark(lblX32)
		blocks = append(blocks, c.section(abiX32)...)
	}
	if has[specs.ArchX86] {
		c.a.mark(lblI386)
		c.a.loadWord(offNr)
		blocks = append(blocks, c.section(abiI386)...)
	}
	for _, b := range blocks {
		c.block(b)
	}
	return c.a.assemble()
}

// interval is a range of syscall numbers [lo, hi) with one outcome: a
// return value, or (blk != nil) a rule block.
type interval struct {
	lo, hi uint64
	ret    uint32
	blk    *syscallBlock
}

// section emits the dispatch for one ABI (A holds nr) and returns the rule
// blocks it jumps to, to be emitted later.
func (c *compiler) section(x abi) []*syscallBlock {
	byNr := map[uint32]*syscallBlock{}
	var maxNamed uint64
	named := false
	for _, r := range c.rules {
		for _, name := range r.names {
			nr, ok := x.table[name]
			if !ok {
				continue // unknown on this ABI: skipped, like libseccomp
			}
			named = true
			maxNamed = max(maxNamed, uint64(nr))
			b := byNr[nr]
			if b == nil {
				b = &syscallBlock{nr: nr, abi: x, fallback: c.def}
				byNr[nr] = b
			}
			switch {
			case len(r.args) > 0:
				b.cond = append(b.cond, r)
			case !b.uncond:
				b.uncond, b.fallback = true, r.action
			}
		}
	}
	var blocks []*syscallBlock
	var ivs []interval
	for _, b := range byNr {
		iv := interval{lo: uint64(b.nr), hi: uint64(b.nr) + 1, ret: b.fallback}
		if len(b.cond) > 0 {
			b.lbl = c.a.newLabel()
			blocks = append(blocks, b)
			iv.blk = b
		}
		ivs = append(ivs, iv)
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].lo < ivs[j].lo })
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].nr < blocks[j].nr })

	// Gaps get the default action, except above the newest syscall the
	// policy names when the default denies: ENOSYS there.
	above := c.def
	if named && denies(c.def) {
		above = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	split := x.hi
	if named {
		split = min(x.hi, maxNamed+1)
	}
	var full []interval
	gap := func(lo, hi uint64) {
		if lo < split {
			full = append(full, interval{lo: lo, hi: min(hi, split), ret: c.def})
		}
		if hi > split {
			full = append(full, interval{lo: max(lo, split), hi: hi, ret: above})
		}
	}
	next := x.lo
	for _, iv := range ivs {
		if iv.lo > next {
			gap(next, iv.lo)
		}
		full = append(full, iv)
		next = iv.hi
	}
	if next < x.hi {
		gap(next, x.hi)
	}
	c.tree(mergeIntervals(full))
	return blocks
}

// denies reports whether a default action refuses the syscall.
func denies(act uint32) bool {
	switch act & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE, unix.SECCOMP_RET_USER_NOTIF:
		return false
	}
	return true
}

func mergeIntervals(in []interval) []interval {
	var out []interval
	for _, iv := range in {
		if iv.hi <= iv.lo {
			continue
		}
		if n := len(out); n > 0 && out[n-1].blk == nil && iv.blk == nil && out[n-1].ret == iv.ret && out[n-1].hi == iv.lo {
			out[n-1].hi = iv.hi
			continue
		}
		out = append(out, iv)
	}
	return out
}

// tree emits a balanced binary search over the intervals (A holds nr).
func (c *compiler) tree(ivs []interval) {
	if len(ivs) == 1 {
		if ivs[0].blk != nil {
			c.a.jmp(ivs[0].blk.lbl)
		} else {
			c.a.ret(ivs[0].ret)
		}
		return
	}
	mid := len(ivs) / 2
	right := c.a.newLabel()
	c.a.jcc(unix.BPF_JGE, uint32(ivs[mid].lo), right, fall)
	c.tree(ivs[:mid])
	c.a.mark(right)
	c.tree(ivs[mid:])
}

// block emits one syscall's conditional rules.
func (c *compiler) block(b *syscallBlock) {
	c.a.mark(b.lbl)
	for _, r := range b.cond {
		next := c.a.newLabel()
		for _, arg := range r.args {
			c.cond(arg, b.abi.argBits, next)
		}
		c.a.ret(r.action)
		c.a.mark(next)
	}
	c.a.ret(b.fallback)
}
