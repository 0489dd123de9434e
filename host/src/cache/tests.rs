//! The cache's trust rules, each against the attack it stops.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const ARTIFACT: &[u8] = b"pretend machine code";

/// A fresh directory holding a cache dir and a key file.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("wasmpipe-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self { root }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    fn key(&self) -> PathBuf {
        self.root.join("config").join("cache.key")
    }

    fn open(&self) -> io::Result<Cache> {
        Cache::open(&self.dir(), Some(&self.key()), DEFAULT_CACHE_MAX_BYTES)
    }

    fn entries(&self) -> Vec<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(self.dir()).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        entries
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn name(byte: u8) -> EntryName {
    EntryName { module: [byte; 32], kind: ModuleKind::Core, engine: 7 }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn stored_entries_load_back_and_are_private() {
    let scratch = Scratch::new("roundtrip");
    let cache = scratch.open().unwrap();
    assert!(matches!(cache.store(&name(1), ARTIFACT), CacheOutcome::Stored(_)));
    memo().lock().unwrap().clear();
    assert_eq!(cache.load(&name(1)).as_deref(), Some(ARTIFACT));
    assert_eq!(mode(&scratch.dir()), 0o700);
    assert_eq!(mode(&scratch.entries()[0]), 0o600);
    assert_eq!(mode(&scratch.key()), 0o600);
    assert_eq!(std::fs::metadata(scratch.key()).unwrap().len(), 32);
}

#[test]
fn an_entry_forged_without_the_key_is_refused() {
    let scratch = Scratch::new("forged");
    let cache = scratch.open().unwrap();
    cache.store(&name(2), ARTIFACT);
    let entry = scratch.entries().remove(0);
    // What an attacker without the key can write: the old layout's unkeyed digest over planted
    // code, or a flipped byte of a genuine entry.
    let planted = b"planted native code".as_slice();
    let mut forged = MAGIC.to_vec();
    forged.extend_from_slice(blake3::hash(planted).as_bytes());
    forged.extend_from_slice(planted);
    let mut flipped = std::fs::read(&entry).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    for bad in [forged, flipped] {
        std::fs::write(&entry, &bad).unwrap();
        memo().lock().unwrap().clear();
        assert!(cache.load(&name(2)).is_none(), "a forged entry must not load");
    }
}

#[test]
fn one_modules_entry_cannot_pass_for_anothers() {
    let scratch = Scratch::new("swap");
    let cache = scratch.open().unwrap();
    cache.store(&name(3), b"module three");
    let three = scratch.dir().join(name(3).file_name());
    std::fs::rename(&three, scratch.dir().join(name(4).file_name())).unwrap();
    memo().lock().unwrap().clear();
    assert!(cache.load(&name(4)).is_none(), "the MAC covers the entry's name");
}

#[test]
fn a_directory_writable_by_others_is_refused() {
    let scratch = Scratch::new("mode");
    scratch.open().unwrap();
    std::fs::set_permissions(scratch.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = scratch.open().unwrap_err();
    assert!(error.to_string().contains("lets others write"), "{error}");
}

#[test]
fn a_directory_owned_by_someone_else_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        return; // Only root can give a directory away; CI runs as root.
    }
    let scratch = Scratch::new("owner");
    std::fs::create_dir_all(scratch.dir()).unwrap();
    std::fs::set_permissions(scratch.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(scratch.dir(), Some(65534), Some(65534)).unwrap();
    let error = scratch.open().unwrap_err();
    assert!(error.to_string().contains("owned by uid 65534"), "{error}");
}

#[test]
fn a_symlinked_directory_or_entry_is_not_followed() {
    let scratch = Scratch::new("symlink");
    let elsewhere = scratch.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, scratch.dir()).unwrap();
    assert!(scratch.open().is_err(), "a symlinked cache directory is refused");
    std::fs::remove_file(scratch.dir()).unwrap();

    let cache = scratch.open().unwrap();
    cache.store(&name(5), ARTIFACT);
    let entry = scratch.dir().join(name(5).file_name());
    let real = scratch.root.join("real-entry");
    std::fs::rename(&entry, &real).unwrap();
    std::os::unix::fs::symlink(&real, &entry).unwrap();
    memo().lock().unwrap().clear();
    assert!(cache.load(&name(5)).is_none(), "entries are opened with O_NOFOLLOW");
}

