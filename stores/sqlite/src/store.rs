//! [`SqliteStore`]: the store traits over one SQLite file.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use ratchetbox::at_rest::{self, Persist, StateKind, StorageError};
use ratchetbox::devices::LocalDevice;
use ratchetbox::group::GroupSession;
use ratchetbox::rand_core::CryptoRng;
use ratchetbox::store::{
    Change, ChangeSet, GroupStore, IdentityStore, PreKeyStorage, ProtocolStore, SessionRecord,
    SessionStore, StoreError,
};
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, KemPreKey, OneTimePreKey, PreKeyId, PreKeyStore, PublicKey,
    SignedPreKey, TrustRecord,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::cache::{Cache, CacheStats, make_room};
use crate::keys::{DatabaseKey, Keys};
use crate::stager::Stager;
use crate::{SqliteError, schema};

/// How a store is opened.
///
/// ```
/// use std::time::Duration;
/// let options = ratchetbox_sqlite::Options::default()
///     .busy_timeout(Duration::from_millis(500))
///     .cache(true);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Options {
    busy_timeout: Duration,
    cache: bool,
    durability: Durability,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            cache: true,
            durability: Durability::PowerLoss,
        }
    }
}

/// What a commit that returned survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// A process crash and a power loss (`synchronous = FULL`: the log is
    /// fsynced at every commit). The default, and what a messenger needs:
    /// a sender whose state rolls back sends under message numbers its peer
    /// already used (and the peer drops them as duplicates), and a receiver
    /// that rolls back loses messages the server already deleted.
    PowerLoss,
    /// A process crash only (`synchronous = NORMAL`: the log is fsynced at
    /// checkpoints). A power loss may roll back the last commits. For
    /// measurement, and for state that is rebuilt anyway; not for sessions
    /// a message key depends on.
    ProcessCrash,
}

impl Options {
    /// How long a write waits for another connection's write lock before
    /// failing with [`SqliteError::Busy`] (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// What a commit survives (default [`Durability::PowerLoss`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether decoded session records and group states are kept in memory
    /// between operations (default on). Off, every read opens and decodes the
    /// row, which costs about 80–100 µs per session record; it exists to
    /// measure that.
    pub fn cache(mut self, on: bool) -> Self {
        self.cache = on;
        self
    }
}

/// A [`ProtocolStore`] in one SQLite file: every value sealed at rest, every
/// [`ChangeSet`] one transaction, the decoded records the message path needs
/// kept in memory.
///
/// The file is in WAL mode with `synchronous = FULL` unless
/// [`Options::durability`] says otherwise: a commit that returned survives a
/// process crash *and* a power loss (see the crate docs for why a messenger
/// wants that).
///
/// A store is `Send` but not `Sync`: one connection per thread. Several
/// connections (threads or processes) may share one file; each notices the
/// others' commits and drops its cache, and a session record or group state
/// written back after another connection changed it is refused
/// ([`SqliteError::Conflict`]).
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, PreKeyStore};
/// use ratchetbox::devices::{LocalDevice, SessionManager};
/// use ratchetbox_sqlite::{DatabaseKey, SqliteStore};
/// let mut rng = ratchetbox::os_rng();
/// let dir = std::env::temp_dir().join(format!("rbx-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("alice.db");
/// # let _ = std::fs::remove_file(&path);
/// let key = DatabaseKey::generate(&mut rng);
///
/// // First launch: create the device and its database.
/// let identity = IdentityKeyPair::generate(&mut rng);
/// let prekeys = PreKeyStore::generate(&mut rng, &identity, 1);
/// let local = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
/// SqliteStore::create(&path, &key, &local, prekeys)?;
///
/// // Every launch: open it and hand it to the manager.
/// let (local, store) = SqliteStore::open(&path, &key)?;
/// let manager = SessionManager::new(local, store);
/// assert_eq!(manager.local().account, AccountId::new(b"alice")?);
/// # drop(manager); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteStore {
    conn: Connection,
    keys: Keys,
    rng: Box<dyn CryptoRng + Send>,
    cache_on: bool,
    cache: RefCell<Cache>,
    staged: Stager,
    last_error: RefCell<Option<SqliteError>>,
}

const DEVICE_SLOT: &[u8] = b"device/local";
const PREKEYS_SLOT: &[u8] = b"device/prekeys";

