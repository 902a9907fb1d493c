//! Sessions with every device of every contact: the [`SessionManager`].
//!
//! Sessions are addressed by [`DeviceAddress`] (account id, device id). Each
//! address has one active session and a bounded archive
//! ([`DEFAULT_MAX_ARCHIVED_SESSIONS`]). Encrypting to an account produces one
//! message per device of the recipient plus one per other device of the sender,
//! so the sender's own devices stay in sync; [`SessionManager::encrypt_sealed`]
//! puts them all in one multi-recipient sealed envelope.
//!
//! Every operation reads through the [store traits](crate::store) and writes
//! through one [`ChangeSet`] applied atomically; the identity-change policy of
//! [`crate::TrustRecord`] is enforced at both points where a new key arrives:
//! bundles and prekey messages.

mod incoming;
mod outcome;
mod outgoing;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;

use rand_core::CryptoRng;

pub use crate::local::LocalDevice;
pub use crate::store::{DEFAULT_MAX_ARCHIVED_SESSIONS, MAX_ARCHIVED_SESSIONS, SessionRecord};
pub use outcome::{Decrypted, DeviceError, OutgoingMessage, SessionStarted, SessionUse};
pub use outgoing::Sealing;

/// Most devices of one account this device keeps sessions with. Accounts have
/// a handful (a phone and a few linked devices); the bound keeps a malicious
/// server or contact from making us store sessions for endless device ids.
pub const MAX_DEVICES_PER_ACCOUNT: usize = 32;

use crate::account::{AccountId, DeviceAddress};
use crate::bundle::PreKeyBundle;
use crate::error::Error;
use crate::group::GroupSession;
use crate::identity::{DeviceId, IdentityKey};
use crate::safety::SafetyNumber;
use crate::session::{Session, SessionConfig};
use crate::store::{Change, ChangeSet, ProtocolStore};
use crate::trust::{IdentityChange, TrustRecord};

/// Manages one device's sessions with all devices of all contacts, over a
/// [`ProtocolStore`].
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
/// use ratchetbox::devices::{LocalDevice, SessionManager};
/// use ratchetbox::store::MemoryStore;
/// let mut rng = ratchetbox::os_rng();
/// let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
///     let identity = IdentityKeyPair::generate(rng);
///     let prekeys = PreKeyStore::generate(rng, &identity, 1);
///     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
///     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
/// };
/// let mut alice = device(&mut rng, b"alice")?;
/// let mut bob = device(&mut rng, b"bob")?;
///
/// // Alice fetches Bob's bundle, then writes to all of Bob's devices (one).
/// let bob_id = bob.local().account;
/// let bundle = PreKeyBundle::from_store(bob.local().identity.public_key(), bob.store().prekeys(), None);
/// alice.process_bundle(&mut rng, &bob_id, bundle)?;
/// let outgoing = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
///
/// let received = bob.decrypt(&alice.local().address(), &outgoing[0].message)?;
/// assert_eq!(received.plaintext, b"hi Bob");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionManager<S: ProtocolStore> {
    local: LocalDevice,
    store: S,
    session_config: SessionConfig,
    max_archived: usize,
}

impl<S: ProtocolStore> SessionManager<S> {
    /// A manager for `local` over `store`, with default limits.
    pub fn new(local: LocalDevice, store: S) -> Self {
        Self {
            local,
            store,
            session_config: SessionConfig::default(),
            max_archived: DEFAULT_MAX_ARCHIVED_SESSIONS,
        }
    }

    /// Sets how many archived sessions each address keeps. With 0, a replaced
    /// session is dropped at once, so messages still in flight on it (and the
    /// losing side of a simultaneous initiation) can no longer be decrypted.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] above [`MAX_ARCHIVED_SESSIONS`].
    pub fn with_max_archived_sessions(mut self, max: usize) -> Result<Self, Error> {
        if max > MAX_ARCHIVED_SESSIONS {
            return Err(Error::InvalidConfig {
                reason: "max archived sessions exceeds MAX_ARCHIVED_SESSIONS",
            });
        }
        self.max_archived = max;
        Ok(self)
    }

    /// Sets the limits of sessions created from now on.
    pub fn with_session_config(mut self, config: SessionConfig) -> Self {
        self.session_config = config;
        self
    }

