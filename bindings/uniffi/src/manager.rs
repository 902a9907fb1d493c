//! The session manager: sessions with every device of every contact, trust,
//! safety numbers, groups, and state at rest.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ratchetbox::at_rest;
use ratchetbox::devices;
use ratchetbox::group::GroupSession;
use ratchetbox::store::{GroupStore, MemoryStore};
use ratchetbox::{PreKeyBundle, PreKeyMessage, PreKeyStore, Responder, TrustState, os_rng};

use crate::device::{Device, SafetyNumber, StorageKey};
use crate::error::RatchetboxError;
use crate::records::{self, Decrypted, OutgoingMessage, SessionStarted, Trust};
use crate::session::{AcceptedSession, Session};
use crate::store::{AnyStore, HostStore, KeyValueStore};

/// The slot a sealed in-memory store is bound to.
const STORE_SLOT: &[u8] = b"device store";

/// One device's sessions with all devices of all contacts (and of its own
/// account), over a store. Every operation reads through the store and writes
/// one atomic batch; on any error nothing was written (except that a key
/// change which blocks is recorded).
///
/// Thread-safe: calls on one manager are serialized by a lock.
#[derive(uniffi::Object)]
pub struct SessionManager {
    inner: Mutex<devices::SessionManager<AnyStore>>,
}

impl SessionManager {
    fn lock(&self) -> MutexGuard<'_, devices::SessionManager<AnyStore>> {
        // The core applies each operation's writes at once and only after it
        // succeeded, so even a panic mid-operation leaves consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wrap(manager: devices::SessionManager<AnyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(manager),
        })
    }
}

#[uniffi::export]
impl SessionManager {
    /// A manager for `device` over a new in-memory store with fresh prekeys.
    /// Persist it with [`seal_store`](Self::seal_store) and
    /// [`restore`](Self::restore).
    ///
    /// # Errors
    /// Only if the device cannot be copied (it always can).
    #[uniffi::constructor]
    pub fn new(device: &Device) -> Result<Arc<Self>, RatchetboxError> {
        let local = device.local_copy()?;
        let prekeys = PreKeyStore::generate(&mut os_rng(), &local.identity, local.device_id);
        let store = AnyStore::Memory(MemoryStore::new(prekeys));
        Ok(Self::wrap(devices::SessionManager::new(local, store)))
    }

    /// A manager for `device` over a store the app implements. Every value is
    /// sealed under `storage_key` before it reaches the store. On first use
    /// the store receives fresh prekeys.
    ///
    /// # Errors
    /// `StorageWrongKey` if the stored prekeys do not open under `storage_key`;
    /// `InvalidInput` if they belong to another device id;
    /// `StoreUnavailable` if the store raised.
    #[uniffi::constructor]
    pub fn with_store(
        device: &Device,
        store: Arc<dyn KeyValueStore>,
        storage_key: Arc<StorageKey>,
    ) -> Result<Arc<Self>, RatchetboxError> {
        let local = device.local_copy()?;
        let new_prekeys = || PreKeyStore::generate(&mut os_rng(), &local.identity, local.device_id);
        let store = HostStore::open(store, storage_key, new_prekeys, local.device_id)?;
        let store = AnyStore::Host(store);
        Ok(Self::wrap(devices::SessionManager::new(local, store)))
    }

    /// A manager for `device` over an in-memory store sealed by
    /// [`seal_store`](Self::seal_store).
    ///
    /// # Errors
    /// `StorageWrongKey` for a wrong key or an altered blob; `StorageCorrupt`
    /// for anything else that is not a sealed store; `InvalidInput` if the
    /// store belongs to another device id.
    #[uniffi::constructor]
    pub fn restore(
        device: &Device,
        key: &StorageKey,
        sealed_store: Vec<u8>,
    ) -> Result<Arc<Self>, RatchetboxError> {
        let local = device.local_copy()?;
        let store: MemoryStore = at_rest::open(&key.key, STORE_SLOT, &sealed_store)?;
        if store.prekeys().device_id() != local.device_id {
            return Err(RatchetboxError::invalid(
                "the store belongs to another device",
            ));
        }
        let store = AnyStore::Memory(store);
        Ok(Self::wrap(devices::SessionManager::new(local, store)))
    }

    /// The in-memory store sealed under `key` (sessions, prekeys, trust,
    /// groups). Seal the device too ([`Device::seal`]).
    ///
    /// # Errors
    /// `InvalidInput` for a manager over a host store (it persists itself).
    pub fn seal_store(&self, key: &StorageKey) -> Result<Vec<u8>, RatchetboxError> {
        match self.lock().store() {
            AnyStore::Memory(store) => {
                Ok(at_rest::seal(&mut os_rng(), &key.key, STORE_SLOT, store))
            }
            AnyStore::Host(_) => Err(RatchetboxError::invalid(
                "a host store persists itself; there is nothing to seal",
            )),
        }
    }

