//! The session manager's scenarios, run against [`MemoryStore`] and
//! [`SqliteStore`] through one generic harness: every scenario is a function
//! generic over the [`Backend`], instantiated once per store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ratchetbox::devices::{DeviceError, SessionManager, SessionUse};
use ratchetbox::group::GroupSession;
use ratchetbox::store::{
    GroupStore, IdentityStore, PreKeyStorage, ProtocolStore, SessionStore, StoreError,
};
use ratchetbox::{DeviceAddress, Error};
use support::*;

/// The stored state of `device` that a failed operation must leave alone:
/// its session records with `peers`, trust records of their accounts, and its
/// one-time prekeys.
fn state<B: Backend>(store: &B::Store, peers: &[DeviceAddress]) -> Vec<u8> {
    let mut out = Vec::new();
    for peer in peers {
        if let Some(record) = store.session_record(peer).unwrap() {
            out.extend_from_slice(&record.encode());
        }
        if let Some(trust) = store.trust_record(peer.account()).unwrap() {
            out.extend_from_slice(&trust.encode());
        }
    }
    B::read_prekeys(store, |p| {
        for id in p.one_time_prekey_ids() {
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.push(p.accepted_base_key_count() as u8);
    });
    out
}

/// First contact spends exactly one one-time prekey, after the decrypt;
/// replies and a long exchange in both directions; a restart in between.
fn first_contact_and_replies<B: Backend>(backend: &mut B) {
    let mut rng = rng(1);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let before = one_time_count::<B>(&bob);
    let first = send(&mut rng, &mut alice, &bob, b"hello bob");
    let got = bob.decrypt(&alice.local().address(), &first).unwrap();
    assert_eq!(got.session, SessionUse::Created);
    assert_eq!(one_time_count::<B>(&bob), before - 1);
    // The repeat of a spent prekey message creates nothing new.
    assert!(bob.decrypt(&alice.local().address(), &first).is_err());
    assert_eq!(one_time_count::<B>(&bob), before - 1);
    for round in 0..6u8 {
        let m = send(&mut rng, &mut bob, &alice, &[b'b', round]);
        recv(&mut alice, &bob, &m, &[b'b', round]);
        let m = send(&mut rng, &mut alice, &bob, &[b'a', round]);
        recv(&mut bob, &alice, &m, &[b'a', round]);
        if round == 2 {
            alice = backend.restart(alice);
            bob = backend.restart(bob);
        }
    }
    assert_eq!(bob.session_devices(&account("alice")).unwrap(), vec![1]);
}

/// Messages delivered out of order all decrypt once; a duplicate is refused
/// and changes nothing, also after a restart.
fn out_of_order_and_duplicates<B: Backend>(backend: &mut B) {
    let mut rng = rng(2);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let m = send(&mut rng, &mut alice, &bob, b"first");
    recv(&mut bob, &alice, &m, b"first");
    let sent: Vec<_> = (0..6u8)
        .map(|i| send(&mut rng, &mut alice, &bob, &[i]))
        .collect();
    for (n, i) in [4usize, 1, 5, 0].into_iter().enumerate() {
        recv(&mut bob, &alice, &sent[i], &[i as u8]);
        if n == 1 {
            bob = backend.restart(bob);
        }
    }
    let peers = [alice.local().address()];
    let before = state::<B>(bob.store(), &peers);
    assert_eq!(
        bob.decrypt(&alice.local().address(), &sent[1]).err(),
        Some(DeviceError::Protocol(Error::DuplicateMessage))
    );
    assert_eq!(state::<B>(bob.store(), &peers), before);
    for i in [3usize, 2] {
        recv(&mut bob, &alice, &sent[i], &[i as u8]);
    }
}

/// A tampered prekey message spends nothing and records nothing; the genuine
/// one then decrypts and spends its one-time prekey.
fn prekey_spent_only_after_decrypt<B: Backend>(backend: &mut B) {
    let mut rng = rng(3);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let first = send(&mut rng, &mut alice, &bob, b"hi");
    let peers = [alice.local().address()];
    let before = state::<B>(bob.store(), &peers);
    let count = one_time_count::<B>(&bob);
    let mut tampered = first.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(bob.decrypt(&alice.local().address(), &tampered).is_err());
    assert_eq!(state::<B>(bob.store(), &peers), before);
    assert_eq!(one_time_count::<B>(&bob), count);
    recv(&mut bob, &alice, &first, b"hi");
    assert_eq!(one_time_count::<B>(&bob), count - 1);
}

/// A new key for a verified contact blocks sending and new sessions until it
/// is accepted; the change is recorded, nothing else is.
fn identity_change_blocks_until_accepted<B: Backend>(backend: &mut B) {
    let mut rng = rng(4);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let m = send(&mut rng, &mut alice, &bob, b"x");
    recv(&mut bob, &alice, &m, b"x");
    let bob_id = account("bob");
    let old = *bob.local().identity.public_key();
    alice.mark_verified(&bob_id, &old).unwrap();

    // Bob reinstalls: a new identity.
    let mut bob2 = device(backend, &mut rng, "bob", 1, 1);
    let bundle = bundle_of::<B>(&mut rng, &mut bob2);
    let err = alice
        .process_bundle(&mut rng, &bob_id, &bundle)
        .unwrap_err();
    assert!(
        matches!(err, DeviceError::UntrustedIdentity { .. }),
        "{err:?}"
    );
    alice = backend.restart(alice);
    let record = alice.trust_record(&bob_id).unwrap().unwrap();
    assert!(record.state().is_blocking());
    assert!(matches!(
        alice.encrypt(&mut rng, &bob_id, b"y", &[1], &[1]),
        Err(DeviceError::UntrustedIdentity { .. })
    ));
    alice
        .accept_identity(&bob_id, bob2.local().identity.public_key())
        .unwrap();
    alice.process_bundle(&mut rng, &bob_id, &bundle).unwrap();
    let m = send(&mut rng, &mut alice, &bob2, b"welcome back");
    recv(&mut bob2, &alice, &m, b"welcome back");
}

/// Both sides start a session at once; every message decrypts and they
/// converge on one session that keeps working.
fn simultaneous_initiation_converges<B: Backend>(backend: &mut B) {
    let mut rng = rng(5);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    introduce::<B>(&mut rng, &mut bob, &mut alice);
    let a = send(&mut rng, &mut alice, &bob, b"from alice");
    let b = send(&mut rng, &mut bob, &alice, b"from bob");
    recv(&mut bob, &alice, &a, b"from alice");
    recv(&mut alice, &bob, &b, b"from bob");
    alice = backend.restart(alice);
    for round in 0..3u8 {
        let m = send(&mut rng, &mut alice, &bob, &[round]);
        recv(&mut bob, &alice, &m, &[round]);
        let m = send(&mut rng, &mut bob, &alice, &[round, 1]);
        recv(&mut alice, &bob, &m, &[round, 1]);
    }
    let alice_active = *alice
        .store()
        .session_record(&bob.local().address())
        .unwrap()
        .unwrap()
        .active()
        .base_key();
    let bob_active = *bob
        .store()
        .session_record(&alice.local().address())
        .unwrap()
        .unwrap()
        .active()
        .base_key();
    assert_eq!(alice_active, bob_active);
}

/// A message sent to every device of both accounts reaches each, and only
/// the listed devices; a wrong device list names the missing and stale ones
/// and writes nothing.
fn fan_out_and_device_lists<B: Backend>(backend: &mut B) {
    let mut rng = rng(6);
    let mut phone = device(backend, &mut rng, "alice", 1, 0);
    let mut laptop = device(backend, &mut rng, "alice", 2, 0);
    let mut bob1 = device(backend, &mut rng, "bob", 1, 0);
    let mut bob2 = device(backend, &mut rng, "bob", 2, 0);
    introduce::<B>(&mut rng, &mut phone, &mut laptop);
    introduce::<B>(&mut rng, &mut phone, &mut bob1);
    let peers = [laptop.local().address(), bob1.local().address()];
    let before = state::<B>(phone.store(), &peers);
    assert_eq!(
        phone.encrypt(&mut rng, &account("bob"), b"x", &[1, 2], &[1, 2]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![addr("bob", 2)],
            stale: vec![],
        })
    );
    assert_eq!(state::<B>(phone.store(), &peers), before);
    introduce::<B>(&mut rng, &mut phone, &mut bob2);
    let out = phone
        .encrypt(&mut rng, &account("bob"), b"to all", &[1, 2], &[1, 2])
        .unwrap();
    assert_eq!(out.len(), 3);
    for receiver in [&mut laptop, &mut bob1, &mut bob2] {
        let me = receiver.local().address();
        let got = receiver
            .decrypt(&phone.local().address(), message_for(&out, &me))
            .unwrap();
        assert_eq!(&got.plaintext[..], b"to all");
    }
    phone = backend.restart(phone);
    phone.remove_device(&addr("bob", 2)).unwrap();
    assert_eq!(phone.session_devices(&account("bob")).unwrap(), vec![1]);
    assert_eq!(
        phone.encrypt(&mut rng, &account("bob"), b"x", &[1], &[1]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![],
            stale: vec![addr("alice", 2)],
        })
    );
}

