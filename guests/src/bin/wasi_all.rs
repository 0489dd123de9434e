//! Calls every WASI preview1 function a sandboxed guest may use, through the raw `wasi`
//! bindings, and checks each result. This is the guest whose run under `strace -f` derives,
//! and then checks, the runner's seccomp syscall allowlist: if the filter misses a syscall that
//! some WASI function needs, one of these calls fails or the runner is killed.
//!
//! Needs a writable directory preopened at `/work` (fd 3). All file work happens in a fresh
//! `/work/wasi_all_tmp`, removed at the end, so the guest can run again and again. Not called:
//! `proc_raise` (not something a guest may do) and the `sock_*` functions (no sockets).
//!
//! Prints `ok <function>` after each successful call (`ok <function> (<detail>)` when an error
//! was the accepted or expected outcome), or `FAIL <function>: <errno or reason>` at the first
//! failure and exits 1. Ends with `proc_exit(0)`: returning from `main` would not call it.

use std::io::Write;
use std::mem::size_of;
use std::ptr;

use wasi::{Errno, Fd};

/// The preopened directory and its guest path.
const PREOPEN: Fd = 3;
const PREOPEN_PATH: &str = "/work";
/// The scratch directory, relative to the preopen.
const TMP: &str = "wasi_all_tmp";

/// Rights asked for on files and directories. Wasmtime looks only at `FD_READ` and `FD_WRITE`,
/// but a runtime that enforces rights needs the rest.
const FILE_RIGHTS: wasi::Rights = wasi::RIGHTS_FD_DATASYNC
    | wasi::RIGHTS_FD_READ
    | wasi::RIGHTS_FD_SEEK
    | wasi::RIGHTS_FD_FDSTAT_SET_FLAGS
    | wasi::RIGHTS_FD_SYNC
    | wasi::RIGHTS_FD_TELL
    | wasi::RIGHTS_FD_WRITE
    | wasi::RIGHTS_FD_ADVISE
    | wasi::RIGHTS_FD_ALLOCATE
    | wasi::RIGHTS_FD_FILESTAT_GET
    | wasi::RIGHTS_FD_FILESTAT_SET_SIZE
    | wasi::RIGHTS_FD_FILESTAT_SET_TIMES
    | wasi::RIGHTS_POLL_FD_READWRITE;
const DIR_RIGHTS: wasi::Rights = wasi::RIGHTS_PATH_CREATE_DIRECTORY
    | wasi::RIGHTS_PATH_CREATE_FILE
    | wasi::RIGHTS_PATH_LINK_SOURCE
    | wasi::RIGHTS_PATH_LINK_TARGET
    | wasi::RIGHTS_PATH_OPEN
    | wasi::RIGHTS_FD_READDIR
    | wasi::RIGHTS_PATH_READLINK
    | wasi::RIGHTS_PATH_RENAME_SOURCE
    | wasi::RIGHTS_PATH_RENAME_TARGET
    | wasi::RIGHTS_PATH_FILESTAT_GET
    | wasi::RIGHTS_PATH_FILESTAT_SET_SIZE
    | wasi::RIGHTS_PATH_FILESTAT_SET_TIMES
    | wasi::RIGHTS_FD_FILESTAT_GET
    | wasi::RIGHTS_FD_FILESTAT_SET_TIMES
    | wasi::RIGHTS_PATH_SYMLINK
    | wasi::RIGHTS_PATH_REMOVE_DIRECTORY
    | wasi::RIGHTS_PATH_UNLINK_FILE;

/// Timestamps set on files, in nanoseconds since the epoch (whole seconds, so any filesystem
/// keeps them exactly).
const ATIME: u64 = 1_600_000_000_000_000_000;
const MTIME: u64 = 1_700_000_000_000_000_000;
const PATH_MTIME: u64 = 1_650_000_000_000_000_000;

/// Calls a `wasi` binding and reports it: `call!(fd_tell(fd))` is the call's value, or the
/// guest fails. The bindings are unsafe only because they take raw pointers; every pointer
/// passed here points into a live local buffer of the length passed with it.
macro_rules! call {
    ($func:ident($($arg:expr),* $(,)?)) => {
        check(stringify!($func), unsafe { wasi::$func($($arg),*) })
    };
}

/// Like `call!`, but one of the `accepted` errors is also a success (`None`).
macro_rules! call_accepting {
    ($accepted:expr, $func:ident($($arg:expr),* $(,)?)) => {
        check_accepting(stringify!($func), $accepted, unsafe { wasi::$func($($arg),*) })
    };
}

