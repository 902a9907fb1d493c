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

/// What is wrong with a byte string handed to a decoder. It names the field, for
/// logs; an app treats every variant the same way: bytes that do not parse never
/// will, so drop the message (or, for stored state, treat the blob as lost).
/// Calls that can also fail in other ways wrap it in [`Error::Decode`].
///
/// ```
/// use ratchetbox::{DecodeError, Error, Message, Session};
/// let error = Message::parse(&[0x04, 1, 2]).unwrap_err();
/// assert_eq!(error, DecodeError::Truncated { field: "ratchet message" });
/// assert_eq!(error.to_string(), "input ended while reading ratchet message");
///
/// let stored = Session::decode(b"not a session");
/// assert!(matches!(stored, Err(Error::Decode(DecodeError::UnknownFormat { .. }))));
/// ```
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
///
/// Decrypting and accepting are transactional (on an error the session and the
/// prekey store are unchanged), so an app can log the error and go on with the
/// next message. What it should do:
/// - Ignore: [`DuplicateMessage`](Self::DuplicateMessage), a redelivery.
/// - Drop the message: [`Decode`](Self::Decode),
///   [`DecryptionFailed`](Self::DecryptionFailed),
///   [`TooManySkippedMessages`](Self::TooManySkippedMessages),
///   [`CounterExhausted`](Self::CounterExhausted),
///   [`NonContributoryDh`](Self::NonContributoryDh), [`Envelope`](Self::Envelope),
///   [`Certificate`](Self::Certificate),
///   [`SenderIdentityMismatch`](Self::SenderIdentityMismatch),
///   [`WrongRecipient`](Self::WrongRecipient), [`SelfSend`](Self::SelfSend). If
///   every message from one peer fails to decrypt, the sessions have lost sync:
///   start a new one with a fresh bundle.
/// - Hand it elsewhere: [`WrongSession`](Self::WrongSession) to
///   [`Responder::accept`](crate::Responder::accept);
///   [`RepeatedPreKeyMessage`](Self::RepeatedPreKeyMessage) to the session with
///   that base key; [`WrongGroup`](Self::WrongGroup) to that group's session.
/// - Keep it and retry later: [`NotAMember`](Self::NotAMember), until the
///   sender's distribution message has been processed (drop it for a removed member).
/// - The sender used a stale bundle: [`UnknownSignedPreKey`](Self::UnknownSignedPreKey),
///   [`UnknownKemPreKey`](Self::UnknownKemPreKey) and
///   [`UnknownOneTimePreKey`](Self::UnknownOneTimePreKey). The message is lost;
///   the sender must fetch a new bundle.
/// - Fetch the bundle again: [`InvalidSignature`](Self::InvalidSignature) or
///   [`NonContributoryDh`](Self::NonContributoryDh) from a bundle (an
///   [`InvalidSignature`](Self::InvalidSignature) on a group message: drop it).
/// - Show a red lock and ask the user to verify the contact's safety number:
///   [`IdentityMismatch`](Self::IdentityMismatch), the identity key changed.
/// - Fix the call: [`BufferTooSmall`](Self::BufferTooSmall) (retry with
///   `needed` bytes), [`MessageTooLarge`](Self::MessageTooLarge) (send it as an
///   attachment), [`InvalidConfig`](Self::InvalidConfig).
/// - Prekey upkeep: [`TooManyPreKeys`](Self::TooManyPreKeys) (top up only to the
///   limit), [`PreKeyIdsExhausted`](Self::PreKeyIdsExhausted) (register the device
///   again with a fresh [`PreKeyStore`](crate::PreKeyStore)).
///
/// ```
/// # use ratchetbox::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// # };
/// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
/// # let bundle = bundle.verify()?;
/// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
/// # let first_message = PreKeyMessage::parse(&first)?;
/// # let responder = Responder::new(&bob, &mut bob_prekeys);
/// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
/// // A corrupted message fails and leaves the session as it was.
/// let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
/// let mut corrupted = reply.clone();
/// corrupted[60] ^= 1;
/// assert_eq!(alice_session.decrypt(&corrupted), Err(Error::DecryptionFailed));
/// assert_eq!(alice_session.decrypt(&reply)?, b"hi Alice");
/// assert_eq!(alice_session.decrypt(&reply), Err(Error::DuplicateMessage));
/// assert!(matches!(alice_session.decrypt(b"junk"), Err(Error::Decode(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