    /// This device.
    pub fn local(&self) -> &LocalDevice {
        &self.local
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for the app's own maintenance (prekey replenishment).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The device and store back.
    pub fn into_parts(self) -> (LocalDevice, S) {
        (self.local, self.store)
    }

    fn is_own_account(&self, account: &AccountId) -> bool {
        *account == self.local.account
    }

    /// Starts a session with the device a bundle describes, replacing (and
    /// archiving) any active session with it. Checks the bundle's signature
    /// and applies the identity-change policy.
    ///
    /// # Errors
    /// - [`Error::InvalidSignature`] for a bad prekey signature;
    /// - [`Error::SelfSend`] for this device's own bundle;
    /// - [`Error::IdentityMismatch`] for a bundle of this account with a foreign identity;
    /// - [`DeviceError::UntrustedIdentity`] if the key changed away from a
    ///   verified one (the change is recorded; nothing else is);
    /// - [`DeviceError::Store`] if the store fails.
    pub fn process_bundle<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        account: &AccountId,
        bundle: impl Borrow<PreKeyBundle>,
    ) -> Result<SessionStarted, DeviceError> {
        // Borrowed or owned: a bundle refused for an untrusted identity can be
        // processed again after the app accepts the key.
        let bundle = bundle.borrow().clone().verify()?;
        let address = DeviceAddress::new(*account, bundle.device_id());
        if address == self.local.address() {
            return Err(Error::SelfSend.into());
        }
        let existing = self.store.session_record(&address)?;
        if existing.is_none() {
            self.check_device_room(&address)?;
        }
        let mut changes = ChangeSet::new();
        let identity_change = self.check_identity(&address, bundle.identity_key(), &mut changes)?;
        let session =
            Session::initiate_with_config(rng, &self.local, account, &bundle, self.session_config)?;
        let record = match existing {
            Some(mut record) => {
                record.install(session, self.max_archived);
                record.drop_foreign_archived();
                record
            }
            None => SessionRecord::new(session),
        };
        changes.push(Change::SaveSessions {
            address,
            record: Box::new(record),
        });
        self.store.apply(changes)?;
        Ok(SessionStarted {
            address,
            identity_change,
        })
    }

    /// Applies the policy to a key offered for `account`. Records what must be
    /// recorded in `changes`; if the change blocks, records it right away and
    /// fails.
    ///
    /// When the recorded key changes (and does not block), the account's
    /// sessions under other keys are dropped from its other devices: they could
    /// only speak for a key the record no longer holds.
    fn check_identity(
        &mut self,
        address: &DeviceAddress,
        offered: &IdentityKey,
        changes: &mut ChangeSet,
    ) -> Result<Option<IdentityChange>, DeviceError> {
        let account = address.account();
        if self.is_own_account(account) {
            // Own devices share this identity; anything else is an impostor.
            return if offered == self.local.identity.public_key() {
                Ok(None)
            } else {
                Err(Error::IdentityMismatch.into())
            };
        }
        let Some(mut record) = self.store.trust_record(account)? else {
            changes.push(Change::SaveTrust {
                account: *account,
                record: Box::new(TrustRecord::first_seen(*offered)),
            });
            return Ok(None);
        };
        let before = record;
        let seen = record.observe(offered);
        let change = seen.changed.then(|| IdentityChange {
            account: *account,
            previous: *before.identity(),
            new: *offered,
            was_verified: seen.blocked,
        });
        if record != before {
            if seen.blocked {
                // The red lock must show even though nothing else happens.
                let mut only_trust = ChangeSet::new();
                only_trust.push(Change::SaveTrust {
                    account: *account,
                    record: Box::new(record),
                });
                self.store.apply(only_trust)?;
            } else {
                changes.push(Change::SaveTrust {
                    account: *account,
                    record: Box::new(record),
                });
                self.prune_other_keys(account, record.identity(), Some(address), changes)?;
            }
        }
        if seen.blocked {
            return Err(DeviceError::untrusted(account, &record));
        }
        Ok(change)
    }

