//! Property test of the multi-device layer: random schedules over three
//! accounts with one to three devices each.
//!
//! A simulated server holds every account's current device list and hands out
//! bundles (with a one-time prekey and a one-time KEM prekey while a device's
//! small budget lasts, then without: the last-resort KEM prekey). A schedule
//! mixes
//! - sends from any device to any account (including notes to self), in the
//!   clear or as one sealed multi-recipient envelope the server validates and
//!   splits; a sender that hits `DeviceListMismatch` (a contact never seen has
//!   all its devices missing) fetches the missing devices' bundles, drops the
//!   stale ones and retries;
//! - deliveries of any pending message, in any order;
//! - devices added to an account (sharing its identity) and removed from it;
//! - restarts: a device's store goes through its encoding and back.
//!
//! Properties:
//! - every send reaches exactly the current devices of the recipient account
//!   and the sender's other devices;
//! - every message delivered to a device that still exists decrypts to exactly
//!   what was sent, from the device that sent it, with no identity change.
//!   The only exceptions, each counted: a message *to* a removed device is
//!   dropped by the server; a message *from* a removed device may fail with a
//!   fresh-session error (`NoSession`, `SessionDesync`), a spent one-time
//!   prekey or one-time KEM prekey, or a repeat of a prekey message already
//!   accepted (`RepeatedPreKeyMessage`: the receiver remembers the base keys
//!   it accepted, so a session it deleted is never recreated) if, and only if,
//!   the receiver already deleted its sessions with that device
//!   (`remove_device`, after seeing it stale);
//! - after a settling phase (everything pending delivered, then each device in
//!   turn writes to every other account and its messages are delivered at
//!   once), every pair of devices shares its active session (equal base keys)
//!   and holds sessions with exactly the current devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/devices_world.rs"]
mod devices_world;
use devices_world::*;

use std::collections::{BTreeMap, BTreeSet};

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use ratchetbox::devices::{DeviceError, OutgoingMessage, Sealing, SessionManager, SessionUse};
use ratchetbox::sealed::{ServerPolicy, ValidatedEnvelope, validate};
use ratchetbox::store::MemoryStore;
use ratchetbox::{AccountId, DeviceAddress, DeviceId, Error};

const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
/// One-time prekeys (each with a one-time KEM prekey) the server hands out per
/// device before bundles go without.
const ONE_TIME_BUDGET: usize = 2;
/// Longest schedule, in operations.
const OPS_MAX: usize = 48;

#[derive(Clone, Debug)]
enum Op {
    /// A device of account `from` writes to account `to` (a note to self if equal).
    Send {
        from: usize,
        device: Index,
        to: usize,
        sealed: bool,
        len: u8,
    },
    /// The server delivers a pending message.
    Deliver(Index),
    /// The account links a new device.
    AddDevice(usize),
    /// The account unlinks a device (never its last one).
    RemoveDevice(usize, Index),
    /// A device restarts: its store goes through its encoding.
    Restart(usize, Index),
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    initial: [usize; 3],
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, any::<Index>(), 0..3usize, any::<bool>(), any::<u8>()).prop_map(
            |(from, device, to, sealed, len)| Op::Send { from, device, to, sealed, len }
        ),
        8 => any::<Index>().prop_map(Op::Deliver),
        1 => (0..3usize).prop_map(Op::AddDevice),
        1 => (0..3usize, any::<Index>()).prop_map(|(a, i)| Op::RemoveDevice(a, i)),
        1 => (0..3usize, any::<Index>()).prop_map(|(a, i)| Op::Restart(a, i)),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        [1..=3usize, 1..=3usize, 1..=3usize],
        proptest::collection::vec(op(), 0..OPS_MAX),
    )
        .prop_map(|(seed, initial, ops)| Scenario { seed, initial, ops })
}

/// What happened, to show the schedules reach every case.
#[derive(Debug, Default)]
struct Stats {
    sends: usize,
    sealed_sends: usize,
    missing_fetched: usize,
    stale_removed: usize,
    bundles_without_one_time: usize,
    delivered: BTreeMap<&'static str, usize>,
    dropped_to_removed: usize,
    failed_from_removed: usize,
    adds: usize,
    removes: usize,
    restarts: usize,
    settled_pairs: usize,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.sends += other.sends;
        self.sealed_sends += other.sealed_sends;
        self.missing_fetched += other.missing_fetched;
        self.stale_removed += other.stale_removed;
        self.bundles_without_one_time += other.bundles_without_one_time;
        for (k, v) in &other.delivered {
            *self.delivered.entry(k).or_default() += v;
        }
        self.dropped_to_removed += other.dropped_to_removed;
        self.failed_from_removed += other.failed_from_removed;
        self.adds += other.adds;
        self.removes += other.removes;
        self.restarts += other.restarts;
        self.settled_pairs += other.settled_pairs;
    }
}

