//! Fuzzes the broker's SCRAM server with arbitrary client-first and client-final messages (split at the
//! first 0xFF byte): it must refuse them cleanly, never panic. Run: `cargo +nightly fuzz run
//! scram_exchange` from the repo root. Oversized, truncated and out-of-order SASL frames are covered
//! by tests/python/test_security.py against the running broker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logpipe_broker::fuzzing::scram_exchange;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fuzz_target!(|data: &[u8]| {
    scram_exchange(data);
});
