//! Typed errors.
//!
//! [`DecodeError`] covers malformed bytes (wire messages and stored state) and says
//! what was expected; [`Error`] covers everything else. "Could not decrypt" is a
//! single opaque variant, so a failure reveals nothing about which check failed.

use core::fmt;

mod certificate;
mod envelope;

pub use certificate::CertificateError;
pub use envelope::EnvelopeError;

/// What is wrong with a byte string handed to a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    Truncated {
        /// What was being read.
        field: &'static str,
    },
    /// Bytes were left over after a complete value.
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The format/version tag is not one this version of ratchetbox reads.
    UnknownFormat {
        /// The tag that was expected.
        expected: u8,
        /// The tag that was found.
        found: u8,
    },
    /// A stored-state blob has a version this library does not know.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A presence flag was neither 0 nor 1, or an absent field was not zero.
    InvalidFlag {
        /// Which field.
        field: &'static str,
    },
    /// An Ed25519 key (identity, server or signing key) is not the canonical
    /// encoding of a torsion-free curve point of large order.
    InvalidIdentityKey,
    /// An ML-KEM-768 encapsulation key fails the FIPS 203 modulus check.
    InvalidKemKey,
    /// An X25519 public key is not in canonical form (bit 255 set, or a
    /// u-coordinate not below `2^255 − 19`).
    NonCanonicalKey {
        /// Which field.
        field: &'static str,
    },
    /// A count or size exceeds the limit the format allows.
    LimitExceeded {
        /// What was counted.
        field: &'static str,
        /// The limit.
        max: u64,
        /// The value found.
        found: u64,
    },
    /// A value is out of range or inconsistent with the rest of the blob.
    InvalidValue {
        /// Which field.
        field: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { field } => write!(f, "input ended while reading {field}"),
            Self::TrailingBytes { extra } => write!(f, "{extra} unexpected trailing bytes"),
            Self::UnknownFormat { expected, found } => write!(
                f,
                "unknown format tag 0x{found:02x} (expected 0x{expected:02x})"
            ),
            Self::UnsupportedVersion { found } => {
                write!(f, "unsupported state version {found}")
            }
            Self::InvalidFlag { field } => write!(f, "invalid presence flag for {field}"),
            Self::InvalidIdentityKey => f.write_str("identity key is not a valid Ed25519 point"),
            Self::InvalidKemKey => f.write_str("ML-KEM encapsulation key is not valid"),
            Self::NonCanonicalKey { field } => {
                write!(f, "{field} is not a canonical X25519 public key")
            }
            Self::LimitExceeded { field, max, found } => {
                write!(f, "{field} is {found}, above the limit of {max}")
            }
            Self::InvalidValue { field } => write!(f, "invalid value for {field}"),
        }
    }
}

