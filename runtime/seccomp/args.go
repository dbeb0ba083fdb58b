package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Actions, operators and flags: the OCI names mapped to kernel values.

// action maps an OCI action (with its errnoRet) to a SECCOMP_RET_* value.
// errnoRet defaults to EPERM, as in runc.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		if *errnoRet > 0xffff {
			return 0, fmt.Errorf("errnoRet %d does not fit in 16 bits", *errnoRet)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | data, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | data, nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

func parseFlags(flags []specs.LinuxSeccompFlag) (uint, error) {
	var out uint
	for _, f := range flags {
		switch f {
		case "SECCOMP_FILTER_FLAG_TSYNC":
			out |= unix.SECCOMP_FILTER_FLAG_TSYNC
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			out |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
		default:
			return 0, fmt.Errorf("seccomp: unknown flag %q", f)
		}
	}
	return out, nil
}

type cmpOp int

const (
	opNE cmpOp = iota
	opLT
	opLE
	opEQ
	opGE
	opGT
	opMaskedEQ
)

func opOf(op specs.LinuxSeccompOperator) (cmpOp, error) {
	switch op {
	case specs.OpNotEqual:
		return opNE, nil
	case specs.OpLessThan:
		return opLT, nil
	case specs.OpLessEqual:
		return opLE, nil
	case specs.OpEqualTo:
		return opEQ, nil
	case specs.OpGreaterEqual:
		return opGE, nil
	case specs.OpGreaterThan:
		return opGT, nil
	case specs.OpMaskedEqual:
		return opMaskedEQ, nil
	}
	return 0, fmt.Errorf("unknown operator %q", op)
}

// cond emits one argument comparison: it falls through when the argument
// matches and jumps to fail otherwise. Comparisons are unsigned. On 64-bit
// ABIs both words of the argument are compared (high word first); on 32-bit
// ABIs only the low word, with the value truncated to 32 bits as libseccomp
// does. For MASKED_EQ, Value is the mask and ValueTwo the datum.
func (c *compiler) cond(arg specs.LinuxSeccompArg, bits int, fail label) {
	op, _ := opOf(arg.Op) // validated in normalizeRules
	lo := offArgs + 8*uint32(arg.Index)
	hi := lo + 4
	v, v2 := arg.Value, arg.ValueTwo
	vhi, vlo := uint32(v>>32), uint32(v)
	a := &c.a
	pass := a.newLabel()
	if bits == 32 {
		a.loadWord(lo)
		switch op {
		case opEQ:
			a.jcc(unix.BPF_JEQ, vlo, fall, fail)
		case opNE:
			a.jcc(unix.BPF_JEQ, vlo, fail, fall)
		case opGT:
			a.jcc(unix.BPF_JGT, vlo, fall, fail)
		case opGE:
			a.jcc(unix.BPF_JGE, vlo, fall, fail)
		case opLT:
			a.jcc(unix.BPF_JGE, vlo, fail, fall)
		case opLE:
			a.jcc(unix.BPF_JGT, vlo, fail, fall)
		case opMaskedEQ:
			a.and(vlo)
			a.jcc(unix.BPF_JEQ, uint32(v2), fall, fail)
		}
		a.mark(pass)
		return
	}
	checkLo := a.newLabel()
	switch op {
	case opEQ: // hi == vhi && lo == vlo
		a.loadWord(hi)
		a.jcc(unix.BPF_JEQ, vhi, fall, fail)
		a.loadWord(lo)
		a.jcc(unix.BPF_JEQ, vlo, fall, fail)
	case opNE: // hi != vhi || lo != vlo
		a.loadWord(hi)
		a.jcc(unix.BPF_JEQ, vhi, fall, pass)
		a.loadWord(lo)
		a.jcc(unix.BPF_JEQ, vlo, fail, fall)
	case opGT: // hi > vhi || (hi == vhi && lo > vlo)
		a.loadWord(hi)
		a.jcc(unix.BPF_JGT, vhi, pass, fall)
		a.jcc(unix.BPF_JEQ, vhi, checkLo, fail)
		a.mark(checkLo)
		a.loadWord(lo)
		a.jcc(unix.BPF_JGT, vlo, fall, fail)
	case opGE: // hi > vhi || (hi == vhi && lo >= vlo)
		a.loadWord(hi)
		a.jcc(unix.BPF_JGT, vhi, pass, fall)
		a.jcc(unix.BPF_JEQ, vhi, checkLo, fail)
		a.mark(checkLo)
		a.loadWord(lo)
		a.jcc(unix.BPF_JGE, vlo, fall, fail)
	case opLT: // hi < vhi || (hi == vhi && lo < vlo)
		a.loadWord(hi)
		a.jcc(unix.BPF_JGE, vhi, fall, pass)
		a.jcc(unix.BPF_JEQ, vhi, checkLo, fail)
		a.mark(checkLo)
		a.loadWord(lo)
		a.jcc(unix.BPF_JGE, vlo, fail, fall)
	case opLE: // hi < vhi || (hi == vhi && lo <= vlo)
		a.loadWord(hi)
		a.jcc(unix.BPF_JGE, vhi, fall, pass)
		a.jcc(unix.BPF_JEQ, vhi, checkLo, fail)
		a.mark(checkLo)
		a.loadWord(lo)
		a.jcc(unix.BPF_JGT, vlo, fail, fall)
	case opMaskedEQ: // (arg & v) == v2, word by word
		a.loadWord(hi)
		a.and(vhi)
		a.jcc(unix.BPF_JEQ, uint32(v2>>32), fall, fail)
		a.loadWord(lo)
		a.and(vlo)
		a.jcc(unix.BPF_JEQ, uint32(v2), fall, fail)
	}
	a.mark(pass)
}
