//! Size-prefixed framing: every Kafka request is an `i32` big-endian size followed by that
//! many bytes. The size is hostile input, so it is checked (negative, above
//! `socket.request.max.bytes`) as soon as its 4 bytes arrive and before the read buffer grows
//! for it; afterwards the buffer grows only in proportion to the bytes that have actually
//! arrived (at most doubling, plus one read chunk), never to the declared size up front.
//!
//! Frames are split off the read buffer without copying ([`bytes::BytesMut::split_to`]), so a
//! produce request's record batches stay in the buffer the socket read them into.

use bytes::{Buf, Bytes, BytesMut};

use super::error::WireError;

/// Bytes of the size prefix in front of every request and response.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 104_857_600;

/// Default socket read size when no frame asks for more: large enough to pick up many
/// pipelined small requests per read, small enough to keep idle connections cheap.
pub const READ_CHUNK_BYTES_DEFAULT: usize = 64 * 1024;

/// Checks a size prefix and returns the body length it announces. Pure; called before any
/// allocation is made for the frame.
pub fn frame_body_bytes(
    prefix: [u8; FRAME_PREFIX_BYTES],
    request_bytes_max: usize,
) -> Result<usize, WireError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(WireError::FrameSizeNegative { size });
    }
    let size = size as usize;
    if size > request_bytes_max {
        return Err(WireError::FrameTooLarge {
            size,
            size_max: request_bytes_max,
        });
    }
    Ok(size)
}

/// Splits the first complete frame off `buf` and returns its body (without the prefix).
/// `Ok(None)` means more bytes are needed; `buf` is then left untouched.
pub fn split_frame(
    buf: &mut BytesMut,
    request_bytes_max: usize,
) -> Result<Option<Bytes>, WireError> {
    if buf.len() < FRAME_PREFIX_BYTES {
        return Ok(None);
    }
    let prefix: [u8; FRAME_PREFIX_BYTES] = buf[..FRAME_PREFIX_BYTES].try_into().expect("4 bytes");
    let body_bytes = frame_body_bytes(prefix, request_bytes_max)?;
    let frame_bytes = FRAME_PREFIX_BYTES + body_bytes;
    if buf.len() < frame_bytes {
        return Ok(None);
    }
    let mut frame = buf.split_to(frame_bytes);
    frame.advance(FRAME_PREFIX_BYTES);
    debug_assert_eq!(frame.len(), body_bytes);
    Ok(Some(frame.freeze()))
}

/// Per-connection read buffer that yields complete frames.
///
/// Use: `let dst = reader.read_buf()?; let n = socket.read(dst).await?; reader.advance(n);`
/// then `while let Some(frame) = reader.next_frame()? { ... }`.
///
/// Invariant: `buf[..filled]` holds received bytes; `buf[filled..]` is zeroed spare that the
/// next read fills (kept initialised so a plain `&mut [u8]` can be handed to the socket).
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    filled: usize,
    request_bytes_max: usize,
    read_chunk_bytes: usize,
}

