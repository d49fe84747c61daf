//! Big-endian primitives for the metadata record encoding. The reader checks every declared
//! length or count against the bytes that remain before allocating (hostile or torn input
//! never makes it allocate a declared size).

/// Decoding failure; the caller adds the file and offset.
pub type DecodeResult<T> = std::result::Result<T, String>;

/// Marks an absent optional string.
const ABSENT: u32 = u32::MAX;

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub fn uuid(&mut self, v: &uuid::Uuid) {
        self.buf.extend_from_slice(v.as_bytes());
    }
    pub fn str(&mut self, s: &str) {
        let len = u32::try_from(s.len()).expect("metadata strings are far below 4 GiB");
        assert!(len != ABSENT);
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.u32(ABSENT),
        }
    }
    pub fn i32s(&mut self, items: &[i32]) {
        self.u32(u32::try_from(items.len()).expect("bounded list"));
        for item in items {
            self.i32(*item);
        }
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(format!("{n} bytes declared, {} remain", self.remaining()));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let bytes = self.bytes(N)?;
        Ok(bytes.try_into().expect("length checked"))
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> DecodeResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("invalid boolean {other}")),
        }
    }
    pub fn uuid(&mut self) -> DecodeResult<uuid::Uuid> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }
    pub fn str(&mut self) -> DecodeResult<String> {
        let len = self.u32()? as usize;
        let bytes = self.bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    pub fn opt_str(&mut self) -> DecodeResult<Option<String>> {
        let len = self.u32()?;
        if len == ABSENT {
            return Ok(None);
        }
        let bytes = self.bytes(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "string is not UTF-8".to_string())
    }
    /// A count of elements of at least `element_bytes_min` each, checked against what remains.
    pub fn count(&mut self, element_bytes_min: usize) -> DecodeResult<usize> {
        let count = self.u32()? as usize;
        if count.saturating_mul(element_bytes_min.max(1)) > self.remaining() {
            return Err(format!(
                "{count} elements declared, {} bytes remain",
                self.remaining()
            ));
        }
        Ok(count)
    }
    pub fn i32s(&mut self) -> DecodeResult<Vec<i32>> {
        let count = self.count(4)?;
        (0..count).map(|_| self.i32()).collect()
    }
    pub fn finish(&self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} trailing bytes")),
        }
    }
}
