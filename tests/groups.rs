//! Sender-key groups (`ratchetbox::group`): random delivery schedules checked
//! against a reference model, and targeted tests of every rejection path.
//!
//! The reference model of a receiver holds, per sender device, its chains in
//! arrival order (oldest dropped beyond `max_chains_per_sender`), and per chain
//! the next expected iteration and the iterations of its skipped keys, oldest
//! first (oldest evicted beyond `max_skipped_keys`), and the accounts it has
//! removed (their distributions refused until readmitted; a distribution of a
//! known chain is ignored). It predicts the exact result of every delivery and
//! distribution, and after every operation each device's stored state (parsed
//! here from `GroupSession::encode`) must match it. Every rejection must leave
//! the receiver's encoded session byte-for-byte unchanged.
//!
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use ratchetbox::group::{
    GroupConfig, GroupSession, MAX_GROUP_ID_LEN, MAX_GROUP_MEMBER_DEVICES, group_message_overhead,
};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::sealed::Address;
use ratchetbox::{DecodeError, Error, IdentityKeyPair, KEY_LEN, NONCE_LEN, SIGNATURE_LEN, TAG_LEN};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Format tag of a distribution message.
const DISTRIBUTION_TAG: u8 = 0x33;
/// Format tag of a group message.
const GROUP_MESSAGE_TAG: u8 = 0x34;
/// Format tag and version of a stored group session.
const STATE_TAG: u8 = 0x47;
const STATE_VERSION: u8 = 1;

fn rng(seed: u64) -> ChaCha20Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x6b;
    ChaCha20Rng::from_seed(bytes)
}

fn addr(account: &[u8], device: u32) -> Address<'_> {
    Address::new(account, device).expect("valid address")
}

fn config(jump: u32, skipped: u32, chains: u32) -> GroupConfig {
    GroupConfig::new(jump, skipped, chains).expect("valid config")
}

fn snapshot(session: &GroupSession) -> Vec<u8> {
    session.encode().to_vec()
}

/// Decrypting `bytes` from `from` fails with `expected` and leaves the session
/// byte-for-byte unchanged.
#[track_caller]
fn assert_rejected(session: &mut GroupSession, from: Address<'_>, bytes: &[u8], expected: Error) {
    let before = snapshot(session);
    assert_eq!(session.decrypt(from, bytes), Err(expected));
    assert_eq!(snapshot(session), before, "a rejection changed the state");
}

/// Processing `bytes` from `from` fails with `expected` and leaves the session
/// byte-for-byte unchanged.
#[track_caller]
fn assert_distribution_rejected(
    session: &mut GroupSession,
    from: Address<'_>,
    bytes: &[u8],
    expected: Error,
) {
    let before = snapshot(session);
    assert_eq!(session.process_distribution(from, bytes), Err(expected));
    assert_eq!(
        snapshot(session),
        before,
        "a rejected distribution changed the state"
    );
}

#[track_caller]
fn assert_decrypts(session: &mut GroupSession, from: Address<'_>, bytes: &[u8], plaintext: &[u8]) {
    assert_eq!(session.decrypt(from, bytes).as_deref(), Ok(plaintext));
}

/// The session's own group signing key, recovered from its stored form.
fn signing_key(session: &GroupSession) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&Stored::parse(&session.encode()).own_seed)
}

/// Replaces the signature of a group message by `key`'s signature of the rest.
fn resign(bytes: &mut [u8], key: &IdentityKeyPair) {
    let signed = bytes.len() - SIGNATURE_LEN;
    let signature = key.sign(&bytes[..signed]);
    bytes[signed..].copy_from_slice(&signature);
}

/// Offset of the chain id in a group message or distribution.
fn chain_id_at(group_id_len: usize) -> usize {
    2 + group_id_len
}