/// Like `call!`, but the call must fail with `expected`.
macro_rules! call_expecting {
    ($expected:expr, $func:ident($($arg:expr),* $(,)?)) => {
        check_expecting(stringify!($func), $expected, unsafe { wasi::$func($($arg),*) })
    };
}

fn main() {
    args_and_environ();
    clocks();
    random_and_sched();
    preopen();
    // A run that failed halfway leaves the directory behind; std's thin wrappers clear it.
    let _ = std::fs::remove_dir_all(format!("{PREOPEN_PATH}/{TMP}"));
    call!(path_create_directory(PREOPEN, TMP));
    let dir = open(PREOPEN, TMP, wasi::OFLAGS_DIRECTORY, 0);
    file_io(dir);
    open_flags(dir);
    append(dir);
    renumber(dir);
    poll(dir);
    links_and_paths(dir);
    readdir(dir);
    cleanup(dir);
    std::io::stdout().flush().unwrap();
    unsafe { wasi::proc_exit(0) };
}

/// args_sizes_get, args_get, environ_sizes_get, environ_get.
fn args_and_environ() {
    let (argc, size) = call!(args_sizes_get());
    let mut argv = vec![ptr::null_mut(); argc];
    let mut buf = vec![0u8; size];
    call!(args_get(argv.as_mut_ptr(), buf.as_mut_ptr()));
    ensure("args_get", buf.iter().filter(|&&b| b == 0).count() == argc, "argument strings do not match argc");

    let (count, size) = call!(environ_sizes_get());
    let mut environ = vec![ptr::null_mut(); count];
    let mut buf = vec![0u8; size];
    call!(environ_get(environ.as_mut_ptr(), buf.as_mut_ptr()));
    ensure("environ_get", buf.iter().filter(|&&b| b == 0).count() == count, "variables do not match the count");
}

/// clock_res_get and clock_time_get on all four clocks; the CPU-time clocks may be unsupported
/// (wasmtime answers BADF for them).
fn clocks() {
    for id in [wasi::CLOCKID_REALTIME, wasi::CLOCKID_MONOTONIC] {
        call!(clock_res_get(id));
        let now = call!(clock_time_get(id, 1));
        ensure("clock_time_get", now > 0, "a clock reads 0");
    }
    let unsupported = &[wasi::ERRNO_NOTSUP, wasi::ERRNO_INVAL, wasi::ERRNO_BADF, wasi::ERRNO_NOSYS];
    for id in [wasi::CLOCKID_PROCESS_CPUTIME_ID, wasi::CLOCKID_THREAD_CPUTIME_ID] {
        call_accepting!(unsupported, clock_res_get(id));
        call_accepting!(unsupported, clock_time_get(id, 1));
    }
}

/// random_get, sched_yield.
fn random_and_sched() {
    let mut bytes = [0u8; 32];
    call!(random_get(bytes.as_mut_ptr(), bytes.len()));
    ensure("random_get", bytes.iter().any(|&b| b != 0), "32 zero bytes");
    call!(sched_yield());
}

/// fd_prestat_get, fd_prestat_dir_name, fd_fdstat_get on the preopened directory.
fn preopen() {
    let prestat = call!(fd_prestat_get(PREOPEN));
    ensure("fd_prestat_get", prestat.tag == wasi::PREOPENTYPE_DIR.raw(), "fd 3 is not a preopened directory");
    // SAFETY: the tag says the union holds `dir`.
    let len = unsafe { prestat.u.dir.pr_name_len };
    let mut name = vec![0u8; len];
    call!(fd_prestat_dir_name(PREOPEN, name.as_mut_ptr(), len));
    ensure("fd_prestat_dir_name", name == PREOPEN_PATH.as_bytes(), "fd 3 is not /work");
    let stat = call!(fd_fdstat_get(PREOPEN));
    ensure("fd_fdstat_get", stat.fs_filetype == wasi::FILETYPE_DIRECTORY, "fd 3 is not a directory");
}

