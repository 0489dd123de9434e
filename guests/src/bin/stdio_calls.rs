//! Makes a scripted series of raw preview1 calls on fds 0–2 and reports each result, for the
//! differential test of the runner's two stdio paths (no grant: the fast path; a grant:
//! wasmtime-wasi throughout), which must agree call for call.
//!
//! `stdio_calls <case>`: `calls` runs the calls that return, `close`, `renumber` and
//! `renumber-stdin` take fds away; every other case ends in one call that should trap. Each
//! report line is `<call>: <errno> <detail>`, collected in memory and written at the end in one
//! raw `fd_write` to the fd that holds stderr by then; the calls' own output goes to stdout.
//! Reads expect the test's stdin, `stdin-data\n`.

use wasi::wasi_snapshot_preview1 as raw;

/// Guest memory the calls point into, 8-aligned so offsets within it have known alignment.
#[repr(C, align(8))]
struct Scratch([u8; 256]);
static mut SCRATCH: Scratch = Scratch([0; 256]);

/// An address past the end of any memory this guest has.
const OUT_OF_BOUNDS: u32 = 0xffff_0000;

fn scratch() -> *mut u8 {
    // Only raw pointers into it are ever made (single-threaded).
    (&raw mut SCRATCH).cast::<u8>()
}

/// The address of `offset` bytes into the scratch area.
fn at(offset: usize) -> u32 {
    scratch() as u32 + offset as u32
}

fn put_u32(address: u32, value: u32) {
    // SAFETY: every address passed here lies in `SCRATCH`.
    unsafe { (address as *mut u32).write_unaligned(value) }
}

fn get_u32(address: u32) -> u32 {
    // SAFETY: as in `put_u32`.
    unsafe { (address as *const u32).read_unaligned() }
}

/// Writes iovecs `(base, len)` at `address`, returns `address`.
fn iovecs(address: u32, buffers: &[(u32, u32)]) -> u32 {
    for (index, (base, len)) in buffers.iter().enumerate() {
        put_u32(address + 8 * index as u32, *base);
        put_u32(address + 8 * index as u32 + 4, *len);
    }
    address
}

/// `bytes` copied into the scratch area at `offset`; (address, len).
fn data(offset: usize, bytes: &[u8]) -> (u32, u32) {
    // SAFETY: the callers keep `offset + bytes.len()` within the scratch area.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), scratch().add(offset), bytes.len()) };
    (at(offset), bytes.len() as u32)
}

struct Report(String);

impl Report {
    fn line(&mut self, call: &str, errno: i32, detail: impl std::fmt::Display) {
        self.0.push_str(&format!("{call}: {errno} {detail}\n"));
    }

    /// Writes the report to `fd` in one raw call (no std buffering that could touch other fds).
    fn send(self, fd: i32) {
        let bytes = self.0.into_bytes();
        let iov = [bytes.as_ptr() as u32, bytes.len() as u32];
        let mut written = 0u32;
        // SAFETY: a valid iovec and result pointer in this guest's memory.
        unsafe { raw::fd_write(fd, iov.as_ptr() as i32, 1, (&raw mut written) as i32) };
    }
}

/// `fd_write` of `buffers` (each as `(address, len)`) with iovecs at `iovs_at`; (errno, n).
fn write(fd: i32, iovs_at: u32, buffers: &[(u32, u32)]) -> (i32, u32) {
    let iovs = iovecs(iovs_at, buffers);
    put_u32(at(248), 0xdead);
    // SAFETY: raw call; every pointer lies in this guest's memory.
    let errno = unsafe { raw::fd_write(fd, iovs as i32, buffers.len() as i32, at(248) as i32) };
    (errno, get_u32(at(248)))
}

/// `fd_read` into buffers at the given places; (errno, n, the bytes read into the first one).
fn read(fd: i32, buffers: &[(u32, u32)]) -> (i32, u32, String) {
    let iovs = iovecs(at(200), buffers);
    put_u32(at(248), 0xdead);
    // SAFETY: raw call; every pointer lies in this guest's memory.
    let errno = unsafe { raw::fd_read(fd, iovs as i32, buffers.len() as i32, at(248) as i32) };
    let n = get_u32(at(248));
    let first = buffers.first().map_or(0, |b| b.0);
    let shown = if errno == 0 && n <= 64 {
        // SAFETY: the first buffer lies in the scratch area and the read filled `n` bytes of it.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(first as *const u8, n as usize) }).into_owned()
    } else {
        String::new()
    };
    (errno, n, shown)
}

/// `fd_fdstat_get`: (errno, "filetype flags rights_base rights_inheriting").
fn fdstat(fd: i32) -> (i32, String) {
    #[repr(C)]
    struct Fdstat {
        filetype: u8,
        flags: u16,
        base: u64,
        inheriting: u64,
    }
    let mut stat = Fdstat { filetype: 0xff, flags: 0, base: 0, inheriting: 0 };
    // SAFETY: `stat` has preview1's fdstat layout (24 bytes, 8-aligned).
    let errno = unsafe { raw::fd_fdstat_get(fd, (&raw mut stat) as i32) };
    (errno, format!("type={} flags={} base={:#x} inh={:#x}", stat.filetype, stat.flags, stat.base, stat.inheriting))
}