impl SqliteStore {
    /// Creates the database at `path` (or initializes an empty file) for
    /// `local`, with its prekeys, sealed under `key`.
    ///
    /// # Errors
    /// [`SqliteError::AlreadyInitialized`] if the database already holds a
    /// device; [`SqliteError::NewerSchema`]; SQLite errors.
    pub fn create(
        path: impl AsRef<Path>,
        key: &DatabaseKey,
        local: &LocalDevice,
        prekeys: PreKeyStore,
    ) -> Result<Self, SqliteError> {
        Self::create_with(path, key, local, prekeys, Options::default())
    }

    /// [`create`](Self::create) with options.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with(
        path: impl AsRef<Path>,
        key: &DatabaseKey,
        local: &LocalDevice,
        prekeys: PreKeyStore,
        options: Options,
    ) -> Result<Self, SqliteError> {
        let mut store = Self::connect(path.as_ref(), key, options)?;
        let tx = store
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM device", [], |row| row.get(0))
            .optional()?;
        if exists.is_some() {
            return Err(SqliteError::AlreadyInitialized);
        }
        let device = at_rest::seal(&mut *store.rng, &store.keys.sealing, DEVICE_SLOT, local);
        let sealed = at_rest::seal(&mut *store.rng, &store.keys.sealing, PREKEYS_SLOT, &prekeys);
        tx.execute(
            "INSERT INTO device (id, local, prekeys, prekeys_gen) VALUES (1, ?1, ?2, 1)",
            params![device, sealed],
        )?;
        tx.commit()?;
        let cache = store.cache.get_mut();
        cache.prekeys = Some(prekeys);
        cache.prekeys_gen = 1;
        cache.data_version = data_version(&store.conn)?;
        Ok(store)
    }

    /// Opens the database at `path`: migrates an older schema, checks the key,
    /// and returns this device (to build a
    /// [`SessionManager`](ratchetbox::devices::SessionManager)) and the store.
    ///
    /// # Errors
    /// - [`SqliteError::WrongKey`] if `key` is not the database's key;
    /// - [`SqliteError::NewerSchema`] for a database of a newer crate version;
    /// - [`SqliteError::NotInitialized`] for a database without a device;
    /// - [`SqliteError::Corrupt`] / [`SqliteError::CorruptFile`] for an altered
    ///   row or a damaged file; other SQLite errors.
    pub fn open(
        path: impl AsRef<Path>,
        key: &DatabaseKey,
    ) -> Result<(LocalDevice, Self), SqliteError> {
        Self::open_with(path, key, Options::default())
    }

    /// [`open`](Self::open) with options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(
        path: impl AsRef<Path>,
        key: &DatabaseKey,
        options: Options,
    ) -> Result<(LocalDevice, Self), SqliteError> {
        let store = Self::connect(path.as_ref(), key, options)?;
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = store
            .conn
            .query_row(
                "SELECT local, prekeys, prekeys_gen FROM device",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let (device, prekeys, gen_) = row.ok_or(SqliteError::NotInitialized)?;
        let local = at_rest::open::<LocalDevice>(&store.keys.sealing, DEVICE_SLOT, &device);
        let opened = at_rest::open::<PreKeyStore>(&store.keys.sealing, PREKEYS_SLOT, &prekeys);
        // Two rows sealed independently: if neither opens, the key is wrong;
        // if one does, the other row is damaged.
        let (local, prekeys) = match (local, opened) {
            (Err(StorageError::WrongKeyOrCorrupted), Err(StorageError::WrongKeyOrCorrupted)) => {
                return Err(SqliteError::WrongKey);
            }
            (Err(reason), _) => {
                return Err(SqliteError::Corrupt {
                    table: "device",
                    reason,
                });
            }
            (_, Err(reason)) => {
                return Err(SqliteError::Corrupt {
                    table: "device",
                    reason,
                });
            }
            (Ok(local), Ok(prekeys)) => (local, prekeys),
        };
        {
            let mut cache = store.cache.borrow_mut();
            cache.prekeys = Some(prekeys);
            cache.prekeys_gen = gen_;
            cache.data_version = data_version(&store.conn)?;
        }
        Ok((local, store))
    }

    fn connect(path: &Path, key: &DatabaseKey, options: Options) -> Result<Self, SqliteError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(options.busy_timeout)?;
        // WAL: readers never block the writer, a commit is one append to the
        // log. FULL: the log is fsynced at every commit, so a commit that
        // returned survives power loss, not only a process crash.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        // (An in-memory database, for tests, has no log to keep.)
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(SqliteError::Sqlite(rusqlite::Error::InvalidQuery));
        }
        conn.execute_batch(match options.durability {
            Durability::PowerLoss => "PRAGMA synchronous = FULL;",
            Durability::ProcessCrash => "PRAGMA synchronous = NORMAL;",
        })?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn,
            keys: key.derive(),
            rng: Box::new(ratchetbox::os_rng()),
            cache_on: options.cache,
            cache: RefCell::new(Cache::default()),
            staged: Stager::default(),
            last_error: RefCell::new(None),
        })
    }

    /// The detailed error behind the last [`StoreError`] a trait method
    /// returned, if any (taking it clears it).
    pub fn take_last_error(&self) -> Option<SqliteError> {
        self.last_error.borrow_mut().take()
    }

    /// The database file's path.
    pub fn path(&self) -> Option<&Path> {
        self.conn.path().filter(|p| !p.is_empty()).map(Path::new)
    }

    /// Reads served from memory and rows decoded so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.borrow().stats
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn schema_version(&self) -> Result<i64, SqliteError> {
        schema::version(&self.conn)
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `Ok(())` if it reports `ok`.
    ///
    /// # Errors
    /// [`SqliteError::CorruptFile`] with SQLite's report otherwise.
    pub fn integrity_check(&self) -> Result<(), SqliteError> {
        let report: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if report == "ok" {
            Ok(())
        } else {
            Err(SqliteError::CorruptFile(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(report),
            )))
        }
    }

    /// Runs `read` on this device's prekeys (to publish a bundle).
    ///
    /// # Errors
    /// If the prekey row cannot be read.
    pub fn with_prekeys<T>(&self, read: impl FnOnce(&PreKeyStore) -> T) -> Result<T, SqliteError> {
        let mut cache = self.fresh_cache()?;
        load_prekeys(&self.conn, &self.keys, &mut cache)?;
        match &cache.prekeys {
            Some(prekeys) => Ok(read(prekeys)),
            None => Err(SqliteError::NotInitialized),
        }
    }

    /// Changes this device's prekeys (replenish one-time prekeys, rotate the
    /// signed prekey) and writes them in one transaction.
    ///
    /// # Errors
    /// As [`ProtocolStore::apply`]; nothing is written then.
    pub fn update_prekeys<T>(
        &mut self,
        update: impl FnOnce(&mut PreKeyStore) -> T,
    ) -> Result<T, SqliteError> {
        self.transaction(|w| {
            load_prekeys(w.tx, w.keys, w.cache)?;
            let prekeys = w
                .cache
                .prekeys
                .as_mut()
                .ok_or(SqliteError::NotInitialized)?;
            let result = update(prekeys);
            w.write_prekeys()?;
            Ok(result)
        })
    }

    /// Stages an application row to be written, sealed, in the same
    /// transaction as the next change set (and dropped with it if that fails).
    /// This is how an app makes its own bookkeeping — "message 17 delivered",
    /// "outgoing message queued" — commit atomically with the protocol state
    /// that produced it. Call [`clear_staged`](Self::clear_staged) when the
    /// operation fails before writing (a decrypt error).
    ///
    /// `name` is stored in the clear (it is the row's key); `value` is sealed.
    pub fn stage(&mut self, name: &[u8], value: &[u8]) {
        self.staged.stage(name, value);
    }

    /// Stages the deletion of an application row (see [`stage`](Self::stage)).
    pub fn stage_delete(&mut self, name: &[u8]) {
        self.staged.stage_delete(name);
    }

    /// Drops the staged application rows.
    pub fn clear_staged(&mut self) {
        self.staged.take();
    }

    /// A handle that stages rows for this store from where the store itself
    /// is out of reach: inside the closure of
    /// [`SessionManager::with_group`](ratchetbox::devices::SessionManager::with_group),
    /// whose output (a group ciphertext) can then be queued in the same
    /// transaction as the group state that produced it.
    pub fn stager(&self) -> Stager {
        self.staged.clone()
    }

    /// Writes the staged application rows now, in one transaction.
    ///
    /// # Errors
    /// As [`ProtocolStore::apply`].
    pub fn commit_staged(&mut self) -> Result<(), SqliteError> {
        self.apply_changes(ChangeSet::new())
    }

    /// An application row's value.
    ///
    /// # Errors
    /// [`SqliteError::Corrupt`] if the row does not open; SQLite errors.
    pub fn app_value(&self, name: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, SqliteError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT value FROM app WHERE name = ?1")?
            .query_row([name], |row| row.get(0))
            .optional()?;
        blob.map(|blob| {
            at_rest::open_bytes(
                &self.keys.sealing,
                StateKind::AppData,
                &app_slot(name),
                &blob,
            )
            .map_err(|reason| SqliteError::Corrupt {
                table: "app",
                reason,
            })
        })
        .transpose()
    }

    /// The names of the application rows starting with `prefix`, ascending.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn app_names(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, SqliteError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT name FROM app WHERE substr(name, 1, ?2) = ?1 ORDER BY name")?;
        let names = statement
            .query_map(params![prefix, prefix.len() as i64], |row| row.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(names)
    }

    /// The cache, dropped first if another connection committed since it
    /// was last checked.
    fn fresh_cache(&self) -> Result<RefMut<'_, Cache>, SqliteError> {
        let mut cache = self.cache.borrow_mut();
        let version = data_version(&self.conn)?;
        if version != cache.data_version {
            cache.clear();
            cache.data_version = version;
        }
        Ok(cache)
    }

    /// Records `error` for [`take_last_error`](Self::take_last_error) and
    /// returns its [`StoreError`].
    fn fail(&self, error: SqliteError) -> StoreError {
        let mapped = error.to_store_error();
        *self.last_error.borrow_mut() = Some(error);
        mapped
    }

    fn read_prekeys<T>(&self, read: impl FnOnce(&PreKeyStore) -> T) -> Result<T, StoreError> {
        self.with_prekeys(read).map_err(|e| self.fail(e))
    }

    fn open_row<T: Persist>(
        &self,
        table: &'static str,
        slot: &[u8],
        blob: &[u8],
    ) -> Result<T, SqliteError> {
        at_rest::open::<T>(&self.keys.sealing, slot, blob)
            .map_err(|reason| SqliteError::Corrupt { table, reason })
    }

    /// Runs `body` in an immediate (write-locked) transaction and commits.
    /// On any failure the prekey cache is dropped (it may hold uncommitted
    /// changes) and nothing is written.
    fn transaction<T>(
        &mut self,
        body: impl FnOnce(&mut Write<'_>) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        let Self {
            conn,
            keys,
            rng,
            cache,
            ..
        } = self;
        let cache = cache.get_mut();
        let result = (|| -> Result<T, SqliteError> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another connection may have committed since our last read.
            let version = data_version(&tx)?;
            if version != cache.data_version {
                cache.clear();
                cache.data_version = version;
            }
            let mut write = Write {
                tx: &tx,
                keys,
                rng: &mut **rng,
                cache: &mut *cache,
            };
            let value = body(&mut write)?;
            tx.commit()?;
            Ok(value)
        })();
        if result.is_err() {
            cache.prekeys = None;
        }
        result
    }

    /// Applies a change set and the staged application rows in one transaction.
    fn apply_changes(&mut self, changes: ChangeSet) -> Result<(), SqliteError> {
        let staged = self.staged.take();
        let mut sessions_done = Vec::new();
        let mut groups_done = Vec::new();
        let mut trust_done = Vec::new();
        let cache_on = self.cache_on;
        self.transaction(|w| {
            let mut prekeys_changed = false;
            if changes
                .changes()
                .iter()
                .any(|c| matches!(c, Change::AcceptPreKeyMessage { .. }))
            {
                load_prekeys(w.tx, w.keys, w.cache)?;
            }
            for change in changes {
                match change {
                    Change::SaveTrust { account, record } => {
                        let name = w.keys.row_name(b"trust", account.as_bytes());
                        let blob = w.seal(&slot(b"trust", &name, None), &*record);
                        w.tx.prepare_cached(
                            "INSERT OR REPLACE INTO trust (account, record) VALUES (?1, ?2)",
                        )?
                        .execute(params![&name[..], blob])?;
                        trust_done.push((account, *record));
                    }
                    Change::SaveSessions { address, record } => {
                        let gen_ = w.check_session_gen(&address)?;
                        let name = w.keys.row_name(b"account", address.account().as_bytes());
                        let device = address.device_id();
                        let blob = w.seal(&slot(b"sessions", &name, Some(device)), &*record);
                        w.tx.prepare_cached(
                            "INSERT OR REPLACE INTO sessions (account, device, gen, record)
                             VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![
                            &name[..],
                            device,
                            gen_ + 1,
                            blob
                        ])?;
                        sessions_done.retain(|(a, _)| *a != address);
                        sessions_done.push((address, Some((gen_ + 1, record))));
                    }
                    Change::DeleteSessions { address } => {
                        w.check_session_gen(&address)?;
                        let name = w.keys.row_name(b"account", address.account().as_bytes());
                        w.tx.prepare_cached(
                            "DELETE FROM sessions WHERE account = ?1 AND device = ?2",
                        )?
                        .execute(params![&name[..], address.device_id()])?;
                        sessions_done.retain(|(a, _)| *a != address);
                        sessions_done.push((address, None));
                    }
                    Change::AcceptPreKeyMessage {
                        signed_prekey_id,
                        kem_prekey_id,
                        one_time_prekey_id,
                        base_key,
                    } => {
                        let prekeys = w
                            .cache
                            .prekeys
                            .as_mut()
                            .ok_or(SqliteError::NotInitialized)?;
                        let spent = one_time_prekey_id
                            .is_some_and(|id| prekeys.find_one_time_prekey(id).is_none())
                            || prekeys.find_kem_prekey(kem_prekey_id).is_none();
                        if spent || prekeys.has_accepted_base_key(&base_key) {
                            return Err(SqliteError::Conflict);
                        }
                        prekeys.record_accepted(
                            signed_prekey_id,
                            kem_prekey_id,
                            one_time_prekey_id,
                            &base_key,
                        );
                        prekeys_changed = true;
                    }
                    Change::SaveGroup { session } => {
                        let name = w.keys.row_name(b"group", session.group_id());
                        let gen_ = w.check_group_gen(session.group_id(), &name)?;
                        let blob = w.seal(&slot(b"groups", &name, None), &*session);
                        w.tx.prepare_cached(
                            "INSERT OR REPLACE INTO groups (grp, gen, state) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![&name[..], gen_ + 1, blob])?;
                        groups_done.retain(|(_, g): &(i64, Box<GroupSession>)| {
                            g.group_id() != session.group_id()
                        });
                        groups_done.push((gen_ + 1, session));
                    }
                    // A kind of change newer than this crate: refuse the
                    // whole set rather than drop part of it.
                    _ => return Err(SqliteError::Conflict),
                }
            }
            if prekeys_changed {
                w.write_prekeys()?;
            }
            for (name, value) in &staged {
                match value {
                    Some(value) => {
                        let blob = at_rest::seal_bytes(
                            &mut *w.rng,
                            &w.keys.sealing,
                            StateKind::AppData,
                            &app_slot(name),
                            value,
                        );
                        w.tx.prepare_cached(
                            "INSERT OR REPLACE INTO app (name, value) VALUES (?1, ?2)",
                        )?
                        .execute(params![name, blob])?;
                    }
                    None => {
                        w.tx.prepare_cached("DELETE FROM app WHERE name = ?1")?
                            .execute([name])?;
                    }
                }
            }
            Ok(())
        })?;
        // Committed: what was written is now what the file holds.
        let cache = self.cache.get_mut();
        cache.read_gens.clear();
        for (account, record) in trust_done {
            cache.trust.insert(account, Some(record));
        }
        for (address, saved) in sessions_done {
            match saved {
                Some(entry) if cache_on => {
                    make_room(&mut cache.sessions);
                    cache.sessions.insert(address, (entry.0, *entry.1));
                }
                _ => {
                    cache.sessions.remove(&address);
                }
            }
        }
        cache.group_read_gens.clear();
        for (gen_, group) in groups_done {
            if cache_on {
                make_room(&mut cache.groups);
                cache
                    .groups
                    .insert(group.group_id().to_vec(), (gen_, *group));
            }
        }
        Ok(())
    }

    fn read_session(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, SqliteError> {
        let mut cache = self.fresh_cache()?;
        if let Some((gen_, record)) = cache.sessions.remove(address) {
            cache.read_gens.insert(*address, gen_);
            cache.stats.hits += 1;
            return Ok(Some(record));
        }
        let name = self.keys.row_name(b"account", address.account().as_bytes());
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT gen, record FROM sessions WHERE account = ?1 AND device = ?2")?
            .query_row(params![&name[..], address.device_id()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((gen_, blob)) = row else {
            cache.read_gens.insert(*address, 0);
            return Ok(None);
        };
        cache.read_gens.insert(*address, gen_);
        cache.stats.decodes += 1;
        drop(cache);
        let slot = slot(b"sessions", &name, Some(address.device_id()));
        Ok(Some(self.open_row("sessions", &slot, &blob)?))
    }

    fn read_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, SqliteError> {
        let name = self.keys.row_name(b"account", account.as_bytes());
        let mut statement = self
            .conn
            .prepare_cached("SELECT device FROM sessions WHERE account = ?1 ORDER BY device")?;
        let devices = statement
            .query_map([&name[..]], |row| row.get(0))?
            .collect::<Result<Vec<DeviceId>, _>>()?;
        Ok(devices)
    }

    fn read_trust(&self, account: &AccountId) -> Result<Option<TrustRecord>, SqliteError> {
        let mut cache = self.fresh_cache()?;
        if let Some(record) = cache.trust.get(account) {
            return Ok(*record);
        }
        let name = self.keys.row_name(b"trust", account.as_bytes());
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT record FROM trust WHERE account = ?1")?
            .query_row([&name[..]], |row| row.get(0))
            .optional()?;
        let record = match blob {
            Some(blob) => Some(self.open_row("trust", &slot(b"trust", &name, None), &blob)?),
            None => None,
        };
        if self.cache_on {
            make_room(&mut cache.trust);
            cache.trust.insert(*account, record);
        }
        Ok(record)
    }

    fn read_group(&self, group_id: &[u8]) -> Result<Option<GroupSession>, SqliteError> {
        let mut cache = self.fresh_cache()?;
        if let Some((gen_, group)) = cache.groups.remove(group_id) {
            cache.group_read_gens.insert(group_id.to_vec(), gen_);
            cache.stats.hits += 1;
            return Ok(Some(group));
        }
        let name = self.keys.row_name(b"group", group_id);
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT gen, state FROM groups WHERE grp = ?1")?
            .query_row([&name[..]], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let gen_ = row.as_ref().map_or(0, |(gen_, _)| *gen_);
        cache.group_read_gens.insert(group_id.to_vec(), gen_);
        if row.is_some() {
            cache.stats.decodes += 1;
        }
        drop(cache);
        match row {
            Some((_, blob)) => Ok(Some(self.open_row(
                "groups",
                &slot(b"groups", &name, None),
                &blob,
            )?)),
            None => Ok(None),
        }
    }
}

/// What a write transaction works with.
struct Write<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    keys: &'a Keys,
    rng: &'a mut (dyn CryptoRng + Send),
    cache: &'a mut Cache,
}

impl Write<'_> {
    fn seal<T: Persist>(&mut self, slot: &[u8], object: &T) -> Vec<u8> {
        at_rest::seal(&mut *self.rng, &self.keys.sealing, slot, object)
    }

    fn write_prekeys(&mut self) -> Result<(), SqliteError> {
        let Some(prekeys) = self.cache.prekeys.as_ref() else {
            return Err(SqliteError::NotInitialized);
        };
        let blob = at_rest::seal(&mut *self.rng, &self.keys.sealing, PREKEYS_SLOT, prekeys);
        let gen_ = self.cache.prekeys_gen + 1;
        self.tx
            .prepare_cached("UPDATE device SET prekeys = ?1, prekeys_gen = ?2")?
            .execute(params![blob, gen_])?;
        self.cache.prekeys_gen = gen_;
        Ok(())
    }

    /// The generation of a session row inside the write transaction; refuses
    /// the write if it is not the one last read through this connection.
    fn check_session_gen(&self, address: &DeviceAddress) -> Result<i64, SqliteError> {
        let name = self.keys.row_name(b"account", address.account().as_bytes());
        let current: i64 = self
            .tx
            .prepare_cached("SELECT gen FROM sessions WHERE account = ?1 AND device = ?2")?
            .query_row(params![&name[..], address.device_id()], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        match self.cache.read_gens.get(address) {
            Some(&read) if read != current => Err(SqliteError::Conflict),
            _ => Ok(current),
        }
    }
}

impl Write<'_> {
    /// As [`check_session_gen`](Self::check_session_gen), for a group state.
    fn check_group_gen(&self, group_id: &[u8], name: &[u8; 32]) -> Result<i64, SqliteError> {
        let current: i64 = self
            .tx
            .prepare_cached("SELECT gen FROM groups WHERE grp = ?1")?
            .query_row([&name[..]], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        match self.cache.group_read_gens.get(group_id) {
            Some(&read) if read != current => Err(SqliteError::Conflict),
            _ => Ok(current),
        }
    }
}

/// Loads the prekey store into the cache if it is not there.
fn load_prekeys(conn: &Connection, keys: &Keys, cache: &mut Cache) -> Result<(), SqliteError> {
    if cache.prekeys.is_some() {
        return Ok(());
    }
    let (blob, gen_): (Vec<u8>, i64) = conn
        .query_row("SELECT prekeys, prekeys_gen FROM device", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or(SqliteError::NotInitialized)?;
    let prekeys =
        at_rest::open::<PreKeyStore>(&keys.sealing, PREKEYS_SLOT, &blob).map_err(|reason| {
            SqliteError::Corrupt {
                table: "device",
                reason,
            }
        })?;
    cache.prekeys = Some(prekeys);
    cache.prekeys_gen = gen_;
    Ok(())
}

/// A row's slot: table ‖ row name [‖ device id]. Bound into the sealed blob's
/// associated data, so a blob copied to another row does not open there.
fn slot(table: &[u8], name: &[u8; 32], device: Option<DeviceId>) -> Vec<u8> {
    let mut slot = Vec::with_capacity(table.len() + 1 + 32 + 4);
    slot.extend_from_slice(table);
    slot.push(b'/');
    slot.extend_from_slice(name);
    if let Some(device) = device {
        slot.extend_from_slice(&device.to_be_bytes());
    }
    slot
}

fn app_slot(name: &[u8]) -> Vec<u8> {
    [b"app/".as_slice(), name].concat()
}

fn data_version(conn: &Connection) -> Result<i64, SqliteError> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))?)
}

