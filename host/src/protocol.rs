//! What the parent and the runner say to each other on the control socket (the runner's fd 3).
//!
//! The runner starts with the control socket as its fd 0. Parent → runner, once: one byte
//! carrying the guest's stdin fd (`SCM_RIGHTS`, see [`send_fds`]), then a length-prefixed JSON
//! [`RunnerConfig`], followed by the module bytes when they were given in memory. The runner then
//! moves the socket to fd 3 and the guest's stdin to fd 0. The parent then keeps its end open and silent: it is the
//! runner's lifeline, whose EOF means the parent died.
//!
//! Runner → parent, once, at the end: one JSON [`Verdict`]. Keeping the verdict on its own
//! channel means a guest can never forge one by writing to its stderr.

use crate::limits::Limits;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::time::Duration;

/// The fd number the control socket has in the runner.
pub(crate) const CONTROL_FD: i32 = 3;

/// Environment variable that turns a process into a sandbox runner (see `runner::hook`).
pub(crate) const RUNNER_MARKER: &str = "WASMPIPE_SANDBOX_RUNNER";

/// Environment variable that turns a process into a zygote (see `runner::zygote`).
pub(crate) const ZYGOTE_MARKER: &str = "WASMPIPE_SANDBOX_ZYGOTE";

/// Upper bound on the config frame, so a confused peer cannot make the runner allocate wildly.
const MAX_CONFIG_LEN: u32 = 16 << 20;

/// Where the runner gets the module from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ModuleSource {
    /// A file the runner opens itself.
    Path(PathBuf),
    /// `len` bytes follow the config on the control socket; `digest` is their
    /// `cache::module_digest`, computed once by the parent.
    Inline { len: u64, digest: [u8; 32] },
    /// The zygote this runner was forked from already holds the compiled module with this digest
    /// (loaded from the cache); no bytes follow.
    Preloaded { digest: [u8; 32] },
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// Everything the runner needs to know, sent by the parent right after spawning it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunnerConfig {
    pub module: ModuleSource,
    /// The guest's `argv`, program name included.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dirs: Vec<DirGrant>,
    pub limits: Limits,
    /// Compiled-module cache directory; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Only compile the module into the cache, then exit 0; nothing runs.
    pub compile_only: bool,
    /// Test hook: after hardening, make a syscall the seccomp filter forbids.
    pub forbidden_syscall_after_hardening: bool,
}

/// How the guest ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Verdict {
    Exited {
        code: i32,
    },
    Timeout {
        limit: Duration,
    },
    MemoryLimit {
        limit: u64,
    },
    FuelExhausted,
    Trap {
        message: String,
        wasm_backtrace: Option<String>,
    },
    InvalidModule {
        message: String,
    },
    /// The runner could not set itself up (not the guest's fault).
    Failed {
        message: String,
    },
}

impl Verdict {
    /// The runner's own exit status for this verdict, which matches `wasmpipe run`'s contract, so
    /// even a parent that never reads the verdict sees a meaningful status.
    pub(crate) fn exit_status(&self) -> i32 {
        match self {
            Verdict::Exited { code } => *code,
            Verdict::Timeout { .. } => 124,
            Verdict::MemoryLimit { .. } | Verdict::FuelExhausted | Verdict::Trap { .. } => 134,
            Verdict::InvalidModule { .. } | Verdict::Failed { .. } => 125,
        }
    }
}

/// Most fds one message carries: a zygote request (control socket, stdin, stdout, stderr).
pub(crate) const MAX_PASSED_FDS: usize = 4;

/// Largest payload sent along with fds (a zygote request's [`PreloadHint`]).
pub(crate) const MAX_FD_PAYLOAD: usize = 8192;

/// What a zygote may load from the cache before forking a runner, so the runner need not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PreloadHint {
    pub digest: [u8; 32],
    pub fuel: bool,
    pub cache_dir: PathBuf,
}

/// Sends fds with a payload (at least one byte: a message must carry data) over a unix socket.
pub(crate) fn send_fds(socket: impl AsFd, fds: &[BorrowedFd<'_>], payload: &[u8]) -> io::Result<()> {
    let payload = if payload.is_empty() { b"0" } else { payload };
    if payload.len() > MAX_FD_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fd message payload too large"));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(fds));
    let sent = rustix::net::sendmsg(socket, &[IoSlice::new(payload)], &mut control, SendFlags::NOSIGNAL)?;
    if sent == payload.len() { Ok(()) } else { Err(io::Error::new(io::ErrorKind::WriteZero, "cannot pass fds")) }
}

/// Receives one [`send_fds`] message: its fds (none at EOF) and payload.
pub(crate) fn receive_fds(socket: impl AsFd) -> io::Result<(Vec<OwnedFd>, Vec<u8>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut payload = vec![0u8; MAX_FD_PAYLOAD];
    let received =
        rustix::net::recvmsg(socket, &mut [IoSliceMut::new(&mut payload)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    payload.truncate(received.bytes);
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok((fds, payload))
}

pub(crate) fn write_config(mut out: impl Write, config: &RunnerConfig) -> io::Result<()> {
    let json = serde_json::to_vec(config)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

pub(crate) fn read_config(mut input: impl Read) -> io::Result<RunnerConfig> {
    let mut len = [0; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_CONFIG_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "runner config frame too large"));
    }
    let mut json = vec![0; len as usize];
    input.read_exact(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

pub(crate) fn encode_verdict(verdict: &Verdict) -> Vec<u8> {
    serde_json::to_vec(verdict).expect("a verdict always serializes")
}

pub(crate) fn decode_verdict(bytes: &[u8]) -> Option<Verdict> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_a_frame() {
        let config = RunnerConfig {
            module: ModuleSource::Path("/x.wasm".into()),
            argv: vec!["x.wasm".into(), "a".into()],
            env: vec![("K".into(), "V".into())],
            dirs: vec![],
            limits: Limits::default(),
            cache_dir: None,
            compile_only: false,
            forbidden_syscall_after_hardening: false,
        };
        let mut frame = Vec::new();
        write_config(&mut frame, &config).unwrap();
        let back = read_config(&frame[..]).unwrap();
        assert_eq!(back.argv, config.argv);
        assert_eq!(back.env, config.env);
    }

    #[test]
    fn verdicts_round_trip_and_garbage_is_rejected() {
        let verdict = Verdict::Trap { message: "boom".into(), wasm_backtrace: None };
        assert_eq!(decode_verdict(&encode_verdict(&verdict)), Some(verdict));
        assert_eq!(decode_verdict(b"{\"outcome\":\"exited\""), None);
    }
}