#[test]
fn a_key_readable_by_others_is_refused() {
    let scratch = Scratch::new("key");
    scratch.open().unwrap();
    std::fs::set_permissions(scratch.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    // A fresh path: keys are remembered per process once read.
    let moved = scratch.root.join("config").join("other.key");
    std::fs::rename(scratch.key(), &moved).unwrap();
    let error = Cache::open(&scratch.dir(), Some(&moved), DEFAULT_CACHE_MAX_BYTES).unwrap_err();
    assert!(error.to_string().contains("0644"), "{error}");
}

#[test]
fn planted_temporary_names_are_never_written_through() {
    let scratch = Scratch::new("temp");
    let cache = scratch.open().unwrap();
    let victim = scratch.root.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // The old writer used predictable `.tmp-<pid>-ThreadId(N)` names opened without O_EXCL.
    for n in 0..64 {
        let planted = scratch.dir().join(format!(".tmp-{}-ThreadId({n})", std::process::id()));
        std::os::unix::fs::symlink(&victim, planted).unwrap();
    }
    assert!(matches!(cache.store(&name(6), ARTIFACT), CacheOutcome::Stored(_)));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn the_size_cap_evicts_the_least_recently_used() {
    let scratch = Scratch::new("evict");
    let big = vec![7u8; 4096];
    let cap = 3 * (big.len() + ARTIFACT_OFFSET) as u64;
    let cache = Cache::open(&scratch.dir(), Some(&scratch.key()), cap).unwrap();
    for byte in 10..13 {
        cache.store(&name(byte), &big);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    memo().lock().unwrap().clear();
    assert!(cache.load(&name(10)).is_some(), "using 10 makes 11 the oldest");
    std::thread::sleep(std::time::Duration::from_millis(20));
    cache.store(&name(13), &big);
    let names: Vec<String> =
        scratch.entries().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&name(11).file_name()), "{names:?}");
    let too_big = vec![0u8; cap as usize];
    assert!(matches!(cache.store(&name(14), &too_big), CacheOutcome::NotStored(_)));
    let total: u64 = scratch.entries().iter().map(|p| std::fs::metadata(p).unwrap().size()).sum();
    assert!(total <= cap);
}

#[test]
fn the_entry_name_changes_with_the_engines_proposal_set() {
    // A module that needs GC and exception handling, as toolchains now emit.
    let module = wat::parse_str("(module (type (struct (field i32))) (tag (param i32)))").unwrap();
    let runner = crate::runner::engine_for(false).unwrap();
    wasmtime::Module::validate(&runner, &module).expect("the runner's engine accepts GC and exceptions");

    // The same configuration without those proposals: another name, so an artifact compiled by a
    // runner of one set is never offered to a runner of the other.
    let mut config = crate::runner::engine_config(false);
    config.wasm_gc(false).wasm_exceptions(false);
    let without = wasmtime::Engine::new(&config).unwrap();
    assert!(wasmtime::Module::validate(&without, &module).is_err());
    assert_ne!(compatibility_hash(&runner), compatibility_hash(&without));
    assert_eq!(EntryName::new([1; 32], ModuleKind::Core, false).engine, compatibility_hash(&runner));
}

#[test]
fn a_components_entry_is_never_loaded_as_a_core_modules_or_the_reverse() {
    let scratch = Scratch::new("kinds");
    let cache = scratch.open().unwrap();
    let core = name(20);
    let component = EntryName { kind: ModuleKind::Component, ..core };
    assert_ne!(core.file_name(), component.file_name());
    cache.store(&component, ARTIFACT);
    memo().lock().unwrap().clear();
    assert_eq!(cache.load(&core), None, "a component's artifact offered as a core module's");
    assert_eq!(cache.load(&component).as_deref(), Some(ARTIFACT));

    // Renamed on disk into the other kind's place, the entry fails its MAC, which covers the name.
    let stored = scratch.entries().remove(0);
    std::fs::rename(&stored, scratch.dir().join(core.file_name())).unwrap();
    memo().lock().unwrap().clear();
    assert_eq!(cache.load(&core), None, "a renamed component entry was accepted as a core module's");
}

#[test]
fn a_sealed_memfd_holds_its_bytes_and_refuses_changes() {
    let file = std::fs::File::from(sealed_memfd(b"artifact").unwrap());
    let mut back = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).unwrap();
    assert_eq!(&back, b"artifact");
    assert!(std::os::unix::fs::FileExt::write_at(&file, b"X", 0).is_err(), "a sealed memfd took a write");
    assert!(file.set_len(3).is_err(), "a sealed memfd shrank");
    assert!(file.set_len(100).is_err(), "a sealed memfd grew");
}

