//! Echoes binary frames as `echo:<payload>`, and answers a bad frame with
//! `error:<io::ErrorKind>:<what the SDK said>` (an `UnexpectedEof` being the last word).
//!
//! Used by the typed-message tests: the host's `send_frame`/`recv_frame` and tokio-util's
//! `LengthDelimitedCodec` against the SDK's `recv_frame`/`send_frame`, and the SDK's handling of
//! oversized and truncated frames from the host. An optional argument sets the maximum frame
//! length for reading and writing; the payload `oversized-reply` asks for a reply one byte over
//! it, which the SDK must refuse to send.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    let max = std::env::args().nth(1).map(|max| max.parse().expect("the argument is a maximum frame length"));
    if let Some(max) = max {
        rx.set_max_frame_length(max);
        tx.set_max_frame_length(max);
    }
    loop {
        let result = match rx.recv_frame() {
            Ok(Some(payload)) if payload == b"oversized-reply" => {
                let too_big = vec![0; max.unwrap_or(wasmpipe_guest::DEFAULT_MAX_FRAME_LENGTH) + 1];
                tx.send_frame(&too_big)
            }
            Ok(Some(payload)) => tx.send_frame(&[&b"echo:"[..], &payload].concat()),
            Ok(None) => return Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let kind = e.kind();
            if !matches!(kind, io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof) {
                return Err(e);
            }
            tx.send_frame(format!("error:{kind:?}:{e}").as_bytes())?;
        }
    }
}
