//! A binary search over syscall numbers, put in front of seccompiler's rule chains.
//!
//! seccompiler compiles a filter into one linear chain: every syscall number is compared in
//! turn. The kernel pays for that length at attach time, not only per call: to build its
//! per-syscall action cache it runs the filter once for every syscall number (about 460 on
//! x86_64), and a number that no rule names walks the whole chain before reaching the default
//! action. With the runner's allowlist (about 130 syscalls) that made attaching a filter a
//! good part of a sandbox's start.
//!
//! The dispatch decides in about log2(n) comparisons: syscalls allowed whatever their arguments
//! return the matched action at once, syscalls with an action of their own ([`Rule::Fixed`])
//! return it, syscalls no rule names return the mismatch action, and only syscalls with argument
//! rules jump into seccompiler's chain, which then decides exactly as before. It goes right
//! after seccompiler's architecture check and syscall-number load, so it sees the same state.
//!
//! The chain behind it then needs only the rules on arguments (`filter::compile` gives it no
//! others): the kernel converts and JIT-compiles every instruction of a filter when it is
//! attached, so a shorter program is a cheaper start.

use seccompiler::{BpfProgram, sock_filter};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

/// Offset of the syscall number in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;

/// Keys per leaf of the search tree, compared one after the other.
const LEAF: usize = 4;

/// What the dispatch does with one syscall number that has rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Matched whatever the arguments.
    Always,
    /// Matched only with some arguments: seccompiler's chain decides.
    Arguments,
    /// This action (a `SECCOMP_RET_*` value), whatever the arguments; not in the chain at all.
    Fixed(u32),
}

/// One instruction of the dispatch, before the jumps into the chain are resolved.
enum Op {
    Raw(sock_filter),
    ToChain,
}

/// `program` (seccompiler's output for the [`Rule::Arguments`] among `rules`, with
/// `matched`/`mismatch` as its actions) with the dispatch for all of `rules` inserted after its
/// syscall-number load. `None` if its layout is not the expected one or a jump would not fit
/// BPF's 8-bit offsets; the caller then falls back to seccompiler's full chains.
pub(super) fn with_dispatch(
    program: BpfProgram,
    rules: &[(i64, Rule)],
    matched: u32,
    mismatch: u32,
) -> Option<BpfProgram> {
    // seccompiler's layout: arch load, arch check, kill, then the number load (`k == 0`).
    let load = program.iter().position(|insn| insn.code == BPF_LD_W_ABS && insn.k == NR_OFFSET)?;
    let mut keys: Vec<(u32, Rule)> = Vec::with_capacity(rules.len());
    for &(nr, rule) in rules {
        keys.push((u32::try_from(nr).ok()?, rule));
    }
    keys.sort_unstable_by_key(|&(nr, _)| nr);
    let unique = keys.len();
    keys.dedup_by_key(|&mut (nr, _)| nr);
    if keys.len() != unique {
        // One syscall with two rules: a caller's mistake; the chains alone cannot be wrong.
        return None;
    }
    let tree = search(&keys, matched, mismatch)?;
    let len = tree.len();
    let mut out = Vec::with_capacity(program.len() + len);
    out.extend_from_slice(&program[..=load]);
    for (index, op) in tree.into_iter().enumerate() {
        out.push(match op {
            Op::Raw(insn) => insn,
            // To the first instruction after the dispatch: the start of seccompiler's chains.
            Op::ToChain => jump(BPF_JMP_JA, (len - index - 1) as u32, 0, 0),
        });
    }
    // The chains, unless nothing jumps into them.
    if keys.iter().any(|&(_, rule)| rule == Rule::Arguments) {
        out.extend_from_slice(&program[load + 1..]);
    }
    Some(out)
}

/// The search tree for sorted `keys`, laid out node, left subtree, right subtree; `None` if a
/// subtree is too long for a conditional jump over it.
fn search(keys: &[(u32, Rule)], matched: u32, mismatch: u32) -> Option<Vec<Op>> {
    if keys.len() <= LEAF {
        let mut ops = Vec::with_capacity(2 * keys.len() + 1);
        for &(nr, rule) in keys {
            // Equal: the next instruction (the action); otherwise skip it.
            ops.push(Op::Raw(jump(BPF_JMP_JEQ_K, nr, 0, 1)));
            ops.push(match rule {
                Rule::Always => Op::Raw(jump(BPF_RET_K, matched, 0, 0)),
                Rule::Arguments => Op::ToChain,
                Rule::Fixed(action) => Op::Raw(jump(BPF_RET_K, action, 0, 0)),
            });
        }
        ops.push(Op::Raw(jump(BPF_RET_K, mismatch, 0, 0)));
        return Some(ops);
    }
    let middle = keys.len() / 2;
    let left = search(&keys[..middle], matched, mismatch)?;
    let right = search(&keys[middle..], matched, mismatch)?;
    let over_left = u8::try_from(left.len()).ok()?;
    let mut ops = Vec::with_capacity(1 + left.len() + right.len());
    // At or above the middle key: jump over the left subtree.
    ops.push(Op::Raw(jump(BPF_JMP_JGE_K, keys[middle].0, over_left, 0)));
    ops.extend(left);
    ops.extend(right);
    Some(ops)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
pub(super) mod tests {
    //! A small classic-BPF interpreter (the opcodes seccompiler and the dispatch emit), to check
    //! that every filter decides exactly as before for every syscall number and many arguments.

    use seccompiler::sock_filter;

    /// `struct seccomp_data` for x86_64.
    pub(crate) struct Data {
        pub nr: u32,
        pub arch: u32,
        pub args: [u64; 6],
    }

    /// Runs `program` on `data`: its action, and how many instructions it executed.
    pub(crate) fn run(program: &[sock_filter], data: &Data) -> (u32, usize) {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => data.nr,
                4 => data.arch,
                16..=63 => {
                    let arg = data.args[((offset - 16) / 8) as usize];
                    if offset.is_multiple_of(8) { arg as u32 } else { (arg >> 32) as u32 }
                }
                _ => panic!("load of seccomp_data offset {offset}"),
            }
        };
        let (mut pc, mut a) = (0usize, 0u32);
        for steps in 1.. {
            let insn = &program[pc];
            pc += 1;
            let branch = |taken: bool| if taken { insn.jt as usize } else { insn.jf as usize };
            match insn.code {
                0x20 => a = word(insn.k),
                0x54 => a &= insn.k,
                0x05 => pc += insn.k as usize,
                0x15 => pc += branch(a == insn.k),
                0x25 => pc += branch(a > insn.k),
                0x35 => pc += branch(a >= insn.k),
                0x45 => pc += branch(a & insn.k != 0),
                0x06 => return (insn.k, steps),
                code => panic!("opcode {code:#x} not interpreted"),
            }
        }
        unreachable!("a program ends with a return")
    }
}
