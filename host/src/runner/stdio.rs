//! The lean path for the guest's stdio: `fd_read` and `fd_write` go straight between the
//! pipes and guest memory.
//!
//! wasmtime-wasi's preview1 layer serves stdio through its generic stream machinery: each call
//! enters a tokio runtime, each read allocates and zeroes a host buffer of the guest's requested
//! size and copies it into guest memory, and each write is cut into 4 KiB chunks, each written
//! and flushed separately. For a guest whose whole job is talking over stdin and stdout that is
//! the hot path, so here each call is one `read(2)` into guest memory or one `writev(2)` from it.
//!
//! This replaces `fd_read`, `fd_write`, `fd_close` and `fd_renumber` outright, so it is only
//! installed when the guest was granted no directories: then fds 0, 1 and 2 are the only fds a
//! preview1 guest can ever hold, and a small table of those three is the whole truth. (A host
//! function cannot delegate to wasmtime-wasi's own implementation: that one finds the guest's
//! memory through its caller, which a host-to-host call does not have.) With directories
//! granted, wasmtime-wasi serves everything.
//!
//! Closing fd 1 closes the runner's fd 1, so the parent sees EOF while the guest runs on, which
//! wasmtime-wasi does not do. Errors are preview1 errno values, never `wasmtime::Error`s, so
//! nothing on this path allocates an error or captures a backtrace.

use rustix::event::{PollFd, PollFlags};
use rustix::fd::BorrowedFd;
use std::io::IoSlice;
use wasmtime::{Caller, Linker, Memory, Store};

const WASI: &str = "wasi_snapshot_preview1";

/// preview1 errno values used here.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const IO: i32 = 29;
    pub const PIPE: i32 = 64;
}

/// Per-store state of the fast path.
#[derive(Default)]
pub(crate) struct FastStdio {
    memory: Option<Memory>,
    /// For WASI fds 0, 1, 2: the runner fd behind it, or `None` once closed.
    fds: [Option<i32>; 3],
}

/// Store data that carries a [`FastStdio`].
pub(crate) trait HasFastStdio: 'static {
    fn fast_stdio(&mut self) -> &mut FastStdio;
}

