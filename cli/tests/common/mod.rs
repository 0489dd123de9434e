//! What the `cli_*` tests share: the guests' paths, a [`Scratch`] directory and cache per test, and
//! ways to look at a `wasmpipe` run's [`Output`].
//!
//! Each test binary compiles its own copy of this module (`mod common;`) and uses only part of it;
//! the `#[allow(dead_code)]`s below are on the items some of them leave unused, which would
//! otherwise warn in those binaries.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The paths of the test guests, built by the `wasmpipe-tests` crate: `guests::ECHO`, ...
// Each test binary uses only the guests it runs (`cli_demo` none).
#[allow(unused_imports)]
pub use wasmpipe_tests::guests;

/// A scratch directory for one test, `<tmp>/wasmpipe-cli-<pid>-<test>`, removed when dropped.
/// Its `cache/` subdirectory is the test's own compiled-module cache.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wasmpipe-cli-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cache")).unwrap();
        Self(dir)
    }

    // Unused by the tests that need no files of their own (`cli_demo`, `cli_limits`, `cli_runner`).
    #[allow(dead_code)]
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A `wasmpipe` command that uses this test's cache and nothing of the user's.
    pub fn wasmpipe(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        command.env("WASMPIPE_CACHE_DIR", self.0.join("cache"));
        command
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A [`Scratch`] named after the enclosing test function.
macro_rules! scratch {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here).trim_end_matches("::here");
        $crate::common::Scratch::new(name.rsplit("::").next().unwrap())
    }};
}
pub(crate) use scratch;

/// The status, stdout and stderr of a run, for a failure message. A long stdout or stderr (the
/// stdio tests move megabytes) is clipped to its start and its end: the end of stderr is where
/// wasmpipe reports, after the guest's own output.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ({} bytes) ---\n{}\n--- stderr ({} bytes) ---\n{}",
        output.status,
        output.stdout.len(),
        clipped(&output.stdout, 4096),
        output.stderr.len(),
        clipped(&output.stderr, 16384)
    )
}

/// `bytes` as text, or, past `max` bytes, its first and last `max / 2` bytes.
fn clipped(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let half = max / 2;
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        String::from_utf8_lossy(&bytes[..half]),
        bytes.len() - 2 * half,
        String::from_utf8_lossy(&bytes[bytes.len() - half..])
    )
}

/// The exit code of a run; fails if `wasmpipe` died of a signal.
// Unused by the tests that check `status.code()` themselves (`cli_demo`, `cli_runner`).
#[allow(dead_code)]
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| panic!("wasmpipe died of a signal\n{}", describe(output)))
}

/// The one line of stderr that starts with `wasmpipe:`; fails unless there is exactly one, and it
/// is the last line (wasmpipe reports after the guest and its runner are gone, so a line after it
/// would be the rest of a message spanning several lines).
// Unused by the tests of runs that wasmpipe does not report on (`cli_demo`, `cli_stdio`).
#[allow(dead_code)]
pub fn the_wasmpipe_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| line.starts_with("wasmpipe:")).collect();
    assert_eq!(lines.len(), 1, "expected exactly one `wasmpipe:` line on stderr\n{}", describe(output));
    assert_eq!(stderr.lines().last(), Some(lines[0]), "the `wasmpipe:` line is not one line\n{}", describe(output));
    lines[0].to_owned()
}
