//! What the session manager's operations return, and how they fail.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::account::{AccountId, DeviceAddress};
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::plaintext::Plaintext;
use crate::store::StoreError;
use crate::trust::{IdentityChange, TrustRecord, TrustState};

/// Why a session-manager operation failed. Nothing was written to the store,
/// except that [`UntrustedIdentity`](Self::UntrustedIdentity) records a key
/// change that blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// A protocol error from the session, bundle or envelope layer.
    Protocol(Error),
    /// The store failed.
    Store(StoreError),
    /// The identity key in use is not one the contact's trust record admits:
    /// - the key changed away from a verified key: sending and new sessions are
    ///   blocked until the app accepts the new key
    ///   ([`SessionManager::accept_identity`](super::SessionManager::accept_identity))
    ///   or verifies it (the change itself was recorded);
    /// - or a message arrived on a session under a key the record no longer
    ///   holds (`previous` is the admitted key, `new` the session's).
    UntrustedIdentity {
        /// The change: the last verified key (`previous`) and the key now
        /// offered (`new`), to show beside the new safety number.
        change: Box<IdentityChange>,
    },
    /// The device lists the app gave differ from the sessions held. Fetch
    /// bundles for `missing` ([`process_bundle`](super::SessionManager::process_bundle)),
    /// drop `stale` ([`remove_device`](super::SessionManager::remove_device)), retry.
    DeviceListMismatch {
        /// Listed devices with no usable session.
        missing: Vec<DeviceAddress>,
        /// Devices with sessions that are no longer listed.
        stale: Vec<DeviceAddress>,
    },
    /// There is no session with this device: fetch its bundle and start one.
    NoSession {
        /// The device.
        address: DeviceAddress,
    },
    /// No session held for this device decrypts its message: the two sides
    /// have diverged (typically one was restored from an old backup). Fetch a
    /// new bundle and start a fresh session. (A forged message looks the same;
    /// apps rate-limit the reset.)
    SessionDesync {
        /// The device.
        address: DeviceAddress,
    },
    /// No trust record exists for this account (no key was ever seen).
    UnknownContact {
        /// The account.
        account: AccountId,
    },
    /// This device holds no state for the group.
    UnknownGroup,
    /// The account already has
    /// [`MAX_DEVICES_PER_ACCOUNT`](super::MAX_DEVICES_PER_ACCOUNT) devices with
    /// sessions here; remove stale ones first.
    TooManyDevices {
        /// The account.
        account: AccountId,
    },
}

impl DeviceError {
    /// The error for a record that blocks.
    pub(crate) fn untrusted(account: &AccountId, record: &TrustRecord) -> Self {
        let previous = match record.state() {
            TrustState::Changed { previous, .. } => *previous,
            _ => *record.identity(),
        };
        Self::UntrustedIdentity {
            change: Box::new(IdentityChange {
                account: *account,
                previous,
                new: *record.identity(),
                was_verified: true,
            }),
        }
    }

    /// The device to start a fresh session with (from a new bundle), if that is
    /// what this error calls for.
    pub fn needs_fresh_session(&self) -> Option<&DeviceAddress> {
        match self {
            Self::NoSession { address } | Self::SessionDesync { address } => Some(address),
            _ => None,
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => fmt::Display::fmt(e, f),
            Self::Store(e) => fmt::Display::fmt(e, f),
            Self::UntrustedIdentity { change } => write!(
                f,
                "identity of {} changed from a verified key; accept the new key first",
                change.account
            ),
            Self::DeviceListMismatch { missing, stale } => {
                f.write_str("device list mismatch: missing [")?;
                write_list(f, missing)?;
                f.write_str("], stale [")?;
                write_list(f, stale)?;
                f.write_str("]")
            }
            Self::NoSession { address } => write!(f, "no session with {address}"),
            Self::SessionDesync { address } => {
                write!(f, "sessions with {address} diverged; start a fresh session")
            }
            Self::UnknownContact { account } => write!(f, "no identity recorded for {account}"),
            Self::UnknownGroup => f.write_str("no state for this group"),
            Self::TooManyDevices { account } => write!(
                f,
                "{account} already has {} devices with sessions",
                super::MAX_DEVICES_PER_ACCOUNT
            ),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, addresses: &[DeviceAddress]) -> fmt::Result {
    for (i, address) in addresses.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{address}")?;
    }
    Ok(())
}

impl core::error::Error for DeviceError {}

impl From<Error> for DeviceError {
    fn from(e: Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<crate::error::DecodeError> for DeviceError {
    fn from(e: crate::error::DecodeError) -> Self {
        Self::Protocol(Error::Decode(e))
    }
}

/// A decrypted message.
#[derive(Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext (zeroized on drop, never printed).
    pub plaintext: Plaintext,
    /// How the message's session stands now.
    pub session: SessionUse,
    /// Set when the sender's identity key differs from the one recorded (a
    /// change the policy allowed: show the notice).
    pub identity_change: Option<IdentityChange>,
}

/// Which session decrypted a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionUse {
    /// The active session.
    Active,
    /// An archived session, now promoted to active.
    Promoted,
    /// A new session from a prekey message, now active.
    Created,
    /// A new session from a prekey message that crossed one this device started;
    /// the tie-break kept this device's session active and archived the new one.
    CreatedArchived,
    /// An archived session that lost that tie-break decrypted a repeat of its
    /// prekey message, and stays archived.
    Archived,
}

/// One device's copy of an outgoing message.
#[derive(Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The device it goes to.
    pub address: DeviceAddress,
    /// That device's account identity key (for sealing).
    pub identity_key: IdentityKey,
    /// The session message (a prekey or ratchet message).
    pub message: Vec<u8>,
}

/// A session started from a bundle.
#[derive(Debug, PartialEq, Eq)]
pub struct SessionStarted {
    /// The device the session is with.
    pub address: DeviceAddress,
    /// Set when the bundle's identity key differs from the one recorded (a
    /// change the policy allowed: show the notice).
    pub identity_change: Option<IdentityChange>,
}
