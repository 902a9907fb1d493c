//! The status code every entry point returns, mirroring the core's typed errors.

use core::ffi::c_char;

use ratchetbox::at_rest::StorageError;
use ratchetbox::sealed::{CertificateError, EnvelopeError};
use ratchetbox::{DecodeError, Error};

/// What an entry point did. `RB_OK` is 0; every other value is an error, and
/// an error leaves every handle exactly as it was.
///
/// The values are stable: new ones are only ever appended.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbStatus {
    /// Success.
    RB_OK = 0,
    /// A required pointer argument was NULL (or a NULL buffer with a non-zero length).
    RB_NULL_ARGUMENT = 1,
    /// An output buffer is too small; `*out_len` holds the length needed and
    /// nothing else changed. Retry with a buffer of that size.
    RB_BUFFER_TOO_SMALL = 2,
    /// An argument is out of range (an empty or over-long account id, an
    /// unknown kind value).
    RB_INVALID_ARGUMENT = 3,
    /// Malformed bytes: a bundle, message, key, certificate or distribution.
    RB_DECODE_ERROR = 4,
    /// An Ed25519 signature failed strict verification.
    RB_INVALID_SIGNATURE = 5,
    /// A Diffie-Hellman output was all zeros (a small-order key).
    RB_NON_CONTRIBUTORY_DH = 6,
    /// A prekey message names a signed, KEM or one-time prekey this device
    /// does not hold (never issued, or already used).
    RB_UNKNOWN_PREKEY = 7,
    /// An identity key differs from the expected one.
    RB_IDENTITY_MISMATCH = 8,
    /// The message could not be decrypted (deliberately uninformative).
    RB_DECRYPTION_FAILED = 9,
    /// The message was already decrypted.
    RB_DUPLICATE_MESSAGE = 10,
    /// Decrypting would skip more message keys than the session allows.
    RB_TOO_MANY_SKIPPED_MESSAGES = 11,
    /// A message counter is exhausted: start a new session (or rotate).
    RB_COUNTER_EXHAUSTED = 12,
    /// A prekey message belongs to another session.
    RB_WRONG_SESSION = 13,
    /// This prekey message already created a session (a repeat or a replay).
    RB_REPEATED_PREKEY_MESSAGE = 14,
    /// A message is too large.
    RB_MESSAGE_TOO_LARGE = 15,
    /// A configured limit is out of range.
    RB_INVALID_CONFIG = 16,
    /// The prekey store is full.
    RB_TOO_MANY_PREKEYS = 17,
    /// The prekey id space is exhausted.
    RB_PREKEY_IDS_EXHAUSTED = 18,
    /// Envelope: the format tag is not a known version.
    RB_ENVELOPE_UNKNOWN_VERSION = 19,
    /// Envelope: the version is known but the policy refuses it.
    RB_ENVELOPE_VERSION_NOT_ALLOWED = 20,
    /// Envelope: it ends early.
    RB_ENVELOPE_TRUNCATED = 21,
    /// Envelope: bytes follow its end.
    RB_ENVELOPE_TRAILING_BYTES = 22,
    /// Envelope: a field is malformed.
    RB_ENVELOPE_MALFORMED = 23,
    /// Envelope: larger than the policy allows.
    RB_ENVELOPE_OVERSIZE = 24,
    /// Envelope: no recipients.
    RB_ENVELOPE_NO_RECIPIENTS = 25,
    /// Envelope: more recipients than the policy allows.
    RB_ENVELOPE_TOO_MANY_RECIPIENTS = 26,
    /// Envelope: a device is listed twice.
    RB_ENVELOPE_DUPLICATE_RECIPIENT = 27,
    /// Envelope: recipients are not in increasing order.
    RB_ENVELOPE_UNSORTED_RECIPIENTS = 28,
    /// Envelope: the content length is not a padded length.
    RB_ENVELOPE_INVALID_PADDING = 29,
    /// Envelope: the policy requires a delivery token and there is none.
    RB_ENVELOPE_MISSING_TOKEN = 30,
    /// Envelope: the delivery token does not match.
    RB_ENVELOPE_WRONG_TOKEN = 31,
    /// Envelope: a recipient account has no registered access key.
    RB_ENVELOPE_UNKNOWN_RECIPIENT = 32,
    /// Certificate: malformed.
    RB_CERTIFICATE_MALFORMED = 33,
    /// Certificate: its server certificate names a root that is not pinned.
    RB_CERTIFICATE_WRONG_ROOT = 34,
    /// Certificate: a signature in the chain does not verify.
    RB_CERTIFICATE_BAD_SIGNATURE = 35,
    /// Certificate: expired.
    RB_CERTIFICATE_EXPIRED = 36,
    /// Certificate: issued by a revoked server key.
    RB_CERTIFICATE_REVOKED = 37,
    /// The sender certificate names another identity than the sender proved.
    RB_SENDER_IDENTITY_MISMATCH = 38,
    /// The envelope was sent by this very device.
    RB_SELF_SEND = 39,
    /// The envelope is not addressed to this device.
    RB_WRONG_RECIPIENT = 40,
    /// A group message or distribution of another group.
    RB_WRONG_GROUP = 41,
    /// The group sender (or its chain) is unknown: never distributed, or removed.
    RB_NOT_A_MEMBER = 42,
    /// Stored state: shorter than a sealed blob can be.
    RB_STORAGE_TRUNCATED = 43,
    /// Stored state: not a sealed blob.
    RB_STORAGE_NOT_SEALED = 44,
    /// Stored state: a sealed-state version this library does not read.
    RB_STORAGE_UNSUPPORTED_VERSION = 45,
    /// Stored state: the blob holds another kind of object.
    RB_STORAGE_WRONG_KIND = 46,
    /// Stored state: the wrong storage key or slot, or the blob was altered.
    RB_STORAGE_WRONG_KEY_OR_CORRUPTED = 47,
    /// Stored state: it authenticated but its content does not decode.
    RB_STORAGE_DECODE = 48,
    /// An error this version of the binding does not name yet.
    RB_UNKNOWN_ERROR = 49,
    /// A panic was caught at the boundary (a bug, or the OS gave no
    /// randomness). Handles passed to the call must be freed, not used.
    RB_PANIC = 50,
}

