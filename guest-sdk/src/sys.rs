//! Unbuffered access to the process's standard input and output.
//!
//! On Unix and WASI the SDK talks to file descriptors 0 and 1 directly, so the only buffers
//! between the guest and the pipe are the SDK's own (no `std` `BufReader`/`LineWriter` in
//! between). Elsewhere it falls back to the `std` handles.

#[cfg(any(unix, target_os = "wasi"))]
mod imp {
    use std::fs::File;
    use std::mem::ManuallyDrop;
    use std::os::fd::{FromRawFd, RawFd};

    /// Wraps an inherited standard descriptor without taking ownership of it.
    fn borrow_std_fd(fd: RawFd) -> ManuallyDrop<File> {
        // SAFETY: descriptors 0 and 1 are inherited by every process and stay open for its
        // whole lifetime; `ManuallyDrop` guarantees this `File` never closes them. If the
        // parent closed one, reads and writes merely fail with `EBADF`.
        ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
    }

    pub(crate) fn stdin() -> ManuallyDrop<File> {
        borrow_std_fd(0)
    }

    pub(crate) fn stdout() -> ManuallyDrop<File> {
        borrow_std_fd(1)
    }
}

#[cfg(not(any(unix, target_os = "wasi")))]
mod imp {
    pub(crate) fn stdin() -> std::io::Stdin {
        std::io::stdin()
    }

    pub(crate) fn stdout() -> std::io::Stdout {
        std::io::stdout()
    }
}

pub(crate) use imp::{stdin, stdout};
