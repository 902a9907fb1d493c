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
/// let bob_key = bob.local().identity.public_key();
/// let bundle = PreKeyBundle::from_store(bob_key, bob.store().prekeys(), None);
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
    ///
    /// ```
    /// use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice, PreKeyStore};
    /// use ratchetbox::devices::SessionManager;
    /// use ratchetbox::store::MemoryStore;
    /// let mut rng = ratchetbox::os_rng();
    /// let identity = IdentityKeyPair::generate(&mut rng);
    /// let prekeys = PreKeyStore::generate(&mut rng, &identity, 1);
    /// let local = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// let manager = SessionManager::new(local, MemoryStore::new(prekeys));
    /// assert_eq!(manager.local().device_id, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::devices::MAX_ARCHIVED_SESSIONS;
    /// let alice = alice.with_max_archived_sessions(2)?;
    /// assert!(matches!(
    ///     bob.with_max_archived_sessions(MAX_ARCHIVED_SESSIONS + 1),
    ///     Err(ratchetbox::Error::InvalidConfig { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] above [`MAX_ARCHIVED_SESSIONS`]: a bug in the
    /// app's configuration, not a runtime condition; fix the value.
    pub fn with_max_archived_sessions(mut self, max: usize) -> Result<Self, Error> {
        if max > MAX_ARCHIVED_SESSIONS {
            return Err(Error::InvalidConfig {
                reason: "max archived sessions exceeds MAX_ARCHIVED_SESSIONS",
            });
        }
        self.max_archived = max;
        Ok(self)
    }

    /// Sets the limits of sessions created from now on (sessions already
    /// stored keep theirs).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::SessionConfig;
    /// use ratchetbox::store::SessionStore;
    /// let strict = SessionConfig::new(100, 500)?;
    /// let mut alice = alice.with_session_config(strict);
    /// let started = alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let record = alice.store().session_record(&started.address)?.ok_or("no session")?;
    /// assert_eq!(record.active().config(), &strict);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_session_config(mut self, config: SessionConfig) -> Self {
        self.session_config = config;
        self
    }

    /// This device.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::DeviceAddress;
    /// assert_eq!(alice.local().address(), DeviceAddress::new(alice_id, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local(&self) -> &LocalDevice {
        &self.local
    }

    /// The store.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// // For example, to publish this device's bundle.
    /// let prekeys = bob.store().prekeys();
    /// let bundle = PreKeyBundle::from_store(bob.local().identity.public_key(), prekeys, None);
    /// assert_eq!(bundle.device_id(), bob.local().device_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for the app's own maintenance (prekey replenishment).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// let prekeys = bob.store_mut().prekeys_mut();
    /// let upload = prekeys.generate_one_time_prekeys(&mut rng, 5)?;
    /// assert_eq!(upload.len(), 5);
    /// assert_eq!(bob.store().prekeys().one_time_prekey_count(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The device and store back, for example to seal them at rest when the
    /// app goes to the background.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::at_rest::{self, StorageKey};
    /// let key = StorageKey::generate(&mut rng);
    /// let (local, store) = alice.into_parts();
    /// let sealed_local = at_rest::seal(&mut rng, &key, b"local device", &local);
    /// let sealed_store = at_rest::seal(&mut rng, &key, b"device store", &store);
    ///
    /// let local: LocalDevice = at_rest::open(&key, b"local device", &sealed_local)?;
    /// let store: MemoryStore = at_rest::open(&key, b"device store", &sealed_store)?;
    /// let alice = SessionManager::new(local, store);
    /// assert_eq!(alice.local().account, alice_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    /// The bundle may be passed by reference, so one refused for an untrusted
    /// identity can be processed again once the user accepted the key.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// let started = alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// assert_eq!(started.address, bob.local().address());
    /// assert_eq!(started.identity_change, None); // first key seen for Bob
    /// assert_eq!(alice.session_devices(&bob_id)?, [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::InvalidSignature`] for a bad prekey signature: the server
    ///   handed out a broken or forged bundle; do not retry with it (report it);
    /// - [`Error::SelfSend`] for this device's own bundle: an app bug (filter
    ///   this device out of the device list);
    /// - [`Error::IdentityMismatch`] for a bundle of this account with a
    ///   foreign identity: a server or impostor device; do not use it;
    /// - [`DeviceError::UntrustedIdentity`] if the key changed away from a
    ///   verified one (the change is recorded; nothing else is): show a red
    ///   lock and the new safety number, and call this again after
    ///   [`accept_identity`](Self::accept_identity);
    /// - [`DeviceError::TooManyDevices`]: remove stale devices first;
    /// - [`DeviceError::Store`] if the store fails: retry later.
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

    /// Deletes the sessions with a device the account no longer has (for
    /// example one named `stale` in [`DeviceError::DeviceListMismatch`]).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// let started = alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// alice.remove_device(&started.address)?;
    /// assert!(alice.session_devices(&bob_id)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DeviceError::Store`]: retry later.
    pub fn remove_device(&mut self, address: &DeviceAddress) -> Result<(), DeviceError> {
        let mut changes = ChangeSet::new();
        changes.push(Change::DeleteSessions { address: *address });
        Ok(self.store.apply(changes)?)
    }

    /// The devices of `account` this device has sessions with, ascending.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// assert!(alice.session_devices(&bob_id)?.is_empty());
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// assert_eq!(alice.session_devices(&bob_id)?, [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DeviceError::Store`]: retry later.
    pub fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, DeviceError> {
        Ok(self.store.session_devices(account)?)
    }

    /// The trust record of a contact (`None` before any key was seen): what
    /// the lock icon beside the contact shows.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::TrustState;
    /// assert_eq!(alice.trust_record(&bob_id)?, None);
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let record = alice.trust_record(&bob_id)?.ok_or("no record")?;
    /// assert_eq!((record.identity(), record.state()), (&bob_key, &TrustState::Unverified));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DeviceError::Store`]: retry later.
    pub fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, DeviceError> {
        Ok(self.store.trust_record(account)?)
    }

    /// The safety number with a contact, for its most recently seen key.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::SafetyNumber;
    /// use ratchetbox::devices::DeviceError;
    /// let unknown = alice.safety_number(&bob_id);
    /// assert!(matches!(unknown, Err(DeviceError::UnknownContact { .. })));
    ///
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let on_alice = alice.safety_number(&bob_id)?;
    /// let alice_key = alice.local().identity.public_key();
    /// let on_bob = SafetyNumber::new(&bob_id, &bob_key, &alice_id, alice_key);
    /// assert_eq!(on_alice.digits(), on_bob.digits()); // both screens show the same
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DeviceError::UnknownContact`] if no key was recorded: fetch the
    /// contact's bundle first; [`DeviceError::Store`]: retry later.
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
    /// From then on, a change of the contact's key blocks until accepted.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::TrustState;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// alice.mark_verified(&bob_id, &bob_key)?;
    /// let record = alice.trust_record(&bob_id)?.ok_or("no record")?;
    /// assert_eq!(record.state(), &TrustState::Verified);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::IdentityMismatch`] if `identity` is not the recorded key: the
    ///   key changed while the user compared; show the new safety number and
    ///   let them compare again;
    /// - [`DeviceError::UnknownContact`] if no key was recorded: fetch a bundle first;
    /// - [`DeviceError::Store`]: retry later.
    pub fn mark_verified(
        &mut self,
        account: &AccountId,
        identity: &IdentityKey,
    ) -> Result<(), DeviceError> {
        self.update_trust(account, |record| record.mark_verified(identity))
    }

    /// The user accepted a changed key: it stops blocking and becomes unverified.
    /// Sessions under any other key of the contact are dropped.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::devices::DeviceError;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// alice.mark_verified(&bob_id, &bob_key)?;
    /// // Bob reinstalls: a new identity key, and a new bundle with it.
    /// let bob_again = device(&mut rng, b"bob")?;
    /// let new_key = *bob_again.local().identity.public_key();
    /// let new_bundle = PreKeyBundle::from_store(&new_key, bob_again.store().prekeys(), None);
    /// let refused = alice.process_bundle(&mut rng, &bob_id, &new_bundle);
    /// assert!(matches!(refused, Err(DeviceError::UntrustedIdentity { .. }))); // red lock
    ///
    /// alice.accept_identity(&bob_id, &new_key)?; // the user tapped "accept"
    /// let started = alice.process_bundle(&mut rng, &bob_id, &new_bundle)?;
    /// assert_eq!(started.address, bob_again.local().address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::group::GroupSession;
    /// use ratchetbox::store::GroupStore;
    /// alice.save_group(GroupSession::create(&mut rng, b"family")?)?;
    /// let stored = alice.store().group_session(b"family")?.ok_or("no group")?;
    /// assert_eq!(stored.group_id(), b"family");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DeviceError::Store`]: retry later.
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
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::group::GroupSession;
    /// use ratchetbox::devices::DeviceError;
    /// # let mut bob_group = GroupSession::create(&mut rng, b"family")?;
    /// alice.save_group(GroupSession::create(&mut rng, b"family")?)?;
    /// let distribution = alice.with_group(b"family", |group| Ok(group.distribution()))?;
    /// let message = alice.with_group(b"family", |group| group.encrypt(&mut rng, b"dinner at 8"))?;
    ///
    /// // Bob got the distribution over his 1:1 session with Alice.
    /// let from = alice.local().address();
    /// bob_group.process_distribution(from.as_address(), &distribution)?;
    /// assert_eq!(bob_group.decrypt(from.as_address(), &message)?, b"dinner at 8");
    /// let unknown = alice.with_group(b"work", |group| Ok(group.distribution()));
    /// assert!(matches!(unknown, Err(DeviceError::UnknownGroup)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`DeviceError::UnknownGroup`]: this device was never given the group
    ///   (create it, or ask a member for a distribution);
    /// - the operation's error as [`DeviceError::Protocol`] (nothing is saved);
    /// - [`DeviceError::Store`]: retry later.
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