/// Creates `data.txt` and does I/O on it: fd_write, fd_tell, fd_seek, fd_read, fd_pwrite,
/// fd_pread, fd_advise, fd_allocate, fd_filestat_set_size, fd_filestat_get,
/// fd_filestat_set_times, fd_datasync, fd_sync, fd_fdstat_get, fd_fdstat_set_rights, fd_close.
fn file_io(dir: Fd) {
    let fd = open(dir, "data.txt", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, 0);
    write(fd, b"hello world\n");
    ensure("fd_tell", call!(fd_tell(fd)) == 12, "position is not 12 after writing 12 bytes");
    ensure("fd_seek", call!(fd_seek(fd, 0, wasi::WHENCE_SET)) == 0, "cannot seek to 0");
    ensure("fd_read", read(fd, 64) == b"hello world\n", "read back other bytes");
    ensure("fd_seek", call!(fd_seek(fd, -6, wasi::WHENCE_CUR)) == 6, "SEEK_CUR went elsewhere");
    ensure("fd_seek", call!(fd_seek(fd, 0, wasi::WHENCE_END)) == 12, "SEEK_END went elsewhere");

    let upper = wasi::Ciovec { buf: b"HELLO".as_ptr(), buf_len: 5 };
    ensure("fd_pwrite", call!(fd_pwrite(fd, &[upper], 0)) == 5, "short write");
    let mut buf = [0u8; 64];
    let iov = wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() };
    let n = call!(fd_pread(fd, &[iov], 0));
    ensure("fd_pread", &buf[..n] == b"HELLO world\n", "read back other bytes");
    ensure("fd_tell", call!(fd_tell(fd)) == 12, "fd_pwrite or fd_pread moved the position");

    call!(fd_advise(fd, 0, 12, wasi::ADVICE_SEQUENTIAL));
    // Wasmtime does not implement fd_allocate (it answers NOTSUP without a syscall).
    call_accepting!(&[wasi::ERRNO_NOTSUP], fd_allocate(fd, 0, 4096));
    call!(fd_filestat_set_size(fd, 5));
    let stat = call!(fd_filestat_get(fd));
    ensure("fd_filestat_set_size", stat.size == 5, "size is not 5 after truncating to 5");
    ensure("fd_filestat_get", stat.filetype == wasi::FILETYPE_REGULAR_FILE, "not a regular file");
    call!(fd_filestat_set_times(fd, ATIME, MTIME, wasi::FSTFLAGS_ATIM | wasi::FSTFLAGS_MTIM));
    ensure("fd_filestat_set_times", call!(fd_filestat_get(fd)).mtim == MTIME, "mtime not set");
    call!(fd_datasync(fd));
    call!(fd_sync(fd));
    let stat = call!(fd_fdstat_get(fd));
    ensure("fd_fdstat_get", stat.fs_filetype == wasi::FILETYPE_REGULAR_FILE, "not a regular file");
    // Setting the rights held changes nothing; wasmtime answers NOTSUP anyway, without a syscall.
    call_accepting!(&[wasi::ERRNO_NOTSUP], fd_fdstat_set_rights(fd, stat.fs_rights_base, stat.fs_rights_inheriting));
    call!(fd_close(fd));
}

/// path_open's EXCL (refuses the existing `data.txt`) and TRUNC (empties it).
fn open_flags(dir: Fd) {
    call_expecting!(
        wasi::ERRNO_EXIST,
        path_open(dir, 0, "data.txt", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, FILE_RIGHTS, FILE_RIGHTS, 0)
    );
    let fd = open(dir, "data.txt", wasi::OFLAGS_TRUNC, 0);
    ensure("path_open", call!(fd_filestat_get(fd)).size == 0, "TRUNC left bytes");
    write(fd, b"data\n");
    call!(fd_close(fd));
}

/// Append mode, both ways: opened with FDFLAGS_APPEND, and set by fd_fdstat_set_flags. Each
/// write after seeking to 0 must still land at the end.
fn append(dir: Fd) {
    let fd = open(dir, "log.txt", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, wasi::FDFLAGS_APPEND);
    write(fd, b"one\n");
    call!(fd_seek(fd, 0, wasi::WHENCE_SET));
    write(fd, b"two\n");
    ensure("fd_write", call!(fd_filestat_get(fd)).size == 8, "appending twice did not make 8 bytes");
    call!(fd_close(fd));

    let fd = open(dir, "log.txt", 0, 0);
    call!(fd_fdstat_set_flags(fd, wasi::FDFLAGS_APPEND));
    let flags = call!(fd_fdstat_get(fd)).fs_flags;
    ensure("fd_fdstat_set_flags", flags & wasi::FDFLAGS_APPEND != 0, "APPEND is not set");
    write(fd, b"three\n");
    call!(fd_seek(fd, 0, wasi::WHENCE_SET));
    ensure("fd_write", read(fd, 64) == b"one\ntwo\nthree\n", "an append-mode write did not append");
    call!(fd_close(fd));
}