fn calls(report: &mut Report) {
    let (hello, hello_len) = data(0, b"hello\n");
    let (b, _) = data(8, b"b");
    let (c, _) = data(12, b"c\n");
    let (errno, n) = write(1, at(64), &[(hello, hello_len)]);
    report.line("write aligned", errno, n);
    let (errno, n) = write(1, at(64), &[(b, 1), (c, 2)]);
    report.line("write two buffers", errno, n);
    let (errno, n) = write(1, at(64), &[(b, 0), (c, 2)]);
    report.line("write empty then one", errno, n);
    let (errno, n) = write(1, at(64), &[(b, 0), (c, 0)]);
    report.line("write all empty", errno, n);
    let (errno, n) = write(1, at(64), &[]);
    report.line("write no iovecs", errno, n);
    // An empty buffer anywhere, even out of bounds, is skipped.
    let (errno, n) = write(1, at(64), &[(OUT_OF_BOUNDS, 0), (c, 2)]);
    report.line("write empty out-of-bounds buffer", errno, n);
    for fd in [0, 7, -1] {
        let (errno, n) = write(fd, at(64), &[(c, 2)]);
        report.line(&format!("write fd {fd}"), errno, n);
    }
    // More iovecs than the per-call host budget allows (8 bytes each).
    put_u32(at(248), 0xdead);
    // SAFETY: raw call; the runtime must refuse before reading the iovecs.
    let errno = unsafe { raw::fd_write(1, at(64) as i32, 0x2000_0000, at(248) as i32) };
    report.line("write 2^29 iovecs", errno, get_u32(at(248)));
    // A buffer larger than the budget, and than memory.
    let (errno, n) = write(1, at(64), &[(0, 0x0900_0000)]);
    report.line("write 144 MiB buffer", errno, n);

    let (errno, n, bytes) = read(0, &[(at(100), 4)]);
    report.line("read 4", errno, format!("{n} {bytes:?}"));
    let (errno, n, bytes) = read(0, &[(at(100), 0), (at(110), 3), (at(120), 20)]);
    report.line("read empty, 3, 20", errno, format!("{n} {bytes:?}"));
    let (errno, n, bytes) = read(0, &[]);
    report.line("read no iovecs", errno, format!("{n} {bytes:?}"));
    for fd in [1, 2, 7, -1] {
        let (errno, n, _) = read(fd, &[(at(100), 4)]);
        report.line(&format!("read fd {fd}"), errno, n);
    }
    let (errno, n) = {
        put_u32(at(248), 0xdead);
        let iovs = iovecs(at(200), &[(0, 0x0900_0000)]);
        // SAFETY: raw call; the runtime must refuse the oversized buffer.
        (unsafe { raw::fd_read(0, iovs as i32, 1, at(248) as i32) }, get_u32(at(248)))
    };
    report.line("read 144 MiB buffer", errno, n);
    let (errno, n, bytes) = read(0, &[(at(100), 64)]);
    report.line("read rest", errno, format!("{n} {bytes:?}"));
    let (errno, n, bytes) = read(0, &[(at(100), 64)]);
    report.line("read at eof", errno, format!("{n} {bytes:?}"));

    for fd in [0, 1, 2] {
        let (errno, detail) = fdstat(fd);
        report.line(&format!("fdstat {fd}"), errno, detail);
        // SAFETY: raw calls with result pointers into the scratch area.
        unsafe {
            report.line(&format!("seek {fd}"), raw::fd_seek(fd, 0, 1, at(240) as i32), "");
            report.line(&format!("tell {fd}"), raw::fd_tell(fd, at(240) as i32), "");
            report.line(&format!("filestat {fd}"), raw::fd_filestat_get(fd, at(128) as i32), "");
            report.line(&format!("sync {fd}"), raw::fd_sync(fd), "");
            report.line(&format!("datasync {fd}"), raw::fd_datasync(fd), "");
            report.line(&format!("advise {fd}"), raw::fd_advise(fd, 0, 0, 0), "");
            report.line(&format!("allocate {fd}"), raw::fd_allocate(fd, 0, 1), "");
            report.line(&format!("filestat_set_size {fd}"), raw::fd_filestat_set_size(fd, 0), "");
            report.line(&format!("prestat {fd}"), raw::fd_prestat_get(fd, at(128) as i32), "");
            let iovs = iovecs(at(200), &[(c, 2)]);
            report.line(&format!("pwrite {fd}"), raw::fd_pwrite(fd, iovs as i32, 1, 0, at(248) as i32), "");
            let iovs = iovecs(at(200), &[(at(100), 4)]);
            report.line(&format!("pread {fd}"), raw::fd_pread(fd, iovs as i32, 1, 0, at(248) as i32), "");
        }
    }
    // SAFETY: raw calls without pointers.
    unsafe {
        report.line("renumber 2 to 2", raw::fd_renumber(2, 2), "");
        report.line("renumber 1 to 7", raw::fd_renumber(1, 7), "");
        report.line("renumber 7 to 1", raw::fd_renumber(7, 1), "");
        report.line("close 7", raw::fd_close(7), "");
        report.line("close -1", raw::fd_close(-1), "");
    }
    report.line("write after all", write(1, at(64), &[data(16, b"end\n")]).0, "");
}

