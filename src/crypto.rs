//! The one module that touches primitive crates.
//!
//! Every Diffie-Hellman, KDF, MAC, AEAD and signature operation in ratchetbox goes
//! through here, and every domain-separation label is a named constant in
//! [`labels`]. Protocol modules never import a primitive crate directly, so an
//! audit of "which primitive is used how" starts and ends in this file.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, XChaCha20Poly1305};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{DecodeError, Error};

pub(crate) mod kem;

/// Domain-separation labels and fixed protocol constants (SPEC.md §2).
pub mod labels {
    /// HKDF `info` for the hybrid (PQXDH) shared secret: the curve, the hash
    /// and the KEM, as the PQXDH specification asks.
    pub const PQXDH_INFO: &[u8] = b"ratchetbox v2 PQXDH X25519 SHA-256 ML-KEM-768";
    /// Type byte of the ML-KEM-768 key encoding that KEM prekey signatures
    /// cover (distinct from [`X25519_KEY_TYPE`], so no signed X25519 prekey
    /// encoding is ever a signed KEM prekey encoding).
    pub const ML_KEM_768_KEY_TYPE: u8 = 0x0A;
    /// Prefix of the hashed session associated data (SPEC.md §5.1).
    pub const SESSION_AD: &[u8] = b"ratchetbox v2 session";
    /// HKDF `info` for the Double Ratchet root KDF (KDF_RK).
    pub const ROOT_INFO: &[u8] = b"ratchetbox v2 root ratchet";
    /// The 32 `0xFF` bytes prepended to the handshake's input key material
    /// (X3DH §2.2, PQXDH §2.2).
    pub const X3DH_PREFIX: [u8; 32] = [0xFF; 32];
    /// HMAC input that derives a message key from a chain key (KDF_CK).
    pub const CHAIN_MESSAGE_KEY: u8 = 0x01;
    /// HMAC input that derives the next chain key from a chain key (KDF_CK).
    pub const CHAIN_NEXT_KEY: u8 = 0x02;
    /// Type byte of the X25519 public key encoding that signed prekey signatures cover.
    pub const X25519_KEY_TYPE: u8 = 0x05;
    /// Signature prefix of a server certificate.
    pub const SERVER_CERTIFICATE: &[u8] = b"ratchetbox v2 server certificate";
    /// Signature prefix of a sender certificate.
    pub const SENDER_CERTIFICATE: &[u8] = b"ratchetbox v2 sender certificate";
    /// HKDF `info` of a single-recipient envelope's ephemeral layer.
    pub const SEALED_EPHEMERAL_INFO: &[u8] = b"ratchetbox v2 sealed ephemeral";
    /// HKDF `info` of a single-recipient envelope's static layer.
    pub const SEALED_STATIC_INFO: &[u8] = b"ratchetbox v2 sealed static";
    /// HKDF `info` of a multi-recipient envelope's content and sender keys.
    pub const SEALED_MULTI_CONTENT_INFO: &[u8] = b"ratchetbox v2 sealed multi content";
    /// HKDF `info` of a multi-recipient envelope's per-recipient wrapping key.
    pub const SEALED_MULTI_WRAP_INFO: &[u8] = b"ratchetbox v2 sealed multi wrap";
    /// HKDF `info` of a multi-recipient envelope's per-recipient sender authentication key.
    pub const SEALED_MULTI_AUTH_INFO: &[u8] = b"ratchetbox v2 sealed multi auth";
    /// Suffix of the group chain's HMAC inputs, separating it from the 1:1 chain.
    pub const GROUP_CHAIN: &[u8] = b"ratchetbox v2 group chain";
    /// HKDF `info` of a delivery access key.
    pub const DELIVERY_KEY_INFO: &[u8] = b"ratchetbox v2 delivery access key";
    /// Prefix of the first hash of a safety-number fingerprint.
    pub const SAFETY_NUMBER: &[u8] = b"ratchetbox v2 safety number";
    /// HKDF `info` of the provisioning (device linking) key.
    pub const PROVISIONING_INFO: &[u8] = b"ratchetbox v2 provisioning";
    /// Prefix of the hash behind a provisioning confirmation code.
    pub const PROVISIONING_CODE: &[u8] = b"ratchetbox v2 provisioning code";
    /// HKDF `info` of the key that seals state at rest.
    pub const STATE_AT_REST_INFO: &[u8] = b"ratchetbox v2 state at rest";
}

