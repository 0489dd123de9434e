//! Resource limits for one sandbox, and the parsers for their human-readable forms.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The default cap on a guest's linear memory plus tables: 512 MiB.
///
/// Large enough for an interpreter compiled to WASI, small enough that a handful of runaway
/// guests cannot take a machine down.
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 * 1024 * 1024;

/// The default limit on compiling a module: 60 seconds.
///
/// Real modules compile well within it (a 26 MB CPython build takes seconds here); a module built
/// to compile slowly is stopped. Raise it with [`Limits::compile_timeout`] for very large modules.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default cap on a module's size: 256 MiB.
pub const DEFAULT_MAX_MODULE_SIZE: u64 = 256 << 20;

/// The default cap on the number of functions a module defines: 500,000.
///
/// Large real programs define tens of thousands (CPython about 12,000); a million trivial
/// functions are a compile bomb of a few megabytes.
pub const DEFAULT_MAX_FUNCTIONS: u64 = 500_000;

/// Limits enforced on one sandboxed guest.
///
/// ```
/// use std::time::Duration;
/// let limits = wasmpipe::Limits::default()
///     .timeout(Duration::from_secs(2))
///     .memory(64 << 20)
///     .fuel(1_000_000_000);
/// assert_eq!(limits.memory_limit(), 64 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    timeout: Option<Duration>,
    memory: u64,
    fuel: Option<u64>,
    compile_timeout: Option<Duration>,
    max_module_size: u64,
    max_functions: u64,
}

impl Default for Limits {
    /// No timeout, [`DEFAULT_MEMORY_LIMIT`], no fuel budget, [`DEFAULT_COMPILE_TIMEOUT`],
    /// [`DEFAULT_MAX_MODULE_SIZE`] and [`DEFAULT_MAX_FUNCTIONS`].
    fn default() -> Self {
        Self {
            timeout: None,
            memory: DEFAULT_MEMORY_LIMIT,
            fuel: None,
            compile_timeout: Some(DEFAULT_COMPILE_TIMEOUT),
            max_module_size: DEFAULT_MAX_MODULE_SIZE,
            max_functions: DEFAULT_MAX_FUNCTIONS,
        }
    }
}

impl Limits {
    /// Wall-clock limit for the guest, counted from spawn; time spent compiling the module and
    /// time the guest spends blocked reading its stdin both count. A guest that computes is
    /// interrupted (epoch interruption); one blocked in a host call is stopped by the runner's
    /// watchdog, and the parent kills the runner as a last resort. Either way it ends within about
    /// a second of the limit, reported as [`Error::Timeout`](crate::Error::Timeout).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Cap, in bytes, on the guest's linear memories, tables and GC heap (where wasm GC objects
    /// live) together: the sum over all of them, however many the module declares. A guest that grows past it sees the growth fail;
    /// if it then dies (as Rust guests do on allocation failure) the sandbox reports
    /// [`Error::MemoryLimit`](crate::Error::MemoryLimit).
    ///
    /// The runner process also gets a backstop that holds even if that accounting failed:
    /// `RLIMIT_DATA` of this limit plus 192 MiB for the runtime, plus 24 bytes per module byte
    /// while compiling. Compilation that needs more is reported as
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// Instruction budget ("fuel"); a guest that uses it up ends with
    /// [`Error::FuelExhausted`](crate::Error::FuelExhausted). Costs a few percent of speed.
    pub fn fuel(mut self, units: u64) -> Self {
        self.fuel = Some(units);
        self
    }

    /// Limit on compiling the module (on a cache miss), counted from spawn; `None` lifts it. A
    /// module still compiling then is reported as
    /// [`Error::CompileTimeout`](crate::Error::CompileTimeout). Default:
    /// [`DEFAULT_COMPILE_TIMEOUT`]. The overall [`timeout`](Self::timeout) covers compilation too.
    pub fn compile_timeout(mut self, limit: Option<Duration>) -> Self {
        self.compile_timeout = limit;
        self
    }

    /// Cap on the module's size in bytes; a larger module is refused before it reaches a runner
    /// ([`Error::InvalidModule`](crate::Error::InvalidModule)). Default: [`DEFAULT_MAX_MODULE_SIZE`].
    pub fn max_module_size(mut self, bytes: u64) -> Self {
        self.max_module_size = bytes;
        self
    }

    /// Cap on the number of functions the module defines; a module with more is refused before
    /// compilation ([`Error::InvalidModule`](crate::Error::InvalidModule)). Default:
    /// [`DEFAULT_MAX_FUNCTIONS`].
    pub fn max_functions(mut self, count: u64) -> Self {
        self.max_functions = count;
        self
    }

    /// The configured compile limit, if any.
    pub fn compile_timeout_limit(&self) -> Option<Duration> {
        self.compile_timeout
    }

    /// The configured module size cap in bytes.
    pub fn max_module_size_limit(&self) -> u64 {
        self.max_module_size
    }

    /// The configured cap on defined functions.
    pub fn max_functions_limit(&self) -> u64 {
        self.max_functions
    }

    /// The configured wall-clock limit, if any.
    pub fn timeout_limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// The configured memory cap in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory
    }

    /// The configured fuel budget, if any.
    pub fn fuel_limit(&self) -> Option<u64> {
        self.fuel
    }
}

/// Parses a byte size such as `65536`, `64KiB`, `64MiB`, `1GiB`, `10MB` or `2G`.
///
/// Binary (`KiB`, `MiB`, `GiB`, and the bare `K`, `M`, `G`) and decimal (`kB`, `MB`, `GB`)
/// suffixes are accepted, case-insensitively.
///
/// ```
/// assert_eq!(wasmpipe::parse_size("64MiB"), Ok(64 << 20));
/// assert!(wasmpipe::parse_size("lots").is_err());
/// ```
///
/// # Errors
///
/// A message naming the text when it is not a number with a known unit, or overflows `u64`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size such as 64MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{text}` (use KiB, MiB or GiB)")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("size `{text}` is too large"))
}

/// Parses a duration such as `500ms`, `2s` or `1m` (anything `humantime` accepts).
///
/// ```
/// assert_eq!(wasmpipe::parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
/// ```
///
/// # Errors
///
/// A message naming the text when `humantime` cannot parse it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration such as 2s: {e}"))
}

/// Formats a byte count the way the CLI prints limits: `64 MiB`, `1 GiB`, `1000 bytes`.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, name) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {name}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10mb"), Ok(10_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn sizes_format_in_the_largest_exact_unit() {
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
    }
}
