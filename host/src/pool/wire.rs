//! How a pool's requests and replies travel: one line each, or one length-prefixed frame each.

use crate::error::{Error, Result};
use crate::pipe::AsyncReader;

/// The message format a [`Pool`](crate::Pool) speaks with its guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framing {
    /// One line per message, `\n`-terminated: what `read_line`/`write` guests and line filters
    /// speak. The default. Replies keep their `\n`.
    #[default]
    Lines,
    /// One binary frame per message: a 4-byte big-endian length, then that many bytes (the
    /// format of [`codec`](crate::codec) and the guest SDK's `recv_frame`/`send_frame`).
    Frames,
}

impl Framing {
    /// `request` encoded for the wire (one allocation, exactly sized), checked against the
    /// limits.
    pub(super) fn encode(self, request: &[u8], max_frame: usize) -> Result<Vec<u8>> {
        match self {
            Framing::Lines => {
                let body = request.strip_suffix(b"\n").unwrap_or(request);
                if memchr::memchr(b'\n', body).is_some() {
                    let message = "a pool request must be a single line (a newline only at its end)";
                    return Err(Error::InvalidRequest(message.into()));
                }
                let mut line = Vec::with_capacity(body.len() + 1);
                line.extend_from_slice(body);
                line.push(b'\n');
                Ok(line)
            }
            Framing::Frames => {
                if request.len() > max_frame {
                    return Err(Error::FrameTooLarge { length: request.len() as u64, max: max_frame });
                }
                let mut frame = Vec::with_capacity(4 + request.len());
                frame.extend_from_slice(&(request.len() as u32).to_be_bytes());
                frame.extend_from_slice(request);
                Ok(frame)
            }
        }
    }

    /// Reads one reply; `Ok(None)` when the guest closed its stdout first (a line cut short by
    /// the end counts as no reply). Cancel-safe, like the reads it uses.
    pub(super) async fn read(self, stdout: &mut AsyncReader) -> Result<Option<Vec<u8>>> {
        match self {
            Framing::Lines => match stdout.read_line().await? {
                Some(line) if line.ends_with(b"\n") => Ok(Some(line)),
                _ => Ok(None),
            },
            Framing::Frames => match stdout.recv_frame().await {
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                other => other,
            },
        }
    }
}
