//! Compression codecs as Kafka clients use them: gzip (possibly several members), snappy
//! (raw, or xerial-framed as the Java client and librdkafka send it), LZ4 frame format, and
//! zstd. Decompression is bounded: it never produces more than the caller's limit, whatever
//! sizes the compressed stream declares.

use super::Compression;
use crate::error::{Error, Result};
use bytes::Bytes;
use std::io::{Read, Write};

/// xerial snappy-java stream header: magic, version 1, compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01";
/// snappy-java's default block size (SnappyOutputStream.DEFAULT_BLOCK_SIZE).
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
const ZSTD_LEVEL: i32 = 3;
const ZSTD_WINDOW_LOG_MIN: u32 = 23;
/// zstd's default limit (128 MiB); larger windows need an explicit opt-in by the encoder.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

fn corrupt(codec: Compression, e: impl std::fmt::Display) -> Error {
    Error::CorruptBatch(format!("{codec:?} decompression failed: {e}"))
}

fn too_large(limit: usize) -> Error {
    Error::CorruptBatch(format!(
        "decompressed records exceed the limit of {limit} bytes"
    ))
}

/// Reads all of `reader` but at most `limit` bytes; more is an error.
fn read_bounded(codec: Compression, reader: impl Read, limit: usize) -> Result<Bytes> {
    let mut out = Vec::new();
    let limit_plus_one = (limit as u64).saturating_add(1);
    reader
        .take(limit_plus_one)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}

/// The window log allowed for a frame decoded into at most `limit` bytes: enough to cover
/// `limit`, and never below 23 (8 MiB), the window streaming encoders (zstd-jni in the Java
/// client, librdkafka) declare for levels up to 19 even when the content is small. At most
/// 27 (128 MiB), zstd's own default limit.
fn zstd_window_log_max(limit: usize) -> u32 {
    let log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX)
}

/// Decompresses the record data of a batch, producing at most `limit` bytes.
pub(super) fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Bytes> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(too_large(limit));
            }
            Ok(Bytes::copy_from_slice(data))
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            // The window the decoder allocates is declared by the frame: bound it by the
            // output limit, since a window larger than the output is never needed.
            decoder
                .window_log_max(zstd_window_log_max(limit))
                .map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, limit)
        }
        Compression::Snappy => {
            if data.starts_with(XERIAL_MAGIC) {
                snappy_xerial(data, limit)
            } else {
                let mut out = Vec::new();
                snappy_block(data, limit, &mut out)?;
                Ok(Bytes::from(out))
            }
        }
    }
}

/// Appends one raw snappy block to `out`, checking its declared length first.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if len > limit.saturating_sub(out.len()) {
        return Err(too_large(limit));
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

/// xerial framing: a 16-byte header, then blocks of `u32 length (big-endian) | raw snappy`.
fn snappy_xerial(data: &[u8], limit: usize) -> Result<Bytes> {
    let codec = Compression::Snappy;
    if data.len() < XERIAL_HEADER.len() {
        return Err(corrupt(codec, "truncated xerial header"));
    }
    let mut rest = &data[XERIAL_HEADER.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt(codec, "truncated xerial block length"));
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(corrupt(
                codec,
                format!("xerial block of {len} bytes, {} remain", rest.len()),
            ));
        }
        snappy_block(&rest[..len], limit, &mut out)?;
        rest = &rest[len..];
    }
    Ok(Bytes::from(out))
}

/// Compresses record data for [`super::BatchBuilder`]. Snappy is written xerial-framed, as
/// the Java client does; every Kafka client reads that.
pub(super) fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).expect("writing to a Vec");
            encoder.finish().expect("writing to a Vec")
        }
        Compression::Snappy => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK_LEN) {
                let block = encoder
                    .compress_vec(chunk)
                    .expect("snappy block within limits");
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).expect("writing to a Vec");
            encoder.finish().expect("writing to a Vec")
        }
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).expect("zstd compress"),
    }
}