/// Length of every symmetric key, DH output and public key in the protocol.
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// An X25519 public key (a Montgomery u-coordinate, 32 bytes little-endian),
/// always in canonical form: bit 255 clear and `u < 2^255 − 19`.
///
/// X25519 ignores bit 255 and reduces `u` modulo `p`, so without this rule
/// several byte strings would name the same key and a byte-wise comparison
/// (a replay check, a session lookup) could be fooled by an altered copy.
/// [`from_bytes`](Self::from_bytes) is the one place every received key is
/// checked. Public keys are not secret, so equality is ordinary byte equality.
///
/// An app meets them as prekeys (in bundles and the prekey store) and as the
/// base key that names a session.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, PreKeyStore, PublicKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let (id, key): (u32, PublicKey) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
/// assert_eq!(PublicKey::from_bytes(*key.as_bytes())?, key); // what the server stores
/// assert_eq!(store.find_one_time_prekey(id).map(|k| *k.public_key()), Some(key));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Parses a received X25519 public key.
    ///
    /// ```
    /// use ratchetbox::PublicKey;
    /// let key = PublicKey::from_bytes([9; 32])?;
    /// assert_eq!(key.as_bytes(), &[9; 32]);
    ///
    /// // The same u-coordinate with bit 255 set is refused.
    /// let mut altered = [9u8; 32];
    /// altered[31] |= 0x80;
    /// assert!(PublicKey::from_bytes(altered).is_err());
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::NonCanonicalKey`] if bit 255 is set or the value is not
    /// below `2^255 − 19`. (Keys of small order are canonical; they are refused
    /// when a Diffie-Hellman with them yields all zeros.)
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<Self, DecodeError> {
        Self::parse(bytes, "X25519 public key")
    }

    /// [`from_bytes`](Self::from_bytes), naming the field in the error.
    pub(crate) fn parse(bytes: [u8; KEY_LEN], field: &'static str) -> Result<Self, DecodeError> {
        if is_canonical_x25519(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(DecodeError::NonCanonicalKey { field })
        }
    }

    /// A key this library computed itself (X25519 outputs are always canonical).
    const fn computed(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// 32 bytes used only as a lookup tag (the group layer files skipped keys
    /// under a chain's Ed25519 signing key), never in a Diffie-Hellman.
    pub(crate) const fn lookup_tag(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32-byte encoding (little-endian u-coordinate).
    ///
    /// ```
    /// # use ratchetbox::PublicKey;
    /// let key = PublicKey::from_bytes([9; 32])?;
    /// let bytes: &[u8; 32] = key.as_bytes();
    /// assert_eq!(PublicKey::from_bytes(*bytes)?, key);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// `Encode(PK)` from the X3DH spec: the key type byte `0x05` followed by the key.
    pub(crate) fn signed_encoding(&self) -> [u8; KEY_LEN + 1] {
        let mut out = [0u8; KEY_LEN + 1];
        out[0] = labels::X25519_KEY_TYPE;
        out[1..].copy_from_slice(&self.0);
        out
    }
}

/// Whether 32 bytes are the canonical encoding of an X25519 u-coordinate:
/// bit 255 clear and `u < p = 2^255 − 19` (RFC 7748 §5 lets a receiver mask
/// bit 255 and reduce; ratchetbox refuses both instead, so each key has
/// exactly one encoding). Values from `p` to `2^255 − 1` are the 19 strings
/// `ed..ff ‖ ff×30 ‖ 7f` (little-endian).
fn is_canonical_x25519(bytes: &[u8; KEY_LEN]) -> bool {
    if bytes[31] & 0x80 != 0 {
        return false;
    }
    let at_least_p =
        bytes[31] == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed;
    !at_least_p
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// An X25519 secret scalar with its public key cached, so that no hot path ever
/// recomputes the public key.
pub(crate) struct DhKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl DhKeyPair {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_secret_bytes(*bytes)
    }

    /// Rebuilds a key pair from its stored scalar; the scalar is clamped first so
    /// the stored form is canonical.
    pub(crate) fn from_secret_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        clamp(&mut bytes);
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey::computed(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// An independent copy of the key pair, for a store handing out owned keys
    /// (both copies zeroize on drop). Deliberately not `Clone`.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            secret: self.secret.clone(),
            public: self.public,
        }
    }

    /// Rebuilds a key pair from a stored scalar, which must already be clamped:
    /// stored forms are canonical, so decoding and re-encoding is the identity.
    pub(crate) fn from_stored_secret(bytes: [u8; KEY_LEN]) -> Option<Self> {
        let mut clamped = bytes;
        clamp(&mut clamped);
        let canonical = clamped == bytes;
        clamped.zeroize();
        canonical.then(|| Self::from_secret_bytes(bytes))
    }

    pub(crate) fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        self.secret.as_bytes()
    }

    /// X25519 with this secret. An all-zero result means the peer sent a
    /// small-order point; that is rejected, never used as key material.
    pub(crate) fn dh(&self, their: &PublicKey) -> Result<DhOutput, Error> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(their.0));
        if !shared.was_contributory() {
            return Err(Error::NonContributoryDh);
        }
        Ok(DhOutput(Zeroizing::new(shared.to_bytes())))
    }
}

