//! The two examples from aiopipe's README, ported: the parent code mirrors the Python, the
//! children are sandboxed WebAssembly guests.

use wasmpipe::Sandbox;
use wasmpipe_tests::guests;

#[tokio::test]
async fn simplex_example() -> Result<(), wasmpipe::Error> {
    let (rx, tx) = wasmpipe::pipe()?;

    // `with tx.detach() as tx: proc = Process(target=childproc, args=(tx,)); proc.start()`
    let mut proc = Sandbox::new(guests::SIMPLEX).stdout(tx).spawn()?;

    // `async with rx.open() as rx: msg = await rx.readline()`
    let mut rx = rx.open()?;
    let msg = rx.read_line().await?;

    // `proc.join()`
    assert!(proc.wait().await?.success());
    assert_eq!(msg.as_deref(), Some(&b"hi from the child process\n"[..]));
    Ok(())
}

#[tokio::test]
async fn duplex_example() -> Result<(), wasmpipe::Error> {
    let (mainpipe, chpipe) = wasmpipe::duplex()?;

    let mut proc = Sandbox::new(guests::DUPLEX).duplex(chpipe).spawn()?;

    // `async with mainpipe.open() as (rx, tx):`
    let (mut rx, mut tx) = mainpipe.open()?;
    let mut req = [0u8; 5];
    rx.read_exact(&mut req).await?;
    tx.write_all(&[&req[..], b" world\n"].concat()).await?;
    let msg = rx.read_line().await?;

    assert!(proc.wait().await?.success());
    assert_eq!(msg.as_deref(), Some(&b"HELLO WORLD\n"[..]));
    Ok(())
}