impl From<DecodeError> for RbStatus {
    fn from(_: DecodeError) -> Self {
        Self::RB_DECODE_ERROR
    }
}

impl From<EnvelopeError> for RbStatus {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::UnknownVersion { .. } => Self::RB_ENVELOPE_UNKNOWN_VERSION,
            EnvelopeError::VersionNotAllowed { .. } => Self::RB_ENVELOPE_VERSION_NOT_ALLOWED,
            EnvelopeError::Truncated { .. } => Self::RB_ENVELOPE_TRUNCATED,
            EnvelopeError::TrailingBytes { .. } => Self::RB_ENVELOPE_TRAILING_BYTES,
            EnvelopeError::Malformed(_) => Self::RB_ENVELOPE_MALFORMED,
            EnvelopeError::Oversize { .. } => Self::RB_ENVELOPE_OVERSIZE,
            EnvelopeError::NoRecipients => Self::RB_ENVELOPE_NO_RECIPIENTS,
            EnvelopeError::TooManyRecipients { .. } => Self::RB_ENVELOPE_TOO_MANY_RECIPIENTS,
            EnvelopeError::DuplicateRecipient => Self::RB_ENVELOPE_DUPLICATE_RECIPIENT,
            EnvelopeError::UnsortedRecipients => Self::RB_ENVELOPE_UNSORTED_RECIPIENTS,
            EnvelopeError::InvalidPadding => Self::RB_ENVELOPE_INVALID_PADDING,
            EnvelopeError::MissingToken => Self::RB_ENVELOPE_MISSING_TOKEN,
            EnvelopeError::WrongToken => Self::RB_ENVELOPE_WRONG_TOKEN,
            EnvelopeError::UnknownRecipient => Self::RB_ENVELOPE_UNKNOWN_RECIPIENT,
            EnvelopeError::BufferTooSmall { .. } => Self::RB_BUFFER_TOO_SMALL,
            _ => Self::RB_UNKNOWN_ERROR,
        }
    }
}

impl From<CertificateError> for RbStatus {
    fn from(e: CertificateError) -> Self {
        match e {
            CertificateError::Malformed(_) => Self::RB_CERTIFICATE_MALFORMED,
            CertificateError::WrongRoot { .. } => Self::RB_CERTIFICATE_WRONG_ROOT,
            CertificateError::BadSignature => Self::RB_CERTIFICATE_BAD_SIGNATURE,
            CertificateError::Expired { .. } => Self::RB_CERTIFICATE_EXPIRED,
            CertificateError::Revoked { .. } => Self::RB_CERTIFICATE_REVOKED,
            _ => Self::RB_UNKNOWN_ERROR,
        }
    }
}

impl From<StorageError> for RbStatus {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Truncated => Self::RB_STORAGE_TRUNCATED,
            StorageError::NotSealed { .. } => Self::RB_STORAGE_NOT_SEALED,
            StorageError::UnsupportedVersion { .. } => Self::RB_STORAGE_UNSUPPORTED_VERSION,
            StorageError::WrongKind { .. } => Self::RB_STORAGE_WRONG_KIND,
            StorageError::WrongKeyOrCorrupted => Self::RB_STORAGE_WRONG_KEY_OR_CORRUPTED,
            StorageError::Decode(_) => Self::RB_STORAGE_DECODE,
            _ => Self::RB_UNKNOWN_ERROR,
        }
    }
}

