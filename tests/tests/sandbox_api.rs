//! The `Sandbox` builder's conveniences, through real runners.

use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::guests;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpipe-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn spawn_piped_gives_the_parent_both_ends() {
    let (mut child, mut tx, mut rx) = Sandbox::new(guests::UPPER).spawn_piped().unwrap();
    tx.write_all(b"piped\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"PIPED\n"[..]));
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_module_from_bytes_runs_and_is_named_as_given() {
    let bytes = std::fs::read(guests::ARGS_ENV).unwrap();
    let (mut child, tx, mut rx) =
        Sandbox::from_bytes("plugin.wasm", bytes).arg("one").env("GREETING", "hi").spawn_piped().unwrap();
    drop(tx);
    let mut lines = Vec::new();
    while let Some(line) = rx.read_line().await.unwrap() {
        lines.push(String::from_utf8(line).unwrap());
    }
    assert_eq!(lines, ["arg:plugin.wasm\n", "arg:one\n", "env:GREETING=hi\n"]);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn compile_warms_the_cache_and_spawns_use_it() {
    let cache = temp_dir("compile");
    let mut sandbox = Sandbox::new(guests::SIMPLEX).cache_dir(&cache);
    sandbox.compile().await.unwrap();
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "one compiled entry");
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = sandbox.stdout(tx).spawn().unwrap();
    assert_eq!(rx.open().unwrap().read_line().await.unwrap().as_deref(), Some(&b"hi from the child process\n"[..]));
    assert!(child.wait().await.unwrap().success());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "the spawn reused the entry");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[tokio::test]
async fn compiling_garbage_is_an_invalid_module_and_caches_nothing() {
    let cache = temp_dir("garbage");
    let result = Sandbox::from_bytes("junk.wasm", b"junk".to_vec()).cache_dir(&cache).compile().await;
    assert!(matches!(result, Err(Error::InvalidModule(_))), "{result:?}");
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().count() == 0);
}

#[tokio::test]
async fn no_cache_leaves_the_cache_directory_alone() {
    let cache = temp_dir("nocache");
    let mut child = Sandbox::new(guests::SIMPLEX).cache_dir(&cache).no_cache().spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
    assert!(!cache.exists());
}

#[tokio::test]
async fn a_builder_spawned_twice_uses_up_given_fds_but_keeps_settings() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut sandbox = Sandbox::new(guests::TRAP).capture_stderr(4096).stdout(tx);
    for _ in 0..2 {
        let mut child = sandbox.spawn().unwrap();
        assert!(matches!(child.wait().await, Err(Error::Trap { .. })));
        let stderr = String::from_utf8_lossy(child.captured_stderr()).into_owned();
        assert!(stderr.contains("guest panicked on purpose"), "captured both times: {stderr}");
    }
    // The pipe's write end went to the first guest only: with both guests gone, EOF.
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());
}
