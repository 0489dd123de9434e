//! Typed messages over the pipes: JSON Lines and length-prefixed binary frames.
//!
//! Both formats are specified in the README's "Wire formats" section, so that guests in any
//! language can speak them; Rust guests get them from the `wasmpipe-guest` SDK (`Rx::recv`,
//! `Tx::send`, `Rx::recv_frame`, `Tx::send_frame`).
//!
//! There are two ways to use them on the host:
//!
//! - directly on the pipe halves, with [`AsyncReader::recv`](crate::AsyncReader::recv) /
//!   [`AsyncWriter::send`](crate::AsyncWriter::send) and
//!   [`AsyncReader::recv_frame`](crate::AsyncReader::recv_frame) /
//!   [`AsyncWriter::send_frame`](crate::AsyncWriter::send_frame). These keep going after bad
//!   input (a malformed line, an over-long line, an oversized frame), are cancel-safe when
//!   reading, and work on the halves from [`pipe()`](crate::pipe), [`duplex()`](crate::duplex)
//!   and [`Sandbox::spawn_piped`](crate::Sandbox::spawn_piped);
//! - as tokio-util codecs, [`JsonLinesCodec`] and [`FrameCodec`] (or tokio-util's own
//!   [`LengthDelimitedCodec`] from [`length_delimited_codec`]), to plug into [`FramedRead`],
//!   [`FramedWrite`] or [`Framed`] over the same halves (they implement tokio's `AsyncRead` and
//!   `AsyncWrite`). The traits and adapters (and the `bytes` buffers their signatures use) are
//!   re-exported here, so no direct tokio-util dependency is needed.
//!
//! Every decoder holds at most its maximum (line length or frame length) for a partial
//! message, whatever the input.
//!
//! # Examples
//!
//! A typed request/reply over a sandboxed guest that echoes JSON Lines:
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), wasmpipe::Error> {
//! #[derive(serde::Serialize, serde::Deserialize, Debug)]
//! struct Job { id: u32, text: String }
//!
//! let (mut child, mut tx, mut rx) = wasmpipe::Sandbox::new("json_echo.wasm").spawn_piped()?;
//! tx.send(&Job { id: 1, text: "hello".into() }).await?;
//! let reply: Option<serde_json::Value> = rx.recv().await?;
//! drop(tx);
//! child.wait().await?;
//! # Ok(()) }
//! ```

mod frame_assembler;
mod frames;
mod halves;
mod json_lines;
#[cfg(test)]
mod tests;

pub use bytes::{Bytes, BytesMut};
pub use frames::{DEFAULT_MAX_FRAME_LENGTH, FrameCodec, length_delimited_codec};
pub use json_lines::JsonLinesCodec;
pub use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite, LengthDelimitedCodec};

pub(crate) use frame_assembler::FrameAssembler;
pub(crate) use json_lines::{encode_line as encode_json_line, parse_line as parse_json_line};
