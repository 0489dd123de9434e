//! `wasmpipe::Pool`: many callers over a few sandboxed workers, ordered `map`, restarts after a
//! crash, clean shutdown, and a factory that never works — all through real runners.

use std::sync::Arc;
use std::time::Duration;
use wasmpipe::{Error, Pool, Sandbox};
use wasmpipe_tests::guests;

/// Hang guard only: every test here finishes in well under this.
const GUARD: Duration = Duration::from_secs(60);

async fn guarded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future).await.unwrap_or_else(|_| panic!("{what} hung"))
}

fn upper_pool(workers: usize) -> Pool {
    Pool::new(|| Sandbox::new(guests::UPPER), workers)
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) until none of `pids` exists any more, not even as a zombie.
async fn assert_gone(pids: &[u32]) {
    for _ in 0..200 {
        if !pids.iter().any(|&pid| process_exists(pid)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("worker processes still exist: {:?}", pids.iter().filter(|&&pid| process_exists(pid)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_callers_all_get_their_own_reply() {
    let pool = Arc::new(upper_pool(4));
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 4, "every worker starts a guest up front");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let pool = pool.clone();
        tasks.spawn(async move { (i, pool.call(format!("request {i}").as_bytes()).await) });
    }
    let mut answered = 0;
    while let Some(joined) = guarded("concurrent calls", tasks.join_next()).await {
        let (i, reply) = joined.unwrap();
        assert_eq!(reply.unwrap(), format!("REQUEST {i}\n").into_bytes());
        answered += 1;
    }
    assert_eq!(answered, 200);
    assert_eq!(pool.worker_pids(), pids, "no worker restarted");
    Arc::into_inner(pool).unwrap().shutdown().await;
}

#[tokio::test]
async fn a_request_keeps_its_newline_and_one_is_added_when_missing() {
    let pool = Pool::new(|| Sandbox::new(guests::ECHO), 1);
    assert_eq!(pool.call(b"with\n").await.unwrap(), b"with\n");
    assert_eq!(pool.call(b"without").await.unwrap(), b"without\n");
    assert_eq!(pool.call(b"").await.unwrap(), b"\n");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_request_of_two_lines_is_refused_before_reaching_a_worker() {
    let pool = Pool::new(|| Sandbox::new(guests::ECHO), 1);
    let pids = pool.worker_pids();
    let refused = pool.call(b"one\ntwo").await;
    assert!(matches!(&refused, Err(Error::InvalidRequest(_))), "{refused:?}");
    // The worker stays in step: the next reply is the next request's.
    assert_eq!(pool.call(b"three").await.unwrap(), b"three\n");
    assert_eq!(pool.worker_pids(), pids);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_returns_results_in_input_order() {
    let pool = upper_pool(3);
    let inputs: Vec<Vec<u8>> = (0..100).map(|i| format!("item {i}").into_bytes()).collect();
    let results = guarded("map", pool.map(inputs)).await;
    assert_eq!(results.len(), 100);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), format!("ITEM {i}\n").into_bytes());
    }
    assert!(pool.map(Vec::new()).await.is_empty());
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crashing_guest_fails_its_call_with_the_trap_and_the_next_call_gets_a_fresh_worker() {
    let pool = Pool::new(|| Sandbox::new(guests::CRASH_ON).capture_stderr(4096), 1);
    assert_eq!(pool.call(b"before").await.unwrap(), b"BEFORE\n");
    let first = pool.worker_pids();

    let crashed = guarded("crashing call", pool.call(b"crash")).await;
    assert!(matches!(&crashed, Err(Error::Trap { .. })), "{crashed:?}");
    assert_gone(&first).await;

    assert_eq!(guarded("call after the crash", pool.call(b"after")).await.unwrap(), b"AFTER\n");
    let second = pool.worker_pids();
    assert_eq!(second.len(), 1);
    assert_ne!(second, first, "the worker runs a new guest");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_reports_a_crash_in_its_place_and_the_rest_succeed() {
    // Restarts in a row are not the point here: each crash is followed by successes.
    let pool = Pool::builder(|| Sandbox::new(guests::CRASH_ON).capture_stderr(4096)).workers(2).build();
    let inputs = ["a", "crash", "b", "c", "crash", "d"].map(|s| s.as_bytes().to_vec());
    let results = guarded("map with crashes", pool.map(inputs)).await;
    let expected = [Some("A\n"), None, Some("B\n"), Some("C\n"), None, Some("D\n")];
    for (result, expected) in results.iter().zip(expected) {
        match expected {
            Some(reply) => assert_eq!(result.as_deref().ok(), Some(reply.as_bytes()), "{result:?}"),
            None => assert!(matches!(result, Err(Error::Trap { .. })), "{result:?}"),
        }
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_guest_that_exits_instead_of_serving_fails_the_call_with_a_runner_error() {
    // `exit_early` writes `bye` and exits 0 without reading: the first call is answered with its
    // `bye` (the pool cannot tell), the next finds the guest gone.
    let pool = Pool::builder(|| Sandbox::new(guests::EXIT_EARLY)).workers(1).max_restarts(10).build();
    assert_eq!(pool.call(b"hi").await.unwrap(), b"bye\n");
    let gone = guarded("call to an exited guest", pool.call(b"hi")).await;
    assert!(matches!(&gone, Err(Error::NoReply(Some(0)))), "{gone:?}");
    // Restarted: the fresh guest says bye again.
    assert_eq!(pool.call(b"hi").await.unwrap(), b"bye\n");
    pool.shutdown().await;
}

#[tokio::test]
async fn an_overlong_reply_is_line_too_long_and_the_worker_restarts() {
    let pool = Pool::builder(|| Sandbox::new(guests::ECHO)).workers(1).max_line_length(16).build();
    let first = pool.worker_pids();
    let long = pool.call(&[b'x'; 100]).await;
    assert!(matches!(long, Err(Error::LineTooLong { limit: 16 })), "{long:?}");
    assert_gone(&first).await;
    assert_eq!(pool.call(b"short").await.unwrap(), b"short\n");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_guest_and_leaves_no_process_behind() {
    let pool = upper_pool(3);
    let results = pool.map((0..30).map(|i| vec![b'a' + i])).await;
    assert!(results.iter().all(Result::is_ok));
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&pid| process_exists(pid)));

    guarded("shutdown", pool.shutdown()).await;
    // Reaped, not merely killed: not even a zombie is left.
    assert!(!pids.iter().any(|&pid| process_exists(pid)), "{pids:?}");
    let zombies = wasmpipe_tests::zombie_children();
    assert!(!pids.iter().any(|pid| zombies.contains(pid)), "{zombies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_pool_ends_its_guests_too() {
    let pool = upper_pool(2);
    assert_eq!(pool.call(b"x").await.unwrap(), b"X\n");
    let pids = pool.worker_pids();
    drop(pool);
    assert_gone(&pids).await;
}

#[tokio::test]
async fn a_factory_that_never_works_fails_calls_instead_of_hanging() {
    let missing = std::env::temp_dir().join("wasmpipe-pool-no-such-module.wasm");
    let pool = Pool::builder(move || Sandbox::new(&missing)).workers(2).max_restarts(1).build();
    let mut errors = Vec::new();
    // 2 workers × (1 try + 1 restart) = 4 failed attempts, then no worker is left.
    for _ in 0..6 {
        errors.push(guarded("call to a broken pool", pool.call(b"hello")).await.unwrap_err());
    }
    assert!(matches!(&errors[0], Error::InvalidModule(_)), "{errors:?}");
    assert!(errors[..4].iter().all(|e| matches!(e, Error::InvalidModule(_))), "{errors:?}");
    assert!(errors[4..].iter().all(|e| matches!(e, Error::PoolExhausted)), "{errors:?}");
    // Also for many waiting callers at once, and for map.
    let results = guarded("map on a broken pool", pool.map((0..10).map(|_| b"x".to_vec()))).await;
    assert!(results.iter().all(|r| matches!(r, Err(Error::PoolExhausted))), "{results:?}");
    assert!(pool.worker_pids().is_empty());
    guarded("shutdown of a broken pool", pool.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_never_answers_times_out_per_request_and_is_replaced() {
    // block_read reads its stdin to the end, so it never answers a line.
    let limit = Duration::from_millis(300);
    let pool = Pool::builder(|| Sandbox::new(guests::BLOCK_READ)).workers(1).request_timeout(limit).build();
    let first = pool.worker_pids();
    let started = std::time::Instant::now();
    let result = guarded("a call to a stuck guest", pool.call(b"anyone there?")).await;
    assert!(matches!(result, Err(Error::Timeout(l)) if l == limit), "{result:?}");
    assert!(started.elapsed() < limit + Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_gone(&first).await;
    assert_ne!(pool.worker_pids(), first, "the stuck guest was replaced");
    guarded("shutdown", pool.shutdown()).await;
}

/// Polls `pool.stats()` (bounded) until `ready` holds, and returns that snapshot.
async fn stats_when(pool: &Pool, what: &str, ready: impl Fn(&wasmpipe::PoolStats) -> bool) -> wasmpipe::PoolStats {
    for _ in 0..1000 {
        let stats = pool.stats();
        if ready(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened; last stats {:?}", pool.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_up_to_its_depth_in_flight_and_abort_fails_them_all_through_an_arc() {
    // block_read never answers: whatever the worker takes stays in flight.
    let pool = Arc::new(Pool::builder(|| Sandbox::new(guests::BLOCK_READ)).workers(1).pipeline_depth(4).build());
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call(format!("request {i}").as_bytes()).await })
        })
        .collect();
    let stats = stats_when(&pool, "4 in flight, 6 queued", |s| s.in_flight == 4 && s.queued == 6).await;
    assert_eq!((stats.completed, stats.failed), (0, 0), "{stats:?}");
    let pids = pool.worker_pids();

    let aborter = pool.clone();
    guarded("abort", tokio::spawn(async move { aborter.abort().await })).await.unwrap();
    for call in calls {
        let result = guarded("an aborted call", call).await.unwrap();
        assert!(matches!(result, Err(Error::PoolClosed)), "{result:?}");
    }
    assert_gone(&pids).await;
    assert!(matches!(pool.call(b"late").await, Err(Error::PoolClosed)));
    let stats = pool.stats();
    assert_eq!((stats.in_flight, stats.queued), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_among_pipelined_requests_fails_only_the_request_that_crashed() {
    let pool = Arc::new(Pool::builder(|| Sandbox::new(guests::CRASH_ON).capture_stderr(4096)).workers(1).build());
    // All at once, so the worker has several in flight when the guest crashes.
    let inputs: [&'static str; 8] = ["a", "b", "crash", "c", "d", "e", "crash", "f"];
    let calls: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call(input.as_bytes()).await })
        })
        .collect();
    for (input, call) in inputs.iter().zip(calls) {
        let result = guarded("a pipelined call", call).await.unwrap();
        if *input == "crash" {
            assert!(matches!(&result, Err(Error::Trap { .. })), "{input}: {result:?}");
        } else {
            assert_eq!(result.unwrap(), format!("{}\n", input.to_uppercase()).into_bytes(), "{input}");
        }
    }
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.failed, stats.in_flight), (6, 2, 0), "{stats:?}");
    assert!(stats.restarts >= 2, "{stats:?}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_through_an_arc_answers_what_was_asked_and_refuses_what_comes_after() {
    let pool = Arc::new(upper_pool(2));
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call(format!("x{i}").as_bytes()).await })
        })
        .collect();
    stats_when(&pool, "all queued or taken", |s| s.completed + s.in_flight as u64 + s.queued as u64 == 50).await;
    let pids = pool.worker_pids();
    let stopper = pool.clone();
    let shutdown = tokio::spawn(async move { stopper.shutdown().await });
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(guarded("a call before shutdown", call).await.unwrap().unwrap(), format!("X{i}\n").into_bytes());
    }
    guarded("shutdown", shutdown).await.unwrap();
    // A second shutdown has nothing left to wait for.
    guarded("second shutdown", pool.shutdown()).await;
    assert!(matches!(pool.call(b"late").await, Err(Error::PoolClosed)));
    assert_gone(&pids).await;
    assert_eq!(pool.stats().completed, 50);
}

