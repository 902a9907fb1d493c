//! Encrypt and decrypt of a 256-byte message through the session manager
//! over SQLite (a file on disk, WAL, `synchronous = FULL`), with and without
//! the record cache, next to the manager over `MemoryStore` and the bare
//! session operation; then the commit alone. Steady state, one direction (no
//! DH ratchet step).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/targets/sqlite cargo bench -p ratchetbox-sqlite --bench sqlite_store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! A summary with messages per second and ratios is printed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ratchetbox::devices::SessionManager;
use ratchetbox::store::{Change, ChangeSet, ProtocolStore, SessionStore};
use ratchetbox::{PreKeyMessage, Responder, Session};
use ratchetbox_sqlite::{Durability, Options, SqliteStore};
use support::*;

const PLAINTEXT: [u8; 256] = [0x61; 256];
const CHUNK: u64 = 2000;

/// Two bare sessions, past the first exchange.
fn bare_pair() -> (Session, Session) {
    let mut rng = rng(1);
    let mut memory = Memory;
    let alice = device(&mut memory, &mut rng, "alice", 1, 0);
    let mut bob = device(&mut memory, &mut rng, "bob", 1, 0);
    let bundle = bundle_of::<Memory>(&mut rng, &mut bob).verify().unwrap();
    let (alice_local, _) = alice.into_parts();
    let (bob_local, mut bob_store) = bob.into_parts();
    let mut a = Session::initiate(&mut rng, &alice_local, &bob_local.account, &bundle).unwrap();
    let first = a.encrypt(&mut rng, b"hi").unwrap();
    let (mut b, _) = Responder::new(&bob_local, bob_store.prekeys_mut())
        .accept(
            &alice_local.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    let reply = b.encrypt(&mut rng, b"hello").unwrap();
    a.decrypt(&reply).unwrap();
    (a, b)
}

/// Two managers over stores of backend `B`, past the first exchange.
fn manager_pair<B: Backend>(
    backend: &mut B,
) -> (SessionManager<B::Store>, SessionManager<B::Store>) {
    let mut rng = rng(2);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let m = send(&mut rng, &mut alice, &bob, b"hi");
    recv(&mut bob, &alice, &m, b"hi");
    let m = send(&mut rng, &mut bob, &alice, b"hello");
    recv(&mut alice, &bob, &m, b"hello");
    (alice, bob)
}

/// SQLite managers in a fresh directory on disk.
struct Disk {
    dir: TempDir,
    options: Options,
    n: usize,
}

impl Backend for Disk {
    type Store = SqliteStore;
    fn create(
        &mut self,
        local: &ratchetbox::devices::LocalDevice,
        prekeys: ratchetbox::PreKeyStore,
    ) -> SqliteStore {
        self.n += 1;
        let path = self.dir.path().join(format!("{}.db", self.n));
        SqliteStore::create_with(&path, &db_key(), local, prekeys, self.options).unwrap()
    }
    fn read_prekeys<T>(s: &SqliteStore, read: impl FnOnce(&ratchetbox::PreKeyStore) -> T) -> T {
        s.with_prekeys(read).unwrap()
    }
    fn update_prekeys<T>(
        s: &mut SqliteStore,
        u: impl FnOnce(&mut ratchetbox::PreKeyStore) -> T,
    ) -> T {
        s.update_prekeys(u).unwrap()
    }
    fn restart(&mut self, d: SessionManager<SqliteStore>) -> SessionManager<SqliteStore> {
        d
    }
}

fn disk(cache: bool, fsync: bool) -> Disk {
    let durability = if fsync {
        Durability::PowerLoss
    } else {
        Durability::ProcessCrash
    };
    Disk {
        dir: TempDir::new("bench"),
        options: Options::default().cache(cache).durability(durability),
        n: 0,
    }
}

/// Times `iters` decrypts on bare sessions (encrypting untimed, in chunks).
fn bare_decrypt(pair: &mut (Session, Session), iters: u64) -> Duration {
    let mut rng = rng(3);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let messages: Vec<_> = (0..n)
            .map(|_| pair.0.encrypt(&mut rng, &PLAINTEXT).unwrap())
            .collect();
        let start = Instant::now();
        for m in &messages {
            black_box(pair.1.decrypt(m).unwrap());
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn bare_encrypt(pair: &mut (Session, Session), iters: u64) -> Duration {
    let mut rng = rng(4);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(pair.0.encrypt(&mut rng, &PLAINTEXT).unwrap());
    }
    start.elapsed()
}

/// Times `iters` manager decrypts by `pair.1` of messages from `pair.0`.
fn manager_decrypt<A: ProtocolStore, B: ProtocolStore>(
    sender: &mut SessionManager<A>,
    receiver: &mut SessionManager<B>,
    iters: u64,
) -> Duration {
    let mut rng = rng(5);
    let to = receiver.local().account;
    let from = sender.local().address();
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let messages: Vec<_> = (0..n)
            .map(|_| {
                sender
                    .encrypt(&mut rng, &to, &PLAINTEXT, &[1], &[1])
                    .unwrap()
                    .remove(0)
                    .message
            })
            .collect();
        let start = Instant::now();
        for m in &messages {
            black_box(receiver.decrypt(&from, m).unwrap());
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn manager_encrypt<S: ProtocolStore>(
    sender: &mut SessionManager<S>,
    to: &ratchetbox::AccountId,
    iters: u64,
) -> Duration {
    let mut rng = rng(6);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(
            sender
                .encrypt(&mut rng, to, &PLAINTEXT, &[1], &[1])
                .unwrap(),
        );
    }
    start.elapsed()
}

/// Reads a session record and writes it back: the commit alone.
fn commit_only(
    store: &mut SqliteStore,
    address: &ratchetbox::DeviceAddress,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let record = store.session_record(address).unwrap().unwrap();
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveSessions {
            address: *address,
            record: Box::new(record),
        });
        store.apply(changes).unwrap();
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let mut bare = bare_pair();
    let mut memory = manager_pair(&mut Memory);
    let mut variants: Vec<(&str, _, _)> = [
        ("SQLite", true, true),
        ("SQLite, synchronous=NORMAL", true, false),
        ("SQLite, synchronous=NORMAL, no cache", false, false),
    ]
    .into_iter()
    .map(|(name, cache, fsync)| {
        let mut backend = disk(cache, fsync);
        let pair = manager_pair(&mut backend);
        (name, backend, pair)
    })
    .collect();
    let bob = account("bob");

    let mut group = c.benchmark_group("decrypt 256 B");
    group.bench_function("bare session", |b| {
        b.iter_custom(|n| bare_decrypt(&mut bare, n))
    });
    group.bench_function("manager over MemoryStore", |b| {
        b.iter_custom(|n| manager_decrypt(&mut memory.0, &mut memory.1, n))
    });
    for (name, _, pair) in &mut variants {
        group.bench_function(format!("manager over {name}"), |b| {
            b.iter_custom(|n| manager_decrypt(&mut pair.0, &mut pair.1, n))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("encrypt 256 B");
    group.bench_function("bare session", |b| {
        b.iter_custom(|n| bare_encrypt(&mut bare, n))
    });
    group.bench_function("manager over MemoryStore", |b| {
        b.iter_custom(|n| manager_encrypt(&mut memory.0, &bob, n))
    });
    for (name, _, pair) in &mut variants {
        group.bench_function(format!("manager over {name}"), |b| {
            b.iter_custom(|n| manager_encrypt(&mut pair.0, &bob, n))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("commit one session record");
    for (name, _, pair) in variants.iter_mut().take(2) {
        group.bench_function(*name, |b| {
            b.iter_custom(|n| commit_only(pair.0.store_mut(), &addr("bob", 1), n))
        });
    }
    group.finish();
    summary();
}

/// A fixed-count run of each, printed as messages per second and ratios.
fn summary() {
    const N: u64 = 1000;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    let mut bare = bare_pair();
    let mut memory = manager_pair(&mut Memory);
    let bob = account("bob");
    let mut rows = vec![
        (
            "decrypt bare session".to_string(),
            per(bare_decrypt(&mut bare, N)),
        ),
        (
            "decrypt manager/MemoryStore".to_string(),
            per(manager_decrypt(&mut memory.0, &mut memory.1, N)),
        ),
    ];
    let configs = [
        ("SQLite FULL", true, true),
        ("SQLite FULL no cache", false, true),
        ("SQLite NORMAL", true, false),
        ("SQLite NORMAL no cache", false, false),
    ];
    let mut pairs: Vec<_> = configs
        .iter()
        .map(|(_, cache, fsync)| {
            let mut backend = disk(*cache, *fsync);
            let pair = manager_pair(&mut backend);
            (backend, pair)
        })
        .collect();
    for ((name, ..), (_, pair)) in configs.iter().zip(&mut pairs) {
        rows.push((
            format!("decrypt manager/{name}"),
            per(manager_decrypt(&mut pair.0, &mut pair.1, N)),
        ));
    }
    rows.push((
        "encrypt bare session".to_string(),
        per(bare_encrypt(&mut bare, N)),
    ));
    rows.push((
        "encrypt manager/MemoryStore".to_string(),
        per(manager_encrypt(&mut memory.0, &bob, N)),
    ));
    for ((name, ..), (_, pair)) in configs.iter().zip(&mut pairs) {
        rows.push((
            format!("encrypt manager/{name}"),
            per(manager_encrypt(&mut pair.0, &bob, N)),
        ));
    }
    for ((name, ..), (_, pair)) in configs.iter().zip(&mut pairs).step_by(2) {
        rows.push((
            format!("commit only, {name}"),
            per(commit_only(pair.0.store_mut(), &addr("bob", 1), N)),
        ));
    }
    let (dec_bare, dec_mem) = (rows[0].1, rows[1].1);
    let (enc_bare, enc_mem) = (rows[6].1, rows[7].1);
    eprintln!(
        "\nsummary, {N} messages each (µs/message, messages/s, × bare session, × MemoryStore):"
    );
    for (name, us) in &rows {
        let (bare, mem) = if name.starts_with("decrypt") {
            (dec_bare, dec_mem)
        } else {
            (enc_bare, enc_mem)
        };
        eprintln!(
            "  {name:36} {us:9.2} µs {:9.0}/s  ×{:7.1}  ×{:6.1}",
            1e6 / us,
            us / bare,
            us / mem
        );
    }
}

criterion_group!(sqlite_store, benches);
criterion_main!(sqlite_store);
