//! A child process known by its pid, and reaped by us.
//!
//! Runners come either from `std::process::Command` (a `posix_spawn` of this binary) or from a
//! [`Zygote`](crate::Zygote) (a `clone` with `CLONE_PARENT`, so the runner is still our child).
//! Both are handled the same way, by pid: `waitpid` reaps them, and the status is remembered, so
//! a pid is never signalled after it was reaped (when the kernel may have reused it).

use rustix::process::{Pid, Signal};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct ChildProcess {
    pid: Pid,
    status: Option<ExitStatus>,
    /// CPU time the child used, user and system, from `wait4` once reaped.
    cpu: Option<(Duration, Duration)>,
    /// Set once reaped, for [`KillHandle`](crate::KillHandle)s, which must never signal a pid
    /// the kernel may have reused.
    reaped: Arc<AtomicBool>,
}

impl ChildProcess {
    /// Takes over a child of this process. Dropping a `std::process::Child` neither kills nor
    /// reaps it, so turning one into a pid is safe.
    pub(crate) fn from_pid(pid: u32) -> Self {
        let pid = Pid::from_raw(pid as i32).expect("a child's pid is positive");
        Self { pid, status: None, cpu: None, reaped: Arc::new(AtomicBool::new(false)) }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether the child was reaped (its pid may belong to another process by now).
    pub(crate) fn is_reaped(&self) -> bool {
        self.status.is_some()
    }

    /// The flag that is set once the child is reaped.
    pub(crate) fn reaped_flag(&self) -> Arc<AtomicBool> {
        self.reaped.clone()
    }

    /// User and system CPU time, once reaped.
    pub(crate) fn cpu_time(&self) -> Option<(Duration, Duration)> {
        self.cpu
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
        self.reap(libc::WNOHANG)
    }

    /// Blocks until the child exits, and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.reap(0)? {
                return Ok(status);
            }
        }
    }

    /// `wait4`, which also reports the child's resource usage.
    fn reap(&mut self, options: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw_status = 0;
        // SAFETY: zeroed rusage is a valid value to be overwritten.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid pointers to locals.
        let reaped = unsafe { libc::wait4(self.pid.as_raw_nonzero().get(), &mut raw_status, options, &mut usage) };
        match reaped {
            0 => Ok(None),
            pid if pid > 0 => {
                let status = ExitStatus::from_raw(raw_status);
                let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
                self.status = Some(status);
                self.cpu = Some((time(usage.ru_utime), time(usage.ru_stime)));
                self.reaped.store(true, Ordering::Release);
                Ok(Some(status))
            }
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                e => Err(e),
            },
        }
    }
}