impl core::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn clamp(bytes: &mut [u8; KEY_LEN]) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
}

/// The output of one X25519 operation; zeroized on drop.
pub(crate) struct DhOutput(Zeroizing<[u8; KEY_LEN]>);

impl DhOutput {
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The X25519 secret of an Ed25519 identity: `clamp(SHA-512(seed)[0..32])`,
/// the scalar whose base-point multiple is the identity's Montgomery form.
pub(crate) fn identity_dh_key_pair(signing: &SigningKey) -> DhKeyPair {
    let mut expanded = Zeroizing::new([0u8; 64]);
    expanded.copy_from_slice(&Sha512::digest(signing.as_bytes()));
    let mut scalar = [0u8; KEY_LEN];
    scalar.copy_from_slice(&expanded[..KEY_LEN]);
    DhKeyPair::from_secret_bytes(scalar)
}

/// Montgomery form of an Ed25519 public key (libsodium's `ed25519_pk_to_curve25519`).
pub(crate) fn identity_dh_public(verifying: &VerifyingKey) -> PublicKey {
    PublicKey::computed(verifying.to_montgomery().to_bytes())
}

/// Whether an Ed25519 public key is torsion-free (`[ℓ]A` is the identity), so
/// that no small-order component `T` rides along (`A + T` would verify
/// differently under cofactored and cofactorless equations and map to a
/// different Montgomery point than `A`).
pub(crate) fn is_torsion_free(verifying: &VerifyingKey) -> bool {
    verifying.to_edwards().is_torsion_free()
}

/// Ed25519 signature over `message`.
pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(message).to_bytes()
}

/// Strict Ed25519 verification: rejects non-canonical `S`, small-order `R`
/// and weak public keys, so signatures are not malleable.
pub(crate) fn verify_strict(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), Error> {
    let signature = Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| Error::InvalidSignature)
}

/// HKDF-SHA256 with the input key material given in parts (concatenated),
/// filling `out`.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[&[u8]], info: &[u8], out: &mut [u8]) {
    let mut extract = hkdf::HkdfExtract::<Sha256>::new(Some(salt));
    for part in ikm {
        extract.input_ikm(part);
    }
    let (_, hkdf): (_, Hkdf<Sha256>) = extract.finalize();
    // Only fails for outputs longer than 255 * 32 bytes; every caller asks for 32 or 64.
    let _ = hkdf.expand(info, out);
}

/// HKDF-SHA256 to 64 bytes, split into two 32-byte keys (first half, second half).
pub(crate) fn hkdf_sha256_pair(
    salt: &[u8],
    ikm: &[&[u8]],
    info: &[u8],
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    let mut okm = Zeroizing::new([0u8; 2 * KEY_LEN]);
    hkdf_sha256(salt, ikm, info, okm.as_mut());
    let mut first = Zeroizing::new([0u8; KEY_LEN]);
    let mut second = Zeroizing::new([0u8; KEY_LEN]);
    first.copy_from_slice(&okm[..KEY_LEN]);
    second.copy_from_slice(&okm[KEY_LEN..]);
    (first, second)
}

type HmacSha256 = Hmac<Sha256>;