fn use_name(used: SessionUse) -> &'static str {
    match used {
        SessionUse::Active => "active",
        SessionUse::Promoted => "promoted",
        SessionUse::Created => "created",
        SessionUse::CreatedArchived => "created_archived",
        SessionUse::Archived => "archived",
        _ => "other",
    }
}

/// A message in flight: a plain session message or a split sealed part.
#[derive(Debug)]
struct Pending {
    from: DeviceAddress,
    to: DeviceAddress,
    sealed: bool,
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
}

struct Sim {
    rng: ChaCha20Rng,
    server: SealedServer,
    /// The devices that exist now.
    devices: BTreeMap<DeviceAddress, Device>,
    /// Each account's current device list, as the server publishes it.
    lists: [Vec<DeviceId>; 3],
    next_id: [DeviceId; 3],
    /// One-time prekeys the server still has for each device.
    one_time_left: BTreeMap<DeviceAddress, usize>,
    pending: Vec<Pending>,
    /// (receiver, sender): the receiver deleted its sessions with the sender.
    deleted: BTreeSet<(DeviceAddress, DeviceAddress)>,
    seq: usize,
    stats: Stats,
}

fn account_index(address: &DeviceAddress) -> usize {
    ACCOUNTS
        .iter()
        .position(|name| account(name) == *address.account())
        .unwrap()
}

impl Sim {
    fn new(seed: u64, initial: [usize; 3]) -> Self {
        let mut sim = Self {
            rng: rng(seed),
            server: SealedServer::new(),
            devices: BTreeMap::new(),
            lists: Default::default(),
            next_id: [1; 3],
            one_time_left: BTreeMap::new(),
            pending: Vec::new(),
            deleted: BTreeSet::new(),
            seq: 0,
            stats: Stats::default(),
        };
        for (a, &count) in initial.iter().enumerate() {
            for _ in 0..count {
                sim.add_device(a);
            }
        }
        sim.stats.adds = 0;
        sim
    }

    fn add_device(&mut self, a: usize) {
        let id = self.next_id[a];
        self.next_id[a] += 1;
        let device = device(&mut self.rng, ACCOUNTS[a], id);
        let address = device.local().address();
        self.devices.insert(address, device);
        self.lists[a].push(id);
        self.one_time_left.insert(address, ONE_TIME_BUDGET);
        self.stats.adds += 1;
    }

    fn remove_device(&mut self, a: usize, which: Index) {
        if self.lists[a].len() < 2 {
            return;
        }
        let id = self.lists[a].remove(which.index(self.lists[a].len()));
        let address = DeviceAddress::new(account(ACCOUNTS[a]), id);
        self.devices.remove(&address).unwrap();
        // The server drops what was queued for the unlinked device.
        let before = self.pending.len();
        self.pending.retain(|p| p.to != address);
        self.stats.dropped_to_removed += before - self.pending.len();
        self.stats.removes += 1;
    }

    fn restart(&mut self, a: usize, which: Index) {
        let id = self.lists[a][which.index(self.lists[a].len())];
        let address = DeviceAddress::new(account(ACCOUNTS[a]), id);
        let device = self.devices.remove(&address).unwrap();
        let (local, store) = device.into_parts();
        let store = MemoryStore::decode(&store.encode()).unwrap();
        self.devices
            .insert(address, SessionManager::new(local, store));
        self.stats.restarts += 1;
    }

    /// The server's bundle for `address` (with a one-time prekey while the
    /// device's budget lasts).
    fn fetch(&mut self, address: &DeviceAddress) -> ratchetbox::PreKeyBundle {
        let left = self.one_time_left.get_mut(address).unwrap();
        let device = self.devices.get_mut(address).unwrap();
        if *left > 0 {
            *left -= 1;
            bundle_of(&mut self.rng, device)
        } else {
            self.stats.bundles_without_one_time += 1;
            bundle_without_one_time(device)
        }
    }

    /// `sender` fetches the bundles of `missing` devices and starts sessions.
    fn start_sessions(&mut self, sender: &mut Device, missing: &[DeviceAddress]) {
        for address in missing {
            let bundle = self.fetch(address);
            let started = sender
                .process_bundle(&mut self.rng, address.account(), bundle)
                .unwrap();
            assert_eq!(started.address, *address);
            assert_eq!(started.identity_change, None);
            self.stats.missing_fetched += 1;
        }
    }

