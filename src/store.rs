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

/// A store could not read or write. The session manager passes it on as
/// [`DeviceError::Store`](crate::devices::DeviceError::Store).
///
/// What the app does:
/// - [`Unavailable`](Self::Unavailable): retry later; for an incoming
///   message, do not acknowledge it to the server until a retry succeeds;
/// - [`Corrupt`](Self::Corrupt): the stored state is damaged; restore it from
///   a backup (or start the affected sessions afresh) and report it;
/// - [`Conflict`](Self::Conflict): another operation got there first; run the
///   operation again on the fresh state (for a decrypt, the retry then
///   reports the message as already read).
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
/// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
/// # let prekeys = store.prekeys_mut();
/// # let (one_time_id, base_key) = prekeys.generate_one_time_prekeys(&mut rng, 1)?[0];
/// # let signed_prekey_id = store.prekeys().signed_prekey().id();
/// # let kem_prekey_id = store.prekeys().last_resort_kem_prekey().id();
/// # let spend = || Change::AcceptPreKeyMessage {
/// #     signed_prekey_id, kem_prekey_id, one_time_prekey_id: Some(one_time_id), base_key,
/// # };
/// let mut changes = ChangeSet::new();
/// changes.push(spend()); // what a prekey message that created a session records
/// store.apply(changes)?;
///
/// // A racing decrypt of the same prekey message finds the prekey already spent.
/// let mut changes = ChangeSet::new();
/// changes.push(spend());
/// assert_eq!(store.apply(changes), Err(StoreError::Conflict));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// Code generic over the store reads through it:
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
/// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
/// # use ratchetbox::{AccountId, TrustRecord};
/// # let bob = AccountId::new(b"bob")?;
/// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
/// use ratchetbox::store::IdentityStore;
/// use ratchetbox::TrustState;
/// fn lock(store: &impl IdentityStore, account: &AccountId) -> Result<&'static str, StoreError> {
///     Ok(match store.trust_record(account)?.map(|r| *r.state()) {
///         None | Some(TrustState::Unverified) => "grey",
///         Some(TrustState::Verified) => "green",
///         Some(TrustState::Changed { .. }) => "red",
///     })
/// }
/// # let mut changes = ChangeSet::new();
/// # let record = Box::new(TrustRecord::first_seen(bob_key));
/// # changes.push(Change::SaveTrust { account: bob, record });
/// # store.apply(changes)?;
/// assert_eq!(lock(&store, &bob)?, "grey");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait IdentityStore {
    /// The trust record for `account`, if one was ever recorded.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # use ratchetbox::{AccountId, TrustRecord};
    /// # let bob = AccountId::new(b"bob")?;
    /// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
    /// use ratchetbox::store::IdentityStore;
    /// assert_eq!(store.trust_record(&bob)?, None);
    /// let mut changes = ChangeSet::new();
    /// let record = Box::new(TrustRecord::first_seen(bob_key));
    /// changes.push(Change::SaveTrust { account: bob, record });
    /// store.apply(changes)?;
    /// assert_eq!(store.trust_record(&bob)?.map(|r| *r.identity()), Some(bob_key));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError>;
}

