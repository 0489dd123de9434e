//! A child process known by its pid, and reaped by us.
//!
//! Runners come either from `std::process::Command` (a `posix_spawn` of this binary) or from a
//! [`Zygote`](crate::Zygote) (a `clone` with `CLONE_PARENT`, so the runner is still our child).
//! Both are handled the same way, by pid: `waitpid` reaps them, and the status is remembered, so
//! a pid is never signalled after it was reaped (when the kernel may have reused it).

use rustix::process::{Pid, Signal, WaitOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

#[derive(Debug)]
pub(crate) struct ChildProcess {
    pid: Pid,
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Takes over a child of this process. Dropping a `std::process::Child` neither kills nor
    /// reaps it, so turning one into a pid is safe.
    pub(crate) fn from_pid(pid: u32) -> Self {
        let pid = Pid::from_raw(pid as i32).expect("a child's pid is positive");
        Self { pid, status: None }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `SIGKILL`, unless the child was already reaped.
    pub(crate) fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match rustix::process::kill_process(self.pid, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The exit status if the child has exited (reaping it), without blocking.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(WaitOptions::NOHANG)
    }

    /// Blocks until the child exits, and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.reap(WaitOptions::empty())? {
                return Ok(status);
            }
        }
    }

    fn reap(&mut self, options: WaitOptions) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match rustix::process::waitpid(Some(self.pid), options) {
            Ok(Some((_, status))) => {
                let status = ExitStatus::from_raw(status.as_raw());
                self.status = Some(status);
                Ok(Some(status))
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
