//! Hostile: writes typed messages with bad ones among them, then exits.
//!
//! Used by the typed-message tests of the host's decoders. The argument picks the stream:
//!
//! - `json`: `{"n":1}`, a malformed line, `{"n":3}`, a line of 2000 bytes, `{"n":5}`;
//! - `frames`: frame `first`, a frame announcing and carrying 2000 bytes, frame `after`, then a
//!   frame announcing 100 bytes that carries only 10;
//! - `huge-claim`: a header announcing 4 GiB - 1, then 3 bytes.

use std::io;

fn main() -> io::Result<()> {
    let mut tx = wasmpipe_guest::Tx::new();
    // Raw writes for the bad parts: the SDK itself refuses to send them.
    match std::env::args().nth(1).as_deref() {
        Some("json") => {
            tx.write(b"{\"n\":1}\n{\"n\": oops}\n{\"n\":3}\n")?;
            tx.write(&[b' '; 1999])?;
            tx.write(b"\n{\"n\":5}\n")?;
        }
        Some("frames") => {
            tx.send_frame(b"first")?;
            tx.write(&2000u32.to_be_bytes())?;
            tx.write(&[b'x'; 2000])?;
            tx.send_frame(b"after")?;
            tx.write(&100u32.to_be_bytes())?;
            tx.write(b"only ten..")?;
        }
        Some("huge-claim") => tx.write(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])?,
        other => panic!("unknown stream {other:?}"),
    }
    tx.flush()
}
