//! What the parent and the runner say to each other on the control socket (the runner's fd 3).
//!
//! The runner starts with the control socket as its fd 0. Parent → runner, once: one byte
//! carrying the guest's stdin fd (`SCM_RIGHTS`, see [`send_fds`]), then a length-prefixed JSON
//! [`RunnerConfig`] (everything but the module: the runner hardens itself with it while the
//! parent looks the module up in the cache), then a length-prefixed JSON [`ModuleHeader`]
//! followed by the module's bytes or compiled artifact. The runner moves the socket to fd 3 and
//! the guest's stdin to fd 0. The parent then keeps its end open and silent: it is the runner's
//! lifeline, whose EOF means the parent died.
//!
//! Runner → parent: frames (see [`frame_header`]): the engine hash when asked for it, first;
//! "hardened"; a compiled artifact for the cache; the usage; and last, one JSON [`Verdict`].
//! Keeping the verdict on its own channel means a guest can never forge one by writing to its
//! stderr.

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

/// Where the runner gets the module from. The parent always sends the bytes itself: the runner
/// opens no file to find its module, so it can be hardened before it touches a single byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ModuleSource {
    /// `len` bytes of WebAssembly follow the config on the control socket, to be compiled.
    Wasm { len: u64 },
    /// `len` bytes of a compiled artifact follow the config: a cache entry whose MAC the parent
    /// verified, so only what this user's own runners compiled.
    Compiled { len: u64 },
    /// A compiled artifact of `len` bytes at `offset` in a file passed (`SCM_RIGHTS`, see
    /// [`send_fds`]) right after the header: a cache entry whose MAC the parent verified, as for
    /// `Compiled`, in the entry's own file or in a sealed memfd. The runner maps it (and closes
    /// the fd) instead of reading it through the socket.
    Mapped {
        len: u64,
        #[serde(default)]
        offset: u64,
    },
    /// The zygote this runner was forked from already holds the compiled module with this digest
    /// (verified by the parent before it was sent to the zygote); no bytes follow.
    Preloaded { digest: [u8; 32] },
}

/// What kind of WebAssembly binary the guest is: the runner compiles, deserializes, links and runs
/// the two differently, and the cache keeps their artifacts under different names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum ModuleKind {
    /// A core module: a WASI preview1 command (`wasm32-wasip1`), run through `_start`.
    #[default]
    Core,
    /// A component: a WASI 0.2 command (`wasm32-wasip2`), run through `wasi:cli/run`.
    Component,
}

impl ModuleKind {
    /// The kind of `bytes`, from their 8-byte header alone (nothing is parsed or compiled): a
    /// component's header says so; anything else is treated as a core module, whose compiler
    /// reports what is wrong with it.
    pub(crate) fn of(bytes: &[u8]) -> ModuleKind {
        if wasmparser::Parser::is_component(bytes) { ModuleKind::Component } else { ModuleKind::Core }
    }
}

/// Whether and how the runner returns what it compiled, for the parent to store in the cache.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ReturnArtifact {
    /// Artifacts larger than this are not sent back (the cache would not take them).
    pub max_len: u64,
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// Which module the runner gets and how: sent after the [`RunnerConfig`], once the parent has
/// looked the module up in the cache, and followed by the bytes `source` announces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ModuleHeader {
    pub source: ModuleSource,
    /// The kind of the module, as the parent read it from the module's bytes: how the runner
    /// loads an artifact (`Compiled`, `Preloaded`), which carries no bytes of the module. A
    /// runner given `Wasm` bytes reads the kind from them itself.
    pub kind: ModuleKind,
    /// Send the compiled artifact back (a [`FRAME_ARTIFACT`] frame) after compiling `Wasm` bytes.
    pub return_artifact: Option<ReturnArtifact>,
}