#[test]
fn a_freshly_loaded_entry_comes_with_its_file_holding_exactly_the_artifact() {
    let scratch = Scratch::new("file");
    let cache = Cache::open(&scratch.dir(), Some(&scratch.key()), 1 << 20).unwrap();
    let artifact = b"compiled bytes".to_vec();
    cache.store(&name(30), &artifact);
    memo().lock().unwrap().clear();
    // From disk: the entry's own file, the artifact after its header.
    let (bytes, mapped) = cache.load_with_file(&name(30)).unwrap();
    assert_eq!(&bytes[..], &artifact[..]);
    let mapped = mapped.expect("a file to map");
    // On a page boundary, so that a runner can run the code where it maps it.
    assert_eq!(mapped.offset % rustix::param::page_size() as u64, 0, "artifact at {}", mapped.offset);
    // Read as the runner maps it: the whole file, whatever its position.
    let mut contents = vec![0u8; mapped.file.metadata().unwrap().len() as usize];
    std::os::unix::fs::FileExt::read_exact_at(&mapped.file, &mut contents, 0).unwrap();
    assert_eq!(&contents[mapped.offset as usize..], &artifact[..]);
    // From the memo: the bytes alone (the sender makes a memfd of them if it needs one).
    let (bytes, mapped) = cache.load_with_file(&name(30)).unwrap();
    assert_eq!(&bytes[..], &artifact[..]);
    assert!(mapped.is_none());
}

#[test]
fn engine_hints_are_remembered_per_configuration_and_never_followed_through_links() {
    let scratch = Scratch::new("hint");
    let cache = scratch.open().unwrap();
    assert_eq!((cache.engine_hint(false), cache.engine_hint(true)), (None, None));
    cache.remember_engine(false, 0x1234);
    assert_eq!((cache.engine_hint(false), cache.engine_hint(true)), (Some(0x1234), None));
    cache.remember_engine(true, 0x5678);
    assert_eq!((cache.engine_hint(false), cache.engine_hint(true)), (Some(0x1234), Some(0x5678)));
    let hint = scratch.dir().join(ENGINE_HINT_FILE);
    assert_eq!(mode(&hint), 0o600);

    // Only ever a private regular file of this user's, of the right size, is read.
    std::fs::set_permissions(&hint, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(cache.engine_hint(false), None, "a hint others can read (or were given) is ignored");
    std::fs::remove_file(&hint).unwrap();
    let planted = scratch.root.join("planted");
    std::fs::write(&planted, [9u8; 16]).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&planted, &hint).unwrap();
    assert_eq!(cache.engine_hint(false), None, "a symlinked hint is not followed");
    // Remembering replaces the link by rename and leaves its target alone.
    cache.remember_engine(false, 0x42);
    assert_eq!(cache.engine_hint(false), Some(0x42));
    assert_eq!(std::fs::read(&planted).unwrap(), [9u8; 16]);
    std::fs::write(scratch.dir().join(ENGINE_HINT_FILE), [1u8; 15]).unwrap();
    assert_eq!(cache.engine_hint(false), None, "a hint of the wrong size is ignored");
    // The hint is no entry: eviction leaves it, and it counts toward no cap.
    assert!(matches!(cache.store(&name(40), ARTIFACT), CacheOutcome::Stored(_)));
    assert!(scratch.dir().join(ENGINE_HINT_FILE).exists());
}
