//! Where a manager keeps its state: the core's in-memory store, or a store
//! the host language implements ([`KeyValueStore`]).
//!
//! The host store is a plain key-value map with one atomic batch write. All
//! protocol semantics stay in Rust: keys are named here, every value is a
//! core object's versioned encoding **sealed under a [`StorageKey`]** bound to
//! its key (so the host's database never sees a secret, and a value copied to
//! another key does not open), and the change sets of the core are turned into
//! one batch per operation.
//!
//! Costs: every read crosses the boundary once and opens (decrypts and
//! decodes) one value; a prekey message reads and rewrites the whole prekey
//! store (one value, including every unused one-time KEM prekey, about 2.4 KB
//! each). A steady-state encrypt or decrypt reads the trust record, the session
//! record and the device list, and writes one session record.
//!
//! [`StorageKey`]: crate::StorageKey

use std::cell::RefCell;
use std::sync::Arc;

use ratchetbox::at_rest::{self, Persist, StorageError};
use ratchetbox::group::GroupSession;
use ratchetbox::os_rng;
use ratchetbox::store::{
    Change, ChangeSet, GroupStore, IdentityStore, MemoryStore, PreKeyStorage, ProtocolStore,
    SessionRecord, SessionStore, StoreError,
};
use ratchetbox::{
    AccountId, DecodeError, DeviceAddress, DeviceId, KemPreKey, OneTimePreKey, PreKeyId,
    PreKeyStore, PublicKey, SignedPreKey, TrustRecord,
};

use crate::error::RatchetboxError;

/// A failure the host store reports (raise it from any method). Any other
/// exception a host method raises is reported the same way.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum HostStoreError {
    /// The storage could not be read or written; nothing was written.
    Unavailable {
        /// The host's explanation (logged, never shown to peers).
        reason: String,
    },
}

impl std::fmt::Display for HostStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable { reason } => write!(f, "host store unavailable: {reason}"),
        }
    }
}

impl std::error::Error for HostStoreError {}

impl From<uniffi::UnexpectedUniFFICallbackError> for HostStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Unavailable { reason: e.reason }
    }
}

