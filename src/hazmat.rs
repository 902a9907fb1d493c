//! Internal values and primitive wrappers for known-answer tests, Wycheproof
//! checks and fuzzing (feature `hazmat`). Not a stable API; never enable the
//! feature in an application.

use alloc::vec;
use alloc::vec::Vec;

use crate::crypto::{self, DhKeyPair, KEY_LEN, NONCE_LEN, PublicKey, SIGNATURE_LEN, TAG_LEN};
use crate::error::Error;
use crate::identity::IdentityKey;

pub use crate::session::hazmat::*;

/// A multi-recipient entry's AEAD key and nonce.
pub type EntryKey = ([u8; KEY_LEN], [u8; NONCE_LEN]);

/// The (wrapping key, nonce) of each entry of a multi-recipient envelope that
/// `recipient`'s identity opens (the entries of its account's devices), so a
/// test can check that no two entries share a (key, nonce).
///
/// # Errors
/// [`Error::Envelope`] for a malformed envelope, [`Error::NonContributoryDh`].
pub fn sealed_multi_entry_keys(
    envelope: &[u8],
    recipient: &crate::IdentityKeyPair,
) -> Result<Vec<EntryKey>, Error> {
    crate::sealed::multi_entry_keys(envelope, recipient)
}

/// X25519 through the protocol's DH wrapper: the public key must be canonical,
/// the private key is clamped, and an all-zero result is rejected with
/// [`Error::NonContributoryDh`].
///
/// # Errors
/// [`Error::Decode`] for a non-canonical public key, [`Error::NonContributoryDh`]
/// for a small-order one.
pub fn x25519(private: [u8; KEY_LEN], public: [u8; KEY_LEN]) -> Result<[u8; KEY_LEN], Error> {
    let pair = DhKeyPair::from_secret_bytes(private);
    Ok(*pair.dh(&PublicKey::from_bytes(public)?)?.as_bytes())
}

/// Ed25519 verification as the protocol does it: the key must be a valid
/// identity key (canonical, not small order) and the signature must verify strictly.
///
/// # Errors
/// [`Error::Decode`] for an invalid key, [`Error::InvalidSignature`] otherwise.
pub fn ed25519_verify(
    public: &[u8; KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), Error> {
    IdentityKey::from_bytes(public)?.verify(message, signature)
}

/// ChaCha20-Poly1305 seal through the protocol's AEAD wrapper, with an explicit
/// nonce; returns `ciphertext ‖ tag`.
///
/// # Errors
/// [`Error::MessageTooLarge`] if the AEAD refuses the input.
pub fn aead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; plaintext.len() + TAG_LEN];
    let (ciphertext, tag_out) = out.split_at_mut(plaintext.len());
    let tag = crypto::aead_seal_with_nonce(key, nonce, aad, plaintext, ciphertext)?;
    tag_out.copy_from_slice(&tag);
    Ok(out)
}

/// ChaCha20-Poly1305 open of `ciphertext ‖ tag` through the protocol's wrapper.
///
/// # Errors
/// [`Error::DecryptionFailed`] if the input is shorter than a tag or does not verify.
pub fn aead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, Error> {
    let body_len = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(Error::DecryptionFailed)?;
    let (ciphertext, tag_bytes) = sealed.split_at(body_len);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_bytes);
    let mut out = vec![0u8; body_len];
    crypto::aead_open_with_nonce(key, nonce, aad, ciphertext, &tag, &mut out)?;
    Ok(out)
}