/// This device's prekeys, looked up by id when a prekey message arrives.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
/// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
/// use ratchetbox::store::PreKeyStorage;
/// let signed = store.prekeys().signed_prekey();
/// let found = store.signed_prekey(signed.id())?.ok_or("no signed prekey")?;
/// assert_eq!(found.public_key(), signed.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PreKeyStorage {
    /// The signed prekey with this id (current or retired within its grace period).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// use ratchetbox::store::PreKeyStorage;
    /// let id = store.prekeys().signed_prekey().id();
    /// assert_eq!(store.signed_prekey(id)?.map(|k| k.id()), Some(id));
    /// assert!(store.signed_prekey(id.wrapping_add(1))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError>;

    /// The unused one-time prekey with this id.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// use ratchetbox::store::PreKeyStorage;
    /// let (id, public) = store.prekeys_mut().generate_one_time_prekeys(&mut rng, 1)?[0];
    /// assert_eq!(store.one_time_prekey(id)?.map(|k| *k.public_key()), Some(public));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError>;

    /// The KEM prekey with this id: an unused one-time one, or a last-resort
    /// one (current or retired within its grace period).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// use ratchetbox::store::PreKeyStorage;
    /// let id = store.prekeys().last_resort_kem_prekey().id();
    /// assert_eq!(store.kem_prekey(id)?.map(|k| k.id()), Some(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError>;

    /// Whether a prekey message with this base key was accepted before
    /// ([`Change::AcceptPreKeyMessage`] recorded it and it was not dropped as
    /// the oldest of [`MAX_ACCEPTED_BASE_KEYS`](crate::MAX_ACCEPTED_BASE_KEYS),
    /// or with its signed prekey).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # let prekeys = store.prekeys_mut();
    /// # let (one_time_id, base_key) = prekeys.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// # let signed_prekey_id = store.prekeys().signed_prekey().id();
    /// # let kem_prekey_id = store.prekeys().last_resort_kem_prekey().id();
    /// # let spend = || Change::AcceptPreKeyMessage {
    /// #     signed_prekey_id, kem_prekey_id, one_time_prekey_id: Some(one_time_id), base_key,
    /// # };
    /// use ratchetbox::store::PreKeyStorage;
    /// assert!(!store.has_accepted_base_key(&base_key)?);
    /// let mut changes = ChangeSet::new();
    /// changes.push(spend()); // a prekey message with this base key created a session
    /// store.apply(changes)?;
    /// assert!(store.has_accepted_base_key(&base_key)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError>;
}

/// Sessions, one [`SessionRecord`] per remote device.
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
/// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
/// # let bob_key = *bob.local().identity.public_key();
/// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
/// use ratchetbox::store::SessionStore;
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
/// assert_eq!(record.active().remote_identity(), &bob_key);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SessionStore {
    /// The sessions with `address`.
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
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::SessionStore;
    /// assert!(alice.store().session_record(&bob_addr)?.is_none());
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
    /// assert_eq!(record.active().remote_address(), &bob_addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError>;

    /// The devices of `account` that this device has a session with, ascending.
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
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::SessionStore;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// assert_eq!(alice.store().session_devices(&bob_id)?, [1]);
    /// assert!(alice.store().session_devices(&alice_id)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError>;
}

/// Group states, one [`GroupSession`] per group id.
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
/// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
/// # let bob_key = *bob.local().identity.public_key();
/// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
/// use ratchetbox::group::GroupSession;
/// use ratchetbox::store::GroupStore;
/// alice.save_group(GroupSession::create(&mut rng, b"family")?)?;
/// assert!(alice.store().group_session(b"family")?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait GroupStore {
    /// This device's state for the group `group_id`.
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
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::group::GroupSession;
    /// use ratchetbox::store::GroupStore;
    /// assert!(alice.store().group_session(b"family")?.is_none());
    /// alice.save_group(GroupSession::create(&mut rng, b"family")?)?;
    /// let group = alice.store().group_session(b"family")?.ok_or("no group")?;
    /// assert_eq!(group.group_id(), b"family");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError>;
}

