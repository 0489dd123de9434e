//! Runners forked by a zygote behave exactly like exec'd ones.

use std::time::Duration;
use wasmpipe::{Error, Sandbox, Zygote};
use wasmpipe_tests::{guests, open_fds, zombie_children};

/// The parent pid of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_forked_runner_talks_exits_and_is_our_child_holding_fds_0_to_3() {
    let zygote = Zygote::start().unwrap();
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::DUPLEX).zygote(&zygote).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    let mut hello = [0u8; 5];
    rx.read_exact(&mut hello).await.unwrap();
    let pid = child.id().unwrap();
    assert_eq!(parent_of(pid), std::process::id(), "the runner must be our child, not the zygote's");
    assert_eq!(open_fds(pid).into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    tx.write_all(b"world\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"WORLD\n"[..]));
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn forked_runners_keep_every_limit_and_the_seccomp_filter() {
    let zygote = Zygote::start().unwrap();
    let spin = Sandbox::new(guests::SPIN).zygote(&zygote).timeout(Duration::from_secs(1)).spawn().unwrap().wait().await;
    assert!(matches!(spin, Err(Error::Timeout(_))), "{spin:?}");
    let grow = Sandbox::new(guests::GROW_MEMORY).zygote(&zygote).memory(32 << 20).capture_stderr(1024).spawn();
    assert!(matches!(grow.unwrap().wait().await, Err(Error::MemoryLimit(_))));
    let fuel = Sandbox::new(guests::SPIN).zygote(&zygote).fuel(1_000_000).spawn().unwrap().wait().await;
    assert!(matches!(fuel, Err(Error::FuelExhausted)), "{fuel:?}");
    let trap = Sandbox::new(guests::TRAP).zygote(&zygote).capture_stderr(1024).spawn().unwrap().wait().await;
    assert!(matches!(trap, Err(Error::Trap { .. })), "{trap:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let mut sandbox = Sandbox::new(guests::SIMPLEX).zygote(&zygote).forbidden_syscall_after_hardening();
        let result = sandbox.spawn().unwrap().wait().await;
        assert!(
            matches!(&result, Err(Error::ForbiddenSyscall { number, name: Some(name) }) if *number == Some(libc::SYS_socket) && name == "socket"),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn many_runners_fork_concurrently_from_one_zygote() {
    let zygote = Zygote::start().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let zygote = zygote.clone();
        tasks.spawn(async move {
            let (mut child, mut tx, mut rx) = Sandbox::new(guests::ECHO).zygote(&zygote).spawn_piped().unwrap();
            let line = format!("runner {i}\n");
            tx.write_all(line.as_bytes()).await.unwrap();
            assert_eq!(rx.read_line().await.unwrap(), Some(line.into_bytes()));
            drop(tx);
            assert!(child.wait().await.unwrap().success());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn dropping_the_zygote_leaves_its_runners_running_and_no_zombie() {
    let zygote = Zygote::start().unwrap();
    let zygote_pid = zygote.id();
    let (mut child, mut tx, mut rx) = Sandbox::new(guests::UPPER).zygote(&zygote).spawn_piped().unwrap();
    drop(zygote);
    assert!(!std::path::Path::new(&format!("/proc/{zygote_pid}")).exists(), "the zygote was reaped");
    tx.write_all(b"still here\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"STILL HERE\n"[..]));
    drop(tx);
    assert!(child.wait().await.unwrap().success());
    assert!(!zombie_children().contains(&zygote_pid));
}

#[tokio::test]
async fn the_zygote_preloads_cached_modules_so_its_runners_skip_the_cache() {
    let cache = std::env::temp_dir().join(format!("wasmpipe-zygote-preload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let bytes: std::sync::Arc<[u8]> = std::fs::read(guests::UPPER).unwrap().into();
    let sandbox = || Sandbox::from_bytes("upper.wasm", bytes.clone()).cache_dir(&cache);
    sandbox().compile().await.unwrap();
    let zygote = Zygote::start().unwrap();
    for round in 0..3 {
        let (mut child, mut tx, mut rx) = sandbox().zygote(&zygote).spawn_piped().unwrap();
        tx.write_all(b"preloaded\n").await.unwrap();
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"PRELOADED\n"[..]));
        drop(tx);
        assert!(child.wait().await.unwrap().success());
        if round == 0 {
            // From now on only the zygote's memory has the module: a runner that compiled it
            // again would send it back, and the cache entry would reappear.
            std::fs::remove_dir_all(&cache).unwrap();
        }
    }
    let entries = std::fs::read_dir(&cache).map(|dir| dir.count()).unwrap_or(0);
    assert_eq!(entries, 0, "a runner compiled the module although the zygote held it");
}

#[tokio::test]
async fn the_zygote_is_hardened_before_it_loads_anything() {
    let zygote = Zygote::start().unwrap();
    // Make it load a module, so it has certainly finished starting.
    let (mut child, tx, _rx) = Sandbox::new(guests::ECHO).zygote(&zygote).spawn_piped().unwrap();
    drop(tx);
    assert!(child.wait().await.unwrap().success());
    let status = std::fs::read_to_string(format!("/proc/{}/status", zygote.id())).unwrap();
    let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).unwrap_or("");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(field("Seccomp:"), "2", "{status}");
}

#[tokio::test]
async fn forked_runners_get_their_granted_directories() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-zygote-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), b"input\n").unwrap();
    let zygote = Zygote::start().unwrap();
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::WASI_TOUR)
        .zygote(&zygote)
        .dir_writable(&dir, "/data")
        .arg("--dir")
        .stdout(tx)
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rx.open().unwrap(), &mut out).await.unwrap();
    let result = child.wait().await;
    let report = String::from_utf8_lossy(&out);
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert!(report.ends_with("ok create\nok rename\nok mkdir\nok remove\n"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