fn chain_id_of(bytes: &[u8]) -> u32 {
    let at = chain_id_at(usize::from(bytes[1]));
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn iteration_of(bytes: &[u8]) -> u32 {
    let at = chain_id_at(usize::from(bytes[1])) + 4;
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Offset of the ciphertext in a group message (v2: after the chain id, the
/// iteration and the 12-byte random nonce).
fn ciphertext_at(group_id_len: usize) -> usize {
    chain_id_at(group_id_len) + 8 + NONCE_LEN
}

/// A member device and its session.
struct Member {
    account: &'static [u8],
    device: u32,
    session: GroupSession,
}

impl Member {
    fn addr(&self) -> Address<'static> {
        addr(self.account, self.device)
    }
}

/// A group where every member device has processed every other's distribution.
fn group(
    rng: &mut ChaCha20Rng,
    group_id: &[u8],
    config: GroupConfig,
    devices: &[(&'static [u8], u32)],
) -> Vec<Member> {
    let mut members: Vec<Member> = devices
        .iter()
        .map(|&(account, device)| Member {
            account,
            device,
            session: GroupSession::create_with_config(rng, group_id, config).unwrap(),
        })
        .collect();
    let distributions: Vec<_> = members.iter().map(|m| m.session.distribution()).collect();
    for i in 0..members.len() {
        for (j, distribution) in distributions.iter().enumerate() {
            if i != j {
                let from = members[j].addr();
                members[i]
                    .session
                    .process_distribution(from, distribution)
                    .unwrap();
            }
        }
    }
    members
}

/// The stored form of a group session (src/group/state.rs), parsed and written
/// independently of the library so tests can inspect and craft states.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    tag: u8,
    version: u8,
    limits: [u32; 3],
    group_id: Vec<u8>,
    own_chain_id: u32,
    own_iteration: u32,
    own_chain_key: [u8; KEY_LEN],
    own_seed: [u8; KEY_LEN],
    members: Vec<StoredMember>,
    /// Removed accounts, in order.
    removed: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredMember {
    account: Vec<u8>,
    device: u32,
    chains: Vec<StoredChain>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredChain {
    chain_id: u32,
    signing_key: [u8; KEY_LEN],
    next_iteration: u32,
    chain_key: [u8; KEY_LEN],
    skipped: Vec<(u32, [u8; KEY_LEN])>,
}

/// `(chain id, next iteration, skipped iterations)` of one chain.
type ChainView = (u32, u32, Vec<u32>);

/// A message still to be delivered: sender index, bytes, plaintext.
type Pending = (usize, Vec<u8>, Vec<u8>);

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn key(&mut self) -> [u8; KEY_LEN] {
        self.take(KEY_LEN).try_into().unwrap()
    }
}

impl Stored {
    fn parse(bytes: &[u8]) -> Self {
        let mut c = Cursor(bytes);
        let tag = c.u8();
        let version = c.u8();
        let limits = [c.u32(), c.u32(), c.u32()];
        let len = usize::from(c.u8());
        let group_id = c.take(len).to_vec();
        let own_chain_id = c.u32();
        let own_iteration = c.u32();
        let own_chain_key = c.key();
        let own_seed = c.key();
        let member_count = c.u32();
        let members = (0..member_count)
            .map(|_| {
                let len = usize::from(c.u8());
                let account = c.take(len).to_vec();
                let device = c.u32();
                let chain_count = c.u8();
                let chains = (0..chain_count)
                    .map(|_| {
                        let chain_id = c.u32();
                        let signing_key = c.key();
                        let next_iteration = c.u32();
                        let chain_key = c.key();
                        let skipped_count = c.u32();
                        let skipped = (0..skipped_count).map(|_| (c.u32(), c.key())).collect();
                        StoredChain {
                            chain_id,
                            signing_key,
                            next_iteration,
                            chain_key,
                            skipped,
                        }
                    })
                    .collect();
                StoredMember {
                    account,
                    device,
                    chains,
                }
            })
            .collect();
        let removed = (0..c.u32())
            .map(|_| {
                let len = usize::from(c.u8());
                c.take(len).to_vec()
            })
            .collect();
        assert!(c.0.is_empty(), "trailing bytes in a stored group session");
        Self {
            tag,
            version,
            limits,
            group_id,
            own_chain_id,
            own_iteration,
            own_chain_key,
            own_seed,
            members,
            removed,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.version];
        for limit in self.limits {
            out.extend_from_slice(&limit.to_be_bytes());
        }
        out.push(self.group_id.len() as u8);
        out.extend_from_slice(&self.group_id);
        out.extend_from_slice(&self.own_chain_id.to_be_bytes());
        out.extend_from_slice(&self.own_iteration.to_be_bytes());
        out.extend_from_slice(&self.own_chain_key);
        out.extend_from_slice(&self.own_seed);
        out.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for m in &self.members {
            out.push(m.account.len() as u8);
            out.extend_from_slice(&m.account);
            out.extend_from_slice(&m.device.to_be_bytes());
            out.push(m.chains.len() as u8);
            for chain in &m.chains {
                out.extend_from_slice(&chain.chain_id.to_be_bytes());
                out.extend_from_slice(&chain.signing_key);
                out.extend_from_slice(&chain.next_iteration.to_be_bytes());
                out.extend_from_slice(&chain.chain_key);
                out.extend_from_slice(&(chain.skipped.len() as u32).to_be_bytes());
                for (n, key) in &chain.skipped {
                    out.extend_from_slice(&n.to_be_bytes());
                    out.extend_from_slice(key);
                }
            }
        }
        out.extend_from_slice(&(self.removed.len() as u32).to_be_bytes());
        for account in &self.removed {
            out.push(account.len() as u8);
            out.extend_from_slice(account);
        }
        out
    }

    fn member(&self, account: &[u8], device: u32) -> Option<&StoredMember> {
        self.members
            .iter()
            .find(|m| m.account == account && m.device == device)
    }

    /// `(chain id, next iteration, skipped iterations)` of every chain of a sender.
    fn chains_of(&self, account: &[u8], device: u32) -> Vec<ChainView> {
        self.member(account, device)
            .map(|m| {
                m.chains
                    .iter()
                    .map(|c| {
                        (
                            c.chain_id,
                            c.next_iteration,
                            c.skipped.iter().map(|s| s.0).collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Property test: random schedules against a reference model
// ---------------------------------------------------------------------------

const PROP_GROUP: &[u8] = b"proptest group";
const ACCOUNTS: [&[u8]; 3] = [b"alice", b"bob", b"carol"];
/// Longest schedule, in operations.
const OPS_MAX: usize = 60;

#[derive(Clone, Debug)]
enum Op {
    /// A device encrypts these plaintexts (each gets its message number appended).
    Send(Index, Vec<Vec<u8>>),
    /// Deliver to a device the oldest message it has not been handed yet.
    DeliverNext(Index),
    /// Deliver any message to any device: reordering, duplicates, own messages.
    Deliver(Index, Index),
    /// Deliver a copy of a message with one bit flipped.
    Tamper(Index, Index, Index),
    /// Hand a device a backlog through `decrypt_batch`, some copies tampered.
    Batch(Index, Vec<(Index, Option<Index>)>),
    /// A device rotates; the devices in the mask receive the new distribution.
    Rotate(Index, u8),
    /// A device sends its current distribution (at its current iteration) to
    /// another device: a late joiner if that device lacks the chain, otherwise
    /// a distribution that must be ignored.
    Join(Index, Index),
    /// A device removes an account (rotating); the devices in the mask receive
    /// its new distribution.
    Remove(Index, Index, u8),
    /// A device readmits an account.
    Readmit(Index, Index),
    /// Replace a device's session by `decode(encode())`.
    Restore(Index),
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: [u8; 32],
    /// Account (index into `ACCOUNTS`) of each device.
    accounts: Vec<usize>,
    /// `max_forward_jump`, `max_skipped_keys`, `max_chains_per_sender`.
    limits: (u32, u32, u32),
    /// `(receiver, sender)` pairs whose initial distribution is not delivered.
    missing: Vec<(Index, Index)>,
    ops: Vec<Op>,
}

fn plaintexts(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), count)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<Index>(), plaintexts(1..4)).prop_map(|(s, p)| Op::Send(s, p)),
        1 => (any::<Index>(), plaintexts(6..15)).prop_map(|(s, p)| Op::Send(s, p)),
        7 => any::<Index>().prop_map(Op::DeliverNext),
        6 => (any::<Index>(), any::<Index>()).prop_map(|(m, r)| Op::Deliver(m, r)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(m, r, b)| Op::Tamper(m, r, b)),
        1 => (
            any::<Index>(),
            proptest::collection::vec(
                (any::<Index>(), proptest::option::weighted(0.2, any::<Index>())),
                1..10
            )
        )
            .prop_map(|(r, list)| Op::Batch(r, list)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(s, mask)| Op::Rotate(s, mask)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(s, r)| Op::Join(s, r)),
        1 => (any::<Index>(), any::<Index>(), any::<u8>())
            .prop_map(|(r, a, mask)| Op::Remove(r, a, mask)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(r, a)| Op::Readmit(r, a)),
        1 => any::<Index>().prop_map(Op::Restore),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<[u8; 32]>(),
        proptest::collection::vec(0..ACCOUNTS.len(), 2..=6),
        (5u32..=10, 5u32..=20, 1u32..=3),
        proptest::collection::vec((any::<Index>(), any::<Index>()), 0..3),
        proptest::collection::vec(op(), 1..=OPS_MAX),
    )
        .prop_map(|(seed, accounts, limits, missing, ops)| Scenario {
            seed,
            accounts,
            limits,
            missing,
            ops,
        })
}

/// One chain of a sender as a receiver should hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChainModel {
    chain_id: u32,
    next: u32,
    /// Iterations of the skipped keys, oldest first.
    skipped: VecDeque<u32>,
}

struct Device {
    /// Index into `ACCOUNTS`.
    account_index: usize,
    account: &'static [u8],
    device: u32,
    session: GroupSession,
}

struct Sent {
    sender: usize,
    chain_id: u32,
    iteration: u32,
    plaintext: Vec<u8>,
    bytes: Vec<u8>,
}

/// How often each outcome occurred.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    in_order_ok: u32,
    forward_ok: u32,
    skipped_ok: u32,
    replay_duplicate: u32,
    evicted_duplicate: u32,
    too_many: u32,
    stale_chain: u32,
    undistributed: u32,
    own_message: u32,
    tamper_rejected: u32,
    batch_fast: u32,
    batch_fallback: u32,
    rotations: u32,
    joined: u32,
    ignored_distribution: u32,
    removals: u32,
    refused_distribution: u32,
    readmitted: u32,
    restored: u32,
}

impl Stats {
    fn add(&mut self, o: &Self) {
        self.in_order_ok += o.in_order_ok;
        self.forward_ok += o.forward_ok;
        self.skipped_ok += o.skipped_ok;
        self.replay_duplicate += o.replay_duplicate;
        self.evicted_duplicate += o.evicted_duplicate;
        self.too_many += o.too_many;
        self.stale_chain += o.stale_chain;
        self.undistributed += o.undistributed;
        self.own_message += o.own_message;
        self.tamper_rejected += o.tamper_rejected;
        self.batch_fast += o.batch_fast;
        self.batch_fallback += o.batch_fallback;
        self.rotations += o.rotations;
        self.joined += o.joined;
        self.ignored_distribution += o.ignored_distribution;
        self.removals += o.removals;
        self.refused_distribution += o.refused_distribution;
        self.readmitted += o.readmitted;
        self.restored += o.restored;
    }
}

struct World {
    limits: (u32, u32, u32),
    rng: ChaCha20Rng,
    devices: Vec<Device>,
    /// Own chain id and next iteration of each device.
    own: Vec<(u32, u32)>,
    /// `view[r][s]`: the chains of sender `s` that receiver `r` should hold.
    view: Vec<Vec<Vec<ChainModel>>>,
    /// Accounts (indexes into `ACCOUNTS`) each device has removed.
    removed: Vec<BTreeSet<usize>>,
    sent: Vec<Sent>,
    /// Messages each receiver has been handed (genuine copies).
    handed: Vec<HashSet<usize>>,
    /// Messages each receiver has decrypted.
    decrypted: Vec<HashSet<usize>>,
    stats: Stats,
}

impl World {
    fn new(scenario: &Scenario) -> Self {
        let mut rng = ChaCha20Rng::from_seed(scenario.seed);
        let (jump, skipped, chains) = scenario.limits;
        let config = config(jump, skipped, chains);
        let mut per_account = [0u32; ACCOUNTS.len()];
        let mut devices: Vec<Device> = scenario
            .accounts
            .iter()
            .map(|&a| {
                per_account[a] += 1;
                Device {
                    account_index: a,
                    account: ACCOUNTS[a],
                    device: per_account[a],
                    session: GroupSession::create_with_config(&mut rng, PROP_GROUP, config)
                        .unwrap(),
                }
            })
            .collect();
        let n = devices.len();
        let distributions: Vec<_> = devices.iter().map(|d| d.session.distribution()).collect();
        let own: Vec<(u32, u32)> = distributions.iter().map(|d| (chain_id_of(d), 0)).collect();
        let missing: HashSet<(usize, usize)> = scenario
            .missing
            .iter()
            .map(|(r, s)| (r.index(n), s.index(n)))
            .collect();
        let mut view = vec![vec![Vec::new(); n]; n];
        for r in 0..n {
            for s in 0..n {
                if r != s && !missing.contains(&(r, s)) {
                    let from = addr(devices[s].account, devices[s].device);
                    devices[r]
                        .session
                        .process_distribution(from, &distributions[s])
                        .unwrap();
                    view[r][s].push(ChainModel {
                        chain_id: own[s].0,
                        next: 0,
                        skipped: VecDeque::new(),
                    });
                }
            }
        }
        Self {
            limits: scenario.limits,
            rng,
            devices,
            own,
            view,
            removed: vec![BTreeSet::new(); n],
            sent: Vec::new(),
            handed: vec![HashSet::new(); n],
            decrypted: vec![HashSet::new(); n],
            stats: Stats::default(),
        }
    }

    fn from(&self, s: usize) -> Address<'static> {
        addr(self.devices[s].account, self.devices[s].device)
    }

    /// The model's outcome of delivering message `m` to `r`: on success, the
    /// index of the chain and its new state.
    fn predict(&self, r: usize, m: usize) -> Result<(usize, ChainModel), Error> {
        let (jump, cap, _) = self.limits;
        let sent = &self.sent[m];
        let (i, chain) = self.view[r][sent.sender]
            .iter()
            .enumerate()
            .find(|(_, c)| c.chain_id == sent.chain_id)
            .ok_or(Error::NotAMember)?;
        let mut next = chain.clone();
        if sent.iteration < chain.next {
            let at = chain
                .skipped
                .iter()
                .position(|&n| n == sent.iteration)
                .ok_or(Error::DuplicateMessage)?;
            next.skipped.remove(at);
            return Ok((i, next));
        }
        let gap = sent.iteration - chain.next;
        if gap > jump {
            return Err(Error::TooManySkippedMessages {
                requested: u64::from(gap),
                max: jump,
            });
        }
        next.skipped.extend(chain.next..sent.iteration);
        while next.skipped.len() > cap as usize {
            next.skipped.pop_front();
        }
        next.next = sent.iteration + 1;
        Ok((i, next))
    }

    /// The exact error for message `m` with bit `bit` flipped, delivered to `r`.
    fn predict_tampered(&self, r: usize, m: usize, tampered: &[u8], bit: usize) -> Error {
        let sent = &self.sent[m];
        let g = PROP_GROUP.len();
        let pos = bit / 8;
        if pos == 0 {
            return Error::Decode(DecodeError::UnknownFormat {
                expected: GROUP_MESSAGE_TAG,
                found: tampered[0],
            });
        }
        if pos == 1 {
            let l = usize::from(tampered[1]);
            if l == 0 || l > MAX_GROUP_ID_LEN {
                return DecodeError::InvalidValue { field: "group id" }.into();
            }
            let len = tampered.len();
            let field = if len < 2 + l {
                "group id"
            } else if len < 2 + l + 4 {
                "chain id"
            } else if len < 2 + l + 8 {
                "iteration"
            } else if len < 2 + l + 8 + NONCE_LEN {
                "nonce"
            } else if len < 2 + l + 8 + NONCE_LEN + TAG_LEN + SIGNATURE_LEN {
                "group message body"
            } else {
                return Error::WrongGroup;
            };
            return DecodeError::Truncated { field }.into();
        }
        if pos < 2 + g {
            return Error::WrongGroup;
        }
        let chain_id = chain_id_of(tampered);
        if self.view[r][sent.sender]
            .iter()
            .any(|c| c.chain_id == chain_id)
        {
            Error::InvalidSignature
        } else {
            Error::NotAMember
        }
    }

    /// Counts a predicted outcome.
    fn count(&mut self, r: usize, m: usize, outcome: &Result<(usize, ChainModel), Error>) {
        let sent = &self.sent[m];
        let s = &mut self.stats;
        match outcome {
            Ok((i, _)) => {
                let chain = &self.view[r][sent.sender][*i];
                if sent.iteration < chain.next {
                    s.skipped_ok += 1;
                } else if sent.iteration == chain.next {
                    s.in_order_ok += 1;
                } else {
                    s.forward_ok += 1;
                }
            }
            Err(Error::DuplicateMessage) if self.decrypted[r].contains(&m) => {
                s.replay_duplicate += 1;
            }
            Err(Error::DuplicateMessage) => s.evicted_duplicate += 1,
            Err(Error::TooManySkippedMessages { .. }) => s.too_many += 1,
            Err(Error::NotAMember) if r == sent.sender => s.own_message += 1,
            Err(Error::NotAMember) if self.view[r][sent.sender].is_empty() => {
                s.undistributed += 1;
            }
            Err(Error::NotAMember) => s.stale_chain += 1,
            Err(e) => panic!("model predicted {e:?}"),
        }
    }

    fn apply(&mut self, r: usize, m: usize, outcome: Result<(usize, ChainModel), Error>) {
        if let Ok((i, chain)) = outcome {
            self.view[r][self.sent[m].sender][i] = chain;
            assert!(
                self.decrypted[r].insert(m),
                "message {m} decrypted twice at device {r}"
            );
        }
    }

    fn deliver(&mut self, r: usize, m: usize) {
        let expected = self.predict(r, m);
        self.count(r, m, &expected);
        let from = self.from(self.sent[m].sender);
        let before = snapshot(&self.devices[r].session);
        let result = self.devices[r].session.decrypt(from, &self.sent[m].bytes);
        match &expected {
            Ok(_) => assert_eq!(
                result.as_deref(),
                Ok(self.sent[m].plaintext.as_slice()),
                "message {m} to device {r}"
            ),
            Err(e) => {
                assert_eq!(result, Err(*e), "message {m} to device {r}");
                assert_eq!(snapshot(&self.devices[r].session), before);
            }
        }
        self.handed[r].insert(m);
        self.apply(r, m, expected);
    }

    /// Device `r` processes a distribution of device `s`: refused if `r` removed
    /// `s`'s account, ignored if `r` knows the chain, otherwise a new chain
    /// (the oldest dropped beyond the limit).
    fn offer_distribution(&mut self, r: usize, s: usize, distribution: &[u8]) {
        let (chain_id, iteration) = (chain_id_of(distribution), iteration_of(distribution));
        let from = self.from(s);
        let before = snapshot(&self.devices[r].session);
        let result = self.devices[r]
            .session
            .process_distribution(from, distribution);
        if self.removed[r].contains(&self.devices[s].account_index) {
            assert_eq!(result, Err(Error::NotAMember));
            assert_eq!(snapshot(&self.devices[r].session), before);
            self.stats.refused_distribution += 1;
            return;
        }
        assert_eq!(result, Ok(()));
        let chains = &mut self.view[r][s];
        if chains.iter().any(|c| c.chain_id == chain_id) {
            assert_eq!(snapshot(&self.devices[r].session), before);
            self.stats.ignored_distribution += 1;
            return;
        }
        chains.push(ChainModel {
            chain_id,
            next: iteration,
            skipped: VecDeque::new(),
        });
        if chains.len() > self.limits.2 as usize {
            chains.remove(0);
        }
        self.stats.joined += 1;
    }

    fn tampered(&self, m: usize, bit: &Index) -> (Vec<u8>, usize) {
        let mut bytes = self.sent[m].bytes.clone();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        (bytes, bit)
    }

    fn run(&mut self, op: &Op) {
        let n = self.devices.len();
        match op {
            Op::Send(s, plaintexts) => {
                let s = s.index(n);
                for p in plaintexts {
                    let mut plaintext = p.clone();
                    plaintext.extend_from_slice(&(self.sent.len() as u32).to_le_bytes());
                    let bytes = self.devices[s]
                        .session
                        .encrypt(&mut self.rng, &plaintext)
                        .unwrap();
                    let (chain_id, iteration) = self.own[s];
                    assert_eq!(
                        bytes.len(),
                        group_message_overhead(PROP_GROUP.len()) + plaintext.len()
                    );
                    assert_eq!(chain_id_of(&bytes), chain_id);
                    assert_eq!(iteration_of(&bytes), iteration);
                    self.own[s].1 += 1;
                    self.sent.push(Sent {
                        sender: s,
                        chain_id,
                        iteration,
                        plaintext,
                        bytes,
                    });
                }
            }
            Op::DeliverNext(r) => {
                let r = r.index(n);
                if let Some(m) = (0..self.sent.len())
                    .find(|m| self.sent[*m].sender != r && !self.handed[r].contains(m))
                {
                    self.deliver(r, m);
                }
            }
            Op::Deliver(m, r) => {
                if !self.sent.is_empty() {
                    self.deliver(r.index(n), m.index(self.sent.len()));
                }
            }
            Op::Tamper(m, r, bit) => {
                if self.sent.is_empty() {
                    return;
                }
                let (m, r) = (m.index(self.sent.len()), r.index(n));
                let (bytes, bit) = self.tampered(m, bit);
                let expected = self.predict_tampered(r, m, &bytes, bit);
                let from = self.from(self.sent[m].sender);
                assert_rejected(&mut self.devices[r].session, from, &bytes, expected);
                self.stats.tamper_rejected += 1;
            }
            Op::Batch(r, list) => {
                if self.sent.is_empty() {
                    return;
                }
                let r = r.index(n);
                let mut copies = Vec::new();
                let mut expected = Vec::new();
                let mut fallback = false;
                for (m, tamper) in list {
                    let m = m.index(self.sent.len());
                    let from = self.from(self.sent[m].sender);
                    if let Some(bit) = tamper {
                        let (bytes, bit) = self.tampered(m, bit);
                        let e = self.predict_tampered(r, m, &bytes, bit);
                        fallback |= e == Error::InvalidSignature;
                        expected.push(Err(e));
                        copies.push((from, bytes));
                    } else {
                        let outcome = self.predict(r, m);
                        self.count(r, m, &outcome);
                        expected.push(outcome.clone().map(|_| self.sent[m].plaintext.clone()));
                        self.handed[r].insert(m);
                        self.apply(r, m, outcome);
                        copies.push((from, self.sent[m].bytes.clone()));
                    }
                }
                let batch: Vec<(Address<'_>, &[u8])> =
                    copies.iter().map(|(a, b)| (*a, b.as_slice())).collect();
                let before = snapshot(&self.devices[r].session);
                let results = self.devices[r].session.decrypt_batch(&batch);
                assert_eq!(results, expected, "batch to device {r}");
                if expected.iter().all(Result::is_err) {
                    assert_eq!(snapshot(&self.devices[r].session), before);
                }
                if fallback {
                    self.stats.batch_fallback += 1;
                } else {
                    self.stats.batch_fast += 1;
                }
            }
            Op::Rotate(s, mask) => {
                let s = s.index(n);
                let distribution = self.devices[s].session.rotate(&mut self.rng);
                let chain_id = chain_id_of(&distribution);
                assert_eq!(iteration_of(&distribution), 0);
                self.own[s] = (chain_id, 0);
                for r in (0..n).filter(|&r| r != s && mask & (1 << r) != 0) {
                    self.offer_distribution(r, s, &distribution);
                }
                self.stats.rotations += 1;
            }
            Op::Join(s, r) => {
                let (s, r) = (s.index(n), r.index(n));
                if s == r {
                    return;
                }
                let distribution = self.devices[s].session.distribution();
                assert_eq!(chain_id_of(&distribution), self.own[s].0);
                assert_eq!(iteration_of(&distribution), self.own[s].1);
                self.offer_distribution(r, s, &distribution);
            }
            Op::Remove(r, a, mask) => {
                let (r, a) = (r.index(n), a.index(ACCOUNTS.len()));
                let distribution = self.devices[r]
                    .session
                    .remove_member(&mut self.rng, ACCOUNTS[a])
                    .unwrap();
                self.own[r] = (chain_id_of(&distribution), 0);
                for s in 0..n {
                    if self.devices[s].account_index == a {
                        self.view[r][s].clear();
                    }
                }
                self.removed[r].insert(a);
                for x in (0..n).filter(|&x| x != r && mask & (1 << x) != 0) {
                    self.offer_distribution(x, r, &distribution);
                }
                self.stats.removals += 1;
            }
            Op::Readmit(r, a) => {
                let (r, a) = (r.index(n), a.index(ACCOUNTS.len()));
                self.devices[r].session.readmit_member(ACCOUNTS[a]);
                if self.removed[r].remove(&a) {
                    self.stats.readmitted += 1;
                }
            }
            Op::Restore(r) => {
                let r = r.index(n);
                let stored = self.devices[r].session.encode();
                let restored = GroupSession::decode(&stored).unwrap();
                assert_eq!(*restored.encode(), *stored);
                self.devices[r].session = restored;
                self.stats.restored += 1;
            }
        }
        self.check_states();
    }

    /// Every device's stored state matches the model.
    fn check_states(&self) {
        for (r, device) in self.devices.iter().enumerate() {
            let stored = Stored::parse(&device.session.encode());
            assert_eq!(stored.own_chain_id, self.own[r].0);
            assert_eq!(stored.own_iteration, self.own[r].1);
            let mut expected = BTreeMap::new();
            for (s, chains) in self.view[r].iter().enumerate() {
                if !chains.is_empty() {
                    let d = &self.devices[s];
                    let chains: Vec<ChainView> = chains
                        .iter()
                        .map(|c| (c.chain_id, c.next, c.skipped.iter().copied().collect()))
                        .collect();
                    expected.insert((d.account.to_vec(), d.device), chains);
                }
            }
            let actual: BTreeMap<(Vec<u8>, u32), Vec<ChainView>> = stored
                .members
                .iter()
                .map(|m| {
                    (
                        (m.account.clone(), m.device),
                        stored.chains_of(&m.account, m.device),
                    )
                })
                .collect();
            assert_eq!(actual, expected, "stored chains of device {r}");
            let removed: Vec<Vec<u8>> = self.removed[r]
                .iter()
                .map(|&a| ACCOUNTS[a].to_vec())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(stored.removed, removed, "removed accounts of device {r}");
        }
    }
}

fn run_scenario(scenario: &Scenario) -> Stats {
    let mut world = World::new(scenario);
    world.check_states();
    for op in &scenario.ops {
        world.run(op);
    }
    world.stats
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_group_schedules_match_the_model(scenario in scenario()) {
        run_scenario(&scenario);
    }
}

/// The generator reaches every outcome the model distinguishes (on a fixed
/// seed), so the property above is not vacuous.
#[test]
fn schedules_reach_every_outcome() {
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = scenario();
    let mut total = Stats::default();
    for _ in 0..48 {
        let scenario = strategy.new_tree(&mut runner).unwrap().current();
        total.add(&run_scenario(&scenario));
    }
    eprintln!("{total:?}");
    let s = &total;
    for (name, count) in [
        ("in_order_ok", s.in_order_ok),
        ("forward_ok", s.forward_ok),
        ("skipped_ok", s.skipped_ok),
        ("replay_duplicate", s.replay_duplicate),
        ("evicted_duplicate", s.evicted_duplicate),
        ("too_many", s.too_many),
        ("stale_chain", s.stale_chain),
        ("undistributed", s.undistributed),
        ("own_message", s.own_message),
        ("tamper_rejected", s.tamper_rejected),
        ("batch_fast", s.batch_fast),
        ("batch_fallback", s.batch_fallback),
        ("rotations", s.rotations),
        ("joined", s.joined),
        ("ignored_distribution", s.ignored_distribution),
        ("removals", s.removals),
        ("refused_distribution", s.refused_distribution),
        ("readmitted", s.readmitted),
        ("restored", s.restored),
    ] {
        assert!(count > 0, "no schedule reached {name}: {total:?}");
    }
}

// ---------------------------------------------------------------------------
// Signatures, membership and group ids
// ---------------------------------------------------------------------------

const GROUP_ID: &[u8] = b"hiking club";

fn trio(seed: u64, config: GroupConfig) -> Vec<Member> {
    group(
        &mut rng(seed),
        GROUP_ID,
        config,
        &[(b"alice", 1), (b"bob", 1), (b"carol", 1)],
    )
}

/// A session that sends on `victim`'s chain as `holder` holds it (chain id,
/// iteration and chain key from `holder`'s stored state), signing with `signer`.
/// Any member can build this: the signature is the only thing that stops it.
fn impersonate(holder: &GroupSession, victim: &Member, signer: &GroupSession) -> GroupSession {
    let held = Stored::parse(&holder.encode());
    let chain = &held.member(victim.account, victim.device).unwrap().chains[0];
    let mut forged = Stored::parse(&signer.encode());
    forged.own_chain_id = chain.chain_id;
    forged.own_iteration = chain.next_iteration;
    forged.own_chain_key = chain.chain_key;
    GroupSession::decode(&forged.encode()).unwrap()
}

#[test]
fn forged_signatures_are_rejected() {
    let mut m = trio(1, GroupConfig::default());
    let mut rng = rng(1001);
    let alice = m[0].addr();
    let message = m[0]
        .session
        .encrypt(&mut rng, b"meet at the trailhead")
        .unwrap();
    let signature_at = message.len() - SIGNATURE_LEN;

    // Every bit of the signature.
    for bit in 0..SIGNATURE_LEN * 8 {
        let mut forged = message.clone();
        forged[signature_at + bit / 8] ^= 1 << (bit % 8);
        assert_rejected(&mut m[1].session, alice, &forged, Error::InvalidSignature);
    }
    // Every bit the signature covers after the chain id (iteration, nonce,
    // ciphertext, tag).
    for bit in (chain_id_at(GROUP_ID.len()) + 4) * 8..signature_at * 8 {
        let mut forged = message.clone();
        forged[bit / 8] ^= 1 << (bit % 8);
        assert_rejected(&mut m[1].session, alice, &forged, Error::InvalidSignature);
    }
    for fill in [0x00, 0xff] {
        let mut forged = message.clone();
        forged[signature_at..].fill(fill);
        assert_rejected(&mut m[1].session, alice, &forged, Error::InvalidSignature);
    }

    // Re-signed by another member's signing key, and by the receiver's own.
    for signer in [2, 1] {
        let mut forged = message.clone();
        resign(&mut forged, &signing_key(&m[signer].session));
        assert_rejected(&mut m[1].session, alice, &forged, Error::InvalidSignature);
    }
    // Re-signing with Alice's own key reproduces the message (Ed25519 is deterministic).
    let mut resigned = message.clone();
    resign(&mut resigned, &signing_key(&m[0].session));
    assert_eq!(resigned, message);

    // Carol holds Alice's chain key, so she can encrypt a message on Alice's
    // chain that would decrypt; only the signature gives her away.
    // (Both draw the same nonce, so that they differ only in the signature.)
    let mut as_alice = impersonate(&m[2].session, &m[0], &m[2].session);
    let forged = as_alice
        .encrypt(&mut self::rng(1100), b"cancelled, stay home")
        .unwrap();
    assert_eq!(iteration_of(&forged), 0);
    assert_rejected(&mut m[1].session, alice, &forged, Error::InvalidSignature);
    // The same construction with Alice's signing key is accepted: the forgery
    // above differs only in its signature.
    let mut genuine = impersonate(&m[2].session, &m[0], &m[0].session);
    let control = genuine
        .encrypt(&mut self::rng(1100), b"cancelled, stay home")
        .unwrap();
    let signed = control.len() - SIGNATURE_LEN;
    assert_eq!(control[..signed], forged[..signed]);
    assert_ne!(control[signed..], forged[signed..]);
    let mut bob_copy = GroupSession::decode(&m[1].session.encode()).unwrap();
    assert_decrypts(&mut bob_copy, alice, &control, b"cancelled, stay home");

    // Carol's own message relabelled with Alice's chain id, still signed by Carol.
    let mut relabelled = m[2].session.encrypt(&mut rng, b"from carol").unwrap();
    assert_rejected(&mut m[1].session, alice, &relabelled, Error::NotAMember);
    let at = chain_id_at(GROUP_ID.len());
    relabelled[at..at + 4].copy_from_slice(&chain_id_of(&message).to_be_bytes());
    resign(&mut relabelled, &signing_key(&m[2].session));
    assert_rejected(
        &mut m[1].session,
        alice,
        &relabelled,
        Error::InvalidSignature,
    );

    // None of this disturbed Bob: the genuine message still decrypts, once.
    assert_decrypts(&mut m[1].session, alice, &message, b"meet at the trailhead");
    assert_rejected(&mut m[1].session, alice, &message, Error::DuplicateMessage);
}

#[test]
fn a_valid_signature_over_a_bad_ciphertext_fails_decryption() {
    let mut m = trio(2, GroupConfig::default());
    let mut rng = rng(1002);
    let alice = m[0].addr();
    let key = signing_key(&m[0].session);
    let messages: Vec<Vec<u8>> = (0..3u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i; 5]).unwrap())
        .collect();
    // Only the sender can do this; the AEAD still catches it, on the current
    // chain (staged skipped keys are rolled back) and on a stored skipped key.
    let header_len = ciphertext_at(GROUP_ID.len());
    let tag_at = messages[2].len() - SIGNATURE_LEN - TAG_LEN;
    for at in [header_len, tag_at, tag_at + TAG_LEN - 1] {
        let mut bad = messages[2].clone();
        bad[at] ^= 0x40;
        resign(&mut bad, &key);
        assert_rejected(&mut m[1].session, alice, &bad, Error::DecryptionFailed);
    }
    assert_decrypts(&mut m[1].session, alice, &messages[2], &[2; 5]);
    let mut bad = messages[0].clone();
    bad[header_len] ^= 1;
    resign(&mut bad, &key);
    assert_rejected(&mut m[1].session, alice, &bad, Error::DecryptionFailed);
    // The header is the AEAD's associated data: the same ciphertext under
    // another iteration fails too.
    let iteration_last = chain_id_at(GROUP_ID.len()) + 7;
    let mut moved = messages[1].clone();
    moved[iteration_last] = 0;
    resign(&mut moved, &key);
    assert_rejected(&mut m[1].session, alice, &moved, Error::DecryptionFailed);
    // So does the same ciphertext under another nonce (first and last byte).
    for at in [header_len - NONCE_LEN, header_len - 1] {
        let mut renonced = messages[1].clone();
        renonced[at] ^= 0x01;
        resign(&mut renonced, &key);
        assert_rejected(&mut m[1].session, alice, &renonced, Error::DecryptionFailed);
    }
    assert_decrypts(&mut m[1].session, alice, &messages[0], &[0; 5]);
    assert_decrypts(&mut m[1].session, alice, &messages[1], &[1; 5]);
}

#[test]
fn truncated_and_malformed_group_messages_are_decode_errors() {
    let mut m = trio(3, GroupConfig::default());
    let mut rng = rng(1003);
    let alice = m[0].addr();
    let message = m[0].session.encrypt(&mut rng, b"hello").unwrap();
    let g = GROUP_ID.len();
    let body_at = ciphertext_at(g);
    for len in 0..message.len() {
        let field = match len {
            0 => "format tag",
            1 => "group id length",
            l if l < 2 + g => "group id",
            l if l < 2 + g + 4 => "chain id",
            l if l < 2 + g + 8 => "iteration",
            l if l < body_at => "nonce",
            l if l < body_at + TAG_LEN + SIGNATURE_LEN => "group message body",
            // Shorter than sent but long enough to parse: the signature fails.
            _ => {
                assert_rejected(
                    &mut m[1].session,
                    alice,
                    &message[..len],
                    Error::InvalidSignature,
                );
                continue;
            }
        };
        assert_rejected(
            &mut m[1].session,
            alice,
            &message[..len],
            DecodeError::Truncated { field }.into(),
        );
    }
    let mut longer = message.clone();
    longer.push(0);
    assert_rejected(&mut m[1].session, alice, &longer, Error::InvalidSignature);
    let distribution = m[0].session.distribution();
    assert_rejected(
        &mut m[1].session,
        alice,
        &distribution,
        DecodeError::UnknownFormat {
            expected: GROUP_MESSAGE_TAG,
            found: DISTRIBUTION_TAG,
        }
        .into(),
    );
    for len in [0u8, 65, 255] {
        let mut bad = message.clone();
        bad[1] = len;
        assert_rejected(
            &mut m[1].session,
            alice,
            &bad,
            DecodeError::InvalidValue { field: "group id" }.into(),
        );
    }
    assert_decrypts(&mut m[1].session, alice, &message, b"hello");
}

#[test]
fn non_members_and_removed_members_are_refused() {
    let mut rng = rng(4);
    let mut m = group(
        &mut rng,
        GROUP_ID,
        GroupConfig::default(),
        &[
            (b"alice", 1),
            (b"alice", 2),
            (b"bob", 1),
            (b"carol", 1),
            (b"carol", 2),
        ],
    );
    let mut dave = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let from_dave = dave.encrypt(&mut rng, b"let me in").unwrap();
    // Never distributed: Bob knows no chain of Dave.
    assert_rejected(
        &mut m[2].session,
        addr(b"dave", 1),
        &from_dave,
        Error::NotAMember,
    );
    // Chains belong to a device, not an account: Alice's first device's message
    // is refused from her second device and from an unknown third one, and her
    // own devices do not hold their own chains.
    let from_alice = m[0].session.encrypt(&mut rng, b"hi").unwrap();
    for (account, device) in [(&b"alice"[..], 2), (b"alice", 3), (b"alicf", 1)] {
        assert_rejected(
            &mut m[2].session,
            addr(account, device),
            &from_alice,
            Error::NotAMember,
        );
    }
    assert_rejected(
        &mut m[0].session,
        addr(b"alice", 1),
        &from_alice,
        Error::NotAMember,
    );
    assert_decrypts(&mut m[1].session, addr(b"alice", 1), &from_alice, b"hi");

    // Carol's messages in flight when Bob removes her account (both devices).
    let carol_1 = m[3].session.encrypt(&mut rng, b"c1").unwrap();
    let carol_2 = m[4].session.encrypt(&mut rng, b"c2").unwrap();
    let rotated = m[2].session.remove_member(&mut rng, b"carol").unwrap();
    let devices: Vec<(Vec<u8>, u32)> = m[2]
        .session
        .member_devices()
        .map(|a| (a.account_id().to_vec(), a.device_id()))
        .collect();
    assert_eq!(devices, [(b"alice".to_vec(), 1), (b"alice".to_vec(), 2)]);
    assert_rejected(
        &mut m[2].session,
        addr(b"carol", 1),
        &carol_1,
        Error::NotAMember,
    );
    assert_rejected(
        &mut m[2].session,
        addr(b"carol", 2),
        &carol_2,
        Error::NotAMember,
    );
    let later = m[3].session.encrypt(&mut rng, b"still here?").unwrap();
    assert_rejected(
        &mut m[2].session,
        addr(b"carol", 1),
        &later,
        Error::NotAMember,
    );
    // Bob's new chain: Alice reads it once she processes the distribution.
    let from_bob = m[2].session.encrypt(&mut rng, b"carol is out").unwrap();
    assert_rejected(
        &mut m[0].session,
        addr(b"bob", 1),
        &from_bob,
        Error::NotAMember,
    );
    m[0].session
        .process_distribution(addr(b"bob", 1), &rotated)
        .unwrap();
    assert_decrypts(
        &mut m[0].session,
        addr(b"bob", 1),
        &from_bob,
        b"carol is out",
    );
    // Removing an account that is not in the group only rotates.
    let before: Vec<(Vec<u8>, u32)> = m[1]
        .session
        .member_devices()
        .map(|a| (a.account_id().to_vec(), a.device_id()))
        .collect();
    let old_chain = Stored::parse(&m[1].session.encode()).own_chain_id;
    let rotated = m[1].session.remove_member(&mut rng, b"mallory").unwrap();
    assert_ne!(chain_id_of(&rotated), old_chain);
    let after: Vec<(Vec<u8>, u32)> = m[1]
        .session
        .member_devices()
        .map(|a| (a.account_id().to_vec(), a.device_id()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn messages_of_another_group_are_refused() {
    let mut rng = rng(5);
    let mut m = trio(6, GroupConfig::default());
    let alice = m[0].addr();
    // Alice in another group, and in a group whose id extends this one's.
    for other in [&b"book club"[..], b"hiking club!", b"hiking clu"] {
        let mut elsewhere = GroupSession::create(&mut rng, other).unwrap();
        let message = elsewhere.encrypt(&mut rng, b"wrong room").unwrap();
        assert_rejected(&mut m[1].session, alice, &message, Error::WrongGroup);
        assert_distribution_rejected(
            &mut m[1].session,
            alice,
            &elsewhere.distribution(),
            Error::WrongGroup,
        );
    }
    // Every bit of the group id of a genuine message.
    let message = m[0].session.encrypt(&mut rng, b"right room").unwrap();
    for bit in 16..(2 + GROUP_ID.len()) * 8 {
        let mut moved = message.clone();
        moved[bit / 8] ^= 1 << (bit % 8);
        assert_rejected(&mut m[1].session, alice, &moved, Error::WrongGroup);
    }
    assert_decrypts(&mut m[1].session, alice, &message, b"right room");
}

// ---------------------------------------------------------------------------
// Chain bounds
// ---------------------------------------------------------------------------

/// Alice (default limits) and Bob (`config`), Bob holding Alice's chain from
/// iteration 0, and `count` messages from Alice.
fn alice_to_bob(seed: u64, config: GroupConfig, count: u8) -> (Vec<Member>, Vec<Vec<u8>>) {
    let mut rng = rng(seed);
    let alice = Member {
        account: b"alice",
        device: 1,
        session: GroupSession::create(&mut rng, GROUP_ID).unwrap(),
    };
    let mut bob = Member {
        account: b"bob",
        device: 1,
        session: GroupSession::create_with_config(&mut rng, GROUP_ID, config).unwrap(),
    };
    bob.session
        .process_distribution(alice.addr(), &alice.session.distribution())
        .unwrap();
    let mut m = vec![alice, bob];
    let messages = (0..count)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    (m, messages)
}

fn skipped_at(session: &GroupSession, account: &[u8]) -> Vec<u32> {
    let chains = Stored::parse(&session.encode()).chains_of(account, 1);
    chains.last().unwrap().2.clone()
}

#[test]
fn forward_jump_is_bounded_exactly_at_the_limit() {
    for jump in [0u32, 1, 5, 7] {
        let count = (2 * jump + 3) as u8;
        let (mut m, msgs) = alice_to_bob(10 + u64::from(jump), config(jump, 100, 2), count);
        let alice = m[0].addr();
        let bob = &mut m[1].session;
        let j = jump as usize;
        // From a fresh chain (next iteration 0): one past the limit is refused...
        assert_rejected(
            bob,
            alice,
            &msgs[j + 1],
            Error::TooManySkippedMessages {
                requested: u64::from(jump) + 1,
                max: jump,
            },
        );
        // ...exactly at the limit is accepted and keeps every skipped key.
        assert_decrypts(bob, alice, &msgs[j], &[jump as u8]);
        assert_eq!(skipped_at(bob, b"alice"), (0..jump).collect::<Vec<_>>());
        // The same from the middle of the chain (next iteration jump + 1).
        assert_rejected(
            bob,
            alice,
            &msgs[2 * j + 2],
            Error::TooManySkippedMessages {
                requested: u64::from(jump) + 1,
                max: jump,
            },
        );
        assert_decrypts(bob, alice, &msgs[2 * j + 1], &[2 * jump as u8 + 1]);
        assert_decrypts(bob, alice, &msgs[2 * j + 2], &[2 * jump as u8 + 2]);
        for (i, msg) in msgs.iter().enumerate() {
            if i != j && i < 2 * j + 1 {
                assert_decrypts(bob, alice, msg, &[i as u8]);
            }
        }
        assert!(skipped_at(bob, b"alice").is_empty());
        for msg in &msgs {
            assert_rejected(bob, alice, msg, Error::DuplicateMessage);
        }
    }
}

#[test]
fn skipped_keys_are_capped_and_evicted_oldest_first() {
    const CAP: u32 = 4;
    let c = CAP as usize;
    // Exactly at the cap: every skipped key is kept.
    let (mut m, msgs) = alice_to_bob(20, config(50, CAP, 2), 12);
    let alice = m[0].addr();
    assert_decrypts(&mut m[1].session, alice, &msgs[c], &[CAP as u8]);
    assert_eq!(skipped_at(&m[1].session, b"alice"), [0, 1, 2, 3]);
    for i in (0..c).rev() {
        assert_decrypts(&mut m[1].session, alice, &msgs[i], &[i as u8]);
    }

    // One past the cap: the oldest (iteration 0) is evicted and reads as a
    // duplicate; its key is gone.
    let (mut m, msgs) = alice_to_bob(21, config(50, CAP, 2), 12);
    let bob = &mut m[1].session;
    assert_decrypts(bob, alice, &msgs[c + 1], &[CAP as u8 + 1]);
    assert_eq!(skipped_at(bob, b"alice"), [1, 2, 3, 4]);
    assert_rejected(bob, alice, &msgs[0], Error::DuplicateMessage);
    for (i, msg) in msgs.iter().enumerate().take(c + 1).skip(1) {
        assert_decrypts(bob, alice, msg, &[i as u8]);
    }

    // Across deliveries, in arrival order: keys derived earlier go first, and a
    // key used in between frees its slot.
    let (mut m, msgs) = alice_to_bob(22, config(50, CAP, 2), 12);
    let bob = &mut m[1].session;
    assert_decrypts(bob, alice, &msgs[2], &[2]);
    assert_eq!(skipped_at(bob, b"alice"), [0, 1]);
    assert_decrypts(bob, alice, &msgs[6], &[6]);
    assert_eq!(skipped_at(bob, b"alice"), [1, 3, 4, 5]);
    assert_rejected(bob, alice, &msgs[0], Error::DuplicateMessage);
    assert_decrypts(bob, alice, &msgs[4], &[4]);
    assert_eq!(skipped_at(bob, b"alice"), [1, 3, 5]);
    assert_decrypts(bob, alice, &msgs[8], &[8]);
    assert_eq!(skipped_at(bob, b"alice"), [1, 3, 5, 7]);
    assert_decrypts(bob, alice, &msgs[11], &[11]);
    assert_eq!(skipped_at(bob, b"alice"), [5, 7, 9, 10]);
    for i in [1, 3] {
        assert_rejected(bob, alice, &msgs[i], Error::DuplicateMessage);
    }
    for i in [10, 7, 9, 5] {
        assert_decrypts(bob, alice, &msgs[i], &[i as u8]);
    }
    assert!(skipped_at(bob, b"alice").is_empty());

    // A cap of zero keeps nothing.
    let (mut m, msgs) = alice_to_bob(23, config(50, 0, 2), 4);
    let bob = &mut m[1].session;
    assert_decrypts(bob, alice, &msgs[3], &[3]);
    for msg in &msgs[..3] {
        assert_rejected(bob, alice, msg, Error::DuplicateMessage);
    }

    // The cap is per chain: two senders and two chains of one sender each
    // keep CAP keys.
    let mut rng = rng(24);
    let mut m = group(
        &mut rng,
        GROUP_ID,
        config(50, CAP, 2),
        &[(b"alice", 1), (b"bob", 1), (b"carol", 1)],
    );
    let old: Vec<Vec<u8>> = (0..=CAP as u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    let rotated = m[0].session.rotate(&mut rng);
    m[1].session
        .process_distribution(addr(b"alice", 1), &rotated)
        .unwrap();
    let new: Vec<Vec<u8>> = (0..=CAP as u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    let from_carol: Vec<Vec<u8>> = (0..=CAP as u8)
        .map(|i| m[2].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    for (from, last) in [
        (addr(b"alice", 1), &old[c]),
        (addr(b"alice", 1), &new[c]),
        (addr(b"carol", 1), &from_carol[c]),
    ] {
        assert_decrypts(&mut m[1].session, from, last, &[CAP as u8]);
    }
    let stored = Stored::parse(&m[1].session.encode());
    for (account, chains) in [(&b"alice"[..], 2), (b"carol", 1)] {
        let held = stored.chains_of(account, 1);
        assert_eq!(held.len(), chains);
        for (_, next, skipped) in held {
            assert_eq!((next, skipped), (CAP + 1, vec![0, 1, 2, 3]));
        }
    }
    for (from, msgs) in [
        (addr(b"alice", 1), &old),
        (addr(b"alice", 1), &new),
        (addr(b"carol", 1), &from_carol),
    ] {
        for (i, msg) in msgs[..c].iter().enumerate() {
            assert_decrypts(&mut m[1].session, from, msg, &[i as u8]);
        }
    }
}

#[test]
fn chains_per_sender_are_capped_oldest_dropped() {
    for max in 1..=3u32 {
        let mut rng = rng(30 + u64::from(max));
        let mut m = group(
            &mut rng,
            GROUP_ID,
            config(10, 10, max),
            &[(b"alice", 1), (b"bob", 1), (b"carol", 1)],
        );
        let alice = m[0].addr();
        let carol_message = m[2].session.encrypt(&mut rng, b"carol").unwrap();
        // `max` chains: two messages on each; the second arrives first, leaving
        // a skipped key in every chain.
        let mut chains = Vec::new();
        for chain in 0..max {
            if chain > 0 {
                let rotated = m[0].session.rotate(&mut rng);
                m[1].session.process_distribution(alice, &rotated).unwrap();
            }
            let first = m[0].session.encrypt(&mut rng, &[chain as u8, 0]).unwrap();
            let second = m[0].session.encrypt(&mut rng, &[chain as u8, 1]).unwrap();
            assert_decrypts(&mut m[1].session, alice, &second, &[chain as u8, 1]);
            chains.push((chain_id_of(&first), first));
        }
        // Exactly at the limit: every chain is held.
        let held = Stored::parse(&m[1].session.encode()).chains_of(b"alice", 1);
        let ids: Vec<u32> = held.iter().map(|c| c.0).collect();
        assert_eq!(ids, chains.iter().map(|c| c.0).collect::<Vec<_>>());
        assert!(held.iter().all(|c| c.2 == [0]));
        // One more rotation drops the oldest chain with its skipped key.
        let rotated = m[0].session.rotate(&mut rng);
        m[1].session.process_distribution(alice, &rotated).unwrap();
        let latest = m[0].session.encrypt(&mut rng, b"latest").unwrap();
        assert_rejected(&mut m[1].session, alice, &chains[0].1, Error::NotAMember);
        let held = Stored::parse(&m[1].session.encode()).chains_of(b"alice", 1);
        assert_eq!(held.len(), max as usize);
        assert!(held.iter().all(|c| c.0 != chains[0].0));
        assert_eq!(held.last().unwrap().0, chain_id_of(&latest));
        for (chain, (_, first)) in chains.iter().enumerate().skip(1) {
            assert_decrypts(&mut m[1].session, alice, first, &[chain as u8, 0]);
        }
        assert_decrypts(&mut m[1].session, alice, &latest, b"latest");
        // Another sender's chains are not affected.
        let carol = m[2].addr();
        assert_decrypts(&mut m[1].session, carol, &carol_message, b"carol");
    }
}

// ---------------------------------------------------------------------------
// Removal and late joiners
// ---------------------------------------------------------------------------

#[test]
fn removed_member_reads_nothing_sent_after_the_rotation() {
    let mut rng = rng(40);
    let mut m = group(
        &mut rng,
        GROUP_ID,
        GroupConfig::default(),
        &[(b"alice", 1), (b"bob", 1), (b"bob", 2), (b"carol", 1)],
    );
    let (alice, carol) = (m[0].addr(), m[3].addr());
    let in_flight = m[0].session.encrypt(&mut rng, b"before").unwrap();
    let old_chain = chain_id_of(&in_flight);
    // Alice and Carol each remove Bob and exchange their new distributions.
    let from_alice = m[0].session.remove_member(&mut rng, b"bob").unwrap();
    let from_carol = m[3].session.remove_member(&mut rng, b"bob").unwrap();
    m[3].session
        .process_distribution(alice, &from_alice)
        .unwrap();
    m[0].session
        .process_distribution(carol, &from_carol)
        .unwrap();

    let after = m[0].session.encrypt(&mut rng, b"after").unwrap();
    assert_ne!(chain_id_of(&after), old_chain);
    let carol_after = m[3].session.encrypt(&mut rng, b"carol after").unwrap();
    for bob in [1, 2] {
        assert_rejected(&mut m[bob].session, alice, &after, Error::NotAMember);
        assert_rejected(&mut m[bob].session, carol, &carol_after, Error::NotAMember);
        // Relabelled with the old chain id Bob still holds: not signed by that chain.
        let mut relabelled = after.clone();
        let at = chain_id_at(GROUP_ID.len());
        relabelled[at..at + 4].copy_from_slice(&old_chain.to_be_bytes());
        assert_rejected(
            &mut m[bob].session,
            alice,
            &relabelled,
            Error::InvalidSignature,
        );
    }
    assert_decrypts(&mut m[3].session, alice, &after, b"after");
    assert_decrypts(&mut m[0].session, carol, &carol_after, b"carol after");
    // What was sent before the rotation is still readable by everyone who held it.
    assert_decrypts(&mut m[3].session, alice, &in_flight, b"before");
    assert_decrypts(&mut m[1].session, alice, &in_flight, b"before");
    // Bob's devices are refused by the remaining members, even on their old chains.
    for bob in [1, 2] {
        let from_bob = m[bob].session.encrypt(&mut rng, b"hello?").unwrap();
        let bob_addr = m[bob].addr();
        assert_rejected(&mut m[0].session, bob_addr, &from_bob, Error::NotAMember);
        assert_rejected(&mut m[3].session, bob_addr, &from_bob, Error::NotAMember);
    }
    assert!(
        m[0].session
            .member_devices()
            .all(|a| a.account_id() == b"carol")
    );

    // Bob stays removed: his distributions, old or new, are refused.
    for bob in [1, 2] {
        let bob_addr = m[bob].addr();
        let old = m[bob].session.distribution();
        let new = m[bob].session.rotate(&mut rng);
        for distribution in [&old, &new] {
            assert_distribution_rejected(
                &mut m[0].session,
                bob_addr,
                distribution,
                Error::NotAMember,
            );
        }
    }
    let stored = Stored::parse(&m[0].session.encode());
    assert_eq!(stored.removed, [b"bob".to_vec()]);
    let restored = GroupSession::decode(&m[0].session.encode()).unwrap();
    assert_eq!(*restored.encode(), *m[0].session.encode());

    // Readmitted, Bob reads from his new distribution on, and nothing Alice
    // sent before she hands him her chain again.
    let sent_while_out = m[0].session.encrypt(&mut rng, b"while out").unwrap();
    m[0].session.readmit_member(b"bob");
    m[0].session.readmit_member(b"never removed");
    assert!(Stored::parse(&m[0].session.encode()).removed.is_empty());
    let (bob_1, bob_new) = (m[1].addr(), m[1].session.distribution());
    m[0].session.process_distribution(bob_1, &bob_new).unwrap();
    let bob_back = m[1].session.encrypt(&mut rng, b"back").unwrap();
    assert_decrypts(&mut m[0].session, bob_1, &bob_back, b"back");
    let alice_now = m[0].session.distribution();
    m[1].session
        .process_distribution(alice, &alice_now)
        .unwrap();
    assert_rejected(
        &mut m[1].session,
        alice,
        &sent_while_out,
        Error::DuplicateMessage,
    );
    let welcome = m[0].session.encrypt(&mut rng, b"welcome back").unwrap();
    assert_decrypts(&mut m[1].session, alice, &welcome, b"welcome back");
}

/// `remove_member` records at most `MAX_GROUP_MEMBER_DEVICES` removed accounts:
/// past that it refuses (nothing changes) rather than forget a removal.
#[test]
fn removal_is_refused_when_the_removed_list_is_full() {
    let mut rng = rng(43);
    let m = trio(44, GroupConfig::default());
    let mut state = Stored::parse(&m[0].session.encode());
    state.removed = (0..MAX_GROUP_MEMBER_DEVICES)
        .map(|i| format!("gone {i:06}").into_bytes())
        .collect();
    let mut alice = GroupSession::decode(&state.encode()).unwrap();
    // The removed list is full: the removal is refused and nothing changes.
    let before = alice.encode();
    assert!(matches!(
        alice.remove_member(&mut rng, b"carol"),
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(*alice.encode(), *before);
    // Removing an account already on the list still works.
    alice.remove_member(&mut rng, b"gone 000001").unwrap();
}

#[test]
fn late_joiner_reads_from_its_distribution_iteration_on() {
    let mut rng = rng(41);
    let mut m = trio(42, GroupConfig::default());
    let alice = m[0].addr();
    let early: Vec<Vec<u8>> = (0..5u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    let mut dave = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let distribution = m[0].session.distribution();
    assert_eq!(iteration_of(&distribution), 5);
    dave.process_distribution(alice, &distribution).unwrap();
    let later: Vec<Vec<u8>> = (5..10u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    // The keys of iterations 0..5 were never held.
    for msg in &early {
        assert_rejected(&mut dave, alice, msg, Error::DuplicateMessage);
    }
    for i in [7usize, 5, 9, 6, 8] {
        assert_decrypts(&mut dave, alice, &later[i - 5], &[i as u8]);
    }
    let held = Stored::parse(&dave.encode()).chains_of(b"alice", 1);
    assert_eq!(held, [(chain_id_of(&distribution), 10, vec![])]);
    // Bob, who got the distribution at iteration 0, reads everything.
    for (i, msg) in early.iter().chain(&later).enumerate() {
        assert_decrypts(&mut m[1].session, alice, msg, &[i as u8]);
    }
}

// ---------------------------------------------------------------------------
// decrypt_batch
// ---------------------------------------------------------------------------

/// Decrypts `batch` with `decrypt_batch` and, on a copy, one by one with
/// `decrypt`: the results and the final states must agree.
fn batch_matches_sequential(
    session: &mut GroupSession,
    batch: &[(Address<'_>, &[u8])],
) -> Vec<Result<Vec<u8>, Error>> {
    let mut reference = GroupSession::decode(&session.encode()).unwrap();
    let expected: Vec<_> = batch
        .iter()
        .map(|(from, bytes)| reference.decrypt(*from, bytes))
        .collect();
    let results = session.decrypt_batch(batch);
    assert_eq!(results, expected);
    assert_eq!(*session.encode(), *reference.encode());
    results
}

#[test]
fn decrypt_batch_of_200_messages() {
    let mut rng = rng(50);
    let mut m = group(
        &mut rng,
        GROUP_ID,
        GroupConfig::default(),
        &[(b"alice", 1), (b"bob", 1), (b"bob", 2), (b"dave", 1)],
    );
    let send = |m: &mut Vec<Member>, rng: &mut ChaCha20Rng, round: u32| {
        let mut out = Vec::new();
        for i in 0..200u32 {
            let sender = (i % 3) as usize;
            let plaintext = format!("round {round} message {i}").into_bytes();
            let bytes = m[sender].session.encrypt(rng, &plaintext).unwrap();
            out.push((m[sender].addr(), bytes, plaintext));
        }
        // A fixed shuffle, so input order is not sending order.
        for i in (1..out.len()).rev() {
            let j = (i * 7919 + round as usize) % (i + 1);
            out.swap(i, j);
        }
        out
    };

    // All valid: every message decrypts, results in input order.
    let round = send(&mut m, &mut rng, 0);
    let batch: Vec<(Address<'_>, &[u8])> =
        round.iter().map(|(a, b, _)| (*a, b.as_slice())).collect();
    let results = batch_matches_sequential(&mut m[3].session, &batch);
    assert_eq!(results.len(), 200);
    for (result, (_, _, plaintext)) in results.iter().zip(&round) {
        assert_eq!(result.as_deref(), Ok(plaintext.as_slice()));
    }
    // A replayed batch is all duplicates, and changes nothing.
    let before = snapshot(&m[3].session);
    assert!(
        m[3].session
            .decrypt_batch(&batch)
            .iter()
            .all(|r| *r == Err(Error::DuplicateMessage))
    );
    assert_eq!(snapshot(&m[3].session), before);

    // One forged signature and one tampered ciphertext: batch verification
    // fails, each is verified on its own, and only those two fail.
    let mut round = send(&mut m, &mut rng, 1);
    let (forged, tampered) = (17, 123);
    let last = round[forged].1.len() - 1;
    round[forged].1[last] ^= 0x01;
    round[tampered].1[ciphertext_at(GROUP_ID.len())] ^= 0x80;
    let batch: Vec<(Address<'_>, &[u8])> =
        round.iter().map(|(a, b, _)| (*a, b.as_slice())).collect();
    let results = batch_matches_sequential(&mut m[3].session, &batch);
    for (i, (result, (_, _, plaintext))) in results.iter().zip(&round).enumerate() {
        if i == forged || i == tampered {
            assert_eq!(*result, Err(Error::InvalidSignature), "message {i}");
        } else {
            assert_eq!(result.as_deref(), Ok(plaintext.as_slice()), "message {i}");
        }
    }

    // Errors found before verification, and a bad ciphertext under a valid
    // signature (batch verification passes, decryption fails).
    let mut round = send(&mut m, &mut rng, 2);
    let key = signing_key(&m[0].session);
    let (bad_aead, non_member, wrong_group, truncated) = (3, 40, 80, 120);
    let alice_index = round
        .iter()
        .position(|r| r.0.account_id() == b"alice")
        .unwrap();
    round.swap(bad_aead, alice_index);
    round[bad_aead].1[ciphertext_at(GROUP_ID.len())] ^= 0x80;
    resign(&mut round[bad_aead].1, &key);
    round[non_member].0 = addr(b"mallory", 1);
    let mut elsewhere = GroupSession::create(&mut rng, b"book club").unwrap();
    round[wrong_group].1 = elsewhere.encrypt(&mut rng, b"elsewhere").unwrap();
    // Past the nonce, short of an AEAD tag and a signature (v2: 12 bytes more
    // than in v1).
    round[truncated].1.truncate(30 + NONCE_LEN);
    let duplicate = round[10].1.clone();
    let mut batch: Vec<(Address<'_>, &[u8])> =
        round.iter().map(|(a, b, _)| (*a, b.as_slice())).collect();
    batch.push((round[10].0, &duplicate));
    let results = batch_matches_sequential(&mut m[3].session, &batch);
    assert_eq!(results[bad_aead], Err(Error::DecryptionFailed));
    assert_eq!(results[non_member], Err(Error::NotAMember));
    assert_eq!(results[wrong_group], Err(Error::WrongGroup));
    assert_eq!(
        results[truncated],
        Err(DecodeError::Truncated {
            field: "group message body"
        }
        .into())
    );
    assert_eq!(results[200], Err(Error::DuplicateMessage));
    let failed = [bad_aead, non_member, wrong_group, truncated];
    for (i, (result, (_, _, plaintext))) in results.iter().zip(&round).enumerate() {
        if !failed.contains(&i) {
            assert_eq!(result.as_deref(), Ok(plaintext.as_slice()), "message {i}");
        }
    }
    assert!(m[3].session.decrypt_batch(&[]).is_empty());
}

// ---------------------------------------------------------------------------
// Distributions
// ---------------------------------------------------------------------------

#[test]
fn distribution_handling() {
    let mut rng = rng(60);
    let mut m = trio(61, GroupConfig::default());
    let alice = m[0].addr();
    let initial = m[0].session.distribution();

    // The same distribution again, before any message: a no-op.
    let before = snapshot(&m[1].session);
    m[1].session.process_distribution(alice, &initial).unwrap();
    assert_eq!(snapshot(&m[1].session), before);

    // A later distribution of a known chain does not skip ahead.
    let mut msgs: Vec<Vec<u8>> = (0..3u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    let at_three = m[0].session.distribution();
    assert_eq!(iteration_of(&at_three), 3);
    msgs.extend((3..6u8).map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap()));
    let at_six = m[0].session.distribution();
    for later in [&at_three, &at_six] {
        m[1].session.process_distribution(alice, later).unwrap();
        assert_eq!(snapshot(&m[1].session), before);
    }
    assert_decrypts(&mut m[1].session, alice, &msgs[0], &[0]);

    // A known chain id with another signing key does not replace the chain,
    // even if it starts earlier.
    let key_at = initial.len() - KEY_LEN;
    let carol_key = signing_key(&m[2].session).public_key().to_bytes();
    let before = snapshot(&m[1].session);
    for base in [&initial, &at_three] {
        let mut other_key = base.to_vec();
        other_key[key_at..].copy_from_slice(&carol_key);
        m[1].session
            .process_distribution(alice, &other_key)
            .unwrap();
        assert_eq!(snapshot(&m[1].session), before);
    }
    assert_decrypts(&mut m[1].session, alice, &msgs[1], &[1]);

    // A distribution of a known chain that starts earlier is ignored too (a
    // known chain is never restarted): Dave, given the chain at iteration 3,
    // cannot be given iterations 0..3 afterwards, and keeps his skipped keys.
    let mut dave = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    dave.process_distribution(alice, &at_three).unwrap();
    assert_decrypts(&mut dave, alice, &msgs[5], &[5]);
    let before = snapshot(&dave);
    dave.process_distribution(alice, &initial).unwrap();
    assert_eq!(snapshot(&dave), before);
    let held = Stored::parse(&dave.encode()).chains_of(b"alice", 1);
    assert_eq!(held, [(chain_id_of(&initial), 6, vec![3, 4])]);
    for msg in &msgs[..3] {
        assert_rejected(&mut dave, alice, msg, Error::DuplicateMessage);
    }
    assert_rejected(&mut dave, alice, &msgs[5], Error::DuplicateMessage);
    for i in [4usize, 3] {
        assert_decrypts(&mut dave, alice, &msgs[i], &[i as u8]);
    }

    // Another group's distribution.
    let elsewhere = GroupSession::create(&mut rng, b"book club").unwrap();
    assert_distribution_rejected(
        &mut m[1].session,
        alice,
        &elsewhere.distribution(),
        Error::WrongGroup,
    );
    // A newcomer's distribution of another group does not add the device.
    assert_distribution_rejected(
        &mut m[1].session,
        addr(b"erin", 1),
        &elsewhere.distribution(),
        Error::WrongGroup,
    );
}

#[test]
fn malformed_distributions_are_decode_errors() {
    let mut rng = rng(62);
    let alice = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let mut bob = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let from = addr(b"alice", 1);
    let distribution = alice.distribution();
    let g = GROUP_ID.len();
    assert_eq!(distribution.len(), 2 + g + 4 + 4 + 2 * KEY_LEN);
    for len in 0..distribution.len() {
        let field = match len {
            0 => "format tag",
            1 => "group id length",
            l if l < 2 + g => "group id",
            l if l < 2 + g + 4 => "chain id",
            l if l < 2 + g + 8 => "iteration",
            l if l < 2 + g + 8 + KEY_LEN => "chain key",
            _ => "signing key",
        };
        assert_distribution_rejected(
            &mut bob,
            from,
            &distribution[..len],
            DecodeError::Truncated { field }.into(),
        );
    }
    let mut longer = distribution.to_vec();
    longer.push(0);
    assert_distribution_rejected(
        &mut bob,
        from,
        &longer,
        DecodeError::TrailingBytes { extra: 1 }.into(),
    );
    for tag in [0x00, GROUP_MESSAGE_TAG, STATE_TAG] {
        let mut bad = distribution.to_vec();
        bad[0] = tag;
        assert_distribution_rejected(
            &mut bob,
            from,
            &bad,
            DecodeError::UnknownFormat {
                expected: DISTRIBUTION_TAG,
                found: tag,
            }
            .into(),
        );
    }
    for len in [0u8, 65, 255] {
        let mut bad = distribution.to_vec();
        bad[1] = len;
        assert_distribution_rejected(
            &mut bob,
            from,
            &bad,
            DecodeError::InvalidValue { field: "group id" }.into(),
        );
    }
    // Signing keys that are not valid identity keys: the identity point (small
    // order), a non-canonical encoding of it, and a y with no point.
    let key_at = distribution.len() - KEY_LEN;
    let mut identity = [0u8; KEY_LEN];
    identity[0] = 1;
    let mut non_canonical = [0xff; KEY_LEN];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    let mut not_on_curve = [0u8; KEY_LEN];
    not_on_curve[0] = 2;
    for key in [identity, non_canonical, not_on_curve] {
        let mut bad = distribution.to_vec();
        bad[key_at..].copy_from_slice(&key);
        assert_distribution_rejected(&mut bob, from, &bad, DecodeError::InvalidIdentityKey.into());
    }
    // A group message is not a distribution.
    let mut sender = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let message = sender.encrypt(&mut rng, b"x").unwrap();
    assert_distribution_rejected(
        &mut bob,
        from,
        &message,
        DecodeError::UnknownFormat {
            expected: DISTRIBUTION_TAG,
            found: GROUP_MESSAGE_TAG,
        }
        .into(),
    );
    bob.process_distribution(from, &distribution).unwrap();
}

/// A distribution processed again after messages were read does not re-open
/// them (fixed in 73d3a85; the first version reset the chain).
#[test]
fn redelivered_distribution_does_not_replay_read_messages() {
    let mut m = trio(63, GroupConfig::default());
    let mut rng = rng(1063);
    let alice = m[0].addr();
    let initial = m[0].session.distribution();
    let msgs: Vec<Vec<u8>> = (0..3u8)
        .map(|i| m[0].session.encrypt(&mut rng, &[i]).unwrap())
        .collect();
    for (i, msg) in msgs.iter().enumerate() {
        assert_decrypts(&mut m[1].session, alice, msg, &[i as u8]);
    }
    // Alice sends the same distribution again (say, to every device when a new
    // one joins); a relay replays her old messages.
    let before = snapshot(&m[1].session);
    m[1].session.process_distribution(alice, &initial).unwrap();
    assert_eq!(
        snapshot(&m[1].session),
        before,
        "re-processing changed the state"
    );
    for msg in &msgs {
        assert_rejected(&mut m[1].session, alice, msg, Error::DuplicateMessage);
    }
}

/// An earlier distribution for a known chain neither forgets skipped keys nor
/// re-opens read iterations (fixed in 73d3a85; the first version reset the
/// chain, dropping the key of 1 and accepting 3 again).
#[test]
fn earlier_distribution_keeps_skipped_keys_and_read_messages_closed() {
    let mut m = trio(64, GroupConfig::default());
    let mut rng = rng(1064);
    let alice = m[0].addr();
    let mut msgs = Vec::new();
    msgs.push(m[0].session.encrypt(&mut rng, &[0]).unwrap());
    msgs.push(m[0].session.encrypt(&mut rng, &[1]).unwrap());
    let at_two = m[0].session.distribution();
    msgs.push(m[0].session.encrypt(&mut rng, &[2]).unwrap());
    msgs.push(m[0].session.encrypt(&mut rng, &[3]).unwrap());
    // Bob reads 0 and 3: keys for 1 and 2 are stored, next iteration is 4.
    assert_decrypts(&mut m[1].session, alice, &msgs[0], &[0]);
    assert_decrypts(&mut m[1].session, alice, &msgs[3], &[3]);
    // The distribution at iteration 2 (sent to a newcomer, and to Bob again).
    m[1].session.process_distribution(alice, &at_two).unwrap();
    // Expected: Bob keeps the key for 1 and still refuses 3.
    assert_decrypts(&mut m[1].session, alice, &msgs[1], &[1]);
    assert_rejected(&mut m[1].session, alice, &msgs[3], Error::DuplicateMessage);
    assert_decrypts(&mut m[1].session, alice, &msgs[2], &[2]);
}

// ---------------------------------------------------------------------------
// Stored state
// ---------------------------------------------------------------------------

/// Bob mid-conversation: four other devices (two of one account), two chains
/// of Alice, skipped keys in several chains; and the messages still pending.
fn mid_conversation() -> (Vec<Member>, Vec<Pending>) {
    let mut rng = rng(70);
    let mut m = group(
        &mut rng,
        GROUP_ID,
        config(20, 8, 2),
        &[
            (b"alice", 1),
            (b"bob", 1),
            (b"carol", 1),
            (b"carol", 2),
            (b"dave", 1),
        ],
    );
    let mut pending = Vec::new();
    for round in 0..2u8 {
        for sender in [0usize, 2, 3, 4] {
            for i in 0..4u8 {
                let plaintext = vec![round, sender as u8, i];
                let bytes = m[sender].session.encrypt(&mut rng, &plaintext).unwrap();
                pending.push((sender, bytes, plaintext));
            }
        }
        if round == 0 {
            let rotated = m[0].session.rotate(&mut rng);
            let alice = m[0].addr();
            m[1].session.process_distribution(alice, &rotated).unwrap();
        }
    }
    // Bob reads the last message of each burst, and one in the middle.
    let mut rest = Vec::new();
    for (k, (sender, bytes, plaintext)) in pending.into_iter().enumerate() {
        if k % 4 == 3 || k == 5 {
            let from = m[sender].addr();
            assert_decrypts(&mut m[1].session, from, &bytes, &plaintext);
        } else {
            rest.push((sender, bytes, plaintext));
        }
    }
    (m, rest)
}

#[test]
fn state_round_trips_mid_conversation() {
    let (mut m, pending) = mid_conversation();
    let stored = m[1].session.encode();
    let parsed = Stored::parse(&stored);
    assert_eq!(parsed.members.len(), 4);
    assert_eq!(parsed.member(b"alice", 1).unwrap().chains.len(), 2);
    let chains_with_keys = parsed
        .members
        .iter()
        .flat_map(|m| &m.chains)
        .filter(|c| !c.skipped.is_empty())
        .count();
    assert_eq!(chains_with_keys, 5);
    let mut restored = GroupSession::decode(&stored).unwrap();
    assert_eq!(*restored.encode(), *stored);
    assert_eq!(restored.group_id(), GROUP_ID);
    assert_eq!(format!("{restored:?}"), format!("{:?}", m[1].session));
    // Both continue identically: the pending messages, then a message of their own.
    for (sender, bytes, plaintext) in &pending {
        let from = m[*sender].addr();
        assert_decrypts(&mut restored, from, bytes, plaintext);
        assert_decrypts(&mut m[1].session, from, bytes, plaintext);
    }
    assert_eq!(*restored.encode(), *m[1].session.encode());
    // v2: the nonce comes from the caller's rng. Given the same random bytes
    // both produce the same message; given different ones the same chain
    // position is sealed under a fresh nonce, so key and nonce never repeat.
    let mut restored_copy = GroupSession::decode(&restored.encode()).unwrap();
    let mine = m[1].session.encrypt(&mut rng(1070), b"same bytes").unwrap();
    assert_eq!(
        restored.encrypt(&mut rng(1070), b"same bytes").unwrap(),
        mine
    );
    let other = restored_copy
        .encrypt(&mut rng(1071), b"same bytes")
        .unwrap();
    let nonce_at = chain_id_at(GROUP_ID.len()) + 8;
    assert_eq!(other[..nonce_at], mine[..nonce_at]);
    assert_ne!(
        other[nonce_at..nonce_at + 12],
        mine[nonce_at..nonce_at + 12]
    );
    assert_ne!(other[nonce_at + 12..], mine[nonce_at + 12..]);
    let before: Vec<(Vec<u8>, u32)> = m[1]
        .session
        .member_devices()
        .map(|a| (a.account_id().to_vec(), a.device_id()))
        .collect();
    let after: Vec<(Vec<u8>, u32)> = restored
        .member_devices()
        .map(|a| (a.account_id().to_vec(), a.device_id()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn damaged_state_is_rejected_without_panicking() {
    let (m, _) = mid_conversation();
    let stored = m[1].session.encode().to_vec();
    let parsed = Stored::parse(&stored);
    assert_eq!((parsed.tag, parsed.version), (STATE_TAG, STATE_VERSION));
    let decode = |bytes: &[u8]| GroupSession::decode(bytes).map(|_| ());

    // Every truncation.
    for len in 0..stored.len() {
        assert!(
            matches!(
                decode(&stored[..len]),
                Err(Error::Decode(DecodeError::Truncated { .. }))
            ),
            "prefix of {len} bytes"
        );
    }
    let mut longer = stored.clone();
    longer.push(0);
    assert_eq!(
        decode(&longer),
        Err(DecodeError::TrailingBytes { extra: 1 }.into())
    );
    for version in [0u8, 2, 0xff] {
        let mut bad = stored.clone();
        bad[1] = version;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::UnsupportedVersion { found: version }.into())
        );
    }
    for tag in [0u8, DISTRIBUTION_TAG, GROUP_MESSAGE_TAG] {
        let mut bad = stored.clone();
        bad[0] = tag;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::UnknownFormat {
                expected: STATE_TAG,
                found: tag
            }
            .into())
        );
    }

    // Crafted states with the field named.
    let invalid = |field| Err(Error::Decode(DecodeError::InvalidValue { field }));
    let with = |change: &dyn Fn(&mut Stored)| {
        let mut s = parsed.clone();
        change(&mut s);
        decode(&s.encode())
    };
    assert_eq!(with(&|_| {}), Ok(()));
    for limits in [
        [GroupConfig::LIMIT_CEILING + 1, 8, 2],
        [20, u32::MAX, 2],
        [20, 8, 0],
    ] {
        assert!(matches!(
            with(&|s| s.limits = limits),
            Err(Error::InvalidConfig { .. })
        ));
    }
    assert_eq!(with(&|s| s.group_id.clear()), invalid("group id"));
    assert_eq!(with(&|s| s.group_id = vec![7; 65]), invalid("group id"));
    assert_eq!(with(&|s| s.members.swap(0, 1)), invalid("member order"));
    assert_eq!(
        with(&|s| s.members[1] = s.members[0].clone()),
        invalid("member order")
    );
    assert_eq!(
        with(&|s| s.members[0].chains.clear()),
        invalid("chain count")
    );
    assert_eq!(
        with(&|s| {
            let chain = s.members[1].chains[0].clone();
            s.members[1].chains.extend([chain.clone(), chain]);
        }),
        invalid("chain count")
    );
    assert_eq!(
        with(&|s| s.members[0].account.clear()),
        Err(DecodeError::InvalidValue {
            field: "account id"
        }
        .into())
    );
    assert_eq!(
        with(&|s| s.limits[1] = 1),
        Err(DecodeError::LimitExceeded {
            field: "skipped key count",
            max: 1,
            found: parsed.members[0].chains[0].skipped.len() as u64,
        }
        .into())
    );
    let mut identity_point = [0u8; KEY_LEN];
    identity_point[0] = 1;
    assert_eq!(
        with(&|s| s.members[2].chains[0].signing_key = identity_point),
        Err(DecodeError::InvalidIdentityKey.into())
    );
    // Removed accounts: strictly ordered, valid account ids.
    let removed = |list: &[&[u8]]| {
        let list: Vec<Vec<u8>> = list.iter().map(|a| a.to_vec()).collect();
        with(&|s| s.removed = list.clone())
    };
    assert_eq!(removed(&[b"a", b"b"]), Ok(()));
    assert_eq!(removed(&[b"b", b"a"]), invalid("removed account order"));
    assert_eq!(removed(&[b"a", b"a"]), invalid("removed account order"));
    assert_eq!(
        removed(&[b""]),
        Err(DecodeError::InvalidValue {
            field: "account id"
        }
        .into())
    );
    assert!(matches!(
        removed(&[&[b'x'; 65]]),
        Err(Error::Decode(DecodeError::LimitExceeded { .. }))
    ));
    // A member count above MAX_GROUP_MEMBER_DEVICES is refused before anything
    // is allocated for it.
    let count_at = 2 + 12 + 1 + GROUP_ID.len() + 4 + 4 + 2 * KEY_LEN;
    let mut bad = stored.clone();
    bad[count_at..count_at + 4]
        .copy_from_slice(&(MAX_GROUP_MEMBER_DEVICES as u32 + 1).to_be_bytes());
    assert_eq!(
        decode(&bad),
        Err(DecodeError::LimitExceeded {
            field: "member devices",
            max: MAX_GROUP_MEMBER_DEVICES as u64,
            found: MAX_GROUP_MEMBER_DEVICES as u64 + 1,
        }
        .into())
    );
    let mut bad = stored.clone();
    let removed_at = bad.len() - 4;
    bad[removed_at..].copy_from_slice(&(MAX_GROUP_MEMBER_DEVICES as u32 + 1).to_be_bytes());
    assert_eq!(
        decode(&bad),
        Err(DecodeError::LimitExceeded {
            field: "removed accounts",
            max: MAX_GROUP_MEMBER_DEVICES as u64,
            found: MAX_GROUP_MEMBER_DEVICES as u64 + 1,
        }
        .into())
    );

    // Every single-byte change: an error or a state that encodes back to the
    // same bytes, never a panic.
    for i in 0..stored.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = stored.clone();
            bad[i] ^= flip;
            if let Ok(session) = GroupSession::decode(&bad) {
                assert_eq!(*session.encode(), bad, "byte {i} ^ {flip:#x}");
            }
        }
    }
}

/// `GroupConfig` allows up to `LIMIT_CEILING` chains per sender, but the stored
/// form counts a sender's chains in one byte.
#[test]
fn state_with_255_chains_per_sender_round_trips() {
    let mut rng = rng(71);
    // A one-byte count: more than 255 chains per sender is refused up front.
    assert!(matches!(
        GroupConfig::new(10, 10, 256),
        Err(Error::InvalidConfig { .. })
    ));
    let mut bob =
        GroupSession::create_with_config(&mut rng, GROUP_ID, config(10, 10, 255)).unwrap();
    let mut alice = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let from = addr(b"alice", 1);
    bob.process_distribution(from, &alice.distribution())
        .unwrap();
    for _ in 0..254 {
        bob.process_distribution(from, &alice.rotate(&mut rng))
            .unwrap();
    }
    let stored = bob.encode();
    let restored = GroupSession::decode(&stored).expect("255 chains decode");
    assert_eq!(*restored.encode(), *stored);
}

// ---------------------------------------------------------------------------
// Sizes, limits and counters
// ---------------------------------------------------------------------------

#[test]
fn group_message_overhead_and_distribution_size() {
    let mut rng = rng(80);
    for (len, overhead) in [
        (1usize, 103usize),
        (16, 118),
        (32, 134),
        (MAX_GROUP_ID_LEN, 166),
    ] {
        let group_id = vec![b'g'; len];
        let mut session = GroupSession::create(&mut rng, &group_id).unwrap();
        let distribution = session.distribution();
        println!(
            "group id {len:>2} bytes: group message overhead {} bytes \
             (tag 1, id length 1, id {len}, chain id 4, iteration 4, nonce {NONCE_LEN}, \
             AEAD tag {TAG_LEN}, \
             signature {SIGNATURE_LEN}); distribution {} bytes",
            group_message_overhead(len),
            distribution.len()
        );
        assert_eq!(group_message_overhead(len), overhead);
        assert_eq!(distribution.len(), 74 + len);
        for plaintext_len in [0usize, 1, 100] {
            assert_eq!(
                session.encrypted_len(plaintext_len),
                overhead + plaintext_len
            );
            let message = session.encrypt(&mut rng, &vec![0; plaintext_len]).unwrap();
            assert_eq!(message.len(), overhead + plaintext_len);
        }
    }
    for bad in [&[][..], &[b'g'; MAX_GROUP_ID_LEN + 1]] {
        assert_eq!(
            GroupSession::create(&mut rng, bad).map(|_| ()),
            Err(DecodeError::InvalidValue { field: "group id" }.into())
        );
    }
}

#[test]
fn config_limits_buffers_and_counter_exhaustion() {
    let ceiling = GroupConfig::LIMIT_CEILING;
    let chains = GroupConfig::MAX_CHAINS_CEILING;
    assert!(GroupConfig::new(ceiling, ceiling, chains).is_ok());
    for (a, b, c) in [
        (ceiling + 1, 1, 1),
        (1, ceiling + 1, 1),
        (1, 1, chains + 1),
        (1, 1, 0),
    ] {
        assert!(matches!(
            GroupConfig::new(a, b, c),
            Err(Error::InvalidConfig { .. })
        ));
    }
    let c = config(3, 4, 5);
    assert_eq!(
        (
            c.max_forward_jump(),
            c.max_skipped_keys(),
            c.max_chains_per_sender()
        ),
        (3, 4, 5)
    );
    let d = GroupConfig::default();
    assert_eq!(
        (
            d.max_forward_jump(),
            d.max_skipped_keys(),
            d.max_chains_per_sender()
        ),
        (1000, 2000, 4)
    );

    let mut rng = rng(81);
    let mut alice = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let mut bob = GroupSession::create(&mut rng, GROUP_ID).unwrap();
    let from = addr(b"alice", 1);

    // A buffer one byte short.
    let mut out = vec![0u8; alice.encrypted_len(5) - 1];
    let before = snapshot(&alice);
    assert_eq!(
        alice.encrypt_into(&mut rng, b"hello", &mut out),
        Err(Error::BufferTooSmall {
            needed: out.len() + 1,
            available: out.len()
        })
    );
    assert_eq!(snapshot(&alice), before);
    let mut out = vec![0u8; alice.encrypted_len(5) + 3];
    let written = alice.encrypt_into(&mut rng, b"hello", &mut out).unwrap();
    assert_eq!(written, alice.encrypted_len(5));

    // Alice's chain at iteration 2^32 - 2: one more message, then it is exhausted.
    let mut state = Stored::parse(&alice.encode());
    state.own_iteration = u32::MAX - 1;
    let mut alice = GroupSession::decode(&state.encode()).unwrap();
    bob.process_distribution(from, &alice.distribution())
        .unwrap();
    let last = alice.encrypt(&mut rng, b"last").unwrap();
    assert_eq!(iteration_of(&last), u32::MAX - 1);
    let before = snapshot(&alice);
    assert_eq!(
        alice.encrypt(&mut rng, b"one too many"),
        Err(Error::CounterExhausted)
    );
    assert_eq!(snapshot(&alice), before);
    // A message claiming iteration 2^32 - 1, signed by Alice, is refused.
    let mut beyond = last.clone();
    let at = chain_id_at(GROUP_ID.len()) + 4;
    beyond[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    resign(&mut beyond, &signing_key(&alice));
    assert_rejected(&mut bob, from, &beyond, Error::CounterExhausted);
    assert_decrypts(&mut bob, from, &last, b"last");
    assert_rejected(&mut bob, from, &beyond, Error::CounterExhausted);
    // Rotation starts a fresh chain.
    let rotated = alice.rotate(&mut rng);
    assert_eq!(iteration_of(&rotated), 0);
    bob.process_distribution(from, &rotated).unwrap();
    let fresh = alice.encrypt(&mut rng, b"fresh").unwrap();
    assert_decrypts(&mut bob, from, &fresh, b"fresh");
}
