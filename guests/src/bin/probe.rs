//! Hostile: tries to escape its sandbox in several ways and reports each attempt on its own
//! stdout line, `blocked <name>: <error>` or `ESCAPED <name>[: <detail>]`. Exits 0 if every
//! attempt was blocked, 1 otherwise.
//!
//! Used by the host's sandbox test, which runs it without preopened directories or
//! environment: note that WASI numbers preopens from fd 3, so with any preopen the `fds`
//! attempt reports an escape.

use std::fs::{self, File};
use std::mem::ManuallyDrop;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::FromRawFd;

const OUTSIDE_FILE: &str = "/tmp/wasmpipe-probe-escape";

/// The result of one attempt: `Ok(detail)` if it escaped, `Err(reason)` if it was blocked.
type Outcome = Result<String, String>;

/// An escape attempt and the name it is reported under.
type Attempt = (&'static str, fn() -> Outcome);

const ATTEMPTS: &[Attempt] = &[
    ("read-passwd", || read_file("/etc/passwd")),
    ("list-root", || list_dir("/")),
    ("list-cwd", || list_dir(".")),
    ("write-outside", write_outside),
    ("dotdot", || read_file("../../../../etc/passwd")),
    ("env", env),
    ("fds", fds),
    ("tcp-connect", tcp_connect),
    ("tcp-bind", tcp_bind),
    ("udp-bind", udp_bind),
];

fn main() {
    let mut tx = wasmpipe_guest::Tx::new();
    let mut escaped = false;
    for (name, attempt) in ATTEMPTS {
        let line = match attempt() {
            Ok(detail) => {
                escaped = true;
                format!("ESCAPED {name}: {detail}")
            }
            Err(reason) => format!("blocked {name}: {reason}"),
        };
        // If stdout is gone there is no one to report to; the exit code still tells.
        let _ = tx.write_line(&line);
    }
    wasmpipe_guest::exit(i32::from(escaped));
}

fn read_file(path: &str) -> Outcome {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    Ok(format!("read {} bytes", data.len()))
}

fn list_dir(path: &str) -> Outcome {
    let entries = fs::read_dir(path).map_err(|e| e.to_string())?;
    Ok(format!("listed {} entries", entries.count()))
}

fn write_outside() -> Outcome {
    fs::write(OUTSIDE_FILE, b"wasmpipe probe\n").map_err(|e| e.to_string())?;
    let _ = fs::remove_file(OUTSIDE_FILE);
    Ok(format!("wrote {OUTSIDE_FILE}"))
}

fn env() -> Outcome {
    let keys: Vec<String> = std::env::vars_os().map(|(key, _)| key.to_string_lossy().into_owned()).collect();
    if keys.is_empty() { Err("no environment variables".to_owned()) } else { Ok(keys.join(",")) }
}

fn fds() -> Outcome {
    const FDS: std::ops::RangeInclusive<i32> = 3..=64;
    let mut first_error = None;
    for fd in FDS {
        // SAFETY: deliberately probing descriptors this program does not own, which is
        // the point of the test. The `File` is only used for `fstat` and is never closed
        // (`ManuallyDrop`), so no descriptor is read, written or closed behind anyone's back;
        // a descriptor that is not open just makes `metadata` fail with EBADF.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        match file.metadata() {
            Ok(meta) => return Ok(format!("fd {fd} is open ({:?})", meta.file_type())),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let reason = first_error.map_or_else(String::new, |e| e.to_string());
    Err(format!("fds {}..={}: {reason}", FDS.start(), FDS.end()))
}

fn tcp_connect() -> Outcome {
    TcpStream::connect("127.0.0.1:80").map_err(|e| e.to_string())?;
    Ok("connected to 127.0.0.1:80".to_owned())
}

fn tcp_bind() -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(format!("bound {:?}", listener.local_addr()))
}

fn udp_bind() -> Outcome {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(format!("bound {:?}", socket.local_addr()))
}