impl FrameReader {
    pub fn new(request_bytes_max: usize, read_chunk_bytes: usize) -> Self {
        assert!(read_chunk_bytes >= FRAME_PREFIX_BYTES);
        assert!(request_bytes_max <= i32::MAX as usize);
        FrameReader {
            buf: BytesMut::new(),
            filled: 0,
            request_bytes_max,
            read_chunk_bytes,
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered_bytes(&self) -> usize {
        self.filled
    }

    /// Bytes currently allocated for the read buffer (for limits and tests).
    pub fn capacity_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// The slice the next socket read should fill. A pending frame's size prefix is checked
    /// first, so a hostile size is rejected before the buffer grows for it.
    pub fn read_buf(&mut self) -> Result<&mut [u8], WireError> {
        let read_bytes = self.read_bytes_wanted()?;
        debug_assert!(read_bytes > 0);
        if self.buf.len() - self.filled < read_bytes {
            // A fresh exact-size allocation (not `reserve`, which may double) keeps the
            // growth bound exact; only the partial frame is copied. Frames already split
            // off keep the old allocation alive until they are dropped.
            let mut grown = BytesMut::with_capacity(self.filled + read_bytes);
            grown.extend_from_slice(&self.buf[..self.filled]);
            grown.resize(self.filled + read_bytes, 0);
            self.buf = grown;
        }
        debug_assert!(self.buf.len() - self.filled >= read_bytes);
        Ok(&mut self.buf[self.filled..])
    }

    /// Records that the last read put `n` bytes at the start of [`Self::read_buf`].
    pub fn advance(&mut self, n: usize) {
        assert!(
            self.filled + n <= self.buf.len(),
            "advance past the read buffer"
        );
        self.filled += n;
    }

    /// Copies `data` in (for tests and for callers that read into their own buffer).
    pub fn extend_from_slice(&mut self, mut data: &[u8]) -> Result<(), WireError> {
        while !data.is_empty() {
            let dst = self.read_buf()?;
            let n = dst.len().min(data.len());
            dst[..n].copy_from_slice(&data[..n]);
            self.advance(n);
            data = &data[n..];
        }
        Ok(())
    }

    /// The next complete frame body, if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, WireError> {
        if self.filled < FRAME_PREFIX_BYTES {
            return Ok(None);
        }
        let body_bytes = self.pending_body_bytes()?.expect("prefix present");
        let frame_bytes = FRAME_PREFIX_BYTES + body_bytes;
        if self.filled < frame_bytes {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(frame_bytes);
        self.filled -= frame_bytes;
        frame.advance(FRAME_PREFIX_BYTES);
        debug_assert_eq!(frame.len(), body_bytes);
        if self.filled == 0 && self.buf.len() > 4 * self.read_chunk_bytes {
            // A large frame just left: do not keep its allocation pinned by the spare.
            self.buf = BytesMut::new();
        }
        Ok(Some(frame.freeze()))
    }

    fn pending_body_bytes(&self) -> Result<Option<usize>, WireError> {
        if self.filled < FRAME_PREFIX_BYTES {
            return Ok(None);
        }
        let prefix: [u8; FRAME_PREFIX_BYTES] =
            self.buf[..FRAME_PREFIX_BYTES].try_into().expect("4 bytes");
        frame_body_bytes(prefix, self.request_bytes_max).map(Some)
    }

    /// One chunk by default; while a large frame is arriving, up to what it still needs but
    /// never more than has already arrived (so growth is geometric in received bytes).
    fn read_bytes_wanted(&self) -> Result<usize, WireError> {
        let Some(body_bytes) = self.pending_body_bytes()? else {
            return Ok(self.read_chunk_bytes);
        };
        let frame_bytes = FRAME_PREFIX_BYTES + body_bytes;
        let missing = frame_bytes.saturating_sub(self.filled);
        Ok(self.read_chunk_bytes.max(missing.min(self.filled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn split_frame_waits_for_prefix_and_body() {
        let data = framed(b"hello");
        for cut in 0..data.len() {
            let mut buf = BytesMut::from(&data[..cut]);
            assert_eq!(split_frame(&mut buf, 100).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "buffer untouched while incomplete");
        }
        let mut buf = BytesMut::from(&data[..]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().unwrap(),
            Bytes::from_static(b"hello")
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn negative_and_oversize_prefixes_are_rejected() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(WireError::FrameSizeNegative { size: -1 })
        );
        let mut buf = BytesMut::from(&101i32.to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(WireError::FrameTooLarge {
                size: 101,
                size_max: 100
            })
        );
        let mut buf = BytesMut::from(&framed(&[7u8; 100])[..]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().unwrap().len(),
            100,
            "the limit itself is allowed"
        );
    }

    #[test]
    fn reader_rejects_hostile_prefix_before_growing() {
        let mut reader = FrameReader::new(1000, 64);
        reader.extend_from_slice(&i32::MAX.to_be_bytes()).unwrap();
        let capacity_before = reader.capacity_bytes();
        assert!(matches!(
            reader.read_buf(),
            Err(WireError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            reader.next_frame(),
            Err(WireError::FrameTooLarge { .. })
        ));
        assert_eq!(reader.capacity_bytes(), capacity_before);

        let mut reader = FrameReader::new(1000, 64);
        reader.extend_from_slice(&i32::MIN.to_be_bytes()).unwrap();
        assert!(matches!(
            reader.read_buf(),
            Err(WireError::FrameSizeNegative { .. })
        ));
    }

    #[test]
    fn reader_growth_follows_arrived_bytes_not_declared_size() {
        let declared = 50_000_000usize;
        let mut reader = FrameReader::new(REQUEST_BYTES_MAX_DEFAULT, 1024);
        reader
            .extend_from_slice(&(declared as i32).to_be_bytes())
            .unwrap();
        let mut arrived = 4usize;
        for _ in 0..10 {
            let dst = reader.read_buf().unwrap();
            let n = dst.len().min(3000);
            dst[..n].fill(1);
            reader.advance(n);
            arrived += n;
            assert_eq!(reader.next_frame().unwrap(), None);
            assert!(
                reader.capacity_bytes() <= 2 * arrived + 2 * 1024,
                "capacity {} for {arrived} arrived bytes",
                reader.capacity_bytes()
            );
        }
    }

    #[test]
    fn reader_yields_pipelined_frames_in_order_across_any_split() {
        let mut stream = Vec::new();
        let bodies: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 37]).collect();
        for b in &bodies {
            stream.extend_from_slice(&framed(b));
        }
        for step in [1usize, 3, 7, 64, 1000, stream.len()] {
            let mut reader = FrameReader::new(10_000, 16);
            let mut out = Vec::new();
            for piece in stream.chunks(step) {
                reader.extend_from_slice(piece).unwrap();
                while let Some(frame) = reader.next_frame().unwrap() {
                    out.push(frame.to_vec());
                }
            }
            assert_eq!(out, bodies, "step {step}");
            assert_eq!(reader.buffered_bytes(), 0);
        }
    }

    #[test]
    fn zero_length_frame_is_a_frame() {
        let mut reader = FrameReader::new(100, 16);
        reader.extend_from_slice(&framed(b"")).unwrap();
        assert_eq!(reader.next_frame().unwrap().unwrap().len(), 0);
        assert_eq!(reader.next_frame().unwrap(), None);
    }
}