/// fd_renumber: the fd of `data.txt` replaces (and closes) the fd of `log.txt`.
fn renumber(dir: Fd) {
    let data = open(dir, "data.txt", 0, 0);
    let log = open(dir, "log.txt", 0, 0);
    let inode = call!(fd_filestat_get(data)).ino;
    call!(fd_renumber(data, log));
    ensure("fd_renumber", call!(fd_filestat_get(log)).ino == inode, "the target fd is not data.txt");
    call!(fd_close(log));
}

/// poll_oneoff: a lone relative timeout (a plain sleep), two timeouts (the shorter fires), and a
/// timeout with a read subscription on a file (the file is readable at once).
fn poll(dir: Fd) {
    let events = poll_oneoff(&[clock_subscription(1, 1_000_000)]);
    ensure("poll_oneoff", events.iter().any(|e| e.userdata == 1), "the timeout did not fire");

    let events = poll_oneoff(&[clock_subscription(1, 1_000_000), clock_subscription(2, 10_000_000_000)]);
    ensure("poll_oneoff", events.iter().any(|e| e.userdata == 1), "the 1 ms timeout did not fire");

    let fd = open(dir, "log.txt", 0, 0);
    let read = wasi::Subscription {
        userdata: 2,
        u: wasi::SubscriptionU {
            tag: wasi::EVENTTYPE_FD_READ.raw(),
            u: wasi::SubscriptionUU { fd_read: wasi::SubscriptionFdReadwrite { file_descriptor: fd } },
        },
    };
    let events = poll_oneoff(&[clock_subscription(1, 10_000_000_000), read]);
    let ready = events.iter().any(|e| e.userdata == 2 && e.type_ == wasi::EVENTTYPE_FD_READ);
    ensure("poll_oneoff", ready, "a file is not readable");
    call!(fd_close(fd));
}

/// path_link, path_symlink, path_readlink, path_filestat_get (with and without following
/// links), path_filestat_set_times, path_rename, path_create_directory, path_remove_directory.
fn links_and_paths(dir: Fd) {
    call!(path_link(dir, 0, "data.txt", dir, "hard.txt"));
    ensure("path_link", call!(path_filestat_get(dir, 0, "hard.txt")).nlink == 2, "data.txt has not 2 links");

    call!(path_symlink("data.txt", dir, "sym.txt"));
    let mut target = [0u8; 64];
    let n = call!(path_readlink(dir, "sym.txt", target.as_mut_ptr(), target.len()));
    ensure("path_readlink", &target[..n] == b"data.txt", "the link points elsewhere");
    let link = call!(path_filestat_get(dir, 0, "sym.txt"));
    ensure("path_filestat_get", link.filetype == wasi::FILETYPE_SYMBOLIC_LINK, "not a symlink");
    let followed = call!(path_filestat_get(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "sym.txt"));
    ensure("path_filestat_get", followed.filetype == wasi::FILETYPE_REGULAR_FILE, "not followed");

    let follow = wasi::LOOKUPFLAGS_SYMLINK_FOLLOW;
    call!(path_filestat_set_times(
        dir,
        follow,
        "data.txt",
        ATIME,
        PATH_MTIME,
        wasi::FSTFLAGS_ATIM | wasi::FSTFLAGS_MTIM
    ));
    let mtim = call!(path_filestat_get(dir, follow, "data.txt")).mtim;
    ensure("path_filestat_set_times", mtim == PATH_MTIME, "mtime not set");

    call!(path_rename(dir, "hard.txt", dir, "renamed.txt"));
    call_expecting!(wasi::ERRNO_NOENT, path_filestat_get(dir, 0, "hard.txt"));

    call!(path_create_directory(dir, "sub"));
    ensure(
        "path_create_directory",
        call!(path_filestat_get(dir, 0, "sub")).filetype == wasi::FILETYPE_DIRECTORY,
        "not a directory",
    );
    call!(path_remove_directory(dir, "sub"));
}

/// fd_readdir lists what the other steps left.
fn readdir(dir: Fd) {
    let mut buf = vec![0u8; 4096];
    let n = call!(fd_readdir(dir, buf.as_mut_ptr(), buf.len(), wasi::DIRCOOKIE_START));
    let mut names = Vec::new();
    let mut at = 0;
    // Each entry: a `Dirent` (d_namlen is the u32 at offset 16), then the name.
    while at + size_of::<wasi::Dirent>() <= n {
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
        let name = at + size_of::<wasi::Dirent>();
        names.push(String::from_utf8_lossy(&buf[name..(name + len).min(n)]).into_owned());
        at = name + len;
    }
    for expected in ["data.txt", "log.txt", "renamed.txt", "sym.txt"] {
        ensure(
            "fd_readdir",
            names.iter().any(|name| name == expected),
            &format!("{expected} is not listed: {names:?}"),
        );
    }
}

