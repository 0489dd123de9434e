//! The lean path for the guest's stdio: `fd_read` and `fd_write` go straight between the
//! pipes and guest memory, and closing a stdio fd closes it for the parent too.
//!
//! wasmtime-wasi's preview1 layer serves stdio through its generic stream machinery: each call
//! enters a tokio runtime, each read allocates and zeroes a host buffer and copies it into guest
//! memory, and each write is cut into 4 KiB chunks, each written and flushed separately. For a
//! guest whose whole job is talking over stdin and stdout that is the hot path, so without
//! granted directories (when fds 0, 1 and 2 are the only fds a preview1 guest can ever hold)
//! each `fd_read` here is one `read(2)` into guest memory and each `fd_write` one `write(2)` from
//! it. (A host function cannot delegate to wasmtime-wasi's own `fd_read`: that one finds the
//! guest's memory through its caller, which a host-to-host call does not have.)
//!
//! wasmtime-wasi is the reference, call for call (the differential test in
//! `tests/tests/sandbox_fds.rs` makes the same calls both ways): the same argument checks with
//! wiggle's own types and in the same order (a misaligned or out-of-bounds pointer traps, with
//! wiggle's message; the per-call host budget gives `NOMEM`), only the first non-empty buffer
//! is read or written, a read takes at most 64 KiB, and the fd table is wasmtime-wasi's:
//! `fd_close` and `fd_renumber` are its own, called directly, with this path's copy of the
//! table following. What remains different is invisible to the guest: `EINTR` is retried, and
//! an `EAGAIN` from an inherited non-blocking fd is waited out instead of returned.
//!
//! On both paths (with and without grants), closing the last WASI fd that refers to one of the
//! runner's fds 0-2 closes that runner fd: a guest that closes its stdout is EOF for the parent
//! while it runs on, which wasmtime-wasi alone would not do (its streams share the fd with the
//! context, which lives until the runner exits).

use rustix::event::{PollFd, PollFlags};
use rustix::fd::BorrowedFd;
use wasmtime::{AsContextMut, Caller, Linker, Memory, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{self, Ciovec, Errno, Iovec};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestError, GuestMemory, GuestPtr, GuestType};

const WASI: &str = "wasi_snapshot_preview1";

/// The most one `fd_read` on stdin returns, as in wasmtime-wasi (its `MAX_READ_SIZE_ALLOC`).
const MAX_READ: u32 = 64 * 1024;

/// Per-store state of the stdio paths.
#[derive(Default)]
pub(crate) struct FastStdio {
    memory: Option<Memory>,
    /// The WASI fds that wasmtime-wasi's table holds as stdio descriptors, each with the runner
    /// fd behind it (0, 1 or 2). At most three: `fd_renumber` moves entries, never copies them.
    fds: [Option<(u32, i32)>; 3],
}

impl FastStdio {
    /// The runner fd behind WASI fd `fd`, if it is a stdio descriptor.
    fn runner_fd(&self, fd: i32) -> Option<i32> {
        let fd = u32::try_from(fd).ok()?;
        self.fds.iter().flatten().find(|(wasi, _)| *wasi == fd).map(|(_, runner)| *runner)
    }

    /// WASI fd `fd` was closed: closes the runner fd behind it once no WASI fd refers to it.
    fn forget(&mut self, fd: u32) {
        let Some(slot) = self.fds.iter_mut().find(|slot| slot.is_some_and(|(wasi, _)| wasi == fd)) else { return };
        let Some((_, runner_fd)) = slot.take() else { return };
        if !self.fds.iter().flatten().any(|(_, runner)| *runner == runner_fd) {
            // SAFETY: no WASI fd refers to it any more, and nothing else in the runner reads or
            // writes fds 0-2 (wasmtime-wasi's streams on it are unreachable once its table
            // entry is gone; the store is never dropped, see `guest::Ready::run`).
            drop(unsafe { <rustix::fd::OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(runner_fd) });
        }
    }

    /// WASI fd `from` became `to` (`to` was closed first).
    fn renumber(&mut self, from: u32, to: u32) {
        self.forget(to);
        for (wasi, _) in self.fds.iter_mut().flatten() {
            if *wasi == from {
                *wasi = to;
            }
        }
    }
}

/// Store data that carries a [`FastStdio`] and the WASI context it mirrors.
pub(crate) trait HasFastStdio: 'static {
    fn fast_stdio(&mut self) -> &mut FastStdio;
    fn wasi(&mut self) -> &mut WasiP1Ctx;
}

