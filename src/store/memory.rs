//! The in-memory store, for tests, examples and apps that persist a snapshot.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use super::SessionRecord;
use super::{
    Change, ChangeSet, GroupStore, IdentityStore, PreKeyStorage, ProtocolStore, SessionStore,
    StoreError,
};
use crate::account::{AccountId, DeviceAddress};
use crate::codec::{Reader, Writer};
use crate::crypto::PublicKey;
use crate::error::DecodeError;
use crate::group::GroupSession;
use crate::identity::DeviceId;
use crate::prekey::{KemPreKey, OneTimePreKey, PreKeyId, PreKeyStore, SignedPreKey};
use crate::sealed::Address;
use crate::trust::TrustRecord;

const MEMORY_STORE_TAG: u8 = 0x57;
const MEMORY_STORE_VERSION: u8 = 1;

/// A [`ProtocolStore`] in memory. Records are kept live and handed out as
/// copies, so the message path decodes nothing; a change set is the only way
/// anything changes.
///
/// [`encode`](Self::encode) snapshots the whole store; seal the snapshot with
/// [`at_rest::seal`](crate::at_rest::seal) (kind
/// [`StateKind::DeviceStore`](crate::at_rest::StateKind::DeviceStore)).
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
/// use ratchetbox::at_rest::{self, StorageKey};
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"device store", alice.store());
///
/// let restored: MemoryStore = at_rest::open(&key, b"device store", &blob)?;
/// assert_eq!(restored.session_addresses().collect::<Vec<_>>(), [&bob_addr]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryStore {
    prekeys: PreKeyStore,
    trust: BTreeMap<AccountId, TrustRecord>,
    sessions: BTreeMap<DeviceAddress, SessionRecord>,
    groups: BTreeMap<Vec<u8>, GroupSession>,
}

impl MemoryStore {
    /// A store holding this device's prekeys and nothing else yet.
    ///
    /// ```
    /// use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// use ratchetbox::store::MemoryStore;
    /// let mut rng = ratchetbox::os_rng();
    /// let identity = IdentityKeyPair::generate(&mut rng);
    /// let store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
    /// assert_eq!(store.prekeys().device_id(), 1);
    /// assert_eq!(store.session_addresses().count(), 0);
    /// ```
    pub fn new(prekeys: PreKeyStore) -> Self {
        Self {
            prekeys,
            trust: BTreeMap::new(),
            sessions: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// This device's prekeys (to publish a bundle).
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
    /// let prekeys = bob.store().prekeys();
    /// let bundle = PreKeyBundle::from_store(&bob_key, prekeys, None);
    /// assert_eq!(bundle.device_id(), prekeys.device_id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prekeys(&self) -> &PreKeyStore {
        &self.prekeys
    }

    /// This device's prekeys, to replenish one-time prekeys or rotate the signed prekey.
    ///
    /// Change them only between manager operations (through
    /// [`SessionManager::store_mut`](crate::devices::SessionManager::store_mut)).
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
    /// let mut store = bob.into_parts().1;
    /// let upload = store.prekeys_mut().generate_one_time_prekeys(&mut rng, 3)?;
    /// assert_eq!(upload.len(), 3);
    /// assert_eq!(store.prekeys().one_time_prekey_count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prekeys_mut(&mut self) -> &mut PreKeyStore {
        &mut self.prekeys
    }