/// A message on a session that was replaced meanwhile still decrypts and
/// promotes the old session.
fn delayed_message_promotes_archived_session<B: Backend>(backend: &mut B) {
    let mut rng = rng(7);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let m = send(&mut rng, &mut alice, &bob, b"one");
    recv(&mut bob, &alice, &m, b"one");
    let reply = send(&mut rng, &mut bob, &alice, b"two");
    recv(&mut alice, &bob, &reply, b"two");
    let delayed = send(&mut rng, &mut bob, &alice, b"late");
    // Alice starts over from a new bundle; Bob's delayed message is on the old one.
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    alice = backend.restart(alice);
    let got = alice.decrypt(&bob.local().address(), &delayed).unwrap();
    assert_eq!(got.session, SessionUse::Promoted);
    assert_eq!(&got.plaintext[..], b"late");
}

/// Group states live in the store: created, distributed over 1:1 sessions,
/// advanced out of order, kept across a restart; a failed operation saves
/// nothing.
fn groups_through_the_store<B: Backend>(backend: &mut B) {
    let mut rng = rng(8);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let gid = b"family";
    assert_eq!(
        alice.with_group(gid, |g| g.encrypt(&mut rng, b"x")).err(),
        Some(DeviceError::UnknownGroup)
    );
    alice
        .save_group(GroupSession::create(&mut rng, gid).unwrap())
        .unwrap();
    let distribution = alice
        .with_group(gid, |g| Ok(g.distribution().to_vec()))
        .unwrap();
    let m = send(&mut rng, &mut alice, &bob, &distribution);
    let got = bob.decrypt(&alice.local().address(), &m).unwrap();
    bob.save_group(GroupSession::create(&mut rng, gid).unwrap())
        .unwrap();
    let from = alice.local().address();
    bob.with_group(gid, |g| {
        g.process_distribution(from.as_address(), &got.plaintext)
    })
    .unwrap();
    let sent: Vec<_> = (0..4u8)
        .map(|i| {
            alice
                .with_group(gid, |g| g.encrypt(&mut rng, &[i]))
                .unwrap()
        })
        .collect();
    for (n, i) in [2usize, 0, 3].into_iter().enumerate() {
        let got = bob
            .with_group(gid, |g| g.decrypt(from.as_address(), &sent[i]))
            .unwrap();
        assert_eq!(got, [i as u8]);
        if n == 0 {
            bob = backend.restart(bob);
        }
    }
    assert_eq!(
        bob.with_group(gid, |g| g.decrypt(from.as_address(), &sent[0])),
        Err(DeviceError::Protocol(Error::DuplicateMessage))
    );
    let mut tampered = sent[1].clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(
        bob.with_group(gid, |g| g.decrypt(from.as_address(), &tampered))
            .is_err()
    );
    bob = backend.restart(bob);
    let got = bob
        .with_group(gid, |g| g.decrypt(from.as_address(), &sent[1]))
        .unwrap();
    assert_eq!(got, [1]);
    assert!(bob.store().group_session(b"other").unwrap().is_none());
}