impl From<Error> for RbStatus {
    fn from(e: Error) -> Self {
        match e {
            Error::Decode(e) => e.into(),
            Error::InvalidSignature => Self::RB_INVALID_SIGNATURE,
            Error::NonContributoryDh => Self::RB_NON_CONTRIBUTORY_DH,
            Error::UnknownSignedPreKey { .. }
            | Error::UnknownKemPreKey { .. }
            | Error::UnknownOneTimePreKey { .. } => Self::RB_UNKNOWN_PREKEY,
            Error::IdentityMismatch => Self::RB_IDENTITY_MISMATCH,
            Error::DecryptionFailed => Self::RB_DECRYPTION_FAILED,
            Error::DuplicateMessage => Self::RB_DUPLICATE_MESSAGE,
            Error::TooManySkippedMessages { .. } => Self::RB_TOO_MANY_SKIPPED_MESSAGES,
            Error::CounterExhausted => Self::RB_COUNTER_EXHAUSTED,
            Error::WrongSession => Self::RB_WRONG_SESSION,
            Error::RepeatedPreKeyMessage { .. } => Self::RB_REPEATED_PREKEY_MESSAGE,
            Error::BufferTooSmall { .. } => Self::RB_BUFFER_TOO_SMALL,
            Error::MessageTooLarge => Self::RB_MESSAGE_TOO_LARGE,
            Error::InvalidConfig { .. } => Self::RB_INVALID_CONFIG,
            Error::TooManyPreKeys { .. } => Self::RB_TOO_MANY_PREKEYS,
            Error::PreKeyIdsExhausted => Self::RB_PREKEY_IDS_EXHAUSTED,
            Error::Envelope(e) => e.into(),
            Error::Certificate(e) => e.into(),
            Error::SenderIdentityMismatch => Self::RB_SENDER_IDENTITY_MISMATCH,
            Error::SelfSend => Self::RB_SELF_SEND,
            Error::WrongRecipient => Self::RB_WRONG_RECIPIENT,
            Error::WrongGroup => Self::RB_WRONG_GROUP,
            Error::NotAMember => Self::RB_NOT_A_MEMBER,
            _ => Self::RB_UNKNOWN_ERROR,
        }
    }
}

/// The message of each status, NUL-terminated, in `RbStatus` order.
const MESSAGES: [&str; 51] = [
    "ok\0",
    "a required pointer argument is NULL\0",
    "output buffer too small: *out_len holds the length needed\0",
    "argument out of range\0",
    "malformed input\0",
    "signature verification failed\0",
    "Diffie-Hellman output is all zeros (small-order public key)\0",
    "unknown or already used prekey\0",
    "identity key differs from the expected one\0",
    "message could not be decrypted\0",
    "message was already received\0",
    "message would skip too many message keys\0",
    "message counter exhausted\0",
    "prekey message belongs to a different session\0",
    "prekey message already created a session (a repeat or a replay)\0",
    "message too large\0",
    "invalid configuration\0",
    "prekey store full\0",
    "prekey id space exhausted\0",
    "envelope: unknown version\0",
    "envelope: version not allowed by the policy\0",
    "envelope: truncated\0",
    "envelope: trailing bytes\0",
    "envelope: malformed field\0",
    "envelope: larger than the policy allows\0",
    "envelope: no recipients\0",
    "envelope: too many recipients\0",
    "envelope: duplicate recipient\0",
    "envelope: recipients not sorted\0",
    "envelope: invalid padding\0",
    "envelope: delivery token missing\0",
    "envelope: wrong delivery token\0",
    "envelope: recipient has no registered access key\0",
    "sender certificate: malformed\0",
    "sender certificate: root not pinned\0",
    "sender certificate: bad signature\0",
    "sender certificate: expired\0",
    "sender certificate: server key revoked\0",
    "sender certificate does not match the sender's identity key\0",
    "envelope was sent by this device\0",
    "envelope is not addressed to this device\0",
    "message belongs to another group\0",
    "sender is not a known member of the group\0",
    "sealed state: truncated\0",
    "sealed state: not a sealed blob\0",
    "sealed state: unsupported version\0",
    "sealed state: another kind of object\0",
    "sealed state: wrong storage key or slot, or corrupted\0",
    "sealed state: content malformed\0",
    "unknown error\0",
    "panic caught at the FFI boundary\0",
];

/// A static, NUL-terminated English description of a status value. Never
/// NULL; values that are not an `RbStatus` give "unknown status". The string
/// must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn rb_status_message(status: i32) -> *const c_char {
    let message = usize::try_from(status)
        .ok()
        .and_then(|i| MESSAGES.get(i))
        .copied()
        .unwrap_or("unknown status\0");
    message.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_message() {
        assert_eq!(MESSAGES.len(), RbStatus::RB_PANIC as usize + 1);
        assert!(MESSAGES.iter().all(|m| m.ends_with('\0')));
        assert!(MESSAGES.iter().all(|m| m.find('\0') == Some(m.len() - 1)));
    }
}