/// Shadows wasmtime-wasi's `fd_close` and `fd_renumber` in `linker` with versions that also
/// close the runner's stdio fds (see the module docs); with `fast`, also its `fd_read` and
/// `fd_write`, which is only right when no directory is granted.
pub(crate) fn install<T: HasFastStdio>(linker: &mut Linker<T>, fast: bool) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(WASI, "fd_close", |mut caller: Caller<'_, T>, fd: i32| close(caller.data_mut(), fd))?;
    linker.func_wrap(WASI, "fd_renumber", |mut caller: Caller<'_, T>, from: i32, to: i32| {
        renumber(caller.data_mut(), from, to)
    })?;
    if fast {
        linker.func_wrap(
            WASI,
            "fd_read",
            |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nread: i32| {
                read(&mut caller, fd, iovs, iovs_len, nread)
            },
        )?;
        linker.func_wrap(
            WASI,
            "fd_write",
            |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
                write(&mut caller, fd, iovs, iovs_len, nwritten)
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Gives the stdio paths the instance's memory, once it exists, and the table wasmtime-wasi
/// starts with.
pub(crate) fn activate<T: HasFastStdio>(store: &mut Store<T>, memory: Option<Memory>) {
    let state = store.data_mut().fast_stdio();
    state.memory = memory;
    state.fds = [Some((0, 0)), Some((1, 1)), Some((2, 2))];
}

/// A preview1 result as the guest sees it: `Ok(errno)`, or `Err` for a trap, exactly as
/// wasmtime-wasi's generated bindings turn it.
fn errno_of<V>(result: Result<V, types::Error>) -> wasmtime::Result<i32> {
    match result {
        Ok(_) => Ok(0),
        Err(error) => error.downcast().map(|errno: Errno| errno as i32),
    }
}

/// A guest-memory error: wasmtime-wasi traps on bad pointers and gives errno values for the
/// rest, through the same conversion used here.
fn guest_error(error: GuestError) -> wasmtime::Result<i32> {
    errno_of::<()>(Err(types::Error::from(error)))
}

fn close<T: HasFastStdio>(state: &mut T, fd: i32) -> wasmtime::Result<i32> {
    let closed = wasmtime_wasi::runtime::in_tokio(state.wasi().fd_close(&mut no_memory(), types::Fd::from(fd as u32)));
    let errno = errno_of(closed)?;
    if errno == 0 {
        state.fast_stdio().forget(fd as u32);
    }
    Ok(errno)
}

fn renumber<T: HasFastStdio>(state: &mut T, from: i32, to: i32) -> wasmtime::Result<i32> {
    let (from, to) = (from as u32, to as u32);
    let moved = wasmtime_wasi::runtime::in_tokio(state.wasi().fd_renumber(
        &mut no_memory(),
        types::Fd::from(from),
        types::Fd::from(to),
    ));
    let errno = errno_of(moved)?;
    if errno == 0 && from != to {
        state.fast_stdio().renumber(from, to);
    }
    Ok(errno)
}

/// `fd_close` and `fd_renumber` take no pointers: they never touch guest memory.
fn no_memory() -> GuestMemory<'static> {
    GuestMemory::Unshared(&mut [])
}

/// The first non-empty buffer of an iovec array, or an empty one, after charging the per-call
/// host budget for the array and that buffer: wasmtime-wasi's `first_non_empty_(c)iovec`.
fn first_non_empty<V: GuestType + IoVec>(
    memory: &GuestMemory<'_>,
    iovs: i32,
    iovs_len: i32,
    mut fuel: usize,
) -> Result<GuestPtr<[u8]>, types::Error> {
    let iovs = GuestPtr::<[V]>::new((iovs as u32, iovs_len as u32));
    let mut consume = |bytes: Option<usize>| match bytes {
        Some(bytes) if bytes <= fuel => {
            fuel -= bytes;
            Ok(())
        }
        Some(_) => Err(types::Error::from(Errno::Nomem)),
        None => Err(types::Error::from(Errno::Overflow)),
    };
    consume((iovs.len() as usize).checked_mul(size_of::<V>()))?;
    for iov in iovs.iter() {
        let (base, len) = memory.read(iov?)?.parts();
        if len == 0 {
            continue;
        }
        consume(Some(len as usize))?;
        return Ok(base.as_array(len));
    }
    Ok(GuestPtr::new((0, 0)))
}

/// `Iovec` and `Ciovec` alike.
trait IoVec {
    fn parts(self) -> (GuestPtr<u8>, u32);
}

impl IoVec for Iovec {
    fn parts(self) -> (GuestPtr<u8>, u32) {
        (self.buf, self.buf_len)
    }
}

impl IoVec for Ciovec {
    fn parts(self) -> (GuestPtr<u8>, u32) {
        (self.buf, self.buf_len)
    }
}

/// The instance's memory, or the trap wasmtime-wasi gives without one.
fn memory_of<T: HasFastStdio>(caller: &mut Caller<'_, T>) -> wasmtime::Result<Memory> {
    caller.data_mut().fast_stdio().memory.ok_or_else(|| wasmtime::format_err!("missing required memory export"))
}

/// `fd_read` from stdin into the first non-empty buffer, at most [`MAX_READ`] bytes.
fn read<T: HasFastStdio>(
    caller: &mut Caller<'_, T>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> wasmtime::Result<i32> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let memory = memory_of(caller)?;
    let runner_fd = caller.data_mut().fast_stdio().runner_fd(fd);
    let mut memory = GuestMemory::Unshared(memory.data_mut(&mut *caller));
    let buffer = match first_non_empty::<Iovec>(&memory, iovs, iovs_len, fuel) {
        Ok(buffer) => buffer,
        Err(error) => return errno_of::<()>(Err(error)),
    };
    if runner_fd != Some(0) {
        return Ok(Errno::Badf as i32);
    }
    let want = buffer.len().min(MAX_READ);
    let Some(target) = buffer.get_range(0..want) else { return guest_error(GuestError::PtrOverflow) };
    let n = match memory.as_slice_mut(target) {
        Ok(Some(slice)) => match retry(0, PollFlags::IN, || rustix::io::read(stdio_fd(0), &mut *slice)) {
            Ok(n) => n,
            Err(errno) => return Ok(errno),
        },
        // Not all of it is guest memory: wasmtime-wasi reads into a host buffer first and
        // traps only if what was read does not fit, so do the same.
        _ => {
            let mut bytes = vec![0; want as usize];
            let n = match retry(0, PollFlags::IN, || rustix::io::read(stdio_fd(0), &mut bytes)) {
                Ok(n) => n,
                Err(errno) => return Ok(errno),
            };
            let Some(target) = buffer.get_range(0..n as u32) else { return guest_error(GuestError::PtrOverflow) };
            if let Err(error) = memory.copy_from_slice(&bytes[..n], target) {
                return guest_error(error);
            }
            n
        }
    };
    match memory.write(GuestPtr::<u32>::new(nread as u32), n as u32) {
        Ok(()) => Ok(0),
        Err(error) => guest_error(error),
    }
}

/// `fd_write` of the first non-empty buffer to stdout or stderr, all of it.
fn write<T: HasFastStdio>(
    caller: &mut Caller<'_, T>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> wasmtime::Result<i32> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let memory = memory_of(caller)?;
    let runner_fd = caller.data_mut().fast_stdio().runner_fd(fd);
    let mut memory = GuestMemory::Unshared(memory.data_mut(&mut *caller));
    let buffer = match first_non_empty::<Ciovec>(&memory, iovs, iovs_len, fuel) {
        Ok(buffer) => buffer,
        Err(error) => return errno_of::<()>(Err(error)),
    };
    let Some(runner_fd @ (1 | 2)) = runner_fd else { return Ok(Errno::Badf as i32) };
    let written = {
        let mut bytes = match memory.as_slice(buffer) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => unreachable!("an unshared memory is always a slice"),
            Err(error) => return guest_error(error),
        };
        let total = bytes.len();
        while !bytes.is_empty() {
            match retry(runner_fd, PollFlags::OUT, || rustix::io::write(stdio_fd(runner_fd), bytes)) {
                Ok(n) => bytes = &bytes[n..],
                Err(errno) => return Ok(errno),
            }
        }
        total
    };
    match memory.write(GuestPtr::<u32>::new(nwritten as u32), written as u32) {
        Ok(()) => Ok(0),
        Err(error) => guest_error(error),
    }
}

fn stdio_fd(fd: i32) -> BorrowedFd<'static> {
    debug_assert!((0..3).contains(&fd));
    // SAFETY: fds 0, 1 and 2 are open for the life of the runner (see `guest::wasi_builder`),
    // or until the guest closes them, after which no WASI fd leads here.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Runs a read or write, retrying on EINTR and waiting out EAGAIN (an inherited stdio fd may
/// be non-blocking), and maps failures to preview1 errno values as wasmtime-wasi does.
fn retry(fd: i32, ready: PollFlags, mut io: impl FnMut() -> rustix::io::Result<usize>) -> Result<usize, i32> {
    loop {
        match io() {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => {
                let _ = rustix::event::poll(&mut [PollFd::from_borrowed_fd(stdio_fd(fd), ready)], None);
            }
            Err(errno) => {
                let error = std::io::Error::from_raw_os_error(errno.raw_os_error());
                return Err(Errno::from(wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode::from(&error)) as i32);
            }
        }
    }
}