/// Sealed multi-recipient fan-out: one envelope, split by the server, opens
/// on each listed device (and only there); sessions advance in the store.
fn sealed_fan_out<B: Backend>(backend: &mut B) {
    use ratchetbox::devices::Sealing;
    use ratchetbox::sealed::{
        DeliveryAccessKey, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot,
        TrustStore, ValidatedEnvelope, validate,
    };
    let mut rng = rng(10);
    let mut phone = device(backend, &mut rng, "alice", 1, 0);
    let mut laptop = device(backend, &mut rng, "alice", 2, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut phone, &mut laptop);
    introduce::<B>(&mut rng, &mut phone, &mut bob);
    let root = ratchetbox::IdentityKeyPair::from_seed(&[1; 32]);
    let server = ratchetbox::IdentityKeyPair::from_seed(&[2; 32]);
    let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())]).unwrap();
    let certificate = SenderCertificate::issue(
        phone.local().address().as_address(),
        phone.local().identity.public_key(),
        2_000_000_000,
        &server,
        server_cert,
    )
    .unwrap();
    let access_key = |a: &[u8]| {
        let mut secret = [0x5a_u8; 32];
        secret[..a.len()].copy_from_slice(a);
        DeliveryAccessKey::derive(&secret)
    };
    let keys = |a: &ratchetbox::AccountId| Some(access_key(a.as_bytes()));
    let registry = |a: &[u8]| Some(access_key(a));
    let sealing = Sealing {
        certificate: &certificate,
        access_keys: &keys,
    };
    for round in 0..3u8 {
        let envelope = phone
            .encrypt_sealed(
                &mut rng,
                &account("bob"),
                &[round; 40],
                &[1],
                &[1, 2],
                &sealing,
            )
            .unwrap();
        let ValidatedEnvelope::Multi(multi) =
            validate(&envelope, &ServerPolicy::default(), &registry).unwrap()
        else {
            panic!("not a multi-recipient envelope");
        };
        let parts: Vec<(DeviceAddress, Vec<u8>)> = multi
            .parts()
            .map(|part| {
                let mut bytes = vec![0u8; part.len()];
                assert_eq!(part.write_to(&mut bytes), Ok(part.len()));
                (DeviceAddress::from_address(&part.recipient()), bytes)
            })
            .collect();
        assert_eq!(parts.len(), 2);
        for (to, part) in &parts {
            let (receiver, other) = if *to == bob.local().address() {
                (&mut bob, &mut laptop)
            } else {
                (&mut laptop, &mut bob)
            };
            assert_eq!(
                other.open_sealed(part, &trust, 1_700_000_000).map(|_| ()),
                Err(DeviceError::Protocol(Error::WrongRecipient))
            );
            let (from, got) = receiver.open_sealed(part, &trust, 1_700_000_000).unwrap();
            assert_eq!(from, phone.local().address());
            assert_eq!(&got.plaintext[..], &[round; 40]);
        }
        if round == 1 {
            bob = backend.restart(bob);
        }
    }
}

