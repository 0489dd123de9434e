//! WebAssembly proposals that `wasmtime run` 48 enables for core modules run in the sandbox too:
//! exception handling, GC, tail calls and the rest, each through a small hand-written module
//! whose output and exit code say it computed the right thing.

use wasmpipe::{Error, Sandbox};

/// A command module: `$exit` and `$print` (of a `(ptr, len)` slice of memory) are there for the
/// `body` of `_start`, with `declarations` around it; bytes from offset 1024 of the memory are
/// free for data segments.
fn command(declarations: &str, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func $print (param $ptr i32) (param $len i32)
               (i32.store (i32.const 0) (local.get $ptr))
               (i32.store (i32.const 4) (local.get $len))
               (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
             {declarations}
             (func (export "_start") {body}))"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}\n{wat}"))
}

/// Runs `module`; its stdout and how it ended.
async fn run(name: &str, module: Vec<u8>, memory: u64) -> (String, wasmpipe::Result<wasmpipe::GuestExit>) {
    let (mut child, tx, mut rx) = Sandbox::from_bytes(name, module)
        .memory(memory)
        .timeout(std::time::Duration::from_secs(20))
        .spawn_piped()
        .unwrap();
    drop(tx);
    let mut out = Vec::new();
    rx.read_to_end(&mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), child.wait().await)
}

fn exit_code(result: &wasmpipe::Result<wasmpipe::GuestExit>) -> i32 {
    match result {
        Ok(exit) => exit.code(),
        Err(error) => panic!("the guest failed: {error:?}"),
    }
}

#[tokio::test]
async fn exceptions_are_thrown_caught_with_their_payload_and_rethrown_as_exnref() {
    let module = command(
        r#"(tag $oops (param i32))
           (data (i32.const 1024) "caught\n")
           (func $throws (param i32) (throw $oops (local.get 0)))
           ;; Catches as an exnref and rethrows it, across a frame that never returns.
           (func $rethrows (param i32)
             (block $handler (result exnref)
               (try_table (catch_all_ref $handler) (call $throws (local.get 0)))
               (return))
             (throw_ref))"#,
        r#"(block $caught (result i32)
             (try_table (catch $oops $caught) (call $rethrows (i32.const 42)))
             (unreachable))
           (call $print (i32.const 1024) (i32.const 7))
           (call $exit)"#,
    );
    let (out, result) = run("exceptions.wasm", module, 64 << 20).await;
    assert_eq!(out, "caught\n");
    assert_eq!(exit_code(&result), 42, "the payload thrown is the one caught");
}