    /// Every trust record, by account (for a contact list with lock icons).
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
    /// use ratchetbox::TrustState;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let records: Vec<_> = alice.store().trust_records().collect();
    /// assert_eq!(records.len(), 1);
    /// assert_eq!((records[0].0, records[0].1.state()), (&bob_id, &TrustState::Unverified));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_records(&self) -> impl Iterator<Item = (&AccountId, &TrustRecord)> {
        self.trust.iter()
    }

    /// Every remote device with sessions, in address order.
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
    /// assert_eq!(alice.store().session_addresses().count(), 0);
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// assert_eq!(alice.store().session_addresses().collect::<Vec<_>>(), [&bob_addr]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_addresses(&self) -> impl Iterator<Item = &DeviceAddress> {
        self.sessions.keys()
    }

    /// Snapshots the store (SPEC.md §13.3). Holds secrets: seal it
    /// ([`at_rest::seal`](crate::at_rest::seal) does both).
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
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let snapshot = alice.store().encode();
    /// let copy = MemoryStore::decode(&snapshot)?;
    /// assert_eq!(copy.session_addresses().collect::<Vec<_>>(), [&bob_addr]);
    /// assert_eq!(&copy.encode()[..], &snapshot[..]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let prekeys = self.prekeys.encode();
        let mut w = Writer::with_capacity(64 + prekeys.len());
        w.u8(MEMORY_STORE_TAG).u8(MEMORY_STORE_VERSION);
        w.u32(prekeys.len() as u32).bytes(&prekeys);
        w.u32(self.trust.len() as u32);
        for (account, record) in &self.trust {
            let bytes = record.encode();
            w.u8(account.as_bytes().len() as u8)
                .bytes(account.as_bytes())
                .u32(bytes.len() as u32)
                .bytes(&bytes);
        }
        w.u32(self.sessions.len() as u32);
        for (address, record) in &self.sessions {
            let record = record.encode();
            let account = address.account().as_bytes();
            w.u8(account.len() as u8)
                .bytes(account)
                .u32(address.device_id())
                .u32(record.len() as u32)
                .bytes(&record);
        }
        w.u32(self.groups.len() as u32);
        for group in self.groups.values() {
            let state = group.encode();
            w.u32(state.len() as u32).bytes(&state);
        }
        Zeroizing::new(w.into_vec())
    }

    /// Restores what [`encode`](Self::encode) produced. Every record is
    /// decoded once to check it.
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
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let snapshot = alice.store().encode();
    /// let restored = MemoryStore::decode(&snapshot)?;
    /// assert_eq!(restored.trust_records().count(), 1);
    /// assert!(MemoryStore::decode(&snapshot[..snapshot.len() - 1]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed snapshot or any malformed record in
    /// it. A snapshot that was sealed authenticates, so this means it was
    /// written by an incompatible version: restore a backup, or re-register
    /// (or re-link) the device; report it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(MEMORY_STORE_TAG)?;
        let version = r.u8("version")?;
        if version != MEMORY_STORE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let len = r.u32("prekeys length")? as usize;
        let prekeys = PreKeyStore::decode(r.take(len, "prekeys")?)?;
        let mut store = Self::new(prekeys);

        // Counts are not trusted for allocation: every entry consumes input.
        // Keys must be strictly increasing, so the snapshot is canonical.
        for _ in 0..r.u32("trust record count")? {
            let account = read_account(&mut r)?;
            let len = r.u32("trust record length")? as usize;
            let record = TrustRecord::decode(r.take(len, "trust record")?)?;
            if store
                .trust
                .last_key_value()
                .is_some_and(|(last, _)| *last >= account)
            {
                return Err(DecodeError::InvalidValue {
                    field: "trust record order",
                });
            }
            store.trust.insert(account, record);
        }
        for _ in 0..r.u32("session record count")? {
            let account = read_account(&mut r)?;
            let address = DeviceAddress::new(account, r.u32("device id")?);
            let len = r.u32("session record length")? as usize;
            let record = SessionRecord::decode(r.take(len, "session record")?)?;
            if store
                .sessions
                .last_key_value()
                .is_some_and(|(last, _)| *last >= address)
            {
                return Err(DecodeError::InvalidValue {
                    field: "session record order",
                });
            }
            store.sessions.insert(address, record);
        }
        for _ in 0..r.u32("group count")? {
            let len = r.u32("group state length")? as usize;
            let bytes = r.take(len, "group state")?;
            let group = GroupSession::decode_record(bytes)?;
            let id = group.group_id().to_vec();
            if store
                .groups
                .last_key_value()
                .is_some_and(|(last, _)| *last >= id)
            {
                return Err(DecodeError::InvalidValue {
                    field: "group state order",
                });
            }
            store.groups.insert(id, group);
        }
        r.finish()?;
        Ok(store)
    }

    /// Checks a change set against the current contents; nothing is written.
    fn check(&self, changes: &ChangeSet) -> Result<(), StoreError> {
        let mut accepted = Vec::new();
        for change in changes.changes() {
            if let Change::AcceptPreKeyMessage {
                signed_prekey_id,
                kem_prekey_id,
                one_time_prekey_id,
                base_key,
            } = change
            {
                // A signed prekey expired since it was read counts as spent.
                let spent = one_time_prekey_id
                    .is_some_and(|id| self.prekeys.find_one_time_prekey(id).is_none())
                    || self.prekeys.find_kem_prekey(*kem_prekey_id).is_none()
                    || self.prekeys.find_signed_prekey(*signed_prekey_id).is_none();
                if spent
                    || self.prekeys.has_accepted_base_key(base_key)
                    || accepted.contains(base_key)
                {
                    return Err(StoreError::Conflict);
                }
                accepted.push(*base_key);
            }
        }
        Ok(())
    }
}

