//! Store traits: where the [`SessionManager`](crate::devices::SessionManager)
//! reads identities and trust, prekeys, sessions and group states, and how it
//! writes them back.
//!
//! Reads are fine-grained and synchronous. Writes never happen piecemeal: every
//! operation computes a [`ChangeSet`] and hands it to
//! [`ProtocolStore::apply`] once, so a store backed by a database applies it in
//! one transaction. A decrypt that spends a one-time prekey, creates a session
//! and records the sender's identity therefore commits all three or none; and
//! the plaintext is returned only after `apply` succeeded, so a failed write
//! never leaves a message read but its key unspent.

mod memory;
mod record;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

pub use memory::MemoryStore;
pub(crate) use record::Slot;
pub use record::{DEFAULT_MAX_ARCHIVED_SESSIONS, MAX_ARCHIVED_SESSIONS, SessionRecord};

use crate::account::{AccountId, DeviceAddress};
use crate::crypto::PublicKey;
use crate::error::DecodeError;
use crate::group::GroupSession;
use crate::identity::DeviceId;
use crate::prekey::{KemPreKey, OneTimePreKey, PreKeyId, SignedPreKey};
use crate::trust::TrustRecord;

/// A store could not read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing storage failed (I/O, a locked database); the app's own
    /// error is logged by the app. Nothing was written.
    Unavailable,
    /// A stored object did not decode.
    Corrupt(DecodeError),
    /// A change could not be applied (for example it removes a one-time
    /// prekey that is already gone, so two operations raced). Nothing was written.
    Conflict,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable => f.write_str("store unavailable"),
            Self::Corrupt(e) => write!(f, "stored object is corrupt: {e}"),
            Self::Conflict => f.write_str("store changed concurrently; nothing applied"),
        }
    }
}

impl core::error::Error for StoreError {}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        Self::Corrupt(e)
    }
}

/// Contacts' identity keys and their trust. (This device's own identity key
/// pair is held by the manager, loaded once from its sealed blob.)
pub trait IdentityStore {
    /// The trust record for `account`, if one was ever recorded.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError>;
}

/// This device's prekeys, looked up by id when a prekey message arrives.
pub trait PreKeyStorage {
    /// The signed prekey with this id (current or retired within its grace period).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError>;

    /// The unused one-time prekey with this id.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError>;

    /// The KEM prekey with this id: an unused one-time one, or a last-resort
    /// one (current or retired within its grace period).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError>;

    /// Whether a prekey message with this base key was accepted before
    /// ([`Change::AcceptPreKeyMessage`] recorded it and it was not dropped as
    /// the oldest of [`MAX_ACCEPTED_BASE_KEYS`](crate::MAX_ACCEPTED_BASE_KEYS),
    /// or with its signed prekey).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError>;
}

/// Sessions, one [`SessionRecord`] per remote device.
pub trait SessionStore {
    /// The sessions with `address`.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError>;

    /// The devices of `account` that this device has a session with, ascending.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError>;
}

/// Group states, one [`GroupSession`] per group id.
pub trait GroupStore {
    /// This device's state for the group `group_id`.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError>;
}

/// All four stores, plus the one way to write: applying a change set atomically.
pub trait ProtocolStore: IdentityStore + PreKeyStorage + SessionStore + GroupStore {
    /// Applies every change in `changes`, or none of them.
    ///
    /// # Errors
    /// [`StoreError`] if nothing was applied.
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError>;
}

/// One write.
#[derive(Debug)]
#[non_exhaustive]
pub enum Change {
    /// Insert or replace the trust record of `account`.
    SaveTrust {
        /// The contact account.
        account: AccountId,
        /// Its new record.
        record: Box<TrustRecord>,
    },
    /// Insert or replace the sessions with `address`.
    SaveSessions {
        /// The remote device.
        address: DeviceAddress,
        /// Its new record.
        record: Box<SessionRecord>,
    },
    /// Delete the sessions with `address` (the device was removed).
    DeleteSessions {
        /// The remote device.
        address: DeviceAddress,
    },
    /// A prekey message created a session that has committed: delete the
    /// one-time prekey and the one-time KEM prekey it named (a last-resort KEM
    /// prekey stays) and remember its base key (bounded, as
    /// [`PreKeyStore::record_accepted`](crate::PreKeyStore::record_accepted)
    /// does), so that the message is never accepted as a new session again.
    /// A store refuses the set ([`StoreError::Conflict`]) if a named prekey is
    /// already gone or the base key already recorded.
    AcceptPreKeyMessage {
        /// The signed prekey it named.
        signed_prekey_id: PreKeyId,
        /// The KEM prekey it named (spent if it is a one-time one).
        kem_prekey_id: PreKeyId,
        /// The one-time prekey it named, now spent.
        one_time_prekey_id: Option<PreKeyId>,
        /// The initiator's base key.
        base_key: PublicKey,
    },
    /// Insert or replace a group state (keyed by its group id).
    SaveGroup {
        /// The new state.
        session: Box<GroupSession>,
    },
}

/// The writes one operation makes, applied together by [`ProtocolStore::apply`].
#[derive(Debug, Default)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

impl ChangeSet {
    /// An empty change set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a change.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// The changes, in the order they were made.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl IntoIterator for ChangeSet {
    type Item = Change;
    type IntoIter = alloc::vec::IntoIter<Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.changes.into_iter()
    }
}