    /// A new prekey bundle of this device to publish: it carries a fresh
    /// one-time prekey and a fresh one-time ML-KEM-768 prekey, so the server
    /// must hand each bundle out once.
    ///
    /// # Errors
    /// `Protocol` if the prekey store is full; store errors.
    pub fn new_bundle(&self) -> Result<Vec<u8>, RatchetboxError> {
        let mut manager = self.lock();
        let identity = *manager.local().identity.public_key();
        let local = manager.local().identity.encode();
        let pair = ratchetbox::IdentityKeyPair::decode(&local)?;
        manager.store_mut().update_prekeys(|prekeys| {
            let rng = &mut os_rng();
            let one_time = prekeys.generate_one_time_prekeys(rng, 1)?;
            let kem = prekeys.generate_one_time_kem_prekeys(rng, &pair, 1)?;
            let (Some((id, _)), Some(kem)) = (one_time.first(), kem.first()) else {
                return Err(RatchetboxError::invalid("no prekey generated"));
            };
            let bundle =
                PreKeyBundle::from_store_with_kem(&identity, prekeys, Some(*id), Some(*kem));
            Ok(bundle.encode())
        })
    }

    /// Starts a session with the device a contact's (or this account's other
    /// device's) bundle describes, after checking its signature and the
    /// identity-change policy.
    ///
    /// # Errors
    /// `Decode` for malformed bytes; `InvalidSignature`; `UntrustedIdentity`
    /// if the key changed away from a verified one (the change is recorded);
    /// `IdentityMismatch` for an own-account bundle under another identity;
    /// `SelfSend` for this device's own bundle; store errors.
    pub fn process_bundle(
        &self,
        account: Vec<u8>,
        bundle: Vec<u8>,
    ) -> Result<SessionStarted, RatchetboxError> {
        let account = records::account(&account)?;
        let bundle = PreKeyBundle::decode(&bundle)?;
        let started = self
            .lock()
            .process_bundle(&mut os_rng(), &account, bundle)?;
        Ok(started.into())
    }

    /// Encrypts `plaintext` for every device of `to` (the ids in `to_devices`)
    /// and every other device of this account (`own_devices`): one message per
    /// device. The lists are the ones the server last gave; they must match
    /// the sessions held.
    ///
    /// # Errors
    /// `DeviceListMismatch` naming missing and stale devices;
    /// `UntrustedIdentity` while a key change blocks; store errors.
    #[uniffi::method(default(own_devices = []))]
    pub fn encrypt(
        &self,
        to: &[u8],
        plaintext: &[u8],
        to_devices: Vec<u32>,
        own_devices: Vec<u32>,
    ) -> Result<Vec<OutgoingMessage>, RatchetboxError> {
        let to = records::account(to)?;
        let outgoing =
            self.lock()
                .encrypt(&mut os_rng(), &to, plaintext, &to_devices, &own_devices)?;
        Ok(outgoing.into_iter().map(Into::into).collect())
    }

