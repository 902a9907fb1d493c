//! Length padding for sealed content: Padmé (Nikitin et al., "Reducing Metadata
//! Leakage from Encrypted Files and Communication with PURBs", PETS 2019).
//!
//! Why Padmé: exact lengths identify messages (a 3-byte "yes", a sticker, a
//! particular photo). Padmé rounds a length `L` up so that only its top
//! `floor(log2(floor(log2 L))) + 1` bits may be non-zero: it leaks O(log log L)
//! bits of the length, where power-of-two buckets leak O(log L) bits' worth of
//! size but waste up to 50%; Padmé's overhead is at most 12%. Below
//! [`MIN_PADDED_LEN`] everything pads to the same size. Because the padded
//! length is a function of the length alone, a server can check it without keys.

/// Smallest padded content length; shorter content pads up to it.
pub const MIN_PADDED_LEN: usize = 64;

/// The padded length for `len` bytes of content (the 0x80 marker included), or
/// `None` if it would not fit in a `usize`.
///
/// ```
/// use ratchetbox::sealed::{MIN_PADDED_LEN, padded_len};
/// assert_eq!(padded_len(3), Some(MIN_PADDED_LEN));
/// assert_eq!(padded_len(65), Some(72));
/// assert_eq!(padded_len(1000), Some(1024));
/// assert_eq!(padded_len(usize::MAX - 100), None);
/// ```
pub fn padded_len(len: usize) -> Option<usize> {
    let len = len.max(MIN_PADDED_LEN);
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len), len >= 64
    let s = u32::BITS - 1 - e.leading_zeros() + 1; // floor(log2 e) + 1
    let zero_bits = e - s;
    let mask = (1usize << zero_bits) - 1;
    Some(len.checked_add(mask)? & !mask)
}

/// Whether `len` is a length [`padded_len`] can produce: what a server checks
/// an envelope's content length against, without keys.
///
/// ```
/// use ratchetbox::sealed::{is_padded_len, padded_len};
/// assert!(is_padded_len(72));
/// assert!(!is_padded_len(65));
/// assert!((0..2000).all(|len| padded_len(len).is_some_and(is_padded_len)));
/// ```
pub fn is_padded_len(len: usize) -> bool {
    len >= MIN_PADDED_LEN && padded_len(len) == Some(len)
}

/// Appends `0x80` and zeros up to the padded length. Callers bound `content`
/// far below `usize::MAX`, so the padded length always exists.
pub(crate) fn pad(content: &mut alloc::vec::Vec<u8>) {
    let target = padded_len(content.len() + 1).unwrap_or(content.len() + 1);
    content.push(0x80);
    content.resize(target, 0);
}

/// The content without its padding, or `None` if the padding is malformed.
pub(crate) fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let end = padded.iter().rposition(|&b| b != 0)?;
    (padded[end] == 0x80).then(|| &padded[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_is_idempotent_bounded_and_monotonic() {
        let mut previous = 0;
        for len in 0..100_000usize {
            let p = padded_len(len).expect("fits");
            assert!(p >= len && p >= MIN_PADDED_LEN);
            assert!(is_padded_len(p), "{len} -> {p}");
            assert!(p >= previous);
            previous = p;
            if len > MIN_PADDED_LEN {
                assert!(p - len <= len / 8 + 1, "overhead at {len}: {p}");
            }
        }
        assert_eq!(padded_len(0), Some(64));
        assert_eq!(padded_len(65), Some(72));
        assert_eq!(padded_len(1000), Some(1024));
        assert_eq!(padded_len(usize::MAX - 100), None);
        assert!(!is_padded_len(usize::MAX - 100));
        assert!(!is_padded_len(65));
        assert!(!is_padded_len(10));
    }

    #[test]
    fn largest_payload_fits_an_entry() {
        let padded = padded_len(crate::sealed::MAX_PAYLOAD_LEN + 1).expect("fits");
        assert!(padded + 48 <= usize::from(u16::MAX));
    }

    #[test]
    fn pad_round_trips_and_rejects_bad_padding() {
        for len in [0usize, 1, 63, 64, 300] {
            let mut v = alloc::vec![7u8; len];
            pad(&mut v);
            assert!(is_padded_len(v.len()));
            assert_eq!(unpad(&v), Some(&alloc::vec![7u8; len][..]));
        }
        assert_eq!(unpad(&[1, 2, 0, 0]), None);
        assert_eq!(unpad(&[0, 0]), None);
    }
}
