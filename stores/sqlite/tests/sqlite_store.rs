//! What only a database store has to prove: keys, schema versions, damaged
//! rows and files, what reaches the disk in the clear, the cache, and two
//! connections at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use ratchetbox::devices::{DeviceError, SessionManager};
use ratchetbox::store::{Change, ChangeSet, ProtocolStore, SessionStore, StoreError};
use ratchetbox::{DeviceAddress, PreKeyStore};
use ratchetbox_sqlite::{DatabaseKey, Options, SCHEMA_VERSION, SqliteError, SqliteStore};
use support::*;

type Device = SessionManager<SqliteStore>;

/// Alice and Bob in `dir`, a session from Alice to Bob, one message each way.
fn pair(dir: &Path, rng: &mut chacha20::ChaCha20Rng, alice: &str, bob: &str) -> (Device, Device) {
    let mut sqlite = SqliteAt(dir.to_path_buf());
    let mut a = device(&mut sqlite, rng, alice, 1, 0);
    let mut b = device(&mut sqlite, rng, bob, 1, 0);
    introduce::<SqliteAt>(rng, &mut a, &mut b);
    let m = send(rng, &mut a, &b, b"hello");
    recv(&mut b, &a, &m, b"hello");
    let m = send(rng, &mut b, &a, b"hi");
    recv(&mut a, &b, &m, b"hi");
    (a, b)
}

/// Files named after the account in one directory.
struct SqliteAt(std::path::PathBuf);