    /// The single-device fast path of [`encrypt`](Self::encrypt): encrypts
    /// `plaintext` for device `device_id` of `to` and returns just that
    /// message, when the server lists exactly that one device for `to` and
    /// this account has no other device. It is `encrypt(to, plaintext,
    /// [device_id], [])` with the same checks (trust, device lists), in one
    /// call that returns bytes.
    ///
    /// # Errors
    /// As `encrypt`: `DeviceListMismatch` if `to` has sessions with other
    /// devices or this account with its own other devices (then use
    /// `encrypt`); `UntrustedIdentity`; store errors.
    pub fn encrypt_to_device(
        &self,
        to: &[u8],
        device_id: u32,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, RatchetboxError> {
        let to = records::account(to)?;
        let mut outgoing = self
            .lock()
            .encrypt(&mut os_rng(), &to, plaintext, &[device_id], &[])?;
        match (outgoing.pop(), outgoing.is_empty()) {
            (Some(message), true) => Ok(message.message),
            _ => Err(RatchetboxError::Protocol {
                reason: "expected exactly one outgoing message".into(),
            }),
        }
    }

    /// Decrypts a message the server says came from `sender_account` /
    /// `sender_device`.
    ///
    /// # Errors
    /// `Decode` for malformed bytes; `DuplicateMessage`; `NeedsFreshSession`
    /// when there is no session, or (`diverged`) when no session held
    /// decrypts a ratchet message — truncated, forged or from lost state look
    /// alike, and the sessions are unchanged; `DecryptionFailed` for a prekey
    /// message that does not decrypt; `UntrustedIdentity` for a new session under a
    /// blocked key (nothing spent: decrypt again after accepting it);
    /// `RepeatedPreKeyMessage`; `UnknownPreKey`; store errors.
    pub fn decrypt(
        &self,
        sender_account: &[u8],
        sender_device: u32,
        message: &[u8],
    ) -> Result<Decrypted, RatchetboxError> {
        let from = records::address(sender_account, sender_device)?;
        Ok(self.lock().decrypt(&from, message)?.into())
    }

    /// Accepts the first (prekey) message of a raw [`Session`] a peer started
    /// from one of this manager's bundles: spends the prekeys it names, as
    /// `decrypt` would, and returns the session and the plaintext. The session
    /// is not kept in this manager's store: the app keeps and seals it.
    ///
    /// If an identity key is recorded for `sender_account` (or it is this
    /// account), the initiator must use it: a blocked key raises
    /// `UntrustedIdentity`, any other key `IdentityMismatch`. Nothing is
    /// recorded for a contact never seen: check the session's
    /// `remote_identity`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad account id; `Decode` for bytes that are not a
    /// prekey message; `RepeatedPreKeyMessage`; `UnknownPreKey`;
    /// `DecryptionFailed`; `UntrustedIdentity`; `IdentityMismatch`; store
    /// errors. On any error no prekey is spent.
    pub fn accept_session(
        &self,
        sender_account: &[u8],
        sender_device: u32,
        message: &[u8],
    ) -> Result<AcceptedSession, RatchetboxError> {
        let from = records::address(sender_account, sender_device)?;
        let message = PreKeyMessage::parse(message)?;
        let mut manager = self.lock();
        let local = devices::LocalDevice::decode(&manager.local().encode())?;
        let expected = if *from.account() == local.account {
            Some(*local.identity.public_key())
        } else {
            match manager.trust_record(from.account())? {
                Some(record) => {
                    if let TrustState::Changed {
                        previous,
                        was_verified: true,
                    } = record.state()
                    {
                        return Err(RatchetboxError::UntrustedIdentity {
                            account: sender_account.to_vec(),
                            previous_identity: previous.to_bytes().to_vec(),
                            new_identity: record.identity().to_bytes().to_vec(),
                        });
                    }
                    Some(*record.identity())
                }
                None => None,
            }
        };
        let (session, plaintext) = manager.store_mut().update_prekeys(|prekeys| {
            let mut responder = Responder::new(&local, prekeys);
            if let Some(expected) = &expected {
                responder = responder.expect_initiator(expected);
            }
            Ok(responder.accept(&from, &message)?)
        })?;
        Ok(AcceptedSession {
            session: Session::wrap(session),
            plaintext,
        })
    }

    /// The devices of `account` this device has sessions with, ascending.
    ///
    /// # Errors
    /// `InvalidInput` for a bad account id; store errors.
    pub fn session_devices(&self, account: Vec<u8>) -> Result<Vec<u32>, RatchetboxError> {
        let account = records::account(&account)?;
        Ok(self.lock().session_devices(&account)?)
    }

    /// Deletes the sessions with a device the account no longer has.
    ///
    /// # Errors
    /// `InvalidInput` for a bad account id; store errors.
    pub fn remove_device(&self, account: Vec<u8>, device_id: u32) -> Result<(), RatchetboxError> {
        let address = records::address(&account, device_id)?;
        Ok(self.lock().remove_device(&address)?)
    }

    /// The recorded identity key of a contact and its trust level, if any key
    /// was ever seen.
    ///
    /// # Errors
    /// `InvalidInput` for a bad account id; store errors.
    pub fn trust(&self, account: Vec<u8>) -> Result<Option<Trust>, RatchetboxError> {
        let account = records::account(&account)?;
        let record = self.lock().trust_record(&account)?;
        Ok(record.as_ref().map(Trust::from))
    }

    /// The safety number with a contact, for its most recently seen key.
    ///
    /// # Errors
    /// `UnknownContact` if no key was recorded; store errors.
    pub fn safety_number(&self, account: Vec<u8>) -> Result<Arc<SafetyNumber>, RatchetboxError> {
        let account = records::account(&account)?;
        Ok(SafetyNumber::new(self.lock().safety_number(&account)?))
    }

    /// The user compared safety numbers for `identity_key` (32 bytes): mark it
    /// verified. A later change of this key blocks until accepted.
    ///
    /// # Errors
    /// `IdentityMismatch` if it is not the recorded key; `UnknownContact`.
    pub fn mark_verified(
        &self,
        account: Vec<u8>,
        identity_key: Vec<u8>,
    ) -> Result<(), RatchetboxError> {
        let account = records::account(&account)?;
        let key = records::identity_key(&identity_key)?;
        Ok(self.lock().mark_verified(&account, &key)?)
    }

    /// The user accepted a changed key (32 bytes): it stops blocking and
    /// becomes unverified. Process the contact's bundle again afterwards.
    ///
    /// # Errors
    /// `IdentityMismatch` if it is not the recorded key; `UnknownContact`.
    pub fn accept_identity(
        &self,
        account: Vec<u8>,
        identity_key: Vec<u8>,
    ) -> Result<(), RatchetboxError> {
        let account = records::account(&account)?;
        let key = records::identity_key(&identity_key)?;
        Ok(self.lock().accept_identity(&account, &key)?)
    }

    /// Joins (or creates) group `group_id` with a fresh sending chain, and
    /// returns its distribution message: send it to every member device over
    /// 1:1 sessions ([`encrypt`](Self::encrypt)), never in the clear.
    ///
    /// # Errors
    /// `InvalidInput` if this device already has state for the group;
    /// `Decode` for an empty or over-long group id; store errors.
    pub fn create_group(&self, group_id: Vec<u8>) -> Result<Vec<u8>, RatchetboxError> {
        let mut manager = self.lock();
        if manager.store().group_session(&group_id)?.is_some() {
            return Err(RatchetboxError::invalid(
                "this device is already in the group",
            ));
        }
        let session = GroupSession::create(&mut os_rng(), &group_id)?;
        let distribution = session.distribution().to_vec();
        manager.save_group(session)?;
        Ok(distribution)
    }

    /// This device's current distribution for a group (for a member who
    /// joined later).
    ///
    /// # Errors
    /// `UnknownGroup`; store errors.
    pub fn group_distribution(&self, group_id: Vec<u8>) -> Result<Vec<u8>, RatchetboxError> {
        let distribution = self
            .lock()
            .with_group(&group_id, |group| Ok(group.distribution().to_vec()))?;
        Ok(distribution)
    }

    /// Records a member device's distribution (received over a 1:1 session
    /// from `sender_account` / `sender_device`).
    ///
    /// # Errors
    /// `UnknownGroup`; `Decode`; `WrongGroup`; `NotAMember` for a removed
    /// account; store errors.
    pub fn process_group_distribution(
        &self,
        group_id: Vec<u8>,
        sender_account: Vec<u8>,
        sender_device: u32,
        distribution: Vec<u8>,
    ) -> Result<(), RatchetboxError> {
        let sender = records::address(&sender_account, sender_device)?;
        Ok(self.lock().with_group(&group_id, |group| {
            group.process_distribution(sender.as_address(), &distribution)
        })?)
    }

    /// Encrypts and signs a group message once for all members.
    ///
    /// # Errors
    /// `UnknownGroup`; `Protocol` if the chain is exhausted; store errors.
    pub fn group_encrypt(
        &self,
        group_id: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, RatchetboxError> {
        Ok(self
            .lock()
            .with_group(&group_id, |group| group.encrypt(&mut os_rng(), &plaintext))?)
    }

    /// Verifies and decrypts a group message from `sender_account` /
    /// `sender_device` (the address the envelope layer authenticated).
    ///
    /// # Errors
    /// `UnknownGroup`; `Decode`; `WrongGroup`; `NotAMember`;
    /// `InvalidSignature`; `DuplicateMessage`; `DecryptionFailed`.
    pub fn group_decrypt(
        &self,
        group_id: Vec<u8>,
        sender_account: Vec<u8>,
        sender_device: u32,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, RatchetboxError> {
        let sender = records::address(&sender_account, sender_device)?;
        Ok(self.lock().with_group(&group_id, |group| {
            group.decrypt(sender.as_address(), &message)
        })?)
    }

    /// Removes every device of `account` from the group and rotates this
    /// device's chain; returns the new distribution for the remaining members
    /// (each of them does the same).
    ///
    /// # Errors
    /// `UnknownGroup`; store errors.
    pub fn remove_group_member(
        &self,
        group_id: Vec<u8>,
        account: Vec<u8>,
    ) -> Result<Vec<u8>, RatchetboxError> {
        Ok(self.lock().with_group(&group_id, |group| {
            Ok(group.remove_member(&mut os_rng(), &account)?.to_vec())
        })?)
    }
}