#[tokio::test]
async fn json_calls_round_trip_typed_values_and_a_reply_that_is_not_json_is_malformed_json() {
    #[derive(serde::Serialize)]
    struct Request<'a> {
        id: u32,
        name: &'a str,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Echoed {
        echo: serde_json::Value,
    }
    let pool = Pool::builder(|| Sandbox::new(guests::JSON_ECHO)).workers(1).build();
    let reply: Echoed = pool.call_json(&Request { id: 7, name: "seven\nlines" }).await.unwrap();
    assert_eq!(reply.echo, serde_json::json!({ "id": 7, "name": "seven\nlines" }));
    pool.shutdown().await;

    // `upper` makes `true` into `TRUE`, which is not JSON.
    let pool = Pool::builder(|| Sandbox::new(guests::UPPER)).workers(1).build();
    let upper: String = pool.call_json("shout").await.unwrap();
    assert_eq!(upper, "SHOUT");
    let malformed = pool.call_json::<_, bool>(&true).await;
    assert!(matches!(&malformed, Err(Error::MalformedJson { line: 1, .. })), "{malformed:?}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_frame_pool_sends_and_receives_binary_frames() {
    let pool = Pool::builder(|| Sandbox::new(guests::FRAME_ECHO))
        .workers(1)
        .framing(wasmpipe::Framing::Frames)
        .max_frame_length(1 << 16)
        .build();
    let binary: Vec<u8> = (0..=255u8).chain(*b"\n\n\0").collect();
    assert_eq!(pool.call(&binary).await.unwrap(), [&b"echo:"[..], &binary].concat());
    assert_eq!(pool.call(b"").await.unwrap(), b"echo:");
    let results = guarded("a frame map", pool.map((0..100).map(|i| vec![i as u8; i]))).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), [&b"echo:"[..], &vec![i as u8; i]].concat());
    }
    let too_big = pool.call(&vec![0; (1 << 16) + 1]).await;
    assert!(matches!(too_big, Err(Error::FrameTooLarge { max: 65536, .. })), "{too_big:?}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_stream_keeps_order_and_reads_no_further_ahead_than_the_pool_can_work() {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (workers, depth) = (2, 4);
    let pool = Pool::builder(|| Sandbox::new(guests::UPPER)).workers(workers).pipeline_depth(depth).build();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let inputs = futures_util::stream::iter(0..).map(move |i: u64| {
        counter.fetch_add(1, Ordering::SeqCst);
        format!("line {i}").into_bytes()
    });
    let mut replies = Box::pin(pool.map_stream(inputs));
    for consumed in 0..300 {
        let reply = guarded("a streamed reply", replies.next()).await.unwrap().unwrap();
        assert_eq!(reply, format!("LINE {consumed}\n").into_bytes());
        if consumed % 50 == 0 {
            // A slow consumer: the pool finishes what it has, and reads nothing more meanwhile.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ahead = pulled.load(Ordering::SeqCst) - (consumed + 1);
        assert!(ahead <= workers * depth, "{ahead} inputs read ahead of the consumer");
    }
    drop(replies);

    let inputs = futures_util::stream::iter((0..40u8).map(|i| vec![b'a' + i % 26]));
    let mut seen: Vec<(usize, Vec<u8>)> =
        guarded("unordered", pool.map_stream_unordered(inputs).map(|(i, r)| (i, r.unwrap())).collect()).await;
    seen.sort();
    assert_eq!(seen.len(), 40);
    for (i, reply) in seen {
        assert_eq!(reply, vec![b'A' + (i as u8) % 26, b'\n']);
    }
    pool.shutdown().await;
}
