//! Which functions a start runs, for laying them out together in the `wasmpipe` binary (see
//! `cli/startup-order/README.md`). Compiled only with `--cfg wasmpipe_startup_trace` and
//! `-Z instrument-mcount`, which makes every function call `mcount` on entry; never in a
//! normal build.
//!
//! `mcount` is written in assembly so that it is not instrumented itself: it appends its
//! return address (a point inside the function just entered) to a fixed buffer. [`dump`]
//! writes each distinct address once, in first-entry order, with the address of `dump` itself
//! so that a script can undo the load address.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Room for this many function entries; later ones are not recorded.
const CAPACITY: usize = 1 << 23;

#[unsafe(no_mangle)]
static WASMPIPE_TRACE_NEXT: AtomicUsize = AtomicUsize::new(0);

#[unsafe(no_mangle)]
static mut WASMPIPE_TRACE_ENTRIES: [usize; CAPACITY] = [0; CAPACITY];

// Called on every function entry, with the argument registers live: it may touch only the
// registers it saves.
std::arch::global_asm!(
    ".globl mcount",
    ".type mcount,@function",
    "mcount:",
    "push rax",
    "push rcx",
    "push rdx",
    "mov rax, [rsp+24]",
    "mov rcx, 1",
    "lock xadd [rip+WASMPIPE_TRACE_NEXT], rcx",
    "cmp rcx, {capacity}",
    "jae 2f",
    "lea rdx, [rip+WASMPIPE_TRACE_ENTRIES]",
    "mov [rdx+rcx*8], rax",
    "2:",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "ret",
    capacity = const CAPACITY,
);

/// Stops recording and writes `T <label> <hex address>` lines to fd 2 (which the runner may
/// still write after its seccomp filter), then `T <label> anchor <address of dump>`.
pub fn dump(label: &str) {
    let recorded = WASMPIPE_TRACE_NEXT.swap(usize::MAX / 2, Ordering::SeqCst).min(CAPACITY);
    // SAFETY: recording has stopped (the index is past the capacity), so nothing writes the
    // buffer any more.
    let entries = unsafe { &*std::ptr::addr_of!(WASMPIPE_TRACE_ENTRIES) };
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    for &address in &entries[..recorded] {
        if seen.insert(address) {
            text.push_str(&format!("T {label} {address:x}\n"));
        }
    }
    text.push_str(&format!("T {label} anchor {:x}\n", dump as fn(&str) as usize));
    let mut bytes = text.as_bytes();
    while !bytes.is_empty() {
        // SAFETY: a write of a live buffer to fd 2.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written <= 0 {
            break;
        }
        bytes = &bytes[written as usize..];
    }
}