/// path_unlink_file on everything left, fd_close on the directory, path_remove_directory.
fn cleanup(dir: Fd) {
    for name in ["data.txt", "log.txt", "renamed.txt", "sym.txt"] {
        call!(path_unlink_file(dir, name));
    }
    call!(fd_close(dir));
    call!(path_remove_directory(PREOPEN, TMP));
}

/// Opens `path` under `dir` for reading and writing (a directory with `OFLAGS_DIRECTORY`).
fn open(dir: Fd, path: &str, oflags: wasi::Oflags, fdflags: wasi::Fdflags) -> Fd {
    let (base, inheriting) =
        if oflags & wasi::OFLAGS_DIRECTORY != 0 { (DIR_RIGHTS, DIR_RIGHTS | FILE_RIGHTS) } else { (FILE_RIGHTS, 0) };
    call!(path_open(dir, 0, path, oflags, base, inheriting, fdflags))
}

/// fd_write until all of `bytes` is written (wasmtime writes at most one iovec per call).
fn write(fd: Fd, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = call!(fd_write(fd, &[wasi::Ciovec { buf: rest.as_ptr(), buf_len: rest.len() }]));
        ensure("fd_write", n > 0, "wrote nothing");
        rest = &rest[n..];
    }
}

/// One fd_read of up to `max` bytes.
fn read(fd: Fd, max: usize) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    let iov = wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: buf.len() };
    let n = call!(fd_read(fd, &[iov]));
    buf.truncate(n);
    buf
}

/// A relative timeout of `nanos` on the monotonic clock.
fn clock_subscription(userdata: u64, nanos: u64) -> wasi::Subscription {
    let clock = wasi::SubscriptionClock { id: wasi::CLOCKID_MONOTONIC, timeout: nanos, precision: 0, flags: 0 };
    wasi::Subscription {
        userdata,
        u: wasi::SubscriptionU { tag: wasi::EVENTTYPE_CLOCK.raw(), u: wasi::SubscriptionUU { clock } },
    }
}

/// poll_oneoff on `subscriptions`; returns the events that fired, each checked for an error.
fn poll_oneoff(subscriptions: &[wasi::Subscription]) -> Vec<wasi::Event> {
    let empty = wasi::Event {
        userdata: 0,
        error: wasi::ERRNO_SUCCESS,
        type_: wasi::EVENTTYPE_CLOCK,
        fd_readwrite: wasi::EventFdReadwrite { nbytes: 0, flags: 0 },
    };
    let mut events = vec![empty; subscriptions.len()];
    let n = call!(poll_oneoff(subscriptions.as_ptr(), events.as_mut_ptr(), subscriptions.len()));
    events.truncate(n);
    if let Some(event) = events.iter().find(|e| e.error != wasi::ERRNO_SUCCESS) {
        fail("poll_oneoff", errno(event.error));
    }
    events
}

fn check<T>(name: &str, result: Result<T, Errno>) -> T {
    match result {
        Ok(value) => {
            println!("ok {name}");
            value
        }
        Err(e) => fail(name, errno(e)),
    }
}

fn check_accepting<T>(name: &str, accepted: &[Errno], result: Result<T, Errno>) -> Option<T> {
    match result {
        Err(e) if accepted.contains(&e) => {
            println!("ok {name} ({} accepted)", errno(e));
            None
        }
        result => Some(check(name, result)),
    }
}

fn check_expecting<T>(name: &str, expected: Errno, result: Result<T, Errno>) {
    match result {
        Err(e) if e == expected => println!("ok {name} ({} as expected)", errno(e)),
        Err(e) => fail(name, errno(e)),
        Ok(_) => fail(name, format!("succeeded, expected {}", errno(expected))),
    }
}

/// Fails the guest unless `condition` holds; `why` says what went wrong.
fn ensure(name: &str, condition: bool, why: &str) {
    if !condition {
        fail(name, why);
    }
}

fn fail(name: &str, why: impl std::fmt::Display) -> ! {
    println!("FAIL {name}: {why}");
    std::process::exit(1);
}

/// `NOENT (44)`: the errno's WASI name and number.
fn errno(e: Errno) -> String {
    // `Errno::name` is undefined behaviour past the last errno the bindings know.
    if e.raw() <= wasi::ERRNO_NOTCAPABLE.raw() { format!("{} ({})", e.name(), e.raw()) } else { format!("{}", e.raw()) }
}