/// Everything that can go wrong in ratchetbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input bytes are malformed.
    Decode(DecodeError),
    /// An Ed25519 signature failed strict verification.
    InvalidSignature,
    /// A Diffie-Hellman output was all zeros: the peer's key has small order.
    NonContributoryDh,
    /// A prekey message names a signed prekey this device does not hold.
    UnknownSignedPreKey {
        /// The id named.
        id: u32,
    },
    /// A prekey message names a KEM prekey this device does not hold (a
    /// one-time one never issued or already used, or an expired last-resort one).
    UnknownKemPreKey {
        /// The id named.
        id: u32,
    },
    /// A prekey message names a one-time prekey this device does not hold
    /// (never issued, or already used).
    UnknownOneTimePreKey {
        /// The id named.
        id: u32,
    },
    /// The identity key differs from the one the caller expected.
    IdentityMismatch,
    /// The message could not be decrypted. Deliberately uninformative about why
    /// (tag, key or ciphertext). Headers are cleartext and are checked first, so a
    /// header naming a used or out-of-bounds position gets
    /// [`DuplicateMessage`](Self::DuplicateMessage) or
    /// [`TooManySkippedMessages`](Self::TooManySkippedMessages) instead; those
    /// reveal nothing a relay could not already read from the header.
    DecryptionFailed,
    /// The message was already decrypted (or its key was evicted).
    DuplicateMessage,
    /// Decrypting would derive more skipped message keys than allowed.
    TooManySkippedMessages {
        /// Keys that would have to be derived.
        requested: u64,
        /// The session's limit.
        max: u32,
    },
    /// A message counter reached 2^32 − 1: the sender must not send, and the
    /// receiver does not accept, that message number.
    CounterExhausted,
    /// A prekey message belongs to a different session than the one asked to
    /// decrypt it.
    WrongSession,
    /// This prekey message (named by its base key) already created a session:
    /// it is a repeat — the initiator had not yet seen a reply — or a replay.
    /// Decrypt it with the session whose [`base_key`](crate::Session::base_key)
    /// this is ([`Session::decrypt`](crate::Session::decrypt) takes the whole
    /// prekey message); if that session is gone, drop the message.
    RepeatedPreKeyMessage {
        /// The initiator's base key, which names the session it created.
        base_key: crate::PublicKey,
    },
    /// The caller's output buffer is too small.
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes provided.
        available: usize,
    },
    /// A message is longer than the AEAD can encrypt.
    MessageTooLarge,
    /// A configured limit is outside the range ratchetbox supports.
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The prekey store is full.
    TooManyPreKeys {
        /// The store's capacity.
        max: usize,
    },
    /// The prekey id space is exhausted.
    PreKeyIdsExhausted,
    /// A sealed envelope is malformed.
    Envelope(EnvelopeError),
    /// A sender certificate did not validate.
    Certificate(CertificateError),
    /// The sender certificate names a different identity key than the one the
    /// sender proved by decryption.
    SenderIdentityMismatch,
    /// The envelope comes from the recipient's own device.
    SelfSend,
    /// The envelope is not addressed to this device.
    WrongRecipient,
    /// A group message or distribution belongs to another group.
    WrongGroup,
    /// The group message's sender (or its chain) is not known to this member:
    /// never distributed, or removed.
    NotAMember,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "malformed input: {e}"),
            Self::InvalidSignature => f.write_str("signature verification failed"),
            Self::NonContributoryDh => {
                f.write_str("Diffie-Hellman output is all zeros (small-order public key)")
            }
            Self::UnknownSignedPreKey { id } => write!(f, "unknown signed prekey id {id}"),
            Self::UnknownKemPreKey { id } => {
                write!(f, "unknown or already used KEM prekey id {id}")
            }
            Self::UnknownOneTimePreKey { id } => {
                write!(f, "unknown or already used one-time prekey id {id}")
            }
            Self::IdentityMismatch => f.write_str("identity key differs from the expected one"),
            Self::DecryptionFailed => f.write_str("message could not be decrypted"),
            Self::DuplicateMessage => f.write_str("message was already received"),
            Self::TooManySkippedMessages { requested, max } => write!(
                f,
                "message would skip {requested} message keys, above the limit of {max}"
            ),
            Self::CounterExhausted => f.write_str("message counter out of range"),
            Self::WrongSession => f.write_str("prekey message belongs to a different session"),
            Self::RepeatedPreKeyMessage { .. } => {
                f.write_str("prekey message already created a session (a repeat or a replay)")
            }
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer too small: {needed} bytes needed, {available} available"
            ),
            Self::MessageTooLarge => f.write_str("message too large to encrypt"),
            Self::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Self::TooManyPreKeys { max } => write!(f, "prekey store full ({max} keys)"),
            Self::PreKeyIdsExhausted => f.write_str("prekey id space exhausted"),
            Self::Envelope(e) => write!(f, "invalid envelope: {e}"),
            Self::Certificate(e) => write!(f, "invalid sender certificate: {e}"),
            Self::SenderIdentityMismatch => {
                f.write_str("sender certificate does not match the sender's identity key")
            }
            Self::SelfSend => f.write_str("envelope was sent by this device"),
            Self::WrongRecipient => f.write_str("envelope is not addressed to this device"),
            Self::WrongGroup => f.write_str("message belongs to another group"),
            Self::NotAMember => f.write_str("sender is not a known member of the group"),
        }
    }
}

/// [`Error::BufferTooSmall`] unless `out` holds at least `needed` bytes.
pub(crate) fn check_buffer(needed: usize, out: &[u8]) -> Result<(), Error> {
    if out.len() < needed {
        return Err(Error::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    Ok(())
}

impl From<EnvelopeError> for Error {
    fn from(e: EnvelopeError) -> Self {
        Self::Envelope(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

#[cfg(feature = "std")]
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Envelope(e) => Some(e),
            Self::Certificate(e) => Some(e),
            _ => None,
        }
    }
}
