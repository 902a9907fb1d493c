//! Plain values that cross the boundary by copy (records and enums), and the
//! conversions of byte arguments into core types.

use ratchetbox::devices;
use ratchetbox::{AccountId, IdentityKey, KEY_LEN, TrustState};

use crate::error::RatchetboxError;

/// One device of one account.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceAddress {
    /// The account id.
    pub account: Vec<u8>,
    /// The device id.
    pub device_id: u32,
}

impl From<&ratchetbox::DeviceAddress> for DeviceAddress {
    fn from(address: &ratchetbox::DeviceAddress) -> Self {
        Self {
            account: address.account().as_bytes().to_vec(),
            device_id: address.device_id(),
        }
    }
}

/// One device's copy of an outgoing message: send `message` to
/// `account`/`device_id` (the server routes it; the receiver calls `decrypt`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutgoingMessage {
    /// The recipient device's account (the contact's, or this account's own
    /// for its other devices).
    pub account: Vec<u8>,
    /// The recipient device.
    pub device_id: u32,
    /// The session message (a prekey or ratchet message).
    pub message: Vec<u8>,
}

impl From<devices::OutgoingMessage> for OutgoingMessage {
    fn from(outgoing: devices::OutgoingMessage) -> Self {
        Self {
            account: outgoing.address.account().as_bytes().to_vec(),
            device_id: outgoing.address.device_id(),
            message: outgoing.message,
        }
    }
}

/// A contact's identity key differs from the one recorded before, and the
/// policy let it through (the contact was not verified): show a notice.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct IdentityChange {
    /// The contact account.
    pub account: Vec<u8>,
    /// The key recorded before (32 bytes).
    pub previous_identity: Vec<u8>,
    /// The key now in use (32 bytes).
    pub new_identity: Vec<u8>,
    /// Whether the previous key was verified.
    pub was_verified: bool,
}

impl From<ratchetbox::IdentityChange> for IdentityChange {
    fn from(change: ratchetbox::IdentityChange) -> Self {
        Self {
            account: change.account.as_bytes().to_vec(),
            previous_identity: change.previous.to_bytes().to_vec(),
            new_identity: change.new.to_bytes().to_vec(),
            was_verified: change.was_verified,
        }
    }
}

/// Which session decrypted a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SessionUse {
    /// The active session.
    Active,
    /// An archived session, now promoted to active.
    Promoted,
    /// A new session from a prekey message, now active.
    Created,
    /// A new session that crossed one this device started; it was archived.
    CreatedArchived,
    /// An archived session that stays archived.
    Archived,
}

impl From<devices::SessionUse> for SessionUse {
    fn from(used: devices::SessionUse) -> Self {
        match used {
            devices::SessionUse::Active => Self::Active,
            devices::SessionUse::Promoted => Self::Promoted,
            devices::SessionUse::Created => Self::Created,
            devices::SessionUse::CreatedArchived => Self::CreatedArchived,
            // `SessionUse` is non-exhaustive; a future kind of use is still
            // a use of a session that is not the active one.
            _ => Self::Archived,
        }
    }
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Decrypted {
    /// The plaintext. (The core zeroizes its copy; this one belongs to the
    /// host language's memory manager.)
    pub plaintext: Vec<u8>,
    /// Which session decrypted it.
    pub session: SessionUse,
    /// Set when the sender's identity key changed (a notice to show).
    pub identity_change: Option<IdentityChange>,
}

impl From<devices::Decrypted> for Decrypted {
    fn from(decrypted: devices::Decrypted) -> Self {
        Self {
            plaintext: decrypted.plaintext.to_vec(),
            session: decrypted.session.into(),
            identity_change: decrypted.identity_change.map(Into::into),
        }
    }
}

/// A session started from a bundle.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionStarted {
    /// The device the session is with.
    pub address: DeviceAddress,
    /// Set when the bundle's identity key differs from the recorded one (a
    /// notice to show).
    pub identity_change: Option<IdentityChange>,
}

impl From<devices::SessionStarted> for SessionStarted {
    fn from(started: devices::SessionStarted) -> Self {
        Self {
            address: (&started.address).into(),
            identity_change: started.identity_change.map(Into::into),
        }
    }
}

/// Where a contact's identity key stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum TrustLevel {
    /// Seen, not verified by the user (a grey lock).
    Unverified,
    /// The user compared safety numbers for this key (a green lock).
    Verified,
    /// The key changed (a red lock); it blocks sending if `was_verified`.
    Changed {
        /// The key recorded before the change (32 bytes).
        previous_identity: Vec<u8>,
        /// Whether the previous key was verified (then the change blocks).
        was_verified: bool,
    },
}

/// A contact's recorded identity key and its trust level.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Trust {
    /// The identity key recorded (32 bytes).
    pub identity_key: Vec<u8>,
    /// Its trust level.
    pub level: TrustLevel,
}

impl From<&ratchetbox::TrustRecord> for Trust {
    fn from(record: &ratchetbox::TrustRecord) -> Self {
        let level = match record.state() {
            TrustState::Unverified => TrustLevel::Unverified,
            TrustState::Verified => TrustLevel::Verified,
            TrustState::Changed {
                previous,
                was_verified,
            } => TrustLevel::Changed {
                previous_identity: previous.to_bytes().to_vec(),
                was_verified: *was_verified,
            },
        };
        Self {
            identity_key: record.identity().to_bytes().to_vec(),
            level,
        }
    }
}

/// An account id from its bytes.
pub(crate) fn account(bytes: &[u8]) -> Result<AccountId, RatchetboxError> {
    AccountId::new(bytes).map_err(|e| RatchetboxError::invalid(format!("account id: {e}")))
}

/// An identity key from its 32 bytes.
pub(crate) fn identity_key(bytes: &[u8]) -> Result<IdentityKey, RatchetboxError> {
    let bytes: &[u8; KEY_LEN] = bytes
        .try_into()
        .map_err(|_| RatchetboxError::invalid(format!("identity key: expected {KEY_LEN} bytes")))?;
    Ok(IdentityKey::from_bytes(bytes)?)
}

/// A device address from an account id and a device id.
pub(crate) fn address(
    account_bytes: &[u8],
    device_id: u32,
) -> Result<ratchetbox::DeviceAddress, RatchetboxError> {
    Ok(ratchetbox::DeviceAddress::new(
        account(account_bytes)?,
        device_id,
    ))
}
