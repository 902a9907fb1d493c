//! Byte reading and writing shared by every wire and stored format.
//!
//! Holds no keys: it only moves bytes, so it is the fuzz surface. All integers
//! are big-endian.

use alloc::vec::Vec;

use zeroize::Zeroize;

use crate::crypto::{KEY_LEN, PublicKey};
use crate::error::DecodeError;

/// A cursor over borrowed bytes; every read is bounds-checked and names the field
/// it was reading when the input runs out.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// An X25519 public key, refused unless canonical ([`PublicKey::from_bytes`]).
    pub(crate) fn public_key(&mut self, field: &'static str) -> Result<PublicKey, DecodeError> {
        PublicKey::parse(self.array::<KEY_LEN>(field)?, field)
    }

    /// A presence flag: 0 or 1, anything else is malformed.
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidFlag { field }),
        }
    }

    /// Reads a one-byte format tag and checks it.
    pub(crate) fn tag(&mut self, expected: u8) -> Result<(), DecodeError> {
        let found = self.u8("format tag")?;
        if found != expected {
            return Err(DecodeError::UnknownFormat { expected, found });
        }
        Ok(())
    }

    /// A count, bounded by `max` before anything is allocated for it.
    pub(crate) fn count_u32(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<usize, DecodeError> {
        let found = self.u32(field)?;
        if found as u64 > max as u64 {
            return Err(DecodeError::LimitExceeded {
                field,
                max: max as u64,
                found: found as u64,
            });
        }
        Ok(found as usize)
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.bytes
    }

    /// Ends decoding: any bytes left over are an error.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                extra: self.bytes.len(),
            })
        }
    }
}

/// Appends big-endian fields to a `Vec`; used for state and bundles, never on the
/// steady-state message path.
///
/// Stored state holds secrets, so the buffer never grows in place: when it is
/// full, the bytes move to a larger buffer and the old one is wiped before it
/// is freed (a plain `Vec` would leave a copy in freed memory). Callers still
/// size it well, so this is rare.
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    fn reserve(&mut self, additional: usize) {
        let needed = self.bytes.len().saturating_add(additional);
        if needed > self.bytes.capacity() {
            let mut larger =
                Vec::with_capacity(needed.max(self.bytes.capacity().saturating_mul(2)));
            larger.extend_from_slice(&self.bytes);
            let mut old = core::mem::replace(&mut self.bytes, larger);
            old.zeroize();
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.reserve(bytes.len());
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.reserve(1);
        self.bytes.push(value);
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    pub(crate) fn flag(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_and_trailing_bytes() {
        let mut r = Reader::new(&[1, 0, 0, 0]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u32("b"), Err(DecodeError::Truncated { field: "b" }));
        let mut r = Reader::new(&[2, 9]);
        assert_eq!(r.flag("f"), Err(DecodeError::InvalidFlag { field: "f" }));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn writer_grows_into_fresh_buffers() {
        let mut w = Writer::with_capacity(2);
        w.u8(1).u32(0x0203_0405).bytes(&[6; 40]).flag(true);
        let bytes = w.into_vec();
        assert_eq!(&bytes[..5], &[1, 2, 3, 4, 5]);
        assert_eq!(bytes.len(), 1 + 4 + 40 + 1);
        assert_eq!(bytes[45], 1);
    }

    #[test]
    fn counts_are_bounded_before_use() {
        let mut r = Reader::new(&[0, 0, 0, 11]);
        assert!(matches!(
            r.count_u32("n", 10),
            Err(DecodeError::LimitExceeded {
                max: 10,
                found: 11,
                ..
            })
        ));
    }
}