fn read_account(r: &mut Reader<'_>) -> Result<AccountId, DecodeError> {
    let len = usize::from(r.u8("account id length")?);
    Ok(AccountId::from_address(&Address::new(
        r.take(len, "account id")?,
        0,
    )?))
}

impl IdentityStore for MemoryStore {
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError> {
        Ok(self.trust.get(account).copied())
    }
}

impl PreKeyStorage for MemoryStore {
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError> {
        Ok(self
            .prekeys
            .find_signed_prekey(id)
            .map(SignedPreKey::duplicate))
    }

    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError> {
        Ok(self
            .prekeys
            .find_one_time_prekey(id)
            .map(OneTimePreKey::duplicate))
    }

    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError> {
        Ok(self
            .prekeys
            .find_kem_prekey(id)
            .map(|(key, _)| key.duplicate()))
    }

    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError> {
        Ok(self.prekeys.has_accepted_base_key(base_key))
    }
}

impl SessionStore for MemoryStore {
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.sessions.get(address).map(SessionRecord::duplicate))
    }

    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError> {
        let from = DeviceAddress::new(*account, 0);
        Ok(self
            .sessions
            .range(from..)
            .take_while(|(address, _)| address.account() == account)
            .map(|(address, _)| address.device_id())
            .collect())
    }
}

impl GroupStore for MemoryStore {
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        Ok(self.groups.get(group_id).map(GroupSession::duplicate))
    }
}

impl ProtocolStore for MemoryStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        self.check(&changes)?;
        // Past the check nothing below can fail, so the set applies whole.
        for change in changes {
            match change {
                Change::SaveTrust { account, record } => {
                    self.trust.insert(account, *record);
                }
                Change::SaveSessions { address, record } => {
                    self.sessions.insert(address, *record);
                }
                Change::DeleteSessions { address } => {
                    self.sessions.remove(&address);
                }
                Change::AcceptPreKeyMessage {
                    signed_prekey_id,
                    kem_prekey_id,
                    one_time_prekey_id,
                    base_key,
                } => {
                    self.prekeys.record_accepted(
                        signed_prekey_id,
                        kem_prekey_id,
                        one_time_prekey_id,
                        &base_key,
                    );
                }
                Change::SaveGroup { session } => {
                    self.groups.insert(session.group_id().to_vec(), *session);
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("prekeys", &self.prekeys)
            .field("trust_records", &self.trust.len())
            .field("session_records", &self.sessions.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;
    use crate::test_rng;

    #[test]
    fn accepting_under_an_expired_signed_prekey_is_a_conflict() {
        let mut rng = test_rng(9);
        let identity = IdentityKeyPair::generate(&mut rng);
        let mut store = MemoryStore::new(PreKeyStore::generate(&mut rng, &identity, 1));
        let prekeys = store.prekeys_mut();
        let (one_time, _) = prekeys
            .generate_one_time_prekeys(&mut rng, 1)
            .expect("fits")[0];
        prekeys
            .rotate_signed_prekey(&mut rng, &identity, 10)
            .expect("rotates");
        assert_eq!(prekeys.expire_retired_signed_prekeys(100, 10), 1);
        let before = store.encode();
        let accept = |signed_prekey_id| Change::AcceptPreKeyMessage {
            signed_prekey_id,
            kem_prekey_id: 2,
            one_time_prekey_id: Some(one_time),
            base_key: PublicKey::from_bytes([9; 32]).expect("canonical"),
        };
        let mut changes = ChangeSet::new();
        changes.push(accept(1));
        assert_eq!(store.apply(changes), Err(StoreError::Conflict));
        assert_eq!(*store.encode(), *before, "nothing applied");
        let mut changes = ChangeSet::new();
        changes.push(accept(2));
        assert_eq!(store.apply(changes), Ok(()));
        assert!(MemoryStore::decode(&store.encode()).is_ok());
    }
}