/// Everything the runner needs to know but its module, sent by the parent right after starting
/// it: the runner hardens itself with it while the parent is still looking the module up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunnerConfig {
    /// Send back the compatibility hash of the engine this runner made, before hardening
    /// ([`FRAME_ENGINE_HASH`]): the parent names the cache entry with it instead of making an
    /// engine of its own. Only runners forked from the parent are asked: they are copies of the
    /// parent, and nothing but its code has run in them yet, so the hash is the one the parent
    /// would compute.
    #[serde(default)]
    pub send_engine_hash: bool,
    /// The guest's `argv`, program name included.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dirs: Vec<DirGrant>,
    pub limits: Limits,
    /// Only compile the module, then exit 0; nothing runs.
    pub compile_only: bool,
    /// Grant directories even on a kernel without Landlock, where native code in the runner
    /// would not be confined to them.
    pub allow_unconfined_dirs: bool,
    /// Test hook: raw syscalls a compromised runner might make, run after hardening.
    pub probes: Vec<crate::probe::Probe>,
    /// The CPU features the parent detected (see `runner::cpu`), for an exec'd runner to make
    /// its engine without detecting them again; `None`: detect.
    #[serde(default)]
    pub cpu_features: Option<Vec<String>>,
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
    /// Compilation alone ran past its own limit.
    CompileTimeout {
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
    /// The seccomp filter trapped this system call (written by the `SIGSYS` handler).
    ForbiddenSyscall {
        nr: i64,
    },
    /// The runner's allocator failed under the process-wide memory backstop (`RLIMIT_DATA`),
    /// typically while compiling (written by the `SIGABRT` handler).
    OutOfMemory {
        limit: u64,
    },
    /// Test hook results: each probe's return value, or `-errno`.
    Probed {
        results: Vec<i64>,
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
        use crate::status;
        i32::from(match self {
            Verdict::Exited { code } => status::of_guest_exit(*code),
            Verdict::Timeout { .. } | Verdict::CompileTimeout { .. } => status::TIMEOUT,
            Verdict::MemoryLimit { .. }
            | Verdict::OutOfMemory { .. }
            | Verdict::FuelExhausted
            | Verdict::Trap { .. } => status::GUEST_CRASHED,
            Verdict::ForbiddenSyscall { .. } => status::FORBIDDEN_SYSCALL,
            Verdict::InvalidModule { .. } | Verdict::Failed { .. } | Verdict::Probed { .. } => status::WASMPIPE_FAILED,
        })
    }
}

/// Most directories one sandbox may be granted: their fds travel in one message.
pub(crate) const MAX_GRANTS: usize = 32;

/// Most fds one message carries: a zygote request (control socket, stdin, stdout, stderr) and
/// the granted directories.
pub(crate) const MAX_PASSED_FDS: usize = 4 + MAX_GRANTS;

/// Largest payload sent along with fds (a zygote request's [`PreloadHint`]).
pub(crate) const MAX_FD_PAYLOAD: usize = 8192;

/// The module a zygote should hold before forking a runner, so the runner need not load it.
///
/// A zygote that does not hold it answers [`ZygoteAnswer::SendArtifact`]; the parent then sends a
/// `u64` length (little-endian) and that many bytes of a verified cache entry (length 0: not
/// cached), and the zygote answers again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PreloadHint {
    pub digest: [u8; 32],
    pub fuel: bool,
}

/// The fork request's payload: the [`PreloadHint`] as JSON, or nothing.
pub(crate) fn encode_preload_hint(hint: Option<&PreloadHint>) -> Vec<u8> {
    hint.map(|hint| serde_json::to_vec(hint).expect("a hint always serializes")).unwrap_or_default()
}

/// A fork request's hint, if its payload holds one.
pub(crate) fn decode_preload_hint(payload: &[u8]) -> Option<PreloadHint> {
    serde_json::from_slice(payload).ok()
}

