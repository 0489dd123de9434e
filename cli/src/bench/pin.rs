//! Pinning the benchmark to one CPU, as `taskset -c 0` does.

use anyhow::Context;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// While alive, this thread and every process it spawns run on one CPU only; dropping it
/// restores the original mask (children spawned meanwhile keep theirs).
///
/// Affinity is per thread, and children inherit the spawning thread's mask. The bench runs on a
/// current-thread runtime, so this thread is the whole parent, and every child it spawns while
/// pinned (sandbox runners with their threads, native children) lands on the same CPU.
pub(crate) struct PinnedToOneCpu {
    original: CpuSet,
}

impl PinnedToOneCpu {
    /// Pins to the lowest CPU this thread may use: CPU 0 normally, but a container or a
    /// `taskset` around the bench may have taken CPU 0 away.
    pub fn new() -> anyhow::Result<Self> {
        let original = sched_getaffinity(None).context("cannot read the CPU affinity")?;
        let cpu = (0..CpuSet::MAX_CPU).find(|&cpu| original.is_set(cpu)).context("the CPU affinity mask is empty")?;
        let mut one = CpuSet::new();
        one.set(cpu);
        sched_setaffinity(None, &one).with_context(|| format!("cannot pin to CPU {cpu}"))?;
        Ok(Self { original })
    }
}

impl Drop for PinnedToOneCpu {
    fn drop(&mut self) {
        // Cannot fail in practice: the original mask was valid a moment ago.
        let _ = sched_setaffinity(None, &self.original);
    }
}