impl IdentityStore for SqliteStore {
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError> {
        self.read_trust(account).map_err(|e| self.fail(e))
    }
}

impl PreKeyStorage for SqliteStore {
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError> {
        // Prekeys are copied through their encoding: only prekey messages
        // (a new session) read them.
        self.read_prekeys(|p| p.find_signed_prekey(id).map(|k| k.encode()))?
            .map(|bytes| SignedPreKey::decode(&bytes))
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError> {
        self.read_prekeys(|p| p.find_one_time_prekey(id).map(|k| k.encode()))?
            .map(|bytes| OneTimePreKey::decode(&bytes))
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError> {
        self.read_prekeys(|p| p.find_kem_prekey(id).map(|(k, _)| k.encode()))?
            .map(|bytes| KemPreKey::decode(&bytes))
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError> {
        self.read_prekeys(|p| p.has_accepted_base_key(base_key))
    }
}

impl SessionStore for SqliteStore {
    fn session_record(&self, address: &DeviceAddress) -> Result<Option<SessionRecord>, StoreError> {
        self.read_session(address).map_err(|e| self.fail(e))
    }

    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError> {
        self.read_devices(account).map_err(|e| self.fail(e))
    }
}

impl GroupStore for SqliteStore {
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        self.read_group(group_id).map_err(|e| self.fail(e))
    }
}

impl ProtocolStore for SqliteStore {
    /// Applies the change set and the [staged](SqliteStore::stage) application
    /// rows in one SQLite transaction; returns once it is durable.
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        self.apply_changes(changes).map_err(|e| self.fail(e))
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .field("cache", &self.cache_on)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}
