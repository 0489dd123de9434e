//! `wasmpipe demo`: aiopipe's two README examples, with sandboxed WebAssembly children.

use super::guests;
use std::time::Instant;
use wasmpipe::Sandbox;

pub fn main() -> anyhow::Result<()> {
    super::runtime()?.block_on(async {
        // Simplex: the write end goes to the child, the parent reads one line.
        let started = Instant::now();
        let (rx, tx) = wasmpipe::pipe()?;
        let mut child = Sandbox::from_bytes("simplex.wasm", guests::SIMPLEX).stdout(tx).spawn()?;
        let mut rx = rx.open()?;
        let msg = rx.read_line().await?.unwrap_or_default();
        let first_line = started.elapsed();
        child.wait().await?;
        println!("simplex: {:?}  (spawn -> first line {:.2?})", String::from_utf8_lossy(&msg), first_line);

        // Duplex: the child says hello, the parent answers, the child shouts it back.
        let started = Instant::now();
        let (main_pipe, child_pipe) = wasmpipe::duplex()?;
        let mut child = Sandbox::from_bytes("duplex.wasm", guests::DUPLEX).duplex(child_pipe).spawn()?;
        let (mut rx, mut tx) = main_pipe.open()?;
        let mut req = [0u8; 5];
        rx.read_exact(&mut req).await?;
        let round_trip_started = Instant::now();
        tx.write_all(&[&req[..], b" world\n"].concat()).await?;
        let msg = rx.read_line().await?.unwrap_or_default();
        let round_trip = round_trip_started.elapsed();
        child.wait().await?;
        println!(
            "duplex:  {:?}  (spawn -> reply {:.2?}, round trip {:.2?})",
            String::from_utf8_lossy(&msg),
            started.elapsed(),
            round_trip
        );
        Ok(())
    })
}
