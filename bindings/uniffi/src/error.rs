//! The one error type every binding function raises, mirroring the core's
//! typed errors so that apps can catch exactly what they handle.

use std::fmt;

use ratchetbox::at_rest::StorageError;
use ratchetbox::devices::DeviceError;
use ratchetbox::store::StoreError;
use ratchetbox::{DecodeError, Error};

use crate::records::DeviceAddress;

/// Why a ratchetbox call failed. In Python each variant is its own exception
/// class (`RatchetboxError.DecryptionFailed`, …), all subclasses of
/// `RatchetboxError`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
#[non_exhaustive]
pub enum RatchetboxError {
    /// An argument is out of range: an empty or over-long account or group
    /// id, a key of the wrong length, a configuration outside the limits.
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// Bytes that should be a message, bundle, distribution or key are malformed.
    Decode {
        /// What is wrong with them.
        reason: String,
    },
    /// A signature (bundle prekey, group message) failed strict verification.
    InvalidSignature,
    /// The message could not be decrypted (forged, altered, or for another
    /// session). Deliberately says nothing more.
    DecryptionFailed,
    /// The message was already decrypted (or its key was evicted).
    DuplicateMessage,
    /// A prekey message that already created a session arrived again: a late
    /// repeat or a replay. Drop it.
    RepeatedPreKeyMessage,
    /// A prekey message names a prekey this device does not hold (never
    /// issued, already used, or expired).
    UnknownPreKey {
        /// Which prekey.
        reason: String,
    },
    /// A message is further ahead of its chain than the session allows.
    TooManySkippedMessages,
    /// A raw `Session` was given the prekey message that starts another
    /// session (accept it with `SessionManager.accept_session`).
    WrongSession,
    /// The contact's identity key changed away from a verified one. Sending
    /// and new sessions are blocked until the app calls `accept_identity`
    /// (or `mark_verified`) with `new_identity`.
    UntrustedIdentity {
        /// The contact account.
        account: Vec<u8>,
        /// The last verified identity key (32 bytes).
        previous_identity: Vec<u8>,
        /// The identity key now offered (32 bytes).
        new_identity: Vec<u8>,
    },
    /// An identity key is not the one expected (a bundle of this account
    /// under a foreign identity, a verification of a key not recorded).
    IdentityMismatch,
    /// The device lists given to `encrypt` differ from the sessions held:
    /// process bundles for `missing`, `remove_device` the `stale`, retry.
    DeviceListMismatch {
        /// Listed devices without a session.
        missing: Vec<DeviceAddress>,
        /// Devices with sessions that are no longer listed.
        stale: Vec<DeviceAddress>,
    },
    /// There is no usable session with this device (`diverged` is false when
    /// none exists, true when none decrypts its message): fetch its bundle and
    /// process it.
    NeedsFreshSession {
        /// The device's account.
        account: Vec<u8>,
        /// The device id.
        device_id: u32,
        /// Sessions exist but have diverged (one side restored a backup, or
        /// the message is forged).
        diverged: bool,
    },
    /// No identity key was ever recorded for this account.
    UnknownContact {
        /// The account.
        account: Vec<u8>,
    },
    /// This device holds no state for the group (call `create_group`).
    UnknownGroup,
    /// The group message's sender (or its chain) is unknown: never
    /// distributed, or removed.
    NotAMember,
    /// A group message or distribution belongs to another group.
    WrongGroup,
    /// The account already has the most devices with sessions allowed.
    TooManyDevices {
        /// The account.
        account: Vec<u8>,
    },
    /// The message or bundle comes from (or is addressed to) this very device.
    SelfSend,
    /// Sealed state did not open: wrong storage key, wrong slot, or altered.
    StorageWrongKey,
    /// Sealed state is not a sealed blob of the expected kind, or is truncated
    /// or undecodable.
    StorageCorrupt {
        /// What is wrong.
        reason: String,
    },
    /// The store failed to read or write (the host store raised, or its
    /// storage is unavailable). Nothing was written.
    StoreUnavailable {
        /// The store's explanation.
        reason: String,
    },
    /// A change could not be applied because the store changed concurrently.
    /// Nothing was written.
    StoreConflict,
    /// A value in the store did not decode.
    StoreCorrupt {
        /// What is wrong.
        reason: String,
    },
    /// Any other protocol error (counter exhausted, message too large, …).
    Protocol {
        /// The error.
        reason: String,
    },
}

