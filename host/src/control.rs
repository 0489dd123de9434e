//! The parent's side of a runner's reports: frames read from the control socket, bounded.
//!
//! A runner sends at most one compiled artifact (which the parent stores in the cache) and then
//! exactly one verdict. The runner may be compromised, so every read is bounded: an artifact by
//! the cache's entry cap, a verdict by [`MAX_VERDICT_LEN`]. Anything else is a protocol
//! violation, and the caller kills the runner.

use crate::cache::{Cache, CacheOutcome, EntryName};
use crate::protocol::{self, FRAME_ARTIFACT, FRAME_HEADER_LEN, FRAME_VERDICT, MAX_VERDICT_LEN, Verdict};
use std::future::Future;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Where a runner's compiled artifact goes.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactSink {
    pub cache: Arc<Cache>,
    pub name: EntryName,
    /// The largest artifact taken (see [`artifact_cap`]).
    pub max_len: u64,
}

/// The largest compiled artifact the parent reads for a module of `module_len` bytes: a
/// multiple of the module (Cranelift's output is a few times its input), at least 32 MiB, never
/// more than the cache takes. It bounds what a compromised runner can make the parent buffer.
pub(crate) fn artifact_cap(module_len: usize, cache: &Cache) -> u64 {
    (module_len as u64).saturating_mul(32).max(32 << 20).min(cache.max_entry_bytes())
}

/// Everything a runner reported.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    pub verdict: Option<Verdict>,
    /// What happened to the artifact the runner sent, if it sent one.
    pub stored: Option<CacheOutcome>,
    /// What the guest used, when the runner said (it does before every verdict it writes itself).
    pub usage: Option<crate::protocol::RunnerUsage>,
    /// The Landlock ABI the runner enforced (`Some(0)`: none), once it reported being hardened.
    pub landlock_abi: Option<u8>,
    /// The runner broke the protocol: kill it.
    pub violation: Option<String>,
}

/// What `read` makes of bytes already received in full (the runner has exited): no I/O to wait
/// for, and without a sink no blocking task either, so one poll completes it.
pub(crate) fn parse(bytes: &[u8]) -> Reports {
    let mut reading = std::pin::pin!(read(bytes, None));
    match reading.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(reports) => reports,
        std::task::Poll::Pending => unreachable!("reading from a byte slice never waits"),
    }
}

/// Reads frames until EOF, the verdict, or a violation.
pub(crate) async fn read(mut control: impl tokio::io::AsyncRead + Unpin, sink: Option<ArtifactSink>) -> Reports {
    let mut reports = Reports::default();
    let mut sink = sink;
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        match control.read_exact(&mut header).await {
            Ok(_) => {}
            // EOF (or a reset) between frames: a dead runner, whose exit status explains.
            Err(_) => return reports,
        }
        let len = u32::from_le_bytes(header[1..].try_into().expect("four bytes"));
        match header[0] {
            FRAME_VERDICT if len <= MAX_VERDICT_LEN => {
                let mut json = vec![0u8; len as usize];
                if control.read_exact(&mut json).await.is_err() {
                    return reports;
                }
                reports.verdict = protocol::decode_verdict(&json);
                if reports.verdict.is_none() {
                    reports.violation = Some("the runner sent a garbled verdict".into());
                }
                return reports;
            }
            FRAME_ARTIFACT if sink.as_ref().is_some_and(|sink| u64::from(len) <= sink.max_len) => {
                let sink = sink.take().expect("checked above");
                let mut artifact = vec![0u8; len as usize];
                if control.read_exact(&mut artifact).await.is_err() {
                    return reports;
                }
                let stored = tokio::task::spawn_blocking(move || sink.cache.store(&sink.name, &artifact)).await;
                reports.stored =
                    Some(stored.unwrap_or_else(|e| CacheOutcome::NotStored(format!("the cache writer failed: {e}"))));
            }
            crate::protocol::FRAME_USAGE if len <= 1024 && reports.usage.is_none() => {
                let mut json = vec![0u8; len as usize];
                if control.read_exact(&mut json).await.is_err() {
                    return reports;
                }
                reports.usage = serde_json::from_slice(&json).ok();
            }
            crate::protocol::FRAME_HARDENED if len == 1 && reports.landlock_abi.is_none() => {
                let mut abi = [0u8; 1];
                if control.read_exact(&mut abi).await.is_err() {
                    return reports;
                }
                reports.landlock_abi = Some(abi[0]);
            }
            tag => {
                reports.violation = Some(format!("the runner sent an unexpected frame (tag {tag}, {len} bytes)"));
                return reports;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Feeds `bytes` as a runner would and returns what the parent made of them.
    async fn reports_for(bytes: Vec<u8>) -> Reports {
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let writer = tokio::spawn(async move {
            // A compromised runner may write far more than the parent reads: ignore EPIPE.
            let _ = theirs.write_all(&bytes).await;
        });
        let reports = read(ours, None).await;
        writer.abort();
        reports
    }

    #[tokio::test]
    async fn an_oversized_verdict_is_a_violation_without_reading_it() {
        let mut flood = protocol::frame_header(FRAME_VERDICT, u32::MAX).to_vec();
        flood.extend(std::iter::repeat_n(b'x', 1 << 20));
        let reports = reports_for(flood).await;
        assert!(reports.verdict.is_none());
        assert!(reports.violation.is_some_and(|v| v.contains("unexpected frame")));
    }

    #[tokio::test]
    async fn an_artifact_nobody_asked_for_is_a_violation() {
        let mut frame = protocol::frame_header(FRAME_ARTIFACT, 4).to_vec();
        frame.extend_from_slice(b"code");
        assert!(reports_for(frame).await.violation.is_some());
    }

    #[tokio::test]
    async fn a_garbled_verdict_is_a_violation_and_a_good_one_is_read() {
        let mut garbled = protocol::frame_header(FRAME_VERDICT, 3).to_vec();
        garbled.extend_from_slice(b"{{{");
        assert!(reports_for(garbled).await.violation.is_some());
        let verdict = Verdict::Exited { code: 3 };
        let reports = reports_for(protocol::encode_verdict(&verdict)).await;
        assert_eq!(reports.verdict, Some(verdict));
        assert!(reports.violation.is_none());
    }
}
