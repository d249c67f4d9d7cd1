//! Fuzzes the broker's request decoder with arbitrary frames: it must return an error, never panic,
//! hang or over-allocate. Run: `cargo +nightly fuzz run decode_request` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logpipe_broker::fuzzing::{decode_request, supported_versions};

// Same allocator as the binary (see src/main.rs).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(bytes::Bytes::copy_from_slice(data), supported_versions);
});