impl fmt::Display for RatchetboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            Self::Decode { reason } => write!(f, "malformed input: {reason}"),
            Self::InvalidSignature => f.write_str("invalid signature"),
            Self::DecryptionFailed => f.write_str("decryption failed"),
            Self::DuplicateMessage => f.write_str("duplicate message"),
            Self::RepeatedPreKeyMessage => f.write_str("repeated prekey message"),
            Self::UnknownPreKey { reason } => write!(f, "unknown prekey: {reason}"),
            Self::TooManySkippedMessages => f.write_str("too many skipped messages"),
            Self::WrongSession => f.write_str("prekey message of another session"),
            Self::UntrustedIdentity { .. } => {
                f.write_str("identity changed from a verified key; accept the new key first")
            }
            Self::IdentityMismatch => f.write_str("identity key mismatch"),
            Self::DeviceListMismatch { missing, stale } => write!(
                f,
                "device list mismatch: {} missing, {} stale",
                missing.len(),
                stale.len()
            ),
            Self::NeedsFreshSession {
                device_id,
                diverged,
                ..
            } => write!(
                f,
                "no usable session with device {device_id} (diverged: {diverged}); process a new bundle"
            ),
            Self::UnknownContact { .. } => f.write_str("no identity recorded for this account"),
            Self::UnknownGroup => f.write_str("no state for this group"),
            Self::NotAMember => f.write_str("sender is not a member of the group"),
            Self::WrongGroup => f.write_str("belongs to another group"),
            Self::TooManyDevices { .. } => f.write_str("too many devices for this account"),
            Self::SelfSend => f.write_str("from or to this device itself"),
            Self::StorageWrongKey => f.write_str("sealed state: wrong key, slot, or altered"),
            Self::StorageCorrupt { reason } => write!(f, "sealed state unusable: {reason}"),
            Self::StoreUnavailable { reason } => write!(f, "store unavailable: {reason}"),
            Self::StoreConflict => f.write_str("store changed concurrently; nothing applied"),
            Self::StoreCorrupt { reason } => write!(f, "store value corrupt: {reason}"),
            Self::Protocol { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for RatchetboxError {}

impl RatchetboxError {
    /// An [`InvalidInput`](Self::InvalidInput) error.
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }
}

impl From<DecodeError> for RatchetboxError {
    fn from(e: DecodeError) -> Self {
        Self::Decode {
            reason: e.to_string(),
        }
    }
}

impl From<Error> for RatchetboxError {
    fn from(e: Error) -> Self {
        match e {
            Error::Decode(e) => e.into(),
            Error::InvalidSignature => Self::InvalidSignature,
            Error::DecryptionFailed => Self::DecryptionFailed,
            Error::DuplicateMessage => Self::DuplicateMessage,
            Error::RepeatedPreKeyMessage { .. } => Self::RepeatedPreKeyMessage,
            Error::UnknownSignedPreKey { .. }
            | Error::UnknownKemPreKey { .. }
            | Error::UnknownOneTimePreKey { .. } => Self::UnknownPreKey {
                reason: e.to_string(),
            },
            Error::TooManySkippedMessages { .. } => Self::TooManySkippedMessages,
            Error::WrongSession => Self::WrongSession,
            Error::IdentityMismatch | Error::SenderIdentityMismatch => Self::IdentityMismatch,
            Error::SelfSend => Self::SelfSend,
            Error::WrongGroup => Self::WrongGroup,
            Error::NotAMember => Self::NotAMember,
            Error::InvalidConfig { reason } => Self::invalid(reason),
            other => Self::Protocol {
                reason: other.to_string(),
            },
        }
    }
}

impl From<StoreError> for RatchetboxError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::StoreConflict,
            StoreError::Corrupt(e) => Self::StoreCorrupt {
                reason: e.to_string(),
            },
            other => Self::StoreUnavailable {
                reason: crate::store::take_host_failure().unwrap_or_else(|| other.to_string()),
            },
        }
    }
}

impl From<StorageError> for RatchetboxError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::WrongKeyOrCorrupted => Self::StorageWrongKey,
            other => Self::StorageCorrupt {
                reason: other.to_string(),
            },
        }
    }
}

impl From<DeviceError> for RatchetboxError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::Protocol(e) => e.into(),
            DeviceError::Store(e) => e.into(),
            DeviceError::UntrustedIdentity { change } => Self::UntrustedIdentity {
                account: change.account.as_bytes().to_vec(),
                previous_identity: change.previous.to_bytes().to_vec(),
                new_identity: change.new.to_bytes().to_vec(),
            },
            DeviceError::DeviceListMismatch { missing, stale } => Self::DeviceListMismatch {
                missing: missing.iter().map(DeviceAddress::from).collect(),
                stale: stale.iter().map(DeviceAddress::from).collect(),
            },
            DeviceError::NoSession { address } => Self::NeedsFreshSession {
                account: address.account().as_bytes().to_vec(),
                device_id: address.device_id(),
                diverged: false,
            },
            DeviceError::SessionDesync { address } => Self::NeedsFreshSession {
                account: address.account().as_bytes().to_vec(),
                device_id: address.device_id(),
                diverged: true,
            },
            DeviceError::UnknownContact { account } => Self::UnknownContact {
                account: account.as_bytes().to_vec(),
            },
            DeviceError::UnknownGroup => Self::UnknownGroup,
            DeviceError::TooManyDevices { account } => Self::TooManyDevices {
                account: account.as_bytes().to_vec(),
            },
            other => Self::Protocol {
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_their_own_variants() {
        assert_eq!(
            RatchetboxError::from(Error::DecryptionFailed),
            RatchetboxError::DecryptionFailed
        );
        assert_eq!(
            RatchetboxError::from(DeviceError::Protocol(Error::DuplicateMessage)),
            RatchetboxError::DuplicateMessage
        );
        assert_eq!(
            RatchetboxError::from(StorageError::WrongKeyOrCorrupted),
            RatchetboxError::StorageWrongKey
        );
        assert_eq!(
            RatchetboxError::from(DeviceError::Store(StoreError::Conflict)),
            RatchetboxError::StoreConflict
        );
        assert!(matches!(
            RatchetboxError::from(DecodeError::InvalidIdentityKey),
            RatchetboxError::Decode { .. }
        ));
        assert!(matches!(
            RatchetboxError::from(Error::UnknownOneTimePreKey { id: 3 }),
            RatchetboxError::UnknownPreKey { .. }
        ));
    }
}