/// KDF_CK from the Double Ratchet spec: `(HMAC(ck, 0x01), HMAC(ck, 0x02))`,
/// returned as (message key, next chain key). The keyed HMAC state is set up once
/// and cloned, saving two SHA-256 compressions per step.
pub(crate) fn kdf_ck(chain_key: &[u8; KEY_LEN]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let keyed = hmac_sha256_keyed(chain_key);
    let mut for_message = keyed.clone();
    for_message.update(&[labels::CHAIN_MESSAGE_KEY]);
    let mut for_next = keyed;
    for_next.update(&[labels::CHAIN_NEXT_KEY]);
    (
        for_message.finalize().into_bytes().into(),
        for_next.finalize().into_bytes().into(),
    )
}

/// The group (sender-key) chain step: `(HMAC(ck, 0x01 ‖ GROUP_CHAIN),
/// HMAC(ck, 0x02 ‖ GROUP_CHAIN))` as (message key, next chain key).
pub(crate) fn kdf_ck_group(chain_key: &[u8; KEY_LEN]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let keyed = hmac_sha256_keyed(chain_key);
    let mut for_message = keyed.clone();
    for_message.update(&[labels::CHAIN_MESSAGE_KEY]);
    for_message.update(labels::GROUP_CHAIN);
    let mut for_next = keyed;
    for_next.update(&[labels::CHAIN_NEXT_KEY]);
    for_next.update(labels::GROUP_CHAIN);
    (
        for_message.finalize().into_bytes().into(),
        for_next.finalize().into_bytes().into(),
    )
}

/// Verifies many Ed25519 signatures at once (ed25519-dalek's batch
/// verification). All three slices have the same length. Batch verification
/// is cofactorless but randomized, so a signature that strict verification
/// rejects only because of a small-torsion component of `R` can pass it with
/// probability up to 1/2; only the holder of the signing key can make one.
pub(crate) fn verify_batch(
    messages: &[&[u8]],
    signatures: &[[u8; SIGNATURE_LEN]],
    keys: &[VerifyingKey],
) -> bool {
    let signatures: alloc::vec::Vec<Signature> =
        signatures.iter().map(Signature::from_bytes).collect();
    ed25519_dalek::verify_batch(messages, &signatures, keys).is_ok()
}

/// HMAC-SHA256 keyed with a 32-byte key. HMAC zero-pads keys shorter than the
/// 64-byte block, so passing the padded block is the same MAC and cannot fail.
fn hmac_sha256_keyed(key: &[u8; KEY_LEN]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..KEY_LEN].copy_from_slice(key);
    <HmacSha256 as hmac::KeyInit>::new((&*block).into())
}

/// Length of a ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;
/// Length of an XChaCha20-Poly1305 nonce (state at rest).
pub(crate) const XNONCE_LEN: usize = 24;

/// The nonce of AEAD calls under keys derived for exactly one encryption
/// (sealed-envelope layers, a provisioning payload): a key that encrypts once
/// cannot repeat a nonce. Message keys do not qualify — a stale copy of a
/// session or group state re-derives them — so messages carry a random nonce.
const ZERO_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

/// A fresh random message nonce: with it, two senders holding copies of one
/// state (a restored backup, a blob decoded twice) never encrypt under the same
/// (key, nonce), even when they derive the same message key.
pub(crate) fn random_nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// ChaCha20-Poly1305 with the all-zero nonce, for a key that encrypts exactly
/// once: encrypts `plaintext` into `ciphertext` (same length), returns the tag.
pub(crate) fn aead_seal(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    aead_seal_with_nonce(key, &ZERO_NONCE, aad, plaintext, ciphertext)
}

/// Opens what [`aead_seal`] produced. Writes `plaintext` only when the tag verifies.
pub(crate) fn aead_open(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    plaintext: &mut [u8],
) -> Result<(), Error> {
    aead_open_with_nonce(key, &ZERO_NONCE, aad, ciphertext, tag, plaintext)
}

/// ChaCha20-Poly1305 with an explicit nonce (messages, known-answer tests).
pub(crate) fn aead_seal_with_nonce(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let buffer = InOutBuf::new(plaintext, ciphertext).map_err(|_| Error::MessageTooLarge)?;
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, buffer)
        .map_err(|_| Error::MessageTooLarge)?;
    Ok(tag.into())
}

/// Opens what [`aead_seal_with_nonce`] produced.
pub(crate) fn aead_open_with_nonce(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    plaintext: &mut [u8],
) -> Result<(), Error> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let buffer = InOutBuf::new(ciphertext, plaintext).map_err(|_| Error::DecryptionFailed)?;
    cipher
        .decrypt_inout_detached(nonce.into(), aad, buffer, tag.into())
        .map_err(|_| Error::DecryptionFailed)
}