/// A store that refuses its next write, around either store.
struct Flaky<S> {
    inner: S,
    fail_next: bool,
}

impl<S: ProtocolStore> IdentityStore for Flaky<S> {
    fn trust_record(
        &self,
        account: &ratchetbox::AccountId,
    ) -> Result<Option<ratchetbox::TrustRecord>, StoreError> {
        self.inner.trust_record(account)
    }
}
impl<S: ProtocolStore> PreKeyStorage for Flaky<S> {
    fn signed_prekey(
        &self,
        id: ratchetbox::PreKeyId,
    ) -> Result<Option<ratchetbox::SignedPreKey>, StoreError> {
        self.inner.signed_prekey(id)
    }
    fn one_time_prekey(
        &self,
        id: ratchetbox::PreKeyId,
    ) -> Result<Option<ratchetbox::OneTimePreKey>, StoreError> {
        self.inner.one_time_prekey(id)
    }
    fn kem_prekey(
        &self,
        id: ratchetbox::PreKeyId,
    ) -> Result<Option<ratchetbox::KemPreKey>, StoreError> {
        self.inner.kem_prekey(id)
    }
    fn has_accepted_base_key(&self, key: &ratchetbox::PublicKey) -> Result<bool, StoreError> {
        self.inner.has_accepted_base_key(key)
    }
}
impl<S: ProtocolStore> SessionStore for Flaky<S> {
    fn session_record(
        &self,
        address: &DeviceAddress,
    ) -> Result<Option<ratchetbox::store::SessionRecord>, StoreError> {
        self.inner.session_record(address)
    }
    fn session_devices(
        &self,
        account: &ratchetbox::AccountId,
    ) -> Result<Vec<ratchetbox::DeviceId>, StoreError> {
        self.inner.session_devices(account)
    }
}
impl<S: ProtocolStore> GroupStore for Flaky<S> {
    fn group_session(&self, id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        self.inner.group_session(id)
    }
}
impl<S: ProtocolStore> ProtocolStore for Flaky<S> {
    fn apply(&mut self, changes: ratchetbox::store::ChangeSet) -> Result<(), StoreError> {
        if std::mem::take(&mut self.fail_next) {
            return Err(StoreError::Unavailable);
        }
        self.inner.apply(changes)
    }
}

