//! Exercises the WASI calls an ordinary program makes beyond stdio, one line per step:
//! clocks, sleeping (`poll_oneoff`), randomness, and, when a directory is preopened at `/data`,
//! listing it, reading, creating, renaming and deleting files in it. Prints `ok <step>` for each
//! step, or `failed <step>: <error>` and exits 1.
//!
//! Used by the host's tests that the runner's seccomp filter allows everything these need, with
//! and without a writable directory.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// One step: its name, and what it does (`Err` says why it failed).
type Step = (&'static str, fn() -> Result<(), String>);

fn main() {
    let with_dir = std::env::args().any(|arg| arg == "--dir");
    let mut steps: Vec<Step> = vec![
        ("clock", || {
            let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())?;
            if since_epoch.as_secs() > 0 { Ok(()) } else { Err("the wall clock is at the epoch".into()) }
        }),
        ("sleep", || {
            let started = Instant::now();
            std::thread::sleep(Duration::from_millis(20));
            let slept = started.elapsed();
            if slept >= Duration::from_millis(20) { Ok(()) } else { Err(format!("slept only {slept:?}")) }
        }),
        ("random", || {
            // HashMap seeds itself from random_get.
            let mut map = HashMap::new();
            map.insert("key", 1);
            Ok(())
        }),
    ];
    if with_dir {
        steps.extend::<[Step; 6]>([
            ("list", || list().map(drop)),
            ("read", || std::fs::read_to_string("/data/input.txt").map(drop).map_err(|e| e.to_string())),
            ("create", || std::fs::write("/data/created.txt", b"made by the guest\n").map_err(|e| e.to_string())),
            ("rename", || std::fs::rename("/data/created.txt", "/data/renamed.txt").map_err(|e| e.to_string())),
            ("mkdir", || std::fs::create_dir("/data/sub").map_err(|e| e.to_string())),
            ("remove", || {
                std::fs::remove_dir("/data/sub").map_err(|e| e.to_string())?;
                std::fs::remove_file("/data/renamed.txt").map_err(|e| e.to_string())
            }),
        ]);
    }
    let mut stdout = std::io::stdout().lock();
    for (name, step) in steps {
        match step() {
            Ok(()) => writeln!(stdout, "ok {name}").unwrap(),
            Err(error) => {
                writeln!(stdout, "failed {name}: {error}").unwrap();
                std::process::exit(1);
            }
        }
    }
}

fn list() -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir("/data").map_err(|e| e.to_string())?;
    entries
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(|e| e.to_string()))
        .collect()
}