#[tokio::test]
async fn an_uncaught_exception_ends_the_guest_as_a_trap() {
    let module = command(r#"(tag $oops (param i32))"#, "(throw $oops (i32.const 1))");
    let (_, result) = run("uncaught.wasm", module, 64 << 20).await;
    let Err(Error::Trap { message, .. }) = result else { panic!("{result:?}") };
    assert!(message.contains("exception"), "{message}");
}

#[tokio::test]
async fn gc_structs_arrays_and_i31s_are_allocated_read_and_collected() {
    // A linked list of 100,000 GC structs, each with an array, summed by walking it: more objects
    // than the GC heap starts with, so it grows (through the store's limiter) along the way.
    let module = command(
        r#"(type $bytes (array (mut i8)))
           (type $node (struct (field $value i32) (field $data (ref $bytes)) (field $next (ref null $node))))
           (data (i32.const 1024) "gc ok\n")
           (func $build (param $n i32) (result (ref null $node))
             (local $list (ref null $node))
             (block $done
               (loop $more
                 (br_if $done (i32.eqz (local.get $n)))
                 (local.set $list (struct.new $node
                   (local.get $n)
                   (array.new $bytes (i32.const 7) (i32.const 16))
                   (local.get $list)))
                 (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                 (br $more)))
             (local.get $list))
           (func $sum (param $list (ref null $node)) (result i64)
             (local $total i64)
             (block $done
               (loop $more
                 (br_if $done (ref.is_null (local.get $list)))
                 (local.set $total (i64.add (local.get $total)
                   (i64.extend_i32_u (i32.add
                     (struct.get $node $value (local.get $list))
                     (array.get_u $bytes (struct.get $node $data (local.get $list)) (i32.const 15))))))
                 (local.set $list (struct.get $node $next (local.get $list)))
                 (br $more)))
             (local.get $total))"#,
        r#"(local $i31 i31ref)
           ;; A list built and dropped, then one kept: the first one's objects are garbage.
           (drop (call $build (i32.const 100000)))
           (local.set $i31 (ref.i31 (i32.const -5)))
           ;; 1 + ... + 100000, plus 7 per node.
           (if (i64.ne (call $sum (call $build (i32.const 100000))) (i64.const 5000750000))
             (then (call $exit (i32.const 1))))
           (if (i32.ne (i31.get_s (local.get $i31)) (i32.const -5)) (then (call $exit (i32.const 2))))
           (call $print (i32.const 1024) (i32.const 6))
           (call $exit (i32.const 42))"#,
    );
    let (out, result) = run("gc.wasm", module, 256 << 20).await;
    assert_eq!((out.as_str(), exit_code(&result)), ("gc ok\n", 42), "{result:?}");
}

#[tokio::test]
async fn gc_objects_count_against_the_memory_limit() {
    // Keeps every 64 KiB array alive in a list: the GC heap must stop growing at the limit.
    let module = command(
        r#"(type $bytes (array (mut i8)))
           (type $node (struct (field (ref $bytes)) (field (ref null $node))))"#,
        r#"(local $list (ref null $node))
           (loop $more
             (local.set $list (struct.new $node (array.new_default $bytes (i32.const 65536)) (local.get $list)))
             (br $more))"#,
    );
    let (_, result) = run("gc-bomb.wasm", module, 32 << 20).await;
    assert!(matches!(result, Err(Error::MemoryLimit(limit)) if limit == 32 << 20), "{result:?}");
}

/// Counts `$n` down to zero in as many nested calls, with `call_kind` (`return_call` or
/// `call`) for the recursion, and exits 42 when the count came out right.
fn countdown(call_kind: &str) -> Vec<u8> {
    command(
        &format!(
            r#"(type $step (func (param i32 i64) (result i64)))
               (table 1 funcref)
               (elem (i32.const 0) $count)
               (func $count (type $step) (param $n i32) (param $acc i64) (result i64)
                 (if (result i64) (i32.eqz (local.get $n))
                   (then (local.get $acc))
                   (else
                     ;; Every other step indirectly, so both tail-call forms are exercised.
                     (if (result i64) (i32.and (local.get $n) (i32.const 1))
                       (then ({call_kind} $count (i32.sub (local.get $n) (i32.const 1))
                                               (i64.add (local.get $acc) (i64.const 1))))
                       (else ({call_kind}_indirect (type $step) (i32.sub (local.get $n) (i32.const 1))
                                                               (i64.add (local.get $acc) (i64.const 1))
                                                               (i32.const 0)))))))"#
        ),
        r#"(if (i64.eq (call $count (i32.const 10000000) (i64.const 0)) (i64.const 10000000))
             (then (call $exit (i32.const 42))))
           (call $exit (i32.const 1))"#,
    )
}

#[tokio::test]
async fn tail_calls_recurse_ten_million_deep_in_constant_stack() {
    let (_, result) = run("tail.wasm", countdown("return_call"), 64 << 20).await;
    assert_eq!(exit_code(&result), 42);
    // The same recursion with ordinary calls exhausts the stack: the depth above means something.
    let (_, result) = run("deep.wasm", countdown("call"), 64 << 20).await;
    let Err(Error::Trap { message, .. }) = result else { panic!("{result:?}") };
    assert!(message.contains("call stack exhausted"), "{message}");
}

#[tokio::test]
async fn function_references_simd_multi_memory_extended_const_and_atomics_run() {
    let module = command(
        r#"(memory $second 1)
           (global $base i32 (i32.add (i32.const 1000) (i32.mul (i32.const 6) (i32.const 4))))
           (type $binary (func (param i32 i32) (result i32)))
           (func $add (type $binary) (i32.add (local.get 0) (local.get 1)))
           (elem declare func $add)
           (data (i32.const 1024) "all ran\n")"#,
        r#"(local $f (ref $binary))
           ;; function references: a typed, non-null funcref called with call_ref
           (local.set $f (ref.func $add))
           (if (i32.ne (call_ref $binary (i32.const 40) (i32.const 2) (local.get $f)) (i32.const 42))
             (then (call $exit (i32.const 1))))
           ;; SIMD and relaxed SIMD
           (if (i32.ne (i32x4.extract_lane 3
                 (i32x4.relaxed_laneselect
                   (i32x4.add (v128.const i32x4 1 2 3 40) (v128.const i32x4 0 0 0 2))
                   (v128.const i32x4 0 0 0 0)
                   (v128.const i32x4 -1 -1 -1 -1)))
               (i32.const 42))
             (then (call $exit (i32.const 2))))
           ;; multi-memory: a store to the second memory leaves the first alone
           (i32.store $second (i32.const 8) (i32.const 42))
           (if (i32.ne (i32.load $second (i32.const 8)) (i32.const 42)) (then (call $exit (i32.const 3))))
           (if (i32.ne (i32.load (i32.const 8)) (i32.const 0)) (then (call $exit (i32.const 4))))
           ;; extended constant expressions
           (if (i32.ne (global.get $base) (i32.const 1024)) (then (call $exit (i32.const 5))))
           ;; threads: atomics on an ordinary memory
           (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 40)))
           (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 2)))
           (if (i32.ne (i32.atomic.load (i32.const 16)) (i32.const 42)) (then (call $exit (i32.const 6))))
           (call $print (global.get $base) (i32.const 8))
           (call $exit (i32.const 42))"#,
    );
    let (out, result) = run("proposals.wasm", module, 64 << 20).await;
    assert_eq!((out.as_str(), exit_code(&result)), ("all ran\n", 42));
}

#[tokio::test]
async fn a_shared_memory_is_refused_as_an_invalid_module() {
    // Atomics validate, but a shared memory would escape the memory limiter: refused.
    let module = wat::parse_str(r#"(module (memory 1 1 shared) (func (export "_start")))"#).unwrap();
    let (_, result) = run("shared.wasm", module, 64 << 20).await;
    let Err(Error::InvalidModule(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("shared memory"), "{message}");
}