/// A write that fails during a prekey decrypt or an encrypt leaves the store
/// exactly as it was (nothing spent, no ratchet step), and the same message
/// or a new one goes through afterwards.
fn failed_commit_changes_nothing<B: Backend>(backend: &mut B) {
    let mut rng = rng(9);
    let mut alice = device(backend, &mut rng, "alice", 1, 0);
    let mut bob = device(backend, &mut rng, "bob", 1, 0);
    introduce::<B>(&mut rng, &mut alice, &mut bob);
    let (from, bob_at) = (alice.local().address(), bob.local().address());
    let first = send(&mut rng, &mut alice, &bob, b"hi");
    let (local, store) = bob.into_parts();
    let mut bob = SessionManager::new(
        local,
        Flaky {
            inner: store,
            fail_next: true,
        },
    );
    let before = state::<B>(&bob.store().inner, &[from]);
    assert_eq!(
        bob.decrypt(&from, &first).err(),
        Some(DeviceError::Store(StoreError::Unavailable))
    );
    assert_eq!(state::<B>(&bob.store().inner, &[from]), before);
    let got = bob.decrypt(&from, &first).unwrap();
    assert_eq!(&got.plaintext[..], b"hi");

    bob.store_mut().fail_next = true;
    let before = state::<B>(&bob.store().inner, &[from]);
    assert!(
        bob.encrypt(&mut rng, &account("alice"), b"lost", &[1], &[1])
            .is_err()
    );
    assert_eq!(state::<B>(&bob.store().inner, &[from]), before);
    for text in [b"reply 1", b"reply 2"] {
        let out = bob
            .encrypt(&mut rng, &account("alice"), text, &[1], &[1])
            .unwrap();
        let got = alice.decrypt(&bob_at, message_for(&out, &from)).unwrap();
        assert_eq!(&got.plaintext[..], text);
    }
}

macro_rules! for_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $scenario() { super::$scenario(&mut super::Memory); })*
        }
        mod sqlite {
            $(#[test] fn $scenario() { super::$scenario(&mut super::Sqlite::new()); })*
        }
    };
}

for_both_stores!(
    first_contact_and_replies,
    out_of_order_and_duplicates,
    prekey_spent_only_after_decrypt,
    identity_change_blocks_until_accepted,
    simultaneous_initiation_converges,
    fan_out_and_device_lists,
    delayed_message_promotes_archived_session,
    groups_through_the_store,
    failed_commit_changes_nothing,
    sealed_fan_out,
);