/// XChaCha20-Poly1305 (24-byte nonce) for state at rest: one long-lived key
/// seals every blob, so nonces are random, and 192 bits make a collision
/// negligible however many blobs are written.
pub(crate) fn xaead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let buffer = InOutBuf::new(plaintext, ciphertext).map_err(|_| Error::MessageTooLarge)?;
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, buffer)
        .map_err(|_| Error::MessageTooLarge)?;
    Ok(tag.into())
}

/// Opens what [`xaead_seal`] produced.
pub(crate) fn xaead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    plaintext: &mut [u8],
) -> Result<(), Error> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let buffer = InOutBuf::new(ciphertext, plaintext).map_err(|_| Error::DecryptionFailed)?;
    cipher
        .decrypt_inout_detached(nonce.into(), aad, buffer, tag.into())
        .map_err(|_| Error::DecryptionFailed)
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_sha256_keyed(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// SHA-512 over the concatenation of `parts`.
pub(crate) fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// Constant-time equality of two byte strings of equal length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A 32-byte symmetric secret that zeroizes on drop and never prints itself.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey32([u8; KEY_LEN]);

impl SecretKey32 {
    pub(crate) const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for SecretKey32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretKey32([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_dh_forms_agree() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let pair = identity_dh_key_pair(&signing);
        assert_eq!(pair.public(), &identity_dh_public(&signing.verifying_key()));
    }

    #[test]
    fn small_order_point_is_rejected() {
        let pair = DhKeyPair::from_secret_bytes([9u8; 32]);
        assert!(matches!(
            pair.dh(&PublicKey::computed([0u8; 32])),
            Err(Error::NonContributoryDh)
        ));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(pair.dh(&PublicKey::computed(one)).is_err());
    }

    #[test]
    fn non_canonical_x25519_keys_are_refused() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        // p itself and every value up to 2^255 − 1 alias 0..19.
        for low in 0xed..=0xffu8 {
            p[0] = low;
            assert!(PublicKey::from_bytes(p).is_err(), "{low:02x}");
        }
        p[0] = 0xec; // p − 1 is canonical
        assert!(PublicKey::from_bytes(p).is_ok());
        let mut high = [0u8; 32];
        high[0] = 9;
        assert!(PublicKey::from_bytes(high).is_ok());
        high[31] = 0x80;
        assert_eq!(
            PublicKey::from_bytes(high),
            Err(DecodeError::NonCanonicalKey {
                field: "X25519 public key"
            })
        );
    }

    #[test]
    fn random_nonces_differ_and_xaead_round_trips() {
        let mut rng = crate::test_rng(3);
        assert_ne!(random_nonce(&mut rng), random_nonce(&mut rng));
        let key = [4u8; 32];
        let nonce = [5u8; XNONCE_LEN];
        let mut ct = [0u8; 3];
        let tag = xaead_seal(&key, &nonce, b"a", b"abc", &mut ct).unwrap_or([0; 16]);
        let mut out = [0u8; 3];
        assert!(xaead_open(&key, &nonce, b"a", &ct, &tag, &mut out).is_ok());
        assert_eq!(&out, b"abc");
        assert!(xaead_open(&key, &nonce, b"b", &ct, &tag, &mut out).is_err());
    }

    #[test]
    fn kdf_ck_outputs_differ_and_match_plain_hmac() {
        let ck = [3u8; 32];
        let (mk, next) = kdf_ck(&ck);
        assert_ne!(mk, next);
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&ck).expect("any key length");
        mac.update(&[2]);
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(next, expected);
    }

    #[test]
    fn aead_rejects_flipped_tag_and_leaves_output() {
        let key = [1u8; 32];
        let mut ct = [0u8; 5];
        let tag = aead_seal(&key, b"ad", b"hello", &mut ct).unwrap_or([0; 16]);
        let mut bad = tag;
        bad[0] ^= 1;
        let mut out = [0xAAu8; 5];
        assert!(aead_open(&key, b"ad", &ct, &bad, &mut out).is_err());
        assert_eq!(out, [0xAA; 5]);
        assert!(aead_open(&key, b"ad", &ct, &tag, &mut out).is_ok());
        assert_eq!(&out, b"hello");
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = SecretKey32::from_bytes([0x42; 32]);
        assert!(!alloc::format!("{s:?}").contains("42"));
    }
}