    /// Deletes the sessions with a device the account no longer has.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn remove_device(&mut self, address: &DeviceAddress) -> Result<(), DeviceError> {
        let mut changes = ChangeSet::new();
        changes.push(Change::DeleteSessions { address: *address });
        Ok(self.store.apply(changes)?)
    }

    /// The devices of `account` this device has sessions with.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, DeviceError> {
        Ok(self.store.session_devices(account)?)
    }

    /// The trust record of a contact.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, DeviceError> {
        Ok(self.store.trust_record(account)?)
    }

    /// The safety number with a contact, for its most recently seen key.
    ///
    /// # Errors
    /// [`DeviceError::UnknownContact`] if no key was recorded; [`DeviceError::Store`].
    pub fn safety_number(&self, account: &AccountId) -> Result<SafetyNumber, DeviceError> {
        let record = self
            .store
            .trust_record(account)?
            .ok_or(DeviceError::UnknownContact { account: *account })?;
        Ok(SafetyNumber::new(
            &self.local.account,
            self.local.identity.public_key(),
            account,
            record.identity(),
        ))
    }

    /// The user compared safety numbers for `identity`: mark it verified.
    ///
    /// # Errors
    /// [`Error::IdentityMismatch`] if `identity` is not the recorded key;
    /// [`DeviceError::UnknownContact`]; [`DeviceError::Store`].
    pub fn mark_verified(
        &mut self,
        account: &AccountId,
        identity: &IdentityKey,
    ) -> Result<(), DeviceError> {
        self.update_trust(account, |record| record.mark_verified(identity))
    }

    /// The user accepted a changed key: it stops blocking and becomes unverified.
    ///
    /// # Errors
    /// As [`mark_verified`](Self::mark_verified).
    pub fn accept_identity(
        &mut self,
        account: &AccountId,
        identity: &IdentityKey,
    ) -> Result<(), DeviceError> {
        self.update_trust(account, |record| record.accept(identity))
    }

    fn update_trust(
        &mut self,
        account: &AccountId,
        update: impl FnOnce(&mut TrustRecord) -> Result<(), Error>,
    ) -> Result<(), DeviceError> {
        let mut record = self
            .store
            .trust_record(account)?
            .ok_or(DeviceError::UnknownContact { account: *account })?;
        update(&mut record)?;
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveTrust {
            account: *account,
            record: Box::new(record),
        });
        self.prune_other_keys(account, record.identity(), None, &mut changes)?;
        Ok(self.store.apply(changes)?)
    }

    /// Drops the account's sessions under any key but `keep` (on every device
    /// but `except`), so nothing under a replaced key lingers.
    fn prune_other_keys(
        &self,
        account: &AccountId,
        keep: &IdentityKey,
        except: Option<&DeviceAddress>,
        changes: &mut ChangeSet,
    ) -> Result<(), DeviceError> {
        for device in self.store.session_devices(account)? {
            let address = DeviceAddress::new(*account, device);
            if Some(&address) == except {
                continue;
            }
            let Some(record) = self.store.session_record(&address)? else {
                continue;
            };
            let before = 1 + record.archived().len();
            match record.retain_identity(keep) {
                None => changes.push(Change::DeleteSessions { address }),
                Some(kept) if 1 + kept.archived().len() != before => {
                    changes.push(Change::SaveSessions {
                        address,
                        record: Box::new(kept),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Refuses a session with a new device of an account that already has
    /// [`MAX_DEVICES_PER_ACCOUNT`] devices with sessions here.
    fn check_device_room(&self, address: &DeviceAddress) -> Result<(), DeviceError> {
        if self.store.session_devices(address.account())?.len() >= MAX_DEVICES_PER_ACCOUNT {
            return Err(DeviceError::TooManyDevices {
                account: *address.account(),
            });
        }
        Ok(())
    }

    /// Stores a group state (a new group, or one changed outside the manager).
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn save_group(&mut self, session: GroupSession) -> Result<(), DeviceError> {
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveGroup {
            session: Box::new(session),
        });
        Ok(self.store.apply(changes)?)
    }

    /// Runs `operation` on the stored state of group `group_id` and saves the
    /// result if it succeeds.
    ///
    /// # Errors
    /// [`DeviceError::UnknownGroup`], the operation's error, [`DeviceError::Store`].
    pub fn with_group<T>(
        &mut self,
        group_id: &[u8],
        operation: impl FnOnce(&mut GroupSession) -> Result<T, Error>,
    ) -> Result<T, DeviceError> {
        let mut session = self
            .store
            .group_session(group_id)?
            .ok_or(DeviceError::UnknownGroup)?;
        let result = operation(&mut session)?;
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveGroup {
            session: Box::new(session),
        });
        self.store.apply(changes)?;
        Ok(result)
    }
}

impl<S: ProtocolStore + fmt::Debug> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("local", &self.local)
            .field("store", &self.store)
            .field("max_archived", &self.max_archived)
            .finish_non_exhaustive()
    }
}
