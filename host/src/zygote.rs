//! The host's handle on a zygote: a fork server that starts sandbox runners faster than exec.

use crate::error::{Error, Result};
use crate::process::ChildProcess;
use crate::protocol::{self, PreloadHint, ZYGOTE_ANSWER_LEN, ZYGOTE_MARKER, ZygoteAnswer};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// A pre-initialised fork server for sandbox runners.
///
/// Starting a runner normally means exec'ing this binary: the kernel maps it, the dynamic linker
/// relocates it, and wasmtime builds its engine, every time. A zygote does all that once; each
/// [`Sandbox`](crate::Sandbox) given to it with [`Sandbox::zygote`](crate::Sandbox::zygote) is
/// then started by cloning the zygote, which is faster than exec'ing even a native program. The
/// runner is still a child of this process, and holds the same fds, limits, Landlock domain and
/// seccomp filter as an exec'd one. Modules are compiled only inside runners; the zygote keeps
/// compiled artifacts from the cache (verified by this process) as plain bytes, so that its
/// runners start with the artifact in memory and deserialize it behind their own walls.
///
/// Clones share one zygote; dropping the last one ends the zygote process (runners it started
/// live on).
///
/// ```no_run
/// # async fn demo() -> Result<(), wasmpipe::Error> {
/// let zygote = wasmpipe::Zygote::start()?;
/// for _ in 0..100 {
///     let (mut child, tx, _rx) = wasmpipe::Sandbox::new("echo.wasm").zygote(&zygote).spawn_piped()?;
///     drop(tx);
///     child.wait().await?;
/// }
/// # Ok(()) }
/// ```
///
/// # Caveats
///
/// - The zygote is a copy of this binary at the time of [`start`](Self::start): runners it forks
///   run that code even if the file is replaced later.
/// - Forking a runner waits for the zygote's answer (a few hundred microseconds), blocking the
///   calling thread; concurrent spawns through one zygote take turns.
/// - Runners cloned from one zygote share its memory layout (ASLR) and its stack canary, as
///   Chrome's and Android's zygotes do: a guest that learns an address in one runner knows it in
///   its siblings. Exec'd runners (no zygote) each get their own. The walls that hold against
///   native code (seccomp, Landlock, no_new_privs) do not depend on ASLR.
/// - The zygote keeps up to 16 preloaded artifacts, at most 256 MiB in all.
#[derive(Debug, Clone)]
pub struct Zygote {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Requests go out and pids come back on this socket, one spawn at a time.
    socket: Mutex<UnixStream>,
    process: Mutex<ChildProcess>,
}

impl Zygote {
    /// Starts a zygote process (a fresh exec of this binary, like a runner).
    ///
    /// # Errors
    ///
    /// [`Error::SpawnIo`] when the process cannot be started, [`Error::Io`] when the socket pair
    /// cannot be created.
    pub fn start() -> Result<Zygote> {
        crate::runner::ensure_hook_linked();
        let (ours, theirs) = UnixStream::pair()?;
        let mut command = Command::new("/proc/self/exe");
        command.arg0("wasmpipe-zygote");
        command.env_clear().env(ZYGOTE_MARKER, "1");
        command.stdin(Stdio::from(OwnedFd::from(theirs))).stdout(Stdio::null());
        let process = ChildProcess::from_pid(
            command
                .spawn()
                .map_err(|e| Error::SpawnIo { context: format!("cannot start the zygote: {e}"), source: e })?
                .id(),
        );
        Ok(Zygote { inner: Arc::new(Inner { socket: Mutex::new(ours), process: Mutex::new(process) }) })
    }

    /// The zygote's process id.
    pub fn id(&self) -> u32 {
        self.inner.process.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Asks the zygote for a runner holding the control socket as fd 3 and the given stdio
    /// (`[control, stdin, stdout, stderr]`), and the granted directories' fds, with the module of `hint` already loaded: if the
    /// zygote does not hold it yet, it asks, and `artifact` gives the verified cache entry (or
    /// `None`). Returns the runner and whether the module was preloaded.
    pub(crate) fn fork(
        &self,
        fds: [OwnedFd; 4],
        grants: Vec<OwnedFd>,
        hint: Option<&PreloadHint>,
        artifact: impl FnOnce() -> Option<Arc<[u8]>>,
    ) -> Result<(ChildProcess, bool)> {
        let payload = protocol::encode_preload_hint(hint);
        let socket = self.inner.socket.lock().unwrap_or_else(|e| e.into_inner());
        let lost = |e: io::Error| Error::Spawn(format!("the zygote is gone: {e}"));
        let all: Vec<_> = fds.iter().chain(&grants).map(AsFd::as_fd).collect();
        protocol::send_fds(&*socket, &all, &payload).map_err(lost)?;
        let read_answer = || -> Result<ZygoteAnswer> {
            let mut answer = [0u8; ZYGOTE_ANSWER_LEN];
            (&*socket).read_exact(&mut answer).map_err(lost)?;
            Ok(ZygoteAnswer::decode(answer))
        };
        let mut answer = read_answer()?;
        if answer == ZygoteAnswer::SendArtifact {
            let artifact = artifact();
            let bytes = artifact.as_deref().unwrap_or_default();
            (&*socket).write_all(&(bytes.len() as u64).to_le_bytes()).map_err(lost)?;
            (&*socket).write_all(bytes).map_err(lost)?;
            answer = read_answer()?;
        }
        match answer {
            ZygoteAnswer::Forked { pid, preloaded } => Ok((ChildProcess::from_pid(pid), preloaded)),
            ZygoteAnswer::ForkFailed | ZygoteAnswer::SendArtifact => {
                Err(Error::Spawn("the zygote could not fork a runner".into()))
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing our socket end ends the zygote; reap it so it leaves no zombie.
        let process = self.process.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = process.kill();
        let _ = process.wait();
    }
}
