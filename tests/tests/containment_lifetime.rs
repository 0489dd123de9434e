//! Sandboxes never outlive their handles, and leave no fds or zombies behind.
//!
//! One `#[test]`: it compares this process's fd table before and after, which parallel tests
//! would disturb.

use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::{guests, own_open_fds, zombie_children};

#[test]
fn sandbox_lifetime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // Warm up once, so lazily opened runtime fds (the I/O driver) are in `before`.
        assert!(Sandbox::new(guests::SIMPLEX).spawn().unwrap().wait().await.unwrap().success());
        let before = own_open_fds();

        dropping_sandboxes_kills_and_reaps_them().await;
        assert_eq!(own_open_fds(), before, "fds leaked by spawning and dropping sandboxes");

        invalid_modules_are_reported().await;
        assert_eq!(own_open_fds(), before);
    });
}

async fn dropping_sandboxes_kills_and_reaps_them() {
    for _ in 0..200 {
        // A guest that would block forever: the drop must kill it.
        let (stdin, keep_open) = wasmpipe::pipe().unwrap();
        let child = Sandbox::new(guests::BLOCK_READ).stdin(stdin).spawn().unwrap();
        let pid = child.id().unwrap();
        drop(child);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "runner {pid} outlived its handle");
        drop(keep_open);
    }
    assert_eq!(zombie_children(), Vec::<u32>::new());
}

async fn invalid_modules_are_reported() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-invalid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("not-wasm.wasm", b"this is not WebAssembly", "not a valid WebAssembly module"),
        ("no-start.wasm", b"\0asm\x01\0\0\0", "_start"),
        ("missing.wasm", b"", "cannot read"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        if name != "missing.wasm" {
            std::fs::write(&path, bytes).unwrap();
        }
        // A file that cannot be read fails at spawn, the others when the runner reports.
        let result = match Sandbox::new(&path).spawn() {
            Ok(mut child) => child.wait().await,
            Err(error) => Err(error),
        };
        let Err(Error::InvalidModule(message)) = result else {
            panic!("{name}: expected InvalidModule, got {result:?}")
        };
        assert!(message.contains(expected), "{name}: {message}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
