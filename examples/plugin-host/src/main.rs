//! A host application that runs an untrusted plugin with wasmpipe: spawn it in a sandbox, send
//! it a line, check the reply, and see how it ended.

use std::time::Duration;
use wasmpipe::Sandbox;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut child, mut to_plugin, mut from_plugin) =
        Sandbox::new(env!("PLUGIN_WASM")).timeout(Duration::from_secs(10)).memory(64 << 20).spawn_piped()?;
    to_plugin.write_all(b"hello plugin\n").await?;
    let reply = from_plugin.read_line().await?;
    drop(to_plugin); // EOF: the plugin's loop ends
    let exit = child.wait().await?;
    if reply.as_deref() != Some(&b"HELLO PLUGIN\n"[..]) || !exit.success() {
        return Err(format!("unexpected reply {reply:?} or exit {exit:?}").into());
    }
    println!(
        "plugin replied {:?} and exited {}",
        String::from_utf8_lossy(reply.as_deref().unwrap_or_default()),
        exit.code()
    );
    Ok(())
}
