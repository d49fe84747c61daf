//! Fuzz target: the RecordBatch v2 validators, splitter and record decoder on arbitrary
//! bytes. Nothing may panic, and what `validate_produced` accepts must also pass
//! `validate_stored` and, when uncompressed, decode into `recordCount` records.
//!
//! Each input is tried twice: as given, and with the CRC fixed up, so that mutations reach
//! the record parsers behind the CRC check.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shards::batch::{self, Compression, BATCH_HEADER_LEN};

const MAX_BATCH_BYTES: usize = 1 << 20;
const MAX_DECOMPRESSED_BYTES: usize = 4 << 20;
const MAX_BATCHES: usize = 64;

fn check(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let produced = batch::validate_produced(data, MAX_BATCH_BYTES);
    let stored = batch::validate_stored(data);
    let decoded = batch::records(&bytes, MAX_DECOMPRESSED_BYTES);
    if let Ok(h) = &produced {
        assert_eq!(stored.as_ref().ok(), Some(h), "produced but not stored-valid");
        if h.compression().unwrap() == Compression::None {
            assert_eq!(decoded.as_ref().map(|r| r.len()).ok(), Some(h.record_count as usize));
        }
    }
    if let Ok(batches) = batch::split_batches(&bytes, MAX_BATCHES) {
        assert!(batches.len() <= MAX_BATCHES);
        let total: usize = batches.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(total, bytes.len(), "split lost bytes");
        for (h, b) in batches {
            assert_eq!(h.total_len(), b.len());
            if let Ok(records) = batch::records(&b, MAX_DECOMPRESSED_BYTES) {
                if h.is_control() {
                    for r in &records {
                        let _ = batch::parse_end_txn_marker(r);
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= BATCH_HEADER_LEN {
        let mut fixed = data.to_vec();
        let crc = crc32c::crc32c(&fixed[21..]);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        check(&fixed);
    }
});