/// Replaces wasmtime-wasi's `fd_read`, `fd_write`, `fd_close` and `fd_renumber` in `linker`.
/// Only for guests without preopened directories (see the module docs).
pub(crate) fn install<T: HasFastStdio>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(WASI, "fd_read", |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nread: i32| {
        read(&mut caller, fd, iovs, iovs_len, nread)
    })?;
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
            write(&mut caller, fd, iovs, iovs_len, nwritten)
        },
    )?;
    linker
        .func_wrap(WASI, "fd_close", |mut caller: Caller<'_, T>, fd: i32| close(caller.data_mut().fast_stdio(), fd))?;
    linker.func_wrap(WASI, "fd_renumber", |mut caller: Caller<'_, T>, from: i32, to: i32| {
        renumber(caller.data_mut().fast_stdio(), from, to)
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Gives the fast path the instance's memory, once it exists.
pub(crate) fn activate<T: HasFastStdio>(store: &mut Store<T>, memory: Option<Memory>) {
    let state = store.data_mut().fast_stdio();
    state.memory = memory;
    state.fds = [Some(0), Some(1), Some(2)];
}

/// The runner fd behind WASI fd `fd`, and the guest memory.
fn resolve<T: HasFastStdio>(caller: &mut Caller<'_, T>, fd: i32) -> Result<(i32, Memory), i32> {
    let state = caller.data_mut().fast_stdio();
    let runner_fd = usize::try_from(fd).ok().and_then(|fd| state.fds.get(fd).copied().flatten()).ok_or(errno::BADF)?;
    Ok((runner_fd, state.memory.ok_or(errno::FAULT)?))
}

fn close(state: &mut FastStdio, fd: i32) -> i32 {
    let Some(slot) = usize::try_from(fd).ok().and_then(|fd| state.fds.get_mut(fd)) else { return errno::BADF };
    let Some(runner_fd) = slot.take() else { return errno::BADF };
    if !state.fds.contains(&Some(runner_fd)) {
        // SAFETY: no WASI fd refers to it any more, and nothing else in the runner uses it.
        drop(unsafe { <rustix::fd::OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(runner_fd) });
    }
    errno::SUCCESS
}

fn renumber(state: &mut FastStdio, from: i32, to: i32) -> i32 {
    let slot = |fd: i32| usize::try_from(fd).ok().filter(|&fd| fd < 3);
    let (Some(from_slot), Some(to_slot)) = (slot(from), slot(to)) else { return errno::BADF };
    if state.fds[from_slot].is_none() || state.fds[to_slot].is_none() {
        return errno::BADF;
    }
    if from_slot != to_slot {
        let moved = state.fds[from_slot];
        close(state, to);
        state.fds[to_slot] = moved;
        state.fds[from_slot] = None;
    }
    errno::SUCCESS
}

/// One iovec of the guest: (offset, length) in its memory.
fn iovec(memory: &[u8], iovs: i32, index: i32) -> Option<(usize, usize)> {
    let at = (iovs as u32 as usize).checked_add(index as u32 as usize * 8)?;
    let raw = memory.get(at..at + 8)?;
    let base = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(raw[4..].try_into().unwrap()) as usize;
    memory.get(base..base.checked_add(len)?)?;
    Some((base, len))
}

fn store_u32(memory: &mut [u8], at: i32, value: usize) -> bool {
    let at = at as u32 as usize;
    match memory.get_mut(at..at.wrapping_add(4)) {
        Some(slot) => {
            slot.copy_from_slice(&(value as u32).to_le_bytes());
            true
        }
        None => false,
    }
}

/// `fd_read`, into the first non-empty buffer (a short read is always allowed).
fn read<T: HasFastStdio>(caller: &mut Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nread: i32) -> i32 {
    let (runner_fd, memory) = match resolve(caller, fd) {
        Ok(resolved) => resolved,
        Err(errno) => return errno,
    };
    let data = memory.data_mut(&mut *caller);
    let mut target = None;
    for index in 0..iovs_len.max(0) {
        match iovec(data, iovs, index) {
            Some((_, 0)) => continue,
            Some(buffer) => {
                target = Some(buffer);
                break;
            }
            None => return errno::FAULT,
        }
    }
    let read = match target {
        Some((base, len)) => {
            match retry(runner_fd, PollFlags::IN, || rustix::io::read(stdio_fd(runner_fd), &mut data[base..base + len]))
            {
                Ok(n) => n,
                Err(errno) => return errno,
            }
        }
        None => 0,
    };
    if store_u32(data, nread, read) { errno::SUCCESS } else { errno::FAULT }
}

/// At most this many buffers go into one `writev`; more make a short write, which preview1
/// allows and wasi-libc retries. A fixed array keeps the hot path free of allocations.
const MAX_IOVECS: usize = 16;

/// `fd_write`, the buffers in one `writev`.
fn write<T: HasFastStdio>(caller: &mut Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32 {
    let (runner_fd, memory) = match resolve(caller, fd) {
        Ok(resolved) => resolved,
        Err(errno) => return errno,
    };
    let data = memory.data_mut(&mut *caller);
    let written = {
        let view: &[u8] = data;
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for index in 0..iovs_len.max(0) {
            match iovec(view, iovs, index) {
                Some((_, 0)) => {}
                Some((base, len)) if count < MAX_IOVECS => {
                    slices[count] = IoSlice::new(&view[base..base + len]);
                    count += 1;
                }
                Some(_) => break,
                None => return errno::FAULT,
            }
        }
        if count == 0 {
            0
        } else {
            match retry(runner_fd, PollFlags::OUT, || rustix::io::writev(stdio_fd(runner_fd), &slices[..count])) {
                Ok(n) => n,
                Err(errno) => return errno,
            }
        }
    };
    if store_u32(data, nwritten, written) { errno::SUCCESS } else { errno::FAULT }
}

fn stdio_fd(fd: i32) -> BorrowedFd<'static> {
    debug_assert!((0..3).contains(&fd));
    // SAFETY: fds 0, 1 and 2 are open for the life of the runner (see `guest::wasi_context`).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Runs a read or write, retrying on EINTR and waiting out EAGAIN (an inherited stdio fd may
/// be non-blocking), and maps failures to preview1 errno values.
fn retry(fd: i32, ready: PollFlags, mut io: impl FnMut() -> rustix::io::Result<usize>) -> Result<usize, i32> {
    loop {
        match io() {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => {
                let _ = rustix::event::poll(&mut [PollFd::from_borrowed_fd(stdio_fd(fd), ready)], None);
            }
            Err(rustix::io::Errno::PIPE) => return Err(errno::PIPE),
            Err(rustix::io::Errno::BADF) => return Err(errno::BADF),
            Err(_) => return Err(errno::IO),
        }
    }
}