fn close(report: &mut Report) {
    // SAFETY: raw calls without pointers.
    report.line("close 1", unsafe { raw::fd_close(1) }, "");
    report.line("write 1", write(1, at(64), &[data(0, b"lost\n")]).0, "");
    report.line("fdstat 1", fdstat(1).0, "");
    // SAFETY: as above.
    unsafe {
        report.line("close 1 again", raw::fd_close(1), "");
        report.line("renumber 2 to 1", raw::fd_renumber(2, 1), "");
        report.line("renumber 1 to 2", raw::fd_renumber(1, 2), "");
        report.line("close 0", raw::fd_close(0), "");
    }
    report.line("read 0", read(0, &[(at(100), 4)]).0, "");
    report.line("write 2", write(2, at(64), &[data(0, b"to stderr\n")]).0, "");
}

/// Moves stderr over stdout; returns the fd that holds stderr now.
fn renumber(report: &mut Report) -> i32 {
    report.line("write 1 before", write(1, at(64), &[data(0, b"before\n")]).0, "");
    // SAFETY: raw call without pointers.
    report.line("renumber 2 to 1", unsafe { raw::fd_renumber(2, 1) }, "");
    let (errno, detail) = fdstat(1);
    report.line("fdstat 1", errno, detail);
    report.line("fdstat 2", fdstat(2).0, "");
    report.line("write 2", write(2, at(64), &[data(0, b"gone\n")]).0, "");
    report.line("write 1 after", write(1, at(64), &[data(0, b"stderr via 1\n")]).0, "");
    1
}

fn renumber_stdin(report: &mut Report) {
    // SAFETY: raw call without pointers.
    report.line("renumber 0 to 1", unsafe { raw::fd_renumber(0, 1) }, "");
    let (errno, n, bytes) = read(1, &[(at(100), 5)]);
    report.line("read 1", errno, format!("{n} {bytes:?}"));
    report.line("read 0", read(0, &[(at(100), 5)]).0, "");
    report.line("write 1", write(1, at(64), &[data(0, b"x\n")]).0, "");
    let (errno, detail) = fdstat(1);
    report.line("fdstat 1", errno, detail);
}

/// One call with a bad pointer, which preview1 says traps; reaching the end is reported.
fn trap(case: &str, report: &mut Report) {
    let (text, len) = data(0, b"z\n");
    let (errno, n) = match case {
        "write-misaligned-iovecs" => write(1, at(66), &[(text, len)]),
        "write-misaligned-iovecs-bad-fd" => write(9, at(66), &[(text, len)]),
        "write-out-of-bounds-iovecs" => {
            put_u32(at(248), 0xdead);
            // SAFETY: raw call; the runtime must refuse the iovec pointer.
            (unsafe { raw::fd_write(1, OUT_OF_BOUNDS as i32, 1, at(248) as i32) }, get_u32(at(248)))
        }
        "write-out-of-bounds-buffer" => write(1, at(64), &[(OUT_OF_BOUNDS, 4)]),
        "write-buffer-past-the-end" => write(1, at(64), &[(text, len), (0xffff_fff0, 0x20)]),
        "write-misaligned-result" | "write-out-of-bounds-result" => {
            let iovs = iovecs(at(64), &[(text, len)]);
            let result = if case.contains("misaligned") { at(249) } else { OUT_OF_BOUNDS };
            // SAFETY: raw call; the runtime must refuse the result pointer.
            (unsafe { raw::fd_write(1, iovs as i32, 1, result as i32) }, 0)
        }
        "read-misaligned-iovecs" => {
            let iovs = iovecs(at(66), &[(at(100), 4)]);
            // SAFETY: raw call; the runtime must refuse the iovec pointer.
            (unsafe { raw::fd_read(0, iovs as i32, 1, at(248) as i32) }, 0)
        }
        "read-out-of-bounds-buffer" => {
            let (errno, n, _) = read(0, &[(OUT_OF_BOUNDS, 4)]);
            (errno, n)
        }
        "read-misaligned-result" => {
            let iovs = iovecs(at(64), &[(at(100), 4)]);
            // SAFETY: raw call; the runtime must refuse the result pointer.
            (unsafe { raw::fd_read(0, iovs as i32, 1, at(249) as i32) }, 0)
        }
        other => panic!("unknown case {other}"),
    };
    report.line(case, errno, format!("{n} (no trap)"));
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let mut report = Report(String::new());
    let stderr = match case.as_str() {
        "calls" => {
            calls(&mut report);
            2
        }
        "close" => {
            close(&mut report);
            2
        }
        "renumber" => renumber(&mut report),
        "renumber-stdin" => {
            renumber_stdin(&mut report);
            2
        }
        other => {
            trap(other, &mut report);
            2
        }
    };
    report.send(stderr);
    // SAFETY: ends the guest here, without std's exit path touching the fds.
    unsafe { raw::proc_exit(0) }
}
