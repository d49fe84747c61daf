//! Fuzz target: restoring a producer-state snapshot from arbitrary bytes never panics, and
//! a snapshot that restores re-encodes to the same bytes. Inputs are also tried behind a
//! valid header and CRC so that the body parser is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shards::producer_state::ProducerStateTable;

fn check(bytes: &[u8]) {
    if let Ok((table, offset)) = ProducerStateTable::restore(bytes) {
        assert_eq!(table.snapshot(offset), bytes, "restore/snapshot not inverse");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut framed = b"RPST\0\x01".to_vec();
    framed.extend_from_slice(&crc32c::crc32c(data).to_be_bytes());
    framed.extend_from_slice(data);
    check(&framed);
});