    /// Sends `plaintext` from `from` to account `to`, resolving device-list
    /// mismatches, and queues the messages. Returns how many were queued.
    fn send(&mut self, from: DeviceAddress, to: usize, sealed: bool, plaintext: &[u8]) -> usize {
        let mut sender = self.devices.remove(&from).unwrap();
        let own = account_index(&from);
        let to_account = account(ACCOUNTS[to]);
        let me = from;
        // Who must get it: every current device of `to` and of the own account, but this one.
        let mut expected = Vec::new();
        for &id in &self.lists[to] {
            expected.push(DeviceAddress::new(to_account, id));
        }
        if own != to {
            for &id in &self.lists[own] {
                expected.push(DeviceAddress::new(*from.account(), id));
            }
        }
        expected.retain(|a| *a != me);
        expected.sort();
        let sealed = sealed && !expected.is_empty();

        let to_list = self.lists[to].clone();
        let own_list = self.lists[own].clone();
        let certificate = self.server.certificate_of(&sender);
        let access_keys = |a: &AccountId| Some(access_key(a.as_bytes()));
        let sealing = Sealing {
            certificate: &certificate,
            access_keys: &access_keys,
        };

        let mut attempts = 0;
        let queued = loop {
            attempts += 1;
            assert!(
                attempts <= 2,
                "{me} could not send after resolving mismatches"
            );
            let result: Result<Vec<(DeviceAddress, Vec<u8>)>, DeviceError> = if sealed {
                sender
                    .encrypt_sealed(
                        &mut self.rng,
                        &to_account,
                        plaintext,
                        &to_list,
                        &own_list,
                        &sealing,
                    )
                    .map(|envelope| split(&envelope))
            } else {
                sender
                    .encrypt(&mut self.rng, &to_account, plaintext, &to_list, &own_list)
                    .map(|out| plain(out, &me))
            };
            match result {
                Ok(parts) => break parts,
                Err(DeviceError::DeviceListMismatch { missing, stale }) => {
                    assert!(!missing.is_empty() || !stale.is_empty());
                    for address in &missing {
                        assert!(expected.contains(address), "{me}: {address} is not listed");
                    }
                    self.start_sessions(&mut sender, &missing);
                    for address in stale {
                        assert!(
                            !self.devices.contains_key(&address) && address != me,
                            "{me}: {address} called stale but exists"
                        );
                        sender.remove_device(&address).unwrap();
                        self.deleted.insert((me, address));
                        self.stats.stale_removed += 1;
                    }
                }
                Err(e) => panic!("{me} -> {}: {e:?}", ACCOUNTS[to]),
            }
        };
        self.devices.insert(me, sender);

        let got: Vec<_> = queued.iter().map(|(a, _)| *a).collect();
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "two messages for one device");
        assert_eq!(sorted, expected, "{me} -> {}", ACCOUNTS[to]);
        self.stats.sends += 1;
        if sealed {
            self.stats.sealed_sends += 1;
        }
        let count = queued.len();
        for (to, bytes) in queued {
            self.pending.push(Pending {
                from: me,
                to,
                sealed,
                bytes,
                plaintext: plaintext.to_vec(),
            });
        }
        count
    }

    fn plaintext(&mut self, from: &DeviceAddress, to: usize, len: u8) -> Vec<u8> {
        self.seq += 1;
        let mut out = format!("{from}>{}#{}:", ACCOUNTS[to], self.seq).into_bytes();
        out.extend((0..usize::from(len) % 48).map(|i| (i as u8) ^ len));
        out
    }

    fn deliver(&mut self, index: usize) {
        let p = self.pending.remove(index);
        let receiver = self
            .devices
            .get_mut(&p.to)
            .unwrap_or_else(|| panic!("message queued for removed device {}", p.to));
        let result = if p.sealed {
            receiver
                .open_sealed(&p.bytes, &self.server.trust, NOW)
                .map(|(from, got)| {
                    assert_eq!(from, p.from, "sealed sender");
                    got
                })
        } else {
            receiver.decrypt(&p.from, &p.bytes)
        };
        match result {
            Ok(got) => {
                assert_eq!(got.plaintext, p.plaintext, "{} -> {}", p.from, p.to);
                assert_eq!(got.identity_change, None);
                *self
                    .stats
                    .delivered
                    .entry(use_name(got.session))
                    .or_default() += 1;
            }
            Err(e) => {
                let sender_gone = !self.devices.contains_key(&p.from);
                let deleted = self.deleted.contains(&(p.to, p.from));
                let legitimate = sender_gone
                    && deleted
                    && (e.needs_fresh_session() == Some(&p.from)
                        || matches!(
                            e,
                            DeviceError::Protocol(
                                Error::UnknownOneTimePreKey { .. }
                                    | Error::UnknownKemPreKey { .. }
                                    | Error::RepeatedPreKeyMessage { .. }
                            )
                        ));
                assert!(
                    legitimate,
                    "{} -> {} failed: {e:?} (sender gone: {sender_gone}, sessions deleted: {deleted})",
                    p.from, p.to
                );
                self.stats.failed_from_removed += 1;
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send {
                from,
                device,
                to,
                sealed,
                len,
            } => {
                let id = self.lists[from][device.index(self.lists[from].len())];
                let address = DeviceAddress::new(account(ACCOUNTS[from]), id);
                let plaintext = self.plaintext(&address, to, len);
                self.send(address, to, sealed, &plaintext);
            }
            Op::Deliver(index) => {
                if !self.pending.is_empty() {
                    self.deliver(index.index(self.pending.len()));
                }
            }
            Op::AddDevice(a) => self.add_device(a),
            Op::RemoveDevice(a, which) => self.remove_device(a, which),
            Op::Restart(a, which) => self.restart(a, which),
        }
    }

    /// Delivers everything, then lets each device write to every other account
    /// with immediate delivery; then checks that all sessions agree.
    fn settle(&mut self) {
        while !self.pending.is_empty() {
            self.deliver(0);
        }
        let everyone: Vec<DeviceAddress> = self.devices.keys().copied().collect();
        for &from in &everyone {
            let own = account_index(&from);
            for to in (0..3).filter(|&to| to != own) {
                let plaintext = self.plaintext(&from, to, 5);
                self.send(from, to, false, &plaintext);
                while !self.pending.is_empty() {
                    self.deliver(0);
                }
            }
        }
        for (&x, device) in &self.devices {
            for (a, name) in ACCOUNTS.iter().enumerate() {
                let mut expected: Vec<DeviceId> = self.lists[a]
                    .iter()
                    .copied()
                    .filter(|&id| DeviceAddress::new(account(name), id) != x)
                    .collect();
                expected.sort();
                assert_eq!(
                    device.session_devices(&account(name)).unwrap(),
                    expected,
                    "{x}: sessions with {name}"
                );
            }
            for (&y, other) in &self.devices {
                if x < y {
                    assert_eq!(
                        active_base_key(device, &y),
                        active_base_key(other, &x),
                        "{x} and {y} settled on different sessions"
                    );
                    self.stats.settled_pairs += 1;
                }
            }
        }
    }
}

