//! Starting an echo child, sandboxed or native, wired the same way, and talking to it.

use crate::guests;
use anyhow::{Context, ensure};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmpipe::{AsyncReader, AsyncWriter, Pool, Sandbox, SandboxChild, Zygote};

/// Which echo child to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The echo guest in a sandbox, loaded from the (warm) compiled-module cache.
    Sandbox,
    /// The echo guest in a sandbox, compiled at every start.
    SandboxUncached,
    /// The echo guest in a sandbox forked by a zygote, from the warm cache.
    SandboxZygote,
    /// The echo guest built as a WASI 0.2 component, in a sandbox, from the warm cache.
    SandboxP2,
    /// The echo guest's source compiled for the host: this binary's `native-echo` subcommand.
    Native,
}

/// The native baseline's program: the very binary that is running, as for sandbox runners (the
/// file at `current_exe()` may be replaced by a rebuild while the bench runs).
const THIS_BINARY: &str = "/proc/self/exe";

/// Starts echo children; owns what they share (the module, a private cache directory).
pub(crate) struct Launcher {
    module: Arc<[u8]>,
    /// The same source as a WASI 0.2 component.
    component: Arc<[u8]>,
    cache: TempDir,
    zygote: Zygote,
}

impl Launcher {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            // One copy for every spawn, instead of one per spawn.
            module: Arc::from(guests::ECHO),
            component: Arc::from(guests::ECHO_P2),
            // A fresh cache: what the user's cache holds (or not) must not change the numbers.
            cache: TempDir::new()?,
            zygote: Zygote::start()?,
        })
    }

    /// Starts a child with a fresh duplex pipe as its stdin and stdout, and opens the parent's
    /// end. Both kinds of child get their ends the same way (as stdio of a spawned process).
    pub fn spawn(&self, kind: Kind) -> anyhow::Result<Peer> {
        let (ours, theirs) = wasmpipe::duplex()?;
        let process = match kind {
            Kind::Sandbox => {
                Process::Sandbox(Box::new(self.sandbox().cache_dir(self.cache.path()).duplex(theirs).spawn()?))
            }
            Kind::SandboxP2 => Process::Sandbox(Box::new(
                Sandbox::from_bytes("echo.wasm", Arc::clone(&self.component))
                    .cache_dir(self.cache.path())
                    .duplex(theirs)
                    .spawn()?,
            )),
            Kind::SandboxUncached => Process::Sandbox(Box::new(self.sandbox().no_cache().duplex(theirs).spawn()?)),
            Kind::SandboxZygote => Process::Sandbox(Box::new(
                self.sandbox().cache_dir(self.cache.path()).zygote(&self.zygote).duplex(theirs).spawn()?,
            )),
            Kind::Native => {
                let (stdin, stdout) = theirs.into_parts();
                // The command (holding our copies of the child's ends) is a temporary, dropped
                // right after the spawn: the child's EOF depends on it.
                let child = tokio::process::Command::new(THIS_BINARY)
                    .arg("native-echo")
                    .stdin(stdin)
                    .stdout(stdout)
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start the native baseline")?;
                Process::Native(child)
            }
        };
        let (reader, writer) = ours.open()?;
        Ok(Peer { process, writer: Some(writer), reader })
    }

    /// A pool of `workers` echo children of `kind` (`Sandbox` or `Native`), behind the same
    /// pool code; sandboxes start from the pool's zygote and the warm cache.
    pub fn pool(&self, kind: Kind, workers: usize) -> Pool {
        match kind {
            Kind::Native => Pool::native_builder(|| {
                let mut command = std::process::Command::new(THIS_BINARY);
                command.arg("native-echo");
                command
            })
            .workers(workers)
            .build(),
            _ => {
                let (module, cache) = (Arc::clone(&self.module), self.cache.path().to_path_buf());
                Pool::builder(move || Sandbox::from_bytes("echo.wasm", Arc::clone(&module)).cache_dir(&cache))
                    .workers(workers)
                    .build()
            }
        }
    }

    fn sandbox(&self) -> Sandbox {
        Sandbox::from_bytes("echo.wasm", Arc::clone(&self.module))
    }
}

/// A running echo child and the parent's ends of its pipes.
pub(crate) struct Peer {
    process: Process,
    /// `None` once handed out with [`take_writer`](Self::take_writer).
    writer: Option<AsyncWriter>,
    pub reader: AsyncReader,
}

enum Process {
    Sandbox(Box<SandboxChild>),
    Native(tokio::process::Child),
}

impl Peer {
    /// The child's process id (the sandbox runner's, for a sandbox).
    pub fn pid(&self) -> anyhow::Result<u32> {
        let pid = match &self.process {
            Process::Sandbox(child) => child.id(),
            Process::Native(child) => child.id(),
        };
        pid.context("the child has already been reaped")
    }

    /// Sends `line` and checks that it comes back unchanged.
    pub async fn round_trip(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.writer.as_mut().context("the writer was taken")?.write_all(line).await?;
        let reply = self.reader.read_line().await?.context("the child closed its stdout")?;
        ensure!(reply == line, "the child answered {:?} to {:?}", String::from_utf8_lossy(&reply), line.escape_ascii());
        Ok(())
    }

    /// Hands out the writer, e.g. to a task of its own; dropping it ends the child's input.
    pub fn take_writer(&mut self) -> anyhow::Result<AsyncWriter> {
        self.writer.take().context("the writer was already taken")
    }

    /// Ends the child's input and waits for it to exit, checking that it said nothing more
    /// and exited successfully.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.writer.take());
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).await?;
        ensure!(rest.is_empty(), "the child sent {} bytes nobody asked for", rest.len());
        match &mut self.process {
            Process::Sandbox(child) => {
                let exit = child.wait().await?;
                ensure!(exit.success(), "the echo guest exited with {}", exit.code());
            }
            Process::Native(child) => {
                let status = child.wait().await?;
                ensure!(status.success(), "the native echo exited with {status}");
            }
        }
        Ok(())
    }
}

/// A directory under the system temp dir, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("wasmpipe-bench-{}", std::process::id()));
        // A leftover from an earlier process with our pid would be a warm cache.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