/// One write of a batch: set `key` to `value`, or delete it when `value` is
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoreWrite {
    /// The key.
    pub key: String,
    /// The new value (opaque sealed bytes), or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// A key-value store the host language implements (a dict, a SQLite table,
/// a file per key). Values are opaque sealed bytes.
#[uniffi::export(foreign)]
pub trait KeyValueStore: Send + Sync {
    /// The value stored under `key`, if any.
    ///
    /// # Errors
    /// [`HostStoreError`] if the storage cannot be read.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, HostStoreError>;

    /// Every key that starts with `prefix`, in any order.
    ///
    /// # Errors
    /// [`HostStoreError`] if the storage cannot be read.
    fn keys_with_prefix(&self, prefix: String) -> Result<Vec<String>, HostStoreError>;

    /// Applies every write, in order, or none of them (one transaction).
    ///
    /// # Errors
    /// [`HostStoreError`] if nothing was written.
    fn commit(&self, writes: Vec<StoreWrite>) -> Result<(), HostStoreError>;
}

/// The key of the prekey store.
const PREKEYS_KEY: &str = "prekeys";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn trust_key(account: &AccountId) -> String {
    format!("trust/{}", hex(account.as_bytes()))
}

fn sessions_prefix(account: &AccountId) -> String {
    format!("session/{}/", hex(account.as_bytes()))
}

fn session_key(address: &DeviceAddress) -> String {
    format!(
        "{}{}",
        sessions_prefix(address.account()),
        address.device_id()
    )
}

fn group_key(group_id: &[u8]) -> String {
    format!("group/{}", hex(group_id))
}

fn storage_to_store(e: StorageError) -> StoreError {
    match e {
        StorageError::Decode(e) => StoreError::Corrupt(e),
        _ => StoreError::Corrupt(DecodeError::InvalidValue {
            field: "sealed store value (wrong storage key, or altered)",
        }),
    }
}

/// The host store, seen by the core as a [`ProtocolStore`].
pub(crate) struct HostStore {
    host: Arc<dyn KeyValueStore>,
    key: Arc<crate::StorageKey>,
}

std::thread_local! {
    /// The reason of the host's last failure on this thread. The core's store
    /// error carries no text; the host is called synchronously on the
    /// caller's thread, so the error raised to the caller picks it up here.
    static LAST_HOST_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Takes the reason of the host's last failure on this thread.
pub(crate) fn take_host_failure() -> Option<String> {
    LAST_HOST_FAILURE.with(|last| last.borrow_mut().take())
}

impl HostStore {
    /// Opens the host store for `prekeys_for` (its device id), creating the
    /// prekey store on first use.
    ///
    /// # Errors
    /// `StorageWrongKey` if the stored prekeys do not open under `key`;
    /// `InvalidInput` if they belong to another device id.
    pub(crate) fn open(
        host: Arc<dyn KeyValueStore>,
        key: Arc<crate::StorageKey>,
        new_prekeys: impl FnOnce() -> PreKeyStore,
        device_id: DeviceId,
    ) -> Result<Self, RatchetboxError> {
        let store = Self { host, key };
        let blob = store.host.get(PREKEYS_KEY.into())?;
        match blob {
            Some(blob) => {
                let prekeys: PreKeyStore =
                    at_rest::open(&store.key.key, PREKEYS_KEY.as_bytes(), &blob)?;
                if prekeys.device_id() != device_id {
                    return Err(RatchetboxError::invalid(
                        "the host store holds another device's prekeys",
                    ));
                }
            }
            None => store.save_prekeys(&new_prekeys())?,
        }
        Ok(store)
    }

    /// Records a host failure and reports it to the core.
    fn unavailable(&self, e: HostStoreError) -> StoreError {
        let HostStoreError::Unavailable { reason } = e;
        LAST_HOST_FAILURE.with(|last| *last.borrow_mut() = Some(reason));
        StoreError::Unavailable
    }

    fn read<T: Persist>(&self, key: String) -> Result<Option<T>, StoreError> {
        let Some(blob) = self
            .host
            .get(key.clone())
            .map_err(|e| self.unavailable(e))?
        else {
            return Ok(None);
        };
        at_rest::open(&self.key.key, key.as_bytes(), &blob)
            .map(Some)
            .map_err(storage_to_store)
    }

    fn write<T: Persist>(&self, key: String, value: &T) -> StoreWrite {
        let sealed = at_rest::seal(&mut os_rng(), &self.key.key, key.as_bytes(), value);
        StoreWrite {
            key,
            value: Some(sealed),
        }
    }

    /// The prekey store.
    pub(crate) fn prekeys(&self) -> Result<PreKeyStore, StoreError> {
        self.read(PREKEYS_KEY.into())?
            .ok_or(StoreError::Corrupt(DecodeError::InvalidValue {
                field: "prekey store missing",
            }))
    }

    /// Replaces the prekey store.
    pub(crate) fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<(), StoreError> {
        let write = self.write(PREKEYS_KEY.into(), prekeys);
        self.host
            .commit(vec![write])
            .map_err(|e| self.unavailable(e))
    }
}

impl IdentityStore for HostStore {
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError> {
        self.read(trust_key(account))
    }
}

impl PreKeyStorage for HostStore {
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError> {
        let prekeys = self.prekeys()?;
        let found = prekeys.find_signed_prekey(id).map(|k| k.encode());
        Ok(found
            .map(|bytes| SignedPreKey::decode(&bytes))
            .transpose()?)
    }

    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError> {
        let prekeys = self.prekeys()?;
        let found = prekeys.find_one_time_prekey(id).map(|k| k.encode());
        Ok(found
            .map(|bytes| OneTimePreKey::decode(&bytes))
            .transpose()?)
    }

    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError> {
        let prekeys = self.prekeys()?;
        let found = prekeys.find_kem_prekey(id).map(|(k, _)| k.encode());
        Ok(found.map(|bytes| KemPreKey::decode(&bytes)).transpose()?)
    }

    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError> {
        Ok(self.prekeys()?.has_accepted_base_key(base_key))
    }
}

impl SessionStore for HostStore {
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError> {
        self.read(session_key(address))
    }

    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError> {
        let prefix = sessions_prefix(account);
        let keys = self
            .host
            .keys_with_prefix(prefix.clone())
            .map_err(|e| self.unavailable(e))?;
        let mut devices = Vec::with_capacity(keys.len());
        for key in keys {
            let device = key
                .strip_prefix(&prefix)
                .and_then(|id| id.parse::<DeviceId>().ok())
                .ok_or(StoreError::Corrupt(DecodeError::InvalidValue {
                    field: "session key in the host store",
                }))?;
            devices.push(device);
        }
        devices.sort_unstable();
        devices.dedup();
        Ok(devices)
    }
}

impl GroupStore for HostStore {
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        self.read(group_key(group_id))
    }
}

impl ProtocolStore for HostStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        // A change set spends at most one prekey message's keys; read the
        // prekey store only then.
        let mut prekeys: Option<PreKeyStore> = None;
        for change in changes {
            match change {
                Change::SaveTrust { account, record } => {
                    writes.push(self.write(trust_key(&account), &*record));
                }
                Change::SaveSessions { address, record } => {
                    writes.push(self.write(session_key(&address), &*record));
                }
                Change::DeleteSessions { address } => writes.push(StoreWrite {
                    key: session_key(&address),
                    value: None,
                }),
                Change::AcceptPreKeyMessage {
                    signed_prekey_id,
                    kem_prekey_id,
                    one_time_prekey_id,
                    base_key,
                } => {
                    let store = match prekeys.as_mut() {
                        Some(store) => store,
                        None => prekeys.insert(self.prekeys()?),
                    };
                    if !store.record_accepted(
                        signed_prekey_id,
                        kem_prekey_id,
                        one_time_prekey_id,
                        &base_key,
                    ) {
                        return Err(StoreError::Conflict);
                    }
                }
                Change::SaveGroup { session } => {
                    writes.push(self.write(group_key(session.group_id()), &*session));
                }
                // A kind of change this version does not know cannot be
                // stored faithfully: write nothing.
                _ => return Err(StoreError::Conflict),
            }
        }
        if let Some(prekeys) = prekeys {
            writes.push(self.write(PREKEYS_KEY.into(), &prekeys));
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.host.commit(writes).map_err(|e| self.unavailable(e))
    }
}