/// Plain messages as `(recipient, bytes)`.
fn plain(out: Vec<OutgoingMessage>, me: &DeviceAddress) -> Vec<(DeviceAddress, Vec<u8>)> {
    out.into_iter()
        .map(|o| {
            assert_ne!(o.address, *me);
            (o.address, o.message)
        })
        .collect()
}

/// The server validates a sealed envelope and splits it per device.
fn split(envelope: &[u8]) -> Vec<(DeviceAddress, Vec<u8>)> {
    let ValidatedEnvelope::Multi(multi) =
        validate(envelope, &ServerPolicy::default(), &registry).unwrap()
    else {
        panic!("not a multi-recipient envelope");
    };
    multi
        .parts()
        .map(|part| {
            let mut bytes = vec![0u8; part.len()];
            part.write_to(&mut bytes).unwrap();
            (owned(part.recipient()), bytes)
        })
        .collect()
}

fn run(scenario: &Scenario) -> Stats {
    let mut sim = Sim::new(scenario.seed, scenario.initial);
    for op in &scenario.ops {
        sim.apply(op);
    }
    sim.settle();
    sim.stats
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_device_schedules_deliver_exactly_what_was_sent(scenario in scenario()) {
        run(&scenario);
    }
}

/// The generator reaches every case the property distinguishes (on a fixed
/// seed), so the property above is not vacuous.
#[test]
fn schedules_reach_every_case() {
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = scenario();
    let mut total = Stats::default();
    for _ in 0..24 {
        let scenario = strategy.new_tree(&mut runner).unwrap().current();
        total.add(&run(&scenario));
    }
    eprintln!("{total:#?}");
    let s = &total;
    for (name, count) in [
        ("sends", s.sends),
        ("sealed_sends", s.sealed_sends),
        ("missing_fetched", s.missing_fetched),
        ("stale_removed", s.stale_removed),
        ("bundles_without_one_time", s.bundles_without_one_time),
        ("dropped_to_removed", s.dropped_to_removed),
        ("adds", s.adds),
        ("removes", s.removes),
        ("restarts", s.restarts),
        ("settled_pairs", s.settled_pairs),
    ] {
        assert!(count > 0, "no schedule reached {name}: {total:#?}");
    }
    // Promotion is covered by the scenario tests: these schedules only reach
    // archived sessions through simultaneous initiation, which stay archived.
    for used in ["active", "created", "created_archived", "archived"] {
        assert!(
            s.delivered.get(used).copied().unwrap_or(0) > 0,
            "no delivery used a {used} session: {total:#?}"
        );
    }
}
