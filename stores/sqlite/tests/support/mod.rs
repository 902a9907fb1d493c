//! One harness for both stores: devices over a [`MemoryStore`] or a
//! [`SqliteStore`] (a file in a fresh temporary directory), bundles as a
//! server hands them out, and restarts (a snapshot round trip for memory,
//! closing and reopening the file for SQLite).
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20::ChaCha20Rng;
use ratchetbox::devices::{LocalDevice, OutgoingMessage, SessionManager};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::store::{MemoryStore, ProtocolStore};
use ratchetbox::{AccountId, DeviceAddress, DeviceId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
use ratchetbox_sqlite::{DatabaseKey, SqliteStore};

/// A deterministic generator.
pub fn rng(seed: u64) -> ChaCha20Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x5c;
    ChaCha20Rng::from_seed(bytes)
}

/// The account id `name`.
pub fn account(name: &str) -> AccountId {
    AccountId::new(name.as_bytes()).unwrap()
}

/// The address of `device` of account `name`.
pub fn addr(name: &str, device: DeviceId) -> DeviceAddress {
    DeviceAddress::new(account(name), device)
}

/// The identity of account `name`, install `generation`.
pub fn identity(name: &str, generation: u8) -> IdentityKeyPair {
    let mut seed = [0x42u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 31] ^= b;
    }
    seed[31] = generation;
    IdentityKeyPair::from_seed(&seed)
}

