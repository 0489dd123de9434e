//! Hostile: loops forever without output or any other host call.
//!
//! Used by the host's timeout / CPU limit tests: the host must interrupt it (epoch or fuel
//! based), since the guest never yields through a host call.

use std::hint::black_box;

fn main() {
    let mut counter: u64 = 0;
    loop {
        // `black_box` keeps the optimizer from proving the loop side-effect free.
        counter = black_box(counter.wrapping_add(1));
    }
}