/// What a zygote answers a fork request with: five bytes, a `u32` pid (little-endian) and a
/// flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZygoteAnswer {
    /// A runner was forked; `preloaded` says whether the hinted module was in memory.
    Forked { pid: u32, preloaded: bool },
    /// The zygote does not hold the hinted module: send its artifact (a `u64` length, then the
    /// bytes; length 0 for none), then read the answer again.
    SendArtifact,
    /// `clone` failed.
    ForkFailed,
}

/// The length of an encoded [`ZygoteAnswer`].
pub(crate) const ZYGOTE_ANSWER_LEN: usize = 5;

impl ZygoteAnswer {
    pub(crate) fn encode(self) -> [u8; ZYGOTE_ANSWER_LEN] {
        let (pid, flag) = match self {
            ZygoteAnswer::Forked { pid, preloaded } => (pid, u8::from(preloaded)),
            ZygoteAnswer::SendArtifact => (0, 2),
            ZygoteAnswer::ForkFailed => (0, 0),
        };
        let mut bytes = [0u8; ZYGOTE_ANSWER_LEN];
        bytes[..4].copy_from_slice(&pid.to_le_bytes());
        bytes[4] = flag;
        bytes
    }

    pub(crate) fn decode(bytes: [u8; ZYGOTE_ANSWER_LEN]) -> Self {
        match (u32::from_le_bytes(bytes[..4].try_into().expect("four bytes")), bytes[4]) {
            (0, 2) => ZygoteAnswer::SendArtifact,
            (0, _) => ZygoteAnswer::ForkFailed,
            (pid, flag) => ZygoteAnswer::Forked { pid, preloaded: flag == 1 },
        }
    }
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

/// Writes one length-prefixed JSON message (a [`RunnerConfig`] or a [`ModuleHeader`]).
pub(crate) fn write_message(mut out: impl Write, message: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(message)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

/// Reads one message written by [`write_message`].
pub(crate) fn read_message<T: serde::de::DeserializeOwned>(mut input: impl Read) -> io::Result<T> {
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

/// Runner → parent frames: one tag byte, a `u32` little-endian payload length, the payload.
/// The tag of a frame holding a compiled artifact for the cache.
pub(crate) const FRAME_ARTIFACT: u8 = 1;
/// The tag of the frame holding the JSON [`Verdict`]; always the last frame.
pub(crate) const FRAME_VERDICT: u8 = 2;
/// The tag of the frame a runner sends once hardened: one byte, the Landlock ABI it enforced
/// (0: none).
pub(crate) const FRAME_HARDENED: u8 = 3;
/// The tag of the frame with the runner's [`RunnerUsage`], sent just before the verdict.
pub(crate) const FRAME_USAGE: u8 = 4;
/// The tag of the frame a runner sends first when asked ([`RunnerConfig::send_engine_hash`]):
/// its engine's compatibility hash, a `u64` little-endian.
pub(crate) const FRAME_ENGINE_HASH: u8 = 5;
/// The length of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 5;
/// The parent reads at most this much of a verdict: a compromised runner cannot make the parent
/// allocate without bound.
pub(crate) const MAX_VERDICT_LEN: u32 = 64 << 10;

/// A frame header.
pub(crate) fn frame_header(tag: u8, len: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [tag, 0, 0, 0, 0];
    header[1..].copy_from_slice(&len.to_le_bytes());
    header
}

/// What the guest used, as only the runner can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunnerUsage {
    /// The most its memories and tables held at once, in bytes.
    pub peak_memory: u64,
    /// Fuel burned, when a budget was set and the guest's run ended inside the runner.
    pub fuel_consumed: Option<u64>,
}

/// A whole usage frame.
pub(crate) fn encode_usage(usage: &RunnerUsage) -> Vec<u8> {
    let json = serde_json::to_vec(usage).expect("usage always serializes");
    let mut frame = frame_header(FRAME_USAGE, json.len() as u32).to_vec();
    frame.extend_from_slice(&json);
    frame
}

/// A whole verdict frame.
pub(crate) fn encode_verdict(verdict: &Verdict) -> Vec<u8> {
    let json = serde_json::to_vec(verdict).expect("a verdict always serializes");
    let mut frame = frame_header(FRAME_VERDICT, json.len() as u32).to_vec();
    frame.extend_from_slice(&json);
    frame
}

/// A verdict frame's payload.
pub(crate) fn decode_verdict(bytes: &[u8]) -> Option<Verdict> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_module_header_round_trip_through_frames() {
        let config = RunnerConfig {
            send_engine_hash: true,
            argv: vec!["x.wasm".into(), "a".into()],
            env: vec![("K".into(), "V".into())],
            dirs: vec![],
            limits: Limits::default(),
            compile_only: false,
            allow_unconfined_dirs: false,
            probes: Vec::new(),
            cpu_features: Some(vec!["avx2".into()]),
        };
        let header = ModuleHeader {
            source: ModuleSource::Compiled { len: 8 },
            kind: ModuleKind::Component,
            return_artifact: Some(ReturnArtifact { max_len: 9 }),
        };
        let mut frames = Vec::new();
        write_message(&mut frames, &config).unwrap();
        write_message(&mut frames, &header).unwrap();
        let mut input = &frames[..];
        let back: RunnerConfig = read_message(&mut input).unwrap();
        assert_eq!(back.argv, config.argv);
        assert_eq!(back.env, config.env);
        assert!(back.send_engine_hash);
        assert_eq!(back.cpu_features, config.cpu_features);
        let back: ModuleHeader = read_message(&mut input).unwrap();
        assert_eq!(back.kind, ModuleKind::Component);
        assert!(matches!(back.source, ModuleSource::Compiled { len: 8 }));
        assert_eq!(back.return_artifact.map(|r| r.max_len), Some(9));
        assert!(input.is_empty());
    }

    #[test]
    fn the_kind_is_read_from_the_header() {
        let core = b"\0asm\x01\0\0\0";
        let component = b"\0asm\x0d\0\x01\0";
        assert_eq!(ModuleKind::of(core), ModuleKind::Core);
        assert_eq!(ModuleKind::of(component), ModuleKind::Component);
        assert_eq!(ModuleKind::of(b"not wasm"), ModuleKind::Core);
    }

    #[test]
    fn zygote_messages_round_trip() {
        for answer in [
            ZygoteAnswer::Forked { pid: 4242, preloaded: true },
            ZygoteAnswer::Forked { pid: 7, preloaded: false },
            ZygoteAnswer::SendArtifact,
            ZygoteAnswer::ForkFailed,
        ] {
            assert_eq!(ZygoteAnswer::decode(answer.encode()), answer);
        }
        let hint = PreloadHint { digest: [9; 32], fuel: true };
        assert_eq!(decode_preload_hint(&encode_preload_hint(Some(&hint))), Some(hint));
        assert_eq!(decode_preload_hint(&encode_preload_hint(None)), None);
    }

    #[test]
    fn usage_frames_carry_their_json() {
        let usage = RunnerUsage { peak_memory: 65536, fuel_consumed: Some(12) };
        let frame = encode_usage(&usage);
        assert_eq!(frame[0], FRAME_USAGE);
        assert_eq!(serde_json::from_slice::<RunnerUsage>(&frame[FRAME_HEADER_LEN..]).unwrap(), usage);
    }

    #[test]
    fn verdicts_round_trip_and_garbage_is_rejected() {
        let verdict = Verdict::Trap { message: "boom".into(), wasm_backtrace: None };
        let frame = encode_verdict(&verdict);
        assert_eq!(frame[0], FRAME_VERDICT);
        assert_eq!(decode_verdict(&frame[FRAME_HEADER_LEN..]), Some(verdict));
        assert_eq!(decode_verdict(b"{\"outcome\":\"exited\""), None);
    }
}