/// All four stores, plus the one way to write: applying a change set atomically.
///
/// An app implements it over its database (one transaction per
/// [`apply`](Self::apply)), or uses [`MemoryStore`] and seals snapshots.
/// Code generic over it works with either:
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
/// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
/// # let bob_key = *bob.local().identity.public_key();
/// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
/// use ratchetbox::DeviceAddress;
/// use ratchetbox::store::{ProtocolStore, StoreError};
/// fn has_session(store: &impl ProtocolStore, device: &DeviceAddress) -> Result<bool, StoreError> {
///     Ok(store.session_record(device)?.is_some())
/// }
/// assert!(!has_session(alice.store(), &bob_addr)?);
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// assert!(has_session(alice.store(), &bob_addr)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ProtocolStore: IdentityStore + PreKeyStorage + SessionStore + GroupStore {
    /// Applies every change in `changes`, or none of them.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # let prekeys = store.prekeys_mut();
    /// # let (one_time_id, base_key) = prekeys.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// # let signed_prekey_id = store.prekeys().signed_prekey().id();
    /// # let kem_prekey_id = store.prekeys().last_resort_kem_prekey().id();
    /// # let spend = || Change::AcceptPreKeyMessage {
    /// #     signed_prekey_id, kem_prekey_id, one_time_prekey_id: Some(one_time_id), base_key,
    /// # };
    /// # use ratchetbox::{AccountId, TrustRecord};
    /// # let bob = AccountId::new(b"bob")?;
    /// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
    /// use ratchetbox::store::IdentityStore;
    /// let mut changes = ChangeSet::new();
    /// let record = Box::new(TrustRecord::first_seen(bob_key));
    /// changes.push(Change::SaveTrust { account: bob, record });
    /// changes.push(spend());
    /// store.apply(changes)?;
    /// assert!(store.trust_record(&bob)?.is_some());
    /// assert_eq!(store.prekeys().one_time_prekey_count(), 0); // spent
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] if nothing was applied: see its variants for what to do.
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError>;
}

/// One write. A store implementation matches on them in
/// [`ProtocolStore::apply`].
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
/// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
/// # use ratchetbox::{AccountId, TrustRecord};
/// # let bob = AccountId::new(b"bob")?;
/// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
/// use ratchetbox::store::IdentityStore;
/// let mut changes = ChangeSet::new();
/// let record = Box::new(TrustRecord::first_seen(bob_key));
/// changes.push(Change::SaveTrust { account: bob, record });
/// store.apply(changes)?;
/// assert_eq!(store.trust_record(&bob)?.map(|r| *r.identity()), Some(bob_key));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// A store implementation takes it apart by iterating:
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
/// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
/// # use ratchetbox::{AccountId, TrustRecord};
/// # let bob = AccountId::new(b"bob")?;
/// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
/// use ratchetbox::DeviceAddress;
/// let address = DeviceAddress::new(bob, 2);
/// let mut changes = ChangeSet::new();
/// changes.push(Change::DeleteSessions { address });
/// for change in changes {
///     match change {
///         Change::DeleteSessions { address: gone } => assert_eq!(gone, address),
///         _ => unreachable!(),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

impl ChangeSet {
    /// An empty change set.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// assert!(ChangeSet::new().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a change.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # use ratchetbox::{AccountId, TrustRecord};
    /// # let bob = AccountId::new(b"bob")?;
    /// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
    /// use ratchetbox::DeviceAddress;
    /// let mut changes = ChangeSet::new();
    /// changes.push(Change::DeleteSessions { address: DeviceAddress::new(bob, 2) });
    /// assert_eq!(changes.changes().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// The changes, in the order they were made.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # use ratchetbox::{AccountId, TrustRecord};
    /// # let bob = AccountId::new(b"bob")?;
    /// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
    /// use ratchetbox::DeviceAddress;
    /// let mut changes = ChangeSet::new();
    /// let record = Box::new(TrustRecord::first_seen(bob_key));
    /// changes.push(Change::SaveTrust { account: bob, record });
    /// changes.push(Change::DeleteSessions { address: DeviceAddress::new(bob, 2) });
    /// let kinds = changes.changes();
    /// assert!(matches!(kinds, [Change::SaveTrust { .. }, Change::DeleteSessions { .. }]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether there is nothing to write.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # use ratchetbox::store::{Change, ChangeSet, MemoryStore, ProtocolStore, StoreError};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// # use ratchetbox::{AccountId, TrustRecord};
    /// # let bob = AccountId::new(b"bob")?;
    /// # let bob_key = *IdentityKeyPair::generate(&mut rng).public_key();
    /// use ratchetbox::DeviceAddress;
    /// let mut changes = ChangeSet::new();
    /// assert!(changes.is_empty());
    /// changes.push(Change::DeleteSessions { address: DeviceAddress::new(bob, 2) });
    /// assert!(!changes.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