/// The database key every test database uses.
pub fn db_key() -> DatabaseKey {
    DatabaseKey::from_bytes([0x33; 32])
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh empty directory.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rbx-sqlite-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store implementation the scenarios run against.
pub trait Backend {
    /// The store.
    type Store: ProtocolStore;
    /// A store for a new device.
    fn create(&mut self, local: &LocalDevice, prekeys: PreKeyStore) -> Self::Store;
    /// Reads the device's prekeys.
    fn read_prekeys<T>(store: &Self::Store, read: impl FnOnce(&PreKeyStore) -> T) -> T;
    /// Changes the device's prekeys (and persists them).
    fn update_prekeys<T>(store: &mut Self::Store, update: impl FnOnce(&mut PreKeyStore) -> T) -> T;
    /// The device after an app restart.
    fn restart(&mut self, device: SessionManager<Self::Store>) -> SessionManager<Self::Store>;
}

/// [`MemoryStore`]; a restart is a snapshot round trip.
pub struct Memory;

impl Backend for Memory {
    type Store = MemoryStore;
    fn create(&mut self, _: &LocalDevice, prekeys: PreKeyStore) -> MemoryStore {
        MemoryStore::new(prekeys)
    }
    fn read_prekeys<T>(store: &MemoryStore, read: impl FnOnce(&PreKeyStore) -> T) -> T {
        read(store.prekeys())
    }
    fn update_prekeys<T>(store: &mut MemoryStore, update: impl FnOnce(&mut PreKeyStore) -> T) -> T {
        update(store.prekeys_mut())
    }
    fn restart(&mut self, device: SessionManager<MemoryStore>) -> SessionManager<MemoryStore> {
        let (local, store) = device.into_parts();
        let store = MemoryStore::decode(&store.encode()).unwrap();
        SessionManager::new(local, store)
    }
}

/// [`SqliteStore`], one file per device in a temporary directory; a restart
/// closes the file and opens it again.
pub struct Sqlite {
    dir: TempDir,
    count: usize,
}

impl Sqlite {
    /// A backend in a fresh directory.
    pub fn new() -> Self {
        Self {
            dir: TempDir::new("scenario"),
            count: 0,
        }
    }
}

impl Backend for Sqlite {
    type Store = SqliteStore;
    fn create(&mut self, _local: &LocalDevice, prekeys: PreKeyStore) -> SqliteStore {
        self.count += 1;
        let path = self.dir.path().join(format!("device-{}.db", self.count));
        SqliteStore::create(&path, &db_key(), _local, prekeys).unwrap()
    }
    fn read_prekeys<T>(store: &SqliteStore, read: impl FnOnce(&PreKeyStore) -> T) -> T {
        store.with_prekeys(read).unwrap()
    }
    fn update_prekeys<T>(store: &mut SqliteStore, update: impl FnOnce(&mut PreKeyStore) -> T) -> T {
        store.update_prekeys(update).unwrap()
    }
    fn restart(&mut self, device: SessionManager<SqliteStore>) -> SessionManager<SqliteStore> {
        let (_, store) = device.into_parts();
        let path = store.path().unwrap().to_path_buf();
        drop(store);
        let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
        SessionManager::new(local, store)
    }
}

/// Device `device_id` of account `name` (install `generation`), with two
/// one-time prekeys.
pub fn device<B: Backend>(
    backend: &mut B,
    rng: &mut ChaCha20Rng,
    name: &str,
    device_id: DeviceId,
    generation: u8,
) -> SessionManager<B::Store> {
    let identity = identity(name, generation);
    let mut prekeys = PreKeyStore::generate(rng, &identity, device_id);
    prekeys.generate_one_time_prekeys(rng, 2).unwrap();
    let local = LocalDevice {
        account: account(name),
        device_id,
        identity,
    };
    let store = backend.create(&local, prekeys);
    SessionManager::new(local, store)
}

/// A fresh bundle of `device` with a new one-time prekey and one-time KEM
/// prekey, through its wire encoding.
pub fn bundle_of<B: Backend>(
    rng: &mut ChaCha20Rng,
    device: &mut SessionManager<B::Store>,
) -> PreKeyBundle {
    let identity = IdentityKeyPair::decode(&device.local().identity.encode()).unwrap();
    let bundle = B::update_prekeys(device.store_mut(), |prekeys| {
        let id = prekeys.generate_one_time_prekeys(rng, 1).unwrap()[0].0;
        let kem = prekeys
            .generate_one_time_kem_prekeys(rng, &identity, 1)
            .unwrap()[0];
        PreKeyBundle::from_store_with_kem(identity.public_key(), prekeys, Some(id), Some(kem))
    });
    PreKeyBundle::decode(&bundle.encode()).unwrap()
}

/// How many one-time prekeys `device` still holds.
pub fn one_time_count<B: Backend>(device: &SessionManager<B::Store>) -> usize {
    B::read_prekeys(device.store(), |p| p.one_time_prekey_count())
}

/// `from` starts a session with `to` from a fresh bundle of `to`.
pub fn introduce<B: Backend>(
    rng: &mut ChaCha20Rng,
    from: &mut SessionManager<B::Store>,
    to: &mut SessionManager<B::Store>,
) {
    let to_account = to.local().account;
    let bundle = bundle_of::<B>(rng, to);
    let started = from.process_bundle(rng, &to_account, bundle).unwrap();
    assert_eq!(started.address, to.local().address());
}

/// The one message of `outgoing` addressed to `to`.
pub fn message_for<'a>(outgoing: &'a [OutgoingMessage], to: &DeviceAddress) -> &'a [u8] {
    let mut found = outgoing.iter().filter(|o| o.address == *to);
    let message = found
        .next()
        .unwrap_or_else(|| panic!("no message for {to}"));
    assert!(found.next().is_none(), "two messages for {to}");
    &message.message
}

/// `from` sends `text` to the one device of `to`'s account; the message.
pub fn send<S: ProtocolStore>(
    rng: &mut ChaCha20Rng,
    from: &mut SessionManager<S>,
    to: &SessionManager<S>,
    text: &[u8],
) -> Vec<u8> {
    let to_address = to.local().address();
    let own: Vec<DeviceId> = vec![from.local().device_id];
    let out = from
        .encrypt(
            rng,
            &to_address.account().clone(),
            text,
            &[to_address.device_id()],
            &own,
        )
        .unwrap();
    message_for(&out, &to_address).to_vec()
}

/// `to` decrypts `message` from `from` and checks it reads `text`.
pub fn recv<S: ProtocolStore>(
    to: &mut SessionManager<S>,
    from: &SessionManager<S>,
    message: &[u8],
    text: &[u8],
) {
    let got = to
        .decrypt(&from.local().address(), message)
        .unwrap_or_else(|e| panic!("{} could not decrypt: {e:?}", to.local().address()));
    assert_eq!(&got.plaintext[..], text);
}
