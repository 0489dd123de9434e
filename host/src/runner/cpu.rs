//! The CPU features the runner's engine compiles for, as the parent already detected them.
//!
//! Left to itself, wasmtime asks the CPU what it supports when an engine is made (cranelift's
//! native flags, then a check of each against the host), through std's feature detection: a
//! dozen `cpuid` instructions, each a trap to the hypervisor in a virtual machine (about 10 us
//! apiece on the machines this was measured on), so about 0.1 ms of every exec'd runner's start.
//! The parent, running on the same machine, detected them long ago; an exec'd runner gets the
//! list in its config and makes its engine for exactly those features ([`configure`]), which
//! gives the same engine (the same compatibility hash, the same code) without one `cpuid`.
//!
//! Only on x86_64; elsewhere the list is empty and the runner detects for itself.

use std::sync::Mutex;

/// Each x86_64 feature cranelift uses, by std's name, and the ISA flag that turns it on: the
/// list `cranelift_native::infer_native_flags` goes through, in its order.
#[cfg(target_arch = "x86_64")]
const FEATURES: &[(&str, &str)] = &[
    ("cmpxchg16b", "has_cmpxchg16b"),
    ("sse3", "has_sse3"),
    ("ssse3", "has_ssse3"),
    ("sse4.1", "has_sse41"),
    ("sse4.2", "has_sse42"),
    ("popcnt", "has_popcnt"),
    ("avx", "has_avx"),
    ("avx2", "has_avx2"),
    ("fma", "has_fma"),
    ("avxvnni", "has_avx_vnni"),
    ("avx512vnni", "has_avx512vnni"),
    ("bmi1", "has_bmi1"),
    ("bmi2", "has_bmi2"),
    ("avx512bitalg", "has_avx512bitalg"),
    ("avx512dq", "has_avx512dq"),
    ("avx512f", "has_avx512f"),
    ("avx512vl", "has_avx512vl"),
    ("avx512vbmi", "has_avx512vbmi"),
    ("lzcnt", "has_lzcnt"),
];

/// The features of [`FEATURES`] this CPU has, detected by std (once per process: free in a
/// parent that made an engine already). `None` where the runner detects for itself.
pub(crate) fn detected() -> Option<Vec<String>> {
    #[cfg(target_arch = "x86_64")]
    {
        let has = |feature: &str| match feature {
            "cmpxchg16b" => std::is_x86_feature_detected!("cmpxchg16b"),
            "sse3" => std::is_x86_feature_detected!("sse3"),
            "ssse3" => std::is_x86_feature_detected!("ssse3"),
            "sse4.1" => std::is_x86_feature_detected!("sse4.1"),
            "sse4.2" => std::is_x86_feature_detected!("sse4.2"),
            "popcnt" => std::is_x86_feature_detected!("popcnt"),
            "avx" => std::is_x86_feature_detected!("avx"),
            "avx2" => std::is_x86_feature_detected!("avx2"),
            "fma" => std::is_x86_feature_detected!("fma"),
            "avxvnni" => std::is_x86_feature_detected!("avxvnni"),
            "avx512vnni" => std::is_x86_feature_detected!("avx512vnni"),
            "bmi1" => std::is_x86_feature_detected!("bmi1"),
            "bmi2" => std::is_x86_feature_detected!("bmi2"),
            "avx512bitalg" => std::is_x86_feature_detected!("avx512bitalg"),
            "avx512dq" => std::is_x86_feature_detected!("avx512dq"),
            "avx512f" => std::is_x86_feature_detected!("avx512f"),
            "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
            "avx512vbmi" => std::is_x86_feature_detected!("avx512vbmi"),
            "lzcnt" => std::is_x86_feature_detected!("lzcnt"),
            _ => false,
        };
        Some(FEATURES.iter().map(|&(feature, _)| feature).filter(|feature| has(feature)).map(String::from).collect())
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Every feature [`configure`] was given, for [`host_has`]: features the caller vouched this
/// CPU has (in a runner, the one list its parent sent).
static GIVEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Sets `config` up to compile for the host with exactly `features` (from [`detected`] in the
/// parent) instead of detecting them. Names it does not know are an error: a parent and runner
/// are the same binary, so that means a corrupted config.
///
/// # Safety
///
/// `features` must be features this CPU has: code compiled for a feature it lacks is undefined
/// behaviour. The parent detected them on this machine.
pub(crate) unsafe fn configure(config: &mut wasmtime::Config, features: &[String]) -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut known = Vec::with_capacity(features.len());
        for feature in features {
            let &(name, flag) = FEATURES
                .iter()
                .find(|(name, _)| name == feature)
                .ok_or_else(|| format!("the parent sent an unknown CPU feature: {feature:?}"))?;
            known.push(name);
            // SAFETY: the caller vouches that the CPU has it.
            unsafe { config.cranelift_flag_enable(flag) };
        }
        // An explicit target turns cranelift's own detection off; the host's triple keeps it
        // the same engine (`Config::target`).
        config.target(&target_lexicon::HOST.to_string()).map_err(|e| format!("cannot target the host: {e}"))?;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        for name in known {
            if !given.contains(&name) {
                given.push(name);
            }
        }
        drop(given);
        // SAFETY: `host_has` answers from the list the caller vouched for, and `None` (unknown)
        // for anything else, on which wasmtime refuses the flag.
        unsafe { config.detect_host_feature(host_has) };
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (config, features);
        Ok(())
    }
}

/// wasmtime's check of each enabled flag against the host, answered from the parent's list.
fn host_has(feature: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    if FEATURES.iter().any(|&(name, _)| name == feature) {
        return Some(GIVEN.lock().unwrap_or_else(|e| e.into_inner()).contains(&feature));
    }
    let _ = feature;
    None
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::guest::{engine_for, engine_with};
    use crate::cache::compatibility_hash;

    /// The empty module: enough for wasmtime to check an artifact's flags against an engine.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn an_engine_for_the_detected_features_is_the_engine_that_detects_them() {
        let features = super::detected().expect("x86_64 has a list");
        for fuel in [false, true] {
            let native = engine_for(fuel).unwrap();
            let given = engine_with(fuel, Some(&features)).unwrap();
            // The same cache entries, and each loads the other's artifacts.
            assert_eq!(compatibility_hash(&native), compatibility_hash(&given), "fuel {fuel}, {features:?}");
            for (from, to) in [(&native, &given), (&given, &native)] {
                let artifact = from.precompile_module(EMPTY_MODULE).unwrap();
                // SAFETY: just compiled by an engine of this process, for this machine.
                unsafe { wasmtime::Module::deserialize(to, &artifact) }.unwrap();
            }
        }
    }

    #[test]
    fn another_feature_list_is_another_engine() {
        // Without this the test above could not fail: the features are part of the engine.
        let mut features = super::detected().unwrap();
        let native = compatibility_hash(&engine_for(false).unwrap());
        let fewer = features.pop().expect("any x86_64 CPU of this decade has some");
        let given = compatibility_hash(&engine_with(false, Some(&features)).unwrap());
        assert_ne!(native, given, "without {fewer}");
    }

    #[test]
    fn an_unknown_feature_is_refused() {
        let error = engine_with(false, Some(&["teleport".to_string()])).unwrap_err();
        assert!(error.contains("teleport"), "{error}");
    }
}
