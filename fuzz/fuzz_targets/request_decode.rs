//! Fuzz target: arbitrary bytes as a client's byte stream, through the whole request path
//! of `riptide::wire` — framing (with a small `socket.request.max.bytes`), header decoding
//! and typed body decoding for every api key and version. Must never panic or allocate far
//! beyond the input (libFuzzer's -malloc_limit_mb catches a declared-size allocation).
//!
//! The first input byte picks the read-chunk size so frames are split across reads in many
//! ways; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riptide::wire::{decode_header, decode_request, FrameReader};

/// Small limit so oversize prefixes are exercised too.
const REQUEST_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk_bytes = 1 + chunk as usize;
    let mut reader = FrameReader::new(REQUEST_BYTES_MAX, 64);
    for piece in stream.chunks(chunk_bytes) {
        if reader.extend_from_slice(piece).is_err() {
            return;
        }
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok((header, body)) = decode_header(frame) {
                        let _ = decode_request(header.api_key, header.api_version, body);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(error.is_fatal_to_connection());
                    return;
                }
            }
        }
    }
});
