//! Root, chain and message keys: one type per key role, each zeroized on drop.

use crate::crypto::{self, DhOutput, KEY_LEN, NONCE_LEN, SecretKey32, TAG_LEN, labels};
use crate::error::Error;

/// The root key RK. Each DH ratchet step replaces it.
pub(crate) struct RootKey(SecretKey32);

impl RootKey {
    pub(crate) fn new(key: SecretKey32) -> Self {
        Self(key)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    /// An independent copy, for a store handing out owned sessions.
    pub(crate) fn duplicate(&self) -> Self {
        Self(SecretKey32::from_bytes(*self.0.as_bytes()))
    }

    /// KDF_RK: `HKDF(salt = RK, IKM = dh_out, info = ROOT_INFO)` → 64 bytes, split
    /// into the next root key and a new chain key.
    pub(crate) fn step(&self, dh_out: &DhOutput) -> (RootKey, ChainKey) {
        let (root, chain) =
            crypto::hkdf_sha256_pair(self.0.as_bytes(), &[dh_out.as_bytes()], labels::ROOT_INFO);
        (
            RootKey(SecretKey32::from_bytes(*root)),
            ChainKey(SecretKey32::from_bytes(*chain)),
        )
    }
}

/// A sending or receiving chain key CK.
pub(crate) struct ChainKey(SecretKey32);

impl ChainKey {
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(SecretKey32::from_bytes(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    /// An independent copy, for a store handing out owned sessions.
    pub(crate) fn duplicate(&self) -> Self {
        Self(SecretKey32::from_bytes(*self.0.as_bytes()))
    }

    /// KDF_CK: the message key for this position and the chain key for the next.
    pub(crate) fn step(&self) -> (MessageKey, ChainKey) {
        let (mk, next) = crypto::kdf_ck(self.0.as_bytes());
        (
            MessageKey(SecretKey32::from_bytes(mk)),
            ChainKey(SecretKey32::from_bytes(next)),
        )
    }
}

/// A message key MK: encrypts or decrypts exactly one message. Both operations
/// take `self`, so a key cannot be used twice. The nonce travels in the header
/// and is drawn at random by the sender: a stale copy of the session derives
/// the same key again, but never with the same nonce.
pub(crate) struct MessageKey(SecretKey32);

impl MessageKey {
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(SecretKey32::from_bytes(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    pub(crate) fn seal(
        self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        crypto::aead_seal_with_nonce(self.0.as_bytes(), nonce, aad, plaintext, ciphertext)
    }

    pub(crate) fn open(
        self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        plaintext: &mut [u8],
    ) -> Result<(), Error> {
        crypto::aead_open_with_nonce(self.0.as_bytes(), nonce, aad, ciphertext, tag, plaintext)
    }
}