impl From<HostStoreError> for RatchetboxError {
    fn from(e: HostStoreError) -> Self {
        let HostStoreError::Unavailable { reason } = e;
        Self::StoreUnavailable { reason }
    }
}

/// The store a manager runs over. One per manager, never moved after
/// construction, so the size of the in-memory variant does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyStore {
    /// The core's in-memory store (sealed as a whole by the app).
    Memory(MemoryStore),
    /// A host-implemented key-value store.
    Host(HostStore),
}

impl AnyStore {
    /// Runs `update` on the prekey store and saves the result.
    pub(crate) fn update_prekeys<T>(
        &mut self,
        update: impl FnOnce(&mut PreKeyStore) -> Result<T, RatchetboxError>,
    ) -> Result<T, RatchetboxError> {
        match self {
            Self::Memory(store) => update(store.prekeys_mut()),
            Self::Host(store) => {
                let mut prekeys = store.prekeys()?;
                let result = update(&mut prekeys)?;
                store.save_prekeys(&prekeys)?;
                Ok(result)
            }
        }
    }
}

impl IdentityStore for AnyStore {
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError> {
        match self {
            Self::Memory(s) => s.trust_record(account),
            Self::Host(s) => s.trust_record(account),
        }
    }
}

impl PreKeyStorage for AnyStore {
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError> {
        match self {
            Self::Memory(s) => s.signed_prekey(id),
            Self::Host(s) => s.signed_prekey(id),
        }
    }

    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError> {
        match self {
            Self::Memory(s) => s.one_time_prekey(id),
            Self::Host(s) => s.one_time_prekey(id),
        }
    }

    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError> {
        match self {
            Self::Memory(s) => s.kem_prekey(id),
            Self::Host(s) => s.kem_prekey(id),
        }
    }

    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.has_accepted_base_key(base_key),
            Self::Host(s) => s.has_accepted_base_key(base_key),
        }
    }
}