impl Backend for SqliteAt {
    type Store = SqliteStore;
    fn create(
        &mut self,
        local: &ratchetbox::devices::LocalDevice,
        prekeys: PreKeyStore,
    ) -> SqliteStore {
        let name = String::from_utf8(local.account.as_bytes().to_vec()).unwrap();
        let path = self.0.join(format!("{name}-{}.db", local.device_id));
        SqliteStore::create(&path, &db_key(), local, prekeys).unwrap()
    }
    fn read_prekeys<T>(store: &SqliteStore, read: impl FnOnce(&PreKeyStore) -> T) -> T {
        store.with_prekeys(read).unwrap()
    }
    fn update_prekeys<T>(store: &mut SqliteStore, update: impl FnOnce(&mut PreKeyStore) -> T) -> T {
        store.update_prekeys(update).unwrap()
    }
    fn restart(&mut self, device: Device) -> Device {
        let (_, store) = device.into_parts();
        let path = store.path().unwrap().to_path_buf();
        drop(store);
        let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
        SessionManager::new(local, store)
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn a_wrong_key_is_a_typed_error() {
    let dir = TempDir::new("wrongkey");
    let mut rng = rng(11);
    let (_, bob) = pair(dir.path(), &mut rng, "alice", "bob");
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    let err = SqliteStore::open(&path, &DatabaseKey::from_bytes([0x34; 32])).unwrap_err();
    assert!(matches!(err, SqliteError::WrongKey), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the database key does not open this database"
    );
    assert!(SqliteStore::open(&path, &db_key()).is_ok());
}

#[test]
fn schema_versions_migrate_and_a_newer_one_is_refused() {
    let dir = TempDir::new("schema");
    let path = dir.path().join("empty.db");
    // An empty file is version 0 and migrates to the current version.
    drop(raw(&path));
    let err = SqliteStore::open(&path, &db_key()).unwrap_err();
    assert!(matches!(err, SqliteError::NotInitialized), "{err:?}");
    let version: i64 = raw(&path)
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    let mut rng = rng(12);
    let (_, bob) = pair(dir.path(), &mut rng, "alice", "bob");
    assert_eq!(bob.store().schema_version().unwrap(), SCHEMA_VERSION);
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    raw(&path)
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    let err = SqliteStore::open(&path, &db_key()).unwrap_err();
    assert!(
        matches!(
            err,
            SqliteError::NewerSchema {
                found: 99,
                supported: SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("99"));
}

#[test]
fn create_twice_is_refused() {
    let dir = TempDir::new("twice");
    let mut rng = rng(13);
    let (_, bob) = pair(dir.path(), &mut rng, "alice", "bob");
    let path = bob.store().path().unwrap().to_path_buf();
    let local = ratchetbox::devices::LocalDevice {
        account: account("bob"),
        device_id: 1,
        identity: identity("bob", 0),
    };
    let prekeys = PreKeyStore::generate(&mut rng, &local.identity, 1);
    let err = SqliteStore::create(&path, &db_key(), &local, prekeys).unwrap_err();
    assert!(matches!(err, SqliteError::AlreadyInitialized), "{err:?}");
}

#[test]
fn a_corrupted_or_moved_row_is_a_typed_error_never_a_panic() {
    let dir = TempDir::new("corrupt");
    let mut rng = rng(14);
    let (mut alice, mut bob) = pair(dir.path(), &mut rng, "alice", "bob");
    let mut carol = device(
        &mut SqliteAt(dir.path().to_path_buf()),
        &mut rng,
        "carol",
        1,
        0,
    );
    introduce::<SqliteAt>(&mut rng, &mut carol, &mut bob);
    let m = send(&mut rng, &mut carol, &bob, b"c");
    recv(&mut bob, &carol, &m, b"c");
    let pending = send(&mut rng, &mut alice, &bob, b"after");
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    let conn = raw(&path);

    // Flip one byte of every session row.
    let before: Vec<(Vec<u8>, i64, Vec<u8>)> = {
        let mut statement = conn
            .prepare("SELECT account, device, record FROM sessions")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(before.len(), 2);
    for (account, device, record) in &before {
        let mut flipped = record.clone();
        flipped[record.len() / 2] ^= 0x40;
        conn.execute(
            "UPDATE sessions SET record = ?1 WHERE account = ?2 AND device = ?3",
            rusqlite::params![flipped, account, device],
        )
        .unwrap();
    }
    let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
    let mut bob = SessionManager::new(local, store);
    let err = bob.decrypt(&alice.local().address(), &pending).unwrap_err();
    assert!(
        matches!(err, DeviceError::Store(StoreError::Corrupt(_))),
        "{err:?}"
    );
    let detail = bob.store().take_last_error().unwrap();
    assert!(
        matches!(
            detail,
            SqliteError::Corrupt {
                table: "sessions",
                ..
            }
        ),
        "{detail:?}"
    );
    drop(bob);

    // Swap the two (intact) rows: each opens only in its own slot.
    let (a, b) = (&before[0], &before[1]);
    conn.execute(
        "UPDATE sessions SET record = ?1 WHERE account = ?2 AND device = ?3",
        rusqlite::params![b.2, a.0, a.1],
    )
    .unwrap();
    conn.execute(
        "UPDATE sessions SET record = ?1 WHERE account = ?2 AND device = ?3",
        rusqlite::params![a.2, b.0, b.1],
    )
    .unwrap();
    let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
    let mut bob = SessionManager::new(local, store);
    let err = bob.decrypt(&alice.local().address(), &pending).unwrap_err();
    assert!(
        matches!(err, DeviceError::Store(StoreError::Corrupt(_))),
        "{err:?}"
    );
    drop(bob);

    // The original rows back: everything works again.
    for (account, device, record) in &before {
        conn.execute(
            "UPDATE sessions SET record = ?1 WHERE account = ?2 AND device = ?3",
            rusqlite::params![record, account, device],
        )
        .unwrap();
    }
    let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
    let mut bob = SessionManager::new(local, store);
    recv(&mut bob, &alice, &pending, b"after");
    drop(bob);

    // A damaged prekey row (the device row still opens): corrupt, not a wrong key.
    let prekeys: Vec<u8> = conn
        .query_row("SELECT prekeys FROM device", [], |r| r.get(0))
        .unwrap();
    let mut flipped = prekeys.clone();
    flipped[10] ^= 1;
    conn.execute("UPDATE device SET prekeys = ?1", [flipped])
        .unwrap();
    let err = SqliteStore::open(&path, &db_key()).unwrap_err();
    assert!(
        matches!(
            err,
            SqliteError::Corrupt {
                table: "device",
                ..
            }
        ),
        "{err:?}"
    );
    // A value that is not a sealed blob at all.
    conn.execute("UPDATE device SET prekeys = x'00'", [])
        .unwrap();
    let err = SqliteStore::open(&path, &db_key()).unwrap_err();
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err:?}");
    let _ = &mut alice;
}

#[test]
fn a_truncated_or_foreign_file_is_a_typed_error_never_a_panic() {
    let dir = TempDir::new("truncated");
    let mut rng = rng(15);
    let (_, bob) = pair(dir.path(), &mut rng, "alice", "bob");
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    // Closing the last connection checkpoints the log into the file.
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096, "{}", bytes.len());
    let copy = dir.path().join("copy.db");
    for cut in [1, 100, 4096, bytes.len() / 2, bytes.len() - 1000] {
        let _ = std::fs::remove_file(copy.with_extension("db-wal"));
        let _ = std::fs::remove_file(copy.with_extension("db-shm"));
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        match SqliteStore::open(&copy, &db_key()) {
            Err(
                SqliteError::CorruptFile(_)
                | SqliteError::NotInitialized
                | SqliteError::Corrupt { .. }
                | SqliteError::Sqlite(_),
            ) => {}
            Err(other) => panic!("cut at {cut}: unexpected {other:?}"),
            // A cut that spares the pages the device row needs (the tail
            // of the last page can be unused) may still open; then reads
            // answer or fail typed.
            Ok((_, store)) => {
                let _ = store.session_record(&DeviceAddress::new(account("alice"), 1));
                let _ = store.integrity_check();
            }
        }
    }
    std::fs::write(&copy, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&copy, &db_key()).unwrap_err();
    assert!(matches!(err, SqliteError::CorruptFile(_)), "{err:?}");
}

#[test]
fn nothing_secret_or_identifying_reaches_the_disk_in_the_clear() {
    let dir = TempDir::new("clear");
    let mut rng = rng(16);
    let (alice_name, bob_name) = ("alice-account-7f3a", "bob-account-19c2");
    let (mut alice, mut bob) = pair(dir.path(), &mut rng, alice_name, bob_name);
    let plaintext = b"the secret plaintext of message two";
    let m = send(&mut rng, &mut alice, &bob, plaintext);
    recv(&mut bob, &alice, &m, plaintext);
    bob.store_mut().stage(b"note", b"an app secret 0123456789");
    bob.store_mut().commit_staged().unwrap();
    let identity_secret = identity(bob_name, 0).encode();
    let path = bob.store().path().unwrap().to_path_buf();
    // Read the file and its log while the connection is open, then closed.
    let mut bob = Some(bob);
    for close in [false, true] {
        if close {
            drop(bob.take());
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        for needle in [
            &plaintext[..],
            b"an app secret 0123456789",
            alice_name.as_bytes(),
            bob_name.as_bytes(),
            &identity_secret[identity_secret.len() - 32..],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "found {:?} in the clear",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn the_message_path_decodes_nothing_once_cached() {
    let dir = TempDir::new("cache");
    let mut rng = rng(17);
    let (mut alice, mut bob) = pair(dir.path(), &mut rng, "alice", "bob");
    let (a0, b0) = (alice.store().cache_stats(), bob.store().cache_stats());
    for i in 0..20u8 {
        let m = send(&mut rng, &mut alice, &bob, &[i]);
        recv(&mut bob, &alice, &m, &[i]);
    }
    assert_eq!(alice.store().cache_stats().decodes, a0.decodes);
    assert_eq!(bob.store().cache_stats().decodes, b0.decodes);
    assert!(bob.store().cache_stats().hits >= b0.hits + 20);

    // Without the cache, every message decodes the record.
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    let (local, store) =
        SqliteStore::open_with(&path, &db_key(), Options::default().cache(false)).unwrap();
    let mut bob = SessionManager::new(local, store);
    for i in 0..5u8 {
        let m = send(&mut rng, &mut alice, &bob, &[i]);
        recv(&mut bob, &alice, &m, &[i]);
    }
    assert!(bob.store().cache_stats().decodes >= 5);
}

#[test]
fn a_locked_database_fails_the_write_typed_and_spends_nothing() {
    let dir = TempDir::new("busy");
    let mut rng = rng(18);
    let mut sqlite = SqliteAt(dir.path().to_path_buf());
    let mut alice = device(&mut sqlite, &mut rng, "alice", 1, 0);
    let mut bob = device(&mut sqlite, &mut rng, "bob", 1, 0);
    introduce::<SqliteAt>(&mut rng, &mut alice, &mut bob);
    let first = send(&mut rng, &mut alice, &bob, b"first");
    let path = bob.store().path().unwrap().to_path_buf();
    drop(bob);
    let (local, store) = SqliteStore::open_with(
        &path,
        &db_key(),
        Options::default().busy_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    let mut bob = SessionManager::new(local, store);
    let count = one_time_count::<SqliteAt>(&bob);

    let mut other = raw(&path);
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let err = bob.decrypt(&alice.local().address(), &first).unwrap_err();
    assert_eq!(err, DeviceError::Store(StoreError::Unavailable));
    assert!(matches!(
        bob.store().take_last_error(),
        Some(SqliteError::Busy)
    ));
    drop(lock);
    assert_eq!(one_time_count::<SqliteAt>(&bob), count);
    recv(&mut bob, &alice, &first, b"first");
    assert_eq!(one_time_count::<SqliteAt>(&bob), count - 1);
}

#[test]
fn a_write_based_on_an_overtaken_read_is_a_conflict() {
    let dir = TempDir::new("conflict");
    let mut rng = rng(19);
    let (alice, mut bob) = pair(dir.path(), &mut rng, "alice", "bob");
    bob.save_group(ratchetbox::group::GroupSession::create(&mut rng, b"g").unwrap())
        .unwrap();
    let path = bob.store().path().unwrap().to_path_buf();
    let from = alice.local().address();
    let (_, mut first) = bob.into_parts();
    let (_, mut second) = SqliteStore::open(&path, &db_key()).unwrap();
    // Both read the record; the first writes it back; the second's write is stale.
    let record = second.session_record(&from).unwrap().unwrap();
    let mine = first.session_record(&from).unwrap().unwrap();
    let mut changes = ChangeSet::new();
    changes.push(Change::SaveSessions {
        address: from,
        record: Box::new(mine),
    });
    first.apply(changes).unwrap();
    let mut changes = ChangeSet::new();
    changes.push(Change::SaveSessions {
        address: from,
        record: Box::new(record),
    });
    assert_eq!(second.apply(changes), Err(StoreError::Conflict));
    assert!(matches!(
        second.take_last_error(),
        Some(SqliteError::Conflict)
    ));

    // Spending a one-time prekey that is gone is a conflict too.
    let mut changes = ChangeSet::new();
    changes.push(Change::AcceptPreKeyMessage {
        signed_prekey_id: 1,
        kem_prekey_id: 1,
        one_time_prekey_id: Some(0xdead),
        base_key: ratchetbox::PublicKey::from_bytes([9; 32]).unwrap(),
    });
    assert_eq!(first.apply(changes), Err(StoreError::Conflict));
}

#[test]
fn two_threads_on_one_database_through_separate_connections() {
    let dir = TempDir::new("threads");
    let mut rng = rng(20);
    let mut sqlite = SqliteAt(dir.path().to_path_buf());
    let mut alice = device(&mut sqlite, &mut rng, "alice", 1, 0);
    let mut carol = device(&mut sqlite, &mut rng, "carol", 1, 0);
    let mut bob = device(&mut sqlite, &mut rng, "bob", 1, 0);
    introduce::<SqliteAt>(&mut rng, &mut alice, &mut bob);
    introduce::<SqliteAt>(&mut rng, &mut carol, &mut bob);
    const N: u8 = 40;
    let from_alice: Vec<_> = (0..N)
        .map(|i| send(&mut rng, &mut alice, &bob, &[b'a', i]))
        .collect();
    let from_carol: Vec<_> = (0..N)
        .map(|i| send(&mut rng, &mut carol, &bob, &[b'c', i]))
        .collect();
    let path = bob.store().path().unwrap().to_path_buf();
    let count = one_time_count::<SqliteAt>(&bob);
    drop(bob);
    let threads: Vec<_> = [
        (alice.local().address(), from_alice, b'a'),
        (carol.local().address(), from_carol, b'c'),
    ]
    .into_iter()
    .map(|(from, messages, tag)| {
        let path = path.clone();
        std::thread::spawn(move || {
            let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
            let mut bob = SessionManager::new(local, store);
            for (i, m) in messages.iter().enumerate() {
                let got = bob.decrypt(&from, m).unwrap();
                assert_eq!(&got.plaintext[..], &[tag, i as u8]);
            }
            bob.store().cache_stats()
        })
    })
    .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Both conversations committed and go on, in both directions.
    let (local, store) = SqliteStore::open(&path, &db_key()).unwrap();
    let mut bob = SessionManager::new(local, store);
    assert_eq!(one_time_count::<SqliteAt>(&bob), count - 2);
    for peer in [&mut alice, &mut carol] {
        let m = send(&mut rng, &mut bob, peer, b"both arrived");
        recv(peer, &bob, &m, b"both arrived");
        let m = send(&mut rng, peer, &bob, b"good");
        recv(&mut bob, peer, &m, b"good");
    }
    bob.store().integrity_check().unwrap();
}
