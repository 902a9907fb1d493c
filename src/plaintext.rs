//! Decrypted bytes handed out inside result structs.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto;

/// Decrypted bytes: zeroized when dropped, compared in constant time, and
/// printed by `Debug` as their length only, so a logged result never shows a
/// message. Reads as a `[u8]`.
///
/// ```
/// use ratchetbox::Plaintext;
/// let text = Plaintext::from(b"meet at noon".to_vec());
/// assert_eq!(text, b"meet at noon");
/// assert_eq!(text.len(), 12);
/// assert_eq!(format!("{text:?}"), "Plaintext(12 bytes)");
/// ```
#[derive(Default)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// The bytes (a `Plaintext` also derefs to `[u8]`).
    ///
    /// ```
    /// use ratchetbox::Plaintext;
    /// let text = Plaintext::from(b"meet at noon".to_vec());
    /// let bytes: &[u8] = text.as_bytes();
    /// assert_eq!(bytes, b"meet at noon");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as an owned buffer that still zeroizes on drop, for an app that
    /// keeps the message (in its own encrypted storage, say) without copying it.
    ///
    /// ```
    /// use ratchetbox::Plaintext;
    /// let text = Plaintext::from(b"meet at noon".to_vec());
    /// let owned = text.into_zeroizing();
    /// assert_eq!(owned.as_slice(), b"meet at noon");
    /// ```
    pub fn into_zeroizing(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(core::mem::take(&mut self.0))
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

/// Constant time in the contents (the lengths are compared first).
fn ct_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && crypto::ct_eq(a, b)
}

impl PartialEq for Plaintext {
    fn eq(&self, other: &Self) -> bool {
        ct_equal(&self.0, &other.0)
    }
}

impl Eq for Plaintext {}

impl PartialEq<[u8]> for Plaintext {
    fn eq(&self, other: &[u8]) -> bool {
        ct_equal(&self.0, other)
    }
}

impl PartialEq<&[u8]> for Plaintext {
    fn eq(&self, other: &&[u8]) -> bool {
        ct_equal(&self.0, other)
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Plaintext {
    fn eq(&self, other: &[u8; N]) -> bool {
        ct_equal(&self.0, other)
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Plaintext {
    fn eq(&self, other: &&[u8; N]) -> bool {
        ct_equal(&self.0, *other)
    }
}

impl PartialEq<Vec<u8>> for Plaintext {
    fn eq(&self, other: &Vec<u8>) -> bool {
        ct_equal(&self.0, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let text = Plaintext::from(alloc::vec![0x41; 5]);
        let shown = alloc::format!("{text:?}");
        assert_eq!(shown, "Plaintext(5 bytes)");
        assert!(!shown.contains("65") && !shown.contains("AAAAA"));
    }

    #[test]
    fn comparisons() {
        let text = Plaintext::from(b"abc".to_vec());
        assert_eq!(text, b"abc");
        assert_eq!(text, &b"abc"[..]);
        assert_ne!(text, b"abd");
        assert_ne!(text, b"ab");
        assert_eq!(*text.into_zeroizing(), b"abc");
    }
}
