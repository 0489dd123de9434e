//! Guests embedded in the binary (`guests/*.rs`, built for wasm32-wasip1 by `build.rs`), so
//! `wasmpipe demo` and `wasmpipe bench` need no files.

include!(concat!(env!("OUT_DIR"), "/embedded_guests.rs"));