impl SessionStore for AnyStore {
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError> {
        match self {
            Self::Memory(s) => s.session_record(address),
            Self::Host(s) => s.session_record(address),
        }
    }

    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError> {
        match self {
            Self::Memory(s) => s.session_devices(account),
            Self::Host(s) => s.session_devices(account),
        }
    }
}

impl GroupStore for AnyStore {
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        match self {
            Self::Memory(s) => s.group_session(group_id),
            Self::Host(s) => s.group_session(group_id),
        }
    }
}

impl ProtocolStore for AnyStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.apply(changes),
            Self::Host(s) => s.apply(changes),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::{HostStoreError, KeyValueStore, StoreWrite};
    use crate::{Device, RatchetboxError, SessionManager, SessionUse, StorageKey};

    /// A transactional map, as a host store would be.
    #[derive(Default)]
    struct MapStore {
        data: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl MapStore {
        fn keys(&self) -> Vec<String> {
            self.data
                .lock()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default()
        }
    }

    impl KeyValueStore for MapStore {
        fn get(&self, key: String) -> Result<Option<Vec<u8>>, HostStoreError> {
            Ok(self.data.lock().ok().and_then(|d| d.get(&key).cloned()))
        }

        fn keys_with_prefix(&self, prefix: String) -> Result<Vec<String>, HostStoreError> {
            Ok(self
                .keys()
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .collect())
        }

        fn commit(&self, writes: Vec<StoreWrite>) -> Result<(), HostStoreError> {
            let mut data = self.data.lock().map_err(|_| HostStoreError::Unavailable {
                reason: "poisoned".into(),
            })?;
            for write in writes {
                match write.value {
                    Some(value) => data.insert(write.key, value),
                    None => data.remove(&write.key),
                };
            }
            Ok(())
        }
    }

    #[test]
    fn conversation_over_a_host_store() -> Result<(), RatchetboxError> {
        let host = Arc::new(MapStore::default());
        let key = StorageKey::from_bytes(vec![7; 32])?;
        let alice_device = Device::create(b"alice".to_vec(), 1)?;
        let alice = SessionManager::with_store(&alice_device, host.clone(), key.clone())?;
        let bob = SessionManager::new(&*Device::create(b"bob".to_vec(), 1)?)?;

        bob.process_bundle(b"alice".to_vec(), alice.new_bundle()?)?;
        let hello = bob.encrypt(b"alice", b"hello", vec![1], vec![])?;
        let got = alice.decrypt(b"bob", 1, &hello[0].message)?;
        assert_eq!(got.plaintext, b"hello");
        assert_eq!(got.session, SessionUse::Created);
        assert_eq!(host.keys(), ["prekeys", "session/626f62/1", "trust/626f62"]);

        // A restarted manager over the same store replies on the session.
        let again = SessionManager::with_store(&alice_device, host.clone(), key)?;
        let reply = again.encrypt(b"bob", b"hi", vec![1], vec![])?;
        let got = bob.decrypt(b"alice", 1, &reply[0].message)?;
        assert_eq!(got.plaintext, b"hi");
        assert_eq!(again.session_devices(b"bob".to_vec())?, [1]);

        // The prekey message cannot be read (or create a session) again.
        let replay = again.decrypt(b"bob", 1, &hello[0].message);
        assert_eq!(replay.err(), Some(RatchetboxError::DuplicateMessage));

        // Another key opens nothing.
        let wrong = StorageKey::from_bytes(vec![8; 32])?;
        let opened = SessionManager::with_store(&alice_device, host, wrong);
        assert_eq!(opened.err(), Some(RatchetboxError::StorageWrongKey));
        Ok(())
    }
}
