//! The multi-device layer (`ratchetbox::devices`) end to end: fan-out to every
//! device of both accounts, simultaneous initiation, archived sessions, desync
//! recovery from an old backup, the identity-change policy at both points where
//! a new key arrives (bundles and prekey messages), device-list mismatches,
//! atomic writes through the store, sealed multi-recipient fan-out, safety
//! numbers, own-account impostors and group state kept in the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/devices_world.rs"]
mod devices_world;
use devices_world::*;

use chacha20::ChaCha20Rng;
use ratchetbox::devices::{
    DEFAULT_MAX_ARCHIVED_SESSIONS, DeviceError, LocalDevice, MAX_ARCHIVED_SESSIONS,
    MAX_DEVICES_PER_ACCOUNT, Sealing, SessionManager, SessionUse,
};
use ratchetbox::group::GroupSession;
use ratchetbox::sealed::{ServerPolicy, ValidatedEnvelope, validate};
use ratchetbox::store::{
    Change, ChangeSet, GroupStore, IdentityStore, MemoryStore, PreKeyStorage, ProtocolStore,
    SessionStore, StoreError,
};
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, Error, IdentityChange, KemPreKey, KemPreKeyKind,
    OneTimePreKey, PreKeyId, PreKeyStore, PublicKey, SafetyNumberMatch, SignedPreKey, TrustRecord,
    TrustState,
};

/// The whole store, encoded: equal before and after means nothing was written.
fn snapshot(device: &Device) -> Vec<u8> {
    device.store().encode().to_vec()
}

/// The base key of a prekey message.
fn prekey_base_key(bytes: &[u8]) -> PublicKey {
    *ratchetbox::PreKeyMessage::parse(bytes).unwrap().base_key()
}

// ---------------------------------------------------------------------------
// 1. Fan-out.

#[test]
fn fan_out_reaches_every_device_of_both_accounts() {
    let mut rng = rng(1);
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (phone_at, desktop_at, bob_at) = (addr("alice", 1), addr("alice", 2), addr("bob", 1));

    introduce(&mut rng, &mut phone, &mut bob);
    introduce(&mut rng, &mut phone, &mut desktop);

    // The phone writes to Bob: one message to Bob's device, one to the desktop.
    let out = phone
        .encrypt(&mut rng, &bob_id, b"hello from the phone", &[1], &[1, 2])
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(recipients(&out), [desktop_at, bob_at]);
    for o in &out {
        let expected = if o.address == bob_at {
            bob.local().identity.public_key()
        } else {
            phone.local().identity.public_key()
        };
        assert_eq!(&o.identity_key, expected);
        assert!(is_prekey_message(&o.message));
    }
    for receiver in [&mut bob, &mut desktop] {
        let got = receive(receiver, &phone_at, &out);
        assert_eq!(got.plaintext, b"hello from the phone");
        assert_eq!(got.session, SessionUse::Created);
        assert_eq!(got.identity_change, None);
    }
    // Bob recorded Alice's key, unverified; the desktop records nothing for its own account.
    let record = bob.trust_record(&alice_id).unwrap().unwrap();
    assert_eq!(record.identity(), phone.local().identity.public_key());
    assert_eq!(record.state(), &TrustState::Unverified);
    assert_eq!(desktop.trust_record(&alice_id).unwrap(), None);

    // The desktop never saw Bob: his listed device is missing.
    assert_eq!(
        desktop.encrypt(&mut rng, &bob_id, b"from the desktop", &[1], &[1, 2]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![bob_at],
            stale: vec![],
        })
    );
    assert_eq!(desktop.trust_record(&bob_id).unwrap(), None);
    introduce(&mut rng, &mut desktop, &mut bob);
    let out = desktop
        .encrypt(&mut rng, &bob_id, b"from the desktop", &[1], &[1, 2])
        .unwrap();
    assert_eq!(recipients(&out), [phone_at, bob_at]);
    let at_bob = receive(&mut bob, &desktop_at, &out);
    assert_eq!(at_bob.plaintext, b"from the desktop");
    assert_eq!(at_bob.session, SessionUse::Created);
    // The phone started the session the desktop answers on.
    assert!(!is_prekey_message(message_for(&out, &phone_at)));
    let at_phone = receive(&mut phone, &desktop_at, &out);
    assert_eq!(at_phone.plaintext, b"from the desktop");
    assert_eq!(at_phone.session, SessionUse::Active);

    // Bob replies to both of Alice's devices; he has no other device.
    let reply = bob
        .encrypt(&mut rng, &alice_id, b"hi both", &[1, 2], &[1])
        .unwrap();
    assert_eq!(recipients(&reply), [phone_at, desktop_at]);
    for receiver in [&mut phone, &mut desktop] {
        let got = receive(receiver, &bob_at, &reply);
        assert_eq!(got.plaintext, b"hi both");
        assert_eq!(got.session, SessionUse::Active);
    }

    // Everything is established now: ratchet messages on active sessions.
    for i in 0..3 {
        let plaintext = text("phone", i);
        let out = phone
            .encrypt(&mut rng, &bob_id, &plaintext, &[1], &[1, 2])
            .unwrap();
        assert!(out.iter().all(|o| !is_prekey_message(&o.message)));
        for receiver in [&mut bob, &mut desktop] {
            let got = receive(receiver, &phone_at, &out);
            assert_eq!(got.plaintext, plaintext);
            assert_eq!(got.session, SessionUse::Active);
        }
        let plaintext = text("bob", i);
        let out = bob
            .encrypt(&mut rng, &alice_id, &plaintext, &[1, 2], &[1])
            .unwrap();
        for receiver in [&mut phone, &mut desktop] {
            let got = receive(receiver, &bob_at, &out);
            assert_eq!(got.plaintext, plaintext);
            assert_eq!(got.session, SessionUse::Active);
        }
    }
    // Each side ended up with exactly one session pair per device pair.
    for (x, y) in [
        (&phone, &bob),
        (&desktop, &bob),
        (&phone, &desktop),
        (&bob, &phone),
    ] {
        let (xa, ya) = (x.local().address(), y.local().address());
        assert_eq!(active_base_key(x, &ya), active_base_key(y, &xa));
        assert!(archived_base_keys(x, &ya).is_empty());
    }
}

#[test]
fn note_to_self_goes_to_the_other_own_devices_only() {
    let mut rng = rng(2);
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut laptop = device(&mut rng, "alice", 3);
    introduce(&mut rng, &mut phone, &mut desktop);
    introduce(&mut rng, &mut phone, &mut laptop);
    let alice_id = account("alice");
    // `own_devices` is ignored when writing to one's own account.
    let out = phone
        .encrypt(&mut rng, &alice_id, b"note to self", &[1, 2, 3], &[99])
        .unwrap();
    assert_eq!(recipients(&out), [addr("alice", 2), addr("alice", 3)]);
    for receiver in [&mut desktop, &mut laptop] {
        let got = receive(receiver, &addr("alice", 1), &out);
        assert_eq!(got.plaintext, b"note to self");
    }
}

#[test]
fn linked_device_joins_the_fan_out() {
    use ratchetbox::provisioning::{LinkRequest, provision};
    let mut rng = rng(3);
    let mut phone = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let alice_id = account("alice");

    let mut request = LinkRequest::new(&mut rng);
    let (payload, shown) = provision(
        &mut rng,
        &phone.local().identity,
        &alice_id,
        &[1],
        &*request.code(),
    )
    .unwrap();
    let provisioned = request.accept(&payload).unwrap();
    assert_eq!(provisioned.confirmation_code(), &shown);
    let linked = provisioned.into_device(&mut rng);
    let laptop_id = linked.device_id;
    assert_ne!(laptop_id, 1);
    let mut laptop = SessionManager::new(
        LocalDevice {
            account: linked.account,
            device_id: laptop_id,
            identity: linked.identity,
        },
        MemoryStore::new(linked.prekeys),
    );

    introduce(&mut rng, &mut phone, &mut laptop);
    introduce(&mut rng, &mut phone, &mut bob);
    let out = phone
        .encrypt(&mut rng, &account("bob"), b"hi", &[1], &[1, laptop_id])
        .unwrap();
    assert_eq!(recipients(&out), [addr("alice", laptop_id), addr("bob", 1)]);
    assert_eq!(
        receive(&mut laptop, &addr("alice", 1), &out).plaintext,
        b"hi"
    );
    assert_eq!(receive(&mut bob, &addr("alice", 1), &out).plaintext, b"hi");
}

// ---------------------------------------------------------------------------
// 2. Simultaneous initiation.

#[test]
fn simultaneous_initiation_converges_on_one_session() {
    let mut alice_won = false;
    let mut bob_won = false;
    for seed in 0..8 {
        let mut rng = rng(100 + seed);
        let mut alice = device(&mut rng, "alice", 1);
        let mut bob = device(&mut rng, "bob", 1);
        let (alice_id, bob_id) = (account("alice"), account("bob"));
        let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));

        introduce(&mut rng, &mut alice, &mut bob);
        introduce(&mut rng, &mut bob, &mut alice);
        let alice_base = active_base_key(&alice, &bob_at);
        let bob_base = active_base_key(&bob, &alice_at);
        let smaller = if alice_base.as_bytes() < bob_base.as_bytes() {
            alice_won = true;
            alice_base
        } else {
            bob_won = true;
            bob_base
        };

        let from_alice = alice
            .encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])
            .unwrap();
        let from_bob = bob
            .encrypt(&mut rng, &alice_id, b"hi Alice", &[1], &[1])
            .unwrap();
        assert!(is_prekey_message(&from_alice[0].message));
        assert!(is_prekey_message(&from_bob[0].message));

        let at_bob = receive(&mut bob, &alice_at, &from_alice);
        let at_alice = receive(&mut alice, &bob_at, &from_bob);
        assert_eq!(at_bob.plaintext, b"hi Bob");
        assert_eq!(at_alice.plaintext, b"hi Alice");
        // The side whose session has the smaller base key keeps it and archives
        // the other's; the other side switches to it.
        let (winner_use, loser_use) = if smaller == alice_base {
            (at_alice.session, at_bob.session)
        } else {
            (at_bob.session, at_alice.session)
        };
        assert_eq!(winner_use, SessionUse::CreatedArchived, "seed {seed}");
        assert_eq!(loser_use, SessionUse::Created, "seed {seed}");
        // Converged without any further message.
        assert_eq!(active_base_key(&alice, &bob_at), smaller);
        assert_eq!(active_base_key(&bob, &alice_at), smaller);

        // One round trip each way, then more: all on the active sessions.
        for i in 0..3 {
            let a = text("a", i);
            let out = alice.encrypt(&mut rng, &bob_id, &a, &[1], &[1]).unwrap();
            let got = receive(&mut bob, &alice_at, &out);
            assert_eq!(
                (got.plaintext.to_vec(), got.session),
                (a, SessionUse::Active)
            );
            let b = text("b", i);
            let out = bob.encrypt(&mut rng, &alice_id, &b, &[1], &[1]).unwrap();
            let got = receive(&mut alice, &bob_at, &out);
            assert_eq!(
                (got.plaintext.to_vec(), got.session),
                (b, SessionUse::Active)
            );
        }
        assert_eq!(active_base_key(&alice, &bob_at), smaller);
        assert_eq!(active_base_key(&bob, &alice_at), smaller);
        assert!(!is_prekey_message(
            &alice.encrypt(&mut rng, &bob_id, b"x", &[1], &[1]).unwrap()[0].message
        ));
        assert!(!is_prekey_message(
            &bob.encrypt(&mut rng, &alice_id, b"y", &[1], &[1]).unwrap()[0].message
        ));
    }
    assert!(alice_won && bob_won, "both tie-break directions exercised");
}

/// Each side sends two prekey messages before hearing from the other. The
/// tie-break (smaller base key wins) is meant to converge "without any further
/// message"; but the loser's *second* prekey message is a repeat for the
/// session the winner archived, and decrypting it promotes that session, so
/// the winner switches to the loser's session while the loser switched to the
/// winner's.
#[test]
fn simultaneous_initiation_with_two_messages_each_converges() {
    for seed in 0..4 {
        let mut rng = rng(200 + seed);
        let mut alice = device(&mut rng, "alice", 1);
        let mut bob = device(&mut rng, "bob", 1);
        let (alice_id, bob_id) = (account("alice"), account("bob"));
        let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
        introduce(&mut rng, &mut alice, &mut bob);
        introduce(&mut rng, &mut bob, &mut alice);
        let a1 = alice.encrypt(&mut rng, &bob_id, b"a1", &[1], &[1]).unwrap();
        let a2 = alice.encrypt(&mut rng, &bob_id, b"a2", &[1], &[1]).unwrap();
        let b1 = bob.encrypt(&mut rng, &alice_id, b"b1", &[1], &[1]).unwrap();
        let b2 = bob.encrypt(&mut rng, &alice_id, b"b2", &[1], &[1]).unwrap();
        // Crossing, in order.
        let mut uses = Vec::new();
        for (to_bob, out, plaintext) in [
            (true, &a1, b"a1"),
            (false, &b1, b"b1"),
            (true, &a2, b"a2"),
            (false, &b2, b"b2"),
        ] {
            let got = if to_bob {
                receive(&mut bob, &alice_at, out)
            } else {
                receive(&mut alice, &bob_at, out)
            };
            assert_eq!(&got.plaintext, plaintext);
            uses.push(got.session);
        }
        assert_eq!(
            active_base_key(&alice, &bob_at),
            active_base_key(&bob, &alice_at),
            "seed {seed}: the two sides' active sessions differ after the crossing \
             messages (a1, b1, a2, b2 decrypted as {uses:?})"
        );
    }
}

/// What the previous test's divergence costs when both sides keep writing at
/// the same time: every crossing pair of messages swaps the active sessions
/// again, yet every message still decrypts (the archive keeps both).
#[test]
fn crossing_messages_after_simultaneous_initiation_all_decrypt() {
    let mut rng = rng(300);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    introduce(&mut rng, &mut alice, &mut bob);
    introduce(&mut rng, &mut bob, &mut alice);
    for i in 0..6 {
        let a = text("a", i);
        let b = text("b", i);
        let to_bob = alice.encrypt(&mut rng, &bob_id, &a, &[1], &[1]).unwrap();
        let to_alice = bob.encrypt(&mut rng, &alice_id, &b, &[1], &[1]).unwrap();
        assert_eq!(receive(&mut bob, &alice_at, &to_bob).plaintext, a);
        assert_eq!(receive(&mut alice, &bob_at, &to_alice).plaintext, b);
    }
    // A sequential round trip settles it.
    let out = alice
        .encrypt(&mut rng, &bob_id, b"ping", &[1], &[1])
        .unwrap();
    receive(&mut bob, &alice_at, &out);
    let out = bob
        .encrypt(&mut rng, &alice_id, b"pong", &[1], &[1])
        .unwrap();
    let got = receive(&mut alice, &bob_at, &out);
    assert_eq!(got.session, SessionUse::Active);
    assert_eq!(
        active_base_key(&alice, &bob_at),
        active_base_key(&bob, &alice_at)
    );
}

// ---------------------------------------------------------------------------
// 3. Archived sessions.

/// Alice and Bob with an established session (Alice initiated, Bob replied).
fn established(seed: u64) -> (ChaCha20Rng, Device, Device) {
    let mut rng = rng(seed);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    introduce(&mut rng, &mut alice, &mut bob);
    let out = alice
        .encrypt(&mut rng, &account("bob"), b"hello", &[1], &[1])
        .unwrap();
    assert_eq!(
        receive(&mut bob, &addr("alice", 1), &out).session,
        SessionUse::Created
    );
    let out = bob
        .encrypt(&mut rng, &account("alice"), b"hi", &[1], &[1])
        .unwrap();
    assert_eq!(
        receive(&mut alice, &addr("bob", 1), &out).session,
        SessionUse::Active
    );
    (rng, alice, bob)
}

#[test]
fn delayed_message_on_a_replaced_session_promotes_it() {
    let (mut rng, mut alice, mut bob) = established(10);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    let old = active_base_key(&alice, &bob_at);

    // Sent on the old session, delivered late.
    let delayed = alice
        .encrypt(&mut rng, &bob_id, b"sent first", &[1], &[1])
        .unwrap();
    assert!(!is_prekey_message(&delayed[0].message));

    // Alice starts a new session (say after fetching a fresh bundle).
    introduce(&mut rng, &mut alice, &mut bob);
    let new = active_base_key(&alice, &bob_at);
    assert_ne!(new, old);
    assert_eq!(archived_base_keys(&alice, &bob_at), [old]);
    let fresh = alice
        .encrypt(&mut rng, &bob_id, b"sent second", &[1], &[1])
        .unwrap();
    assert!(is_prekey_message(&fresh[0].message));

    let got = receive(&mut bob, &alice_at, &fresh);
    assert_eq!(
        (got.plaintext.as_bytes(), got.session),
        (&b"sent second"[..], SessionUse::Created)
    );
    assert_eq!(active_base_key(&bob, &alice_at), new);
    assert_eq!(archived_base_keys(&bob, &alice_at), [old]);

    let got = receive(&mut bob, &alice_at, &delayed);
    assert_eq!(
        (got.plaintext.as_bytes(), got.session),
        (&b"sent first"[..], SessionUse::Promoted)
    );
    assert_eq!(active_base_key(&bob, &alice_at), old);
    assert_eq!(archived_base_keys(&bob, &alice_at), [new]);

    // Bob answers on the promoted session; Alice promotes it too.
    let out = bob
        .encrypt(&mut rng, &alice_id, b"on the old one", &[1], &[1])
        .unwrap();
    let got = receive(&mut alice, &bob_at, &out);
    assert_eq!(got.session, SessionUse::Promoted);
    assert_eq!(active_base_key(&alice, &bob_at), old);
    for i in 0..3 {
        let out = alice
            .encrypt(&mut rng, &bob_id, &text("a", i), &[1], &[1])
            .unwrap();
        let got = receive(&mut bob, &alice_at, &out);
        assert_eq!(
            (got.plaintext.to_vec(), got.session),
            (text("a", i), SessionUse::Active)
        );
        let out = bob
            .encrypt(&mut rng, &alice_id, &text("b", i), &[1], &[1])
            .unwrap();
        let got = receive(&mut alice, &bob_at, &out);
        assert_eq!(
            (got.plaintext.to_vec(), got.session),
            (text("b", i), SessionUse::Active)
        );
    }
    // Replays are duplicates, not desyncs or new sessions: the delayed
    // ratchet message, and the prekey message of the (now archived) new session.
    assert_eq!(
        bob.decrypt(&alice_at, &fresh[0].message),
        Err(DeviceError::Protocol(Error::DuplicateMessage))
    );
    assert_eq!(
        bob.decrypt(&alice_at, &delayed[0].message),
        Err(DeviceError::Protocol(Error::DuplicateMessage))
    );
}

#[test]
fn archive_is_bounded_on_both_sides() {
    let mut rng = rng(11);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    let bob_id = account("bob");
    let sessions = DEFAULT_MAX_ARCHIVED_SESSIONS + 3;
    let mut bases = Vec::new();
    let mut first_messages = Vec::new();
    for i in 0..sessions {
        // Alternate bundles with and without a one-time prekey.
        let bundle = if i % 2 == 0 {
            bundle_of(&mut rng, &mut bob)
        } else {
            bundle_without_one_time(&bob)
        };
        alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
        bases.push(active_base_key(&alice, &bob_at));
        let out = alice
            .encrypt(&mut rng, &bob_id, &text("s", i), &[1], &[1])
            .unwrap();
        let got = receive(&mut bob, &alice_at, &out);
        assert_eq!(got.session, SessionUse::Created);
        first_messages.push(out[0].message.clone());
        let expected_archived = i.min(DEFAULT_MAX_ARCHIVED_SESSIONS);
        // Most recent first.
        let expected: Vec<_> = bases[..i]
            .iter()
            .rev()
            .take(expected_archived)
            .copied()
            .collect();
        assert_eq!(archived_base_keys(&alice, &bob_at), expected, "alice {i}");
        assert_eq!(archived_base_keys(&bob, &alice_at), expected, "bob {i}");
    }
    let record = alice.store().session_record(&bob_at).unwrap().unwrap();
    assert_eq!(record.archived().len(), DEFAULT_MAX_ARCHIVED_SESSIONS);
    assert!(sessions > DEFAULT_MAX_ARCHIVED_SESSIONS + 1);
    // The first two sessions (one with a one-time prekey, one without) were
    // dropped from Bob's archive: a replay of their prekey messages is refused
    // as a repeat and creates nothing (v1: a spent one-time prekey, resp. a
    // second new session).
    let before = snapshot(&bob);
    for (message, base) in first_messages.iter().zip(&bases).take(2) {
        assert_eq!(
            bob.decrypt(&alice_at, message),
            Err(DeviceError::Protocol(Error::RepeatedPreKeyMessage {
                base_key: *base
            }))
        );
    }
    assert_eq!(snapshot(&bob), before);
}

#[test]
fn archive_bound_is_configurable_up_to_the_maximum() {
    let mut rng = rng(12);
    let over = device(&mut rng, "alice", 1).with_max_archived_sessions(MAX_ARCHIVED_SESSIONS + 1);
    assert!(matches!(over, Err(Error::InvalidConfig { .. })));
    assert_eq!(MAX_ARCHIVED_SESSIONS, 40);
    assert!(matches!(
        device(&mut rng, "alice", 1).with_max_archived_sessions(41),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(
        device(&mut rng, "alice", 1)
            .with_max_archived_sessions(40)
            .is_ok()
    );

    let mut alice = device(&mut rng, "alice", 1)
        .with_max_archived_sessions(2)
        .unwrap();
    let mut bob = device(&mut rng, "bob", 1);
    for _ in 0..5 {
        introduce(&mut rng, &mut alice, &mut bob);
    }
    assert_eq!(archived_base_keys(&alice, &addr("bob", 1)).len(), 2);
}

// ---------------------------------------------------------------------------
// 4. Desync.

#[test]
fn restored_backup_desyncs_and_a_fresh_session_recovers() {
    let (mut rng, mut alice, mut bob) = established(20);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));

    let backup = bob.store().encode();
    // A full round trip after the backup moves both ratchets on.
    for i in 0..2 {
        let out = alice
            .encrypt(&mut rng, &bob_id, &text("a", i), &[1], &[1])
            .unwrap();
        assert_eq!(receive(&mut bob, &alice_at, &out).plaintext, text("a", i));
        let out = bob
            .encrypt(&mut rng, &alice_id, &text("b", i), &[1], &[1])
            .unwrap();
        assert_eq!(receive(&mut alice, &bob_at, &out).plaintext, text("b", i));
    }
    // Bob's phone is restored from the backup.
    let (local, _) = bob.into_parts();
    let mut bob = SessionManager::new(local, MemoryStore::decode(&backup).unwrap());

    let lost = alice
        .encrypt(&mut rng, &bob_id, b"lost", &[1], &[1])
        .unwrap();
    let before = snapshot(&bob);
    let err = bob.decrypt(&alice_at, &lost[0].message).unwrap_err();
    assert_eq!(err, DeviceError::SessionDesync { address: alice_at });
    assert_eq!(err.needs_fresh_session(), Some(&alice_at));
    assert_eq!(
        snapshot(&bob),
        before,
        "a failed decrypt wrote to the store"
    );

    // Recovery: Bob fetches a new bundle of Alice's device and writes again.
    introduce(&mut rng, &mut bob, &mut alice);
    let out = bob
        .encrypt(&mut rng, &alice_id, b"I'm back", &[1], &[1])
        .unwrap();
    assert!(is_prekey_message(&out[0].message));
    let got = receive(&mut alice, &bob_at, &out);
    assert_eq!(got.plaintext, b"I'm back");
    assert_eq!(got.session, SessionUse::Created);
    assert_eq!(got.identity_change, None);
    for i in 0..3 {
        let out = alice
            .encrypt(&mut rng, &bob_id, &text("a2", i), &[1], &[1])
            .unwrap();
        let got = receive(&mut bob, &alice_at, &out);
        assert_eq!(
            (got.plaintext.to_vec(), got.session),
            (text("a2", i), SessionUse::Active)
        );
        let out = bob
            .encrypt(&mut rng, &alice_id, &text("b2", i), &[1], &[1])
            .unwrap();
        let got = receive(&mut alice, &bob_at, &out);
        assert_eq!(
            (got.plaintext.to_vec(), got.session),
            (text("b2", i), SessionUse::Active)
        );
    }
    assert_eq!(
        active_base_key(&alice, &bob_at),
        active_base_key(&bob, &alice_at)
    );
}

#[test]
fn backup_from_before_the_session_reports_no_session() {
    let mut rng = rng(21);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    let backup = bob.store().encode();

    introduce(&mut rng, &mut alice, &mut bob);
    let out = alice
        .encrypt(&mut rng, &bob_id, b"hello", &[1], &[1])
        .unwrap();
    receive(&mut bob, &alice_at, &out);
    let out = bob.encrypt(&mut rng, &alice_id, b"hi", &[1], &[1]).unwrap();
    receive(&mut alice, &bob_at, &out);

    let (local, _) = bob.into_parts();
    let mut bob = SessionManager::new(local, MemoryStore::decode(&backup).unwrap());
    let out = alice
        .encrypt(&mut rng, &bob_id, b"ratchet", &[1], &[1])
        .unwrap();
    let err = bob.decrypt(&alice_at, &out[0].message).unwrap_err();
    assert_eq!(err, DeviceError::NoSession { address: alice_at });
    assert_eq!(err.needs_fresh_session(), Some(&alice_at));
    // Not every error asks for a fresh session.
    assert_eq!(
        DeviceError::Protocol(Error::DuplicateMessage).needs_fresh_session(),
        None
    );
    assert_eq!(DeviceError::UnknownGroup.needs_fresh_session(), None);

    introduce(&mut rng, &mut bob, &mut alice);
    let out = bob
        .encrypt(&mut rng, &alice_id, b"again", &[1], &[1])
        .unwrap();
    assert_eq!(receive(&mut alice, &bob_at, &out).plaintext, b"again");
    let out = alice
        .encrypt(&mut rng, &bob_id, b"welcome back", &[1], &[1])
        .unwrap();
    let got = receive(&mut bob, &alice_at, &out);
    assert_eq!(
        (got.plaintext.as_bytes(), got.session),
        (&b"welcome back"[..], SessionUse::Active)
    );
}

// ---------------------------------------------------------------------------
// 5. Identity change via a bundle.

/// Bob's phone after a reinstall: same account and device id, a new identity.
fn reinstalled_bob(rng: &mut ChaCha20Rng) -> Device {
    device_with_identity(rng, "bob", 1, identity("bob", 1))
}

#[test]
fn identity_change_in_a_bundle_of_an_unverified_contact_is_reported_and_allowed() {
    let (mut rng, mut alice, bob) = established(30);
    let bob_id = account("bob");
    let bob_at = addr("bob", 1);
    let old = *bob.local().identity.public_key();
    let mut bob = reinstalled_bob(&mut rng);
    let new = *bob.local().identity.public_key();
    assert_ne!(old, new);

    let bundle = bundle_of(&mut rng, &mut bob);
    let started = alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
    assert_eq!(started.address, bob_at);
    assert_eq!(
        started.identity_change,
        Some(IdentityChange {
            account: bob_id,
            previous: old,
            new,
            was_verified: false,
        })
    );
    let record = alice.trust_record(&bob_id).unwrap().unwrap();
    assert_eq!(record.identity(), &new);
    assert_eq!(
        record.state(),
        &TrustState::Changed {
            previous: old,
            was_verified: false
        }
    );
    // Sessions under the old key are dropped, not archived.
    assert!(archived_base_keys(&alice, &bob_at).is_empty());

    let out = alice
        .encrypt(&mut rng, &bob_id, b"new phone?", &[1], &[1])
        .unwrap();
    assert_eq!(out[0].identity_key, new);
    let got = receive(&mut bob, &addr("alice", 1), &out);
    assert_eq!(got.plaintext, b"new phone?");
    assert_eq!(got.session, SessionUse::Created);

    // Acknowledging the notice makes the key plainly unverified.
    alice.accept_identity(&bob_id, &new).unwrap();
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Unverified
    );
}

#[test]
fn identity_change_in_a_bundle_of_a_verified_contact_blocks_until_accepted() {
    let (mut rng, mut alice, bob) = established(31);
    let bob_id = account("bob");
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    let old = *bob.local().identity.public_key();
    alice.mark_verified(&bob_id, &old).unwrap();
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Verified
    );
    let session_before = active_base_key(&alice, &bob_at);

    let mut bob = reinstalled_bob(&mut rng);
    let new = *bob.local().identity.public_key();
    let bundle = bundle_of(&mut rng, &mut bob);
    assert_eq!(
        blocked_account(&alice.process_bundle(&mut rng, &bob_id, bundle.clone())),
        Some(bob_id)
    );
    // The change is recorded (a red lock) ...
    let record = alice.trust_record(&bob_id).unwrap().unwrap();
    assert_eq!(record.identity(), &new);
    assert_eq!(
        record.state(),
        &TrustState::Changed {
            previous: old,
            was_verified: true
        }
    );
    // ... but nothing else: the old session stays.
    assert_eq!(active_base_key(&alice, &bob_at), session_before);
    assert!(archived_base_keys(&alice, &bob_at).is_empty());

    // Sending is blocked, and so is a second try with the bundle.
    let before = snapshot(&alice);
    assert_eq!(
        blocked_account(&alice.encrypt(&mut rng, &bob_id, b"blocked", &[1], &[1])),
        Some(bob_id)
    );
    assert_eq!(
        blocked_account(&alice.process_bundle(&mut rng, &bob_id, bundle.clone())),
        Some(bob_id)
    );
    assert_eq!(snapshot(&alice), before);

    // Accepting a key other than the recorded one is refused.
    assert_eq!(
        alice.accept_identity(&bob_id, &old),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    let stranger = *identity("mallory", 0).public_key();
    assert_eq!(
        alice.accept_identity(&bob_id, &stranger),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    assert_eq!(
        alice.accept_identity(&account("carol"), &stranger),
        Err(DeviceError::UnknownContact {
            account: account("carol")
        })
    );
    assert_eq!(snapshot(&alice), before);

    alice.accept_identity(&bob_id, &new).unwrap();
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Unverified
    );
    // The session held is under the old key: the device must be fetched again.
    assert_eq!(
        alice.encrypt(&mut rng, &bob_id, b"still old", &[1], &[1]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![bob_at],
            stale: vec![],
        })
    );
    let started = alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
    // Already recorded and accepted: no second notice.
    assert_eq!(started.identity_change, None);
    let out = alice
        .encrypt(&mut rng, &bob_id, b"welcome back", &[1], &[1])
        .unwrap();
    assert_eq!(out[0].identity_key, new);
    let got = receive(&mut bob, &alice_at, &out);
    assert_eq!(got.plaintext, b"welcome back");
    let out = bob
        .encrypt(&mut rng, &account("alice"), b"thanks", &[1], &[1])
        .unwrap();
    assert_eq!(receive(&mut alice, &bob_at, &out).plaintext, b"thanks");
}

/// A verified contact's key changes (blocked), then the verified key comes back
/// (the real bundle again, after a substituted one). The record the manager
/// writes then names the same key as both the current and the previous one,
/// and `TrustRecord::decode` refuses exactly that, so the device's store
/// snapshot no longer restores.
#[test]
fn return_to_the_verified_key_keeps_the_store_restorable() {
    let (mut rng, mut alice, mut bob) = established(32);
    let bob_id = account("bob");
    let old = *bob.local().identity.public_key();
    alice.mark_verified(&bob_id, &old).unwrap();

    // A substituted bundle under another key: blocked and recorded.
    let mut impostor = reinstalled_bob(&mut rng);
    let substituted = bundle_of(&mut rng, &mut impostor);
    assert_eq!(
        blocked_account(&alice.process_bundle(&mut rng, &bob_id, substituted)),
        Some(bob_id)
    );
    // The real bundle again, under the verified key.
    let real = bundle_of(&mut rng, &mut bob);
    let _ = alice.process_bundle(&mut rng, &bob_id, real);
    let record = alice.trust_record(&bob_id).unwrap().unwrap();
    assert_eq!(record.identity(), &old);
    let store_restores = MemoryStore::decode(&alice.store().encode()).map(|_| ());
    let record_decodes = TrustRecord::decode(&record.encode());
    assert!(
        store_restores.is_ok() && record_decodes == Ok(record),
        "record {record:?}: store snapshot decodes as {store_restores:?}, record as {record_decodes:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. Identity change via a prekey message.

/// Bob reinstalls and writes to Alice first: a prekey message under his new key
/// (with one of Alice's one-time prekeys and one of her one-time KEM prekeys).
/// Returns Bob, the message and the ids of those two prekeys.
fn reinstalled_bob_writes(
    rng: &mut ChaCha20Rng,
    alice: &mut Device,
) -> (Device, Vec<u8>, PreKeyId, PreKeyId) {
    let mut bob = reinstalled_bob(rng);
    let bundle = bundle_of(rng, alice);
    let one_time = bundle.one_time_prekey().unwrap().0;
    let kem = bundle.kem_prekey().id;
    assert_eq!(
        alice.store().prekeys().find_kem_prekey(kem).unwrap().1,
        KemPreKeyKind::OneTime
    );
    bob.process_bundle(rng, &account("alice"), bundle).unwrap();
    let out = bob
        .encrypt(rng, &account("alice"), b"it's me, new phone", &[1], &[1])
        .unwrap();
    assert!(is_prekey_message(&out[0].message));
    (bob, out[0].message.clone(), one_time, kem)
}

#[test]
fn identity_change_in_a_prekey_message_of_a_verified_contact_blocks_without_spending() {
    let (mut rng, mut alice, bob) = established(40);
    let bob_id = account("bob");
    let bob_at = addr("bob", 1);
    let old = *bob.local().identity.public_key();
    alice.mark_verified(&bob_id, &old).unwrap();
    let session_before = active_base_key(&alice, &bob_at);

    let (mut bob, message, one_time, kem) = reinstalled_bob_writes(&mut rng, &mut alice);
    let new = *bob.local().identity.public_key();
    let prekeys_before = alice.store().prekeys().one_time_prekey_count();
    let kem_prekeys_before = alice.store().prekeys().one_time_kem_prekey_count();

    // A tampered copy does not authenticate: it changes nothing at all.
    let before = snapshot(&alice);
    let mut tampered = message.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        alice.decrypt(&bob_at, &tampered),
        Err(DeviceError::Protocol(Error::DecryptionFailed))
    );
    assert_eq!(snapshot(&alice), before);

    for _ in 0..2 {
        assert_eq!(
            blocked_account(&alice.decrypt(&bob_at, &message)),
            Some(bob_id)
        );
        assert_eq!(
            alice.store().prekeys().one_time_prekey_count(),
            prekeys_before
        );
        assert!(
            alice
                .store()
                .prekeys()
                .find_one_time_prekey(one_time)
                .is_some()
        );
        assert_eq!(
            alice.store().prekeys().one_time_kem_prekey_count(),
            kem_prekeys_before
        );
        assert!(alice.store().prekeys().find_kem_prekey(kem).is_some());
        let record = alice.trust_record(&bob_id).unwrap().unwrap();
        assert_eq!(record.identity(), &new);
        assert_eq!(
            record.state(),
            &TrustState::Changed {
                previous: old,
                was_verified: true
            }
        );
        assert_eq!(active_base_key(&alice, &bob_at), session_before);
    }

    alice.accept_identity(&bob_id, &new).unwrap();
    let got = alice.decrypt(&bob_at, &message).unwrap();
    assert_eq!(got.plaintext, b"it's me, new phone");
    assert_eq!(got.session, SessionUse::Created);
    // The change was reported (as the error) and accepted already.
    assert_eq!(got.identity_change, None);
    assert_eq!(
        alice.store().prekeys().one_time_prekey_count(),
        prekeys_before - 1
    );
    assert!(
        alice
            .store()
            .prekeys()
            .find_one_time_prekey(one_time)
            .is_none()
    );
    assert_eq!(
        alice.store().prekeys().one_time_kem_prekey_count(),
        kem_prekeys_before - 1
    );
    assert!(alice.store().prekeys().find_kem_prekey(kem).is_none());
    // The old key's sessions are gone; the new one answers.
    assert!(archived_base_keys(&alice, &bob_at).is_empty());
    let out = alice
        .encrypt(&mut rng, &bob_id, b"hello new phone", &[1], &[1])
        .unwrap();
    let got = receive(&mut bob, &addr("alice", 1), &out);
    assert_eq!(
        (got.plaintext.as_bytes(), got.session),
        (&b"hello new phone"[..], SessionUse::Active)
    );
}

#[test]
fn identity_change_in_a_prekey_message_of_an_unverified_contact_is_reported() {
    let (mut rng, mut alice, bob) = established(41);
    let bob_id = account("bob");
    let bob_at = addr("bob", 1);
    let old = *bob.local().identity.public_key();
    let (mut bob, message, one_time, kem) = reinstalled_bob_writes(&mut rng, &mut alice);
    let new = *bob.local().identity.public_key();

    let got = alice.decrypt(&bob_at, &message).unwrap();
    assert_eq!(got.plaintext, b"it's me, new phone");
    assert_eq!(got.session, SessionUse::Created);
    assert_eq!(
        got.identity_change,
        Some(IdentityChange {
            account: bob_id,
            previous: old,
            new,
            was_verified: false
        })
    );
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Changed {
            previous: old,
            was_verified: false
        }
    );
    assert!(
        alice
            .store()
            .prekeys()
            .find_one_time_prekey(one_time)
            .is_none()
    );
    assert!(alice.store().prekeys().find_kem_prekey(kem).is_none());
    assert!(archived_base_keys(&alice, &bob_at).is_empty());
    let out = alice.encrypt(&mut rng, &bob_id, b"ok", &[1], &[1]).unwrap();
    assert_eq!(receive(&mut bob, &addr("alice", 1), &out).plaintext, b"ok");
}

// ---------------------------------------------------------------------------
// 7. Device-list mismatch.

#[test]
fn device_list_mismatch_names_missing_and_stale_devices() {
    let mut rng = rng(50);
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut bob1 = device(&mut rng, "bob", 1);
    let mut bob2 = device(&mut rng, "bob", 2);
    let bob_id = account("bob");
    introduce(&mut rng, &mut phone, &mut bob1);
    introduce(&mut rng, &mut phone, &mut bob2);
    introduce(&mut rng, &mut phone, &mut desktop);
    assert_eq!(phone.session_devices(&bob_id).unwrap(), [1, 2]);
    assert_eq!(phone.session_devices(&account("alice")).unwrap(), [2]);

    // Server now: Bob has devices 1 and 3 (2 is gone), Alice has 1, 2 and 4.
    let mut bob3 = device(&mut rng, "bob", 3);
    let mut laptop = device(&mut rng, "alice", 4);
    let before = snapshot(&phone);
    assert_eq!(
        phone.encrypt(&mut rng, &bob_id, b"hi", &[3, 1], &[4, 1, 2]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![addr("bob", 3), addr("alice", 4)],
            stale: vec![addr("bob", 2)],
        })
    );
    assert_eq!(
        snapshot(&phone),
        before,
        "a refused encrypt wrote to the store"
    );
    // Only the stale one.
    assert_eq!(
        phone.encrypt(&mut rng, &bob_id, b"hi", &[1], &[2]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![],
            stale: vec![addr("bob", 2)],
        })
    );
    // Own device omitted from the own list is stale too.
    assert_eq!(
        phone.encrypt(&mut rng, &bob_id, b"hi", &[1, 2], &[]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![],
            stale: vec![addr("alice", 2)],
        })
    );

    introduce(&mut rng, &mut phone, &mut bob3);
    introduce(&mut rng, &mut phone, &mut laptop);
    assert_eq!(
        phone.encrypt(&mut rng, &bob_id, b"hi", &[3, 1], &[4, 1, 2]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![],
            stale: vec![addr("bob", 2)],
        })
    );
    phone.remove_device(&addr("bob", 2)).unwrap();
    assert_eq!(phone.session_devices(&bob_id).unwrap(), [1, 3]);
    let out = phone
        .encrypt(&mut rng, &bob_id, b"hi", &[3, 1], &[4, 1, 2])
        .unwrap();
    assert_eq!(
        recipients(&out),
        [
            addr("alice", 2),
            addr("alice", 4),
            addr("bob", 1),
            addr("bob", 3)
        ]
    );
    let phone_at = addr("alice", 1);
    for receiver in [&mut bob1, &mut bob3, &mut desktop, &mut laptop] {
        assert_eq!(receive(receiver, &phone_at, &out).plaintext, b"hi");
    }
    // Bob's removed device gets nothing more.
    assert!(out.iter().all(|o| o.address != bob2.local().address()));
    // Removing an unknown device is harmless.
    phone.remove_device(&addr("bob", 9)).unwrap();
}

#[test]
fn contact_never_seen_has_every_listed_device_missing() {
    let mut rng = rng(51);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob1 = device(&mut rng, "bob", 1);
    let mut bob2 = device(&mut rng, "bob", 2);
    let bob_id = account("bob");
    let before = snapshot(&alice);
    assert_eq!(
        alice.encrypt(&mut rng, &bob_id, b"hi", &[2, 1], &[1]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![addr("bob", 1), addr("bob", 2)],
            stale: vec![],
        })
    );
    assert_eq!(snapshot(&alice), before);
    // Nothing to compare or verify yet.
    assert_eq!(
        alice.safety_number(&bob_id).err(),
        Some(DeviceError::UnknownContact { account: bob_id })
    );
    assert_eq!(
        alice.mark_verified(&bob_id, bob1.local().identity.public_key()),
        Err(DeviceError::UnknownContact { account: bob_id })
    );
    introduce(&mut rng, &mut alice, &mut bob1);
    introduce(&mut rng, &mut alice, &mut bob2);
    let out = alice
        .encrypt(&mut rng, &bob_id, b"hi", &[2, 1], &[1])
        .unwrap();
    for bob in [&mut bob1, &mut bob2] {
        assert_eq!(receive(bob, &addr("alice", 1), &out).plaintext, b"hi");
    }
}

// ---------------------------------------------------------------------------
// 8. Atomicity: a store whose writes can fail.

/// A [`MemoryStore`] whose `apply` fails while `fail` is set, and which
/// records what every `apply` was asked to write.
struct FlakyStore {
    inner: MemoryStore,
    fail: bool,
    applied: Vec<Vec<&'static str>>,
}

impl FlakyStore {
    fn new(prekeys: PreKeyStore) -> Self {
        Self {
            inner: MemoryStore::new(prekeys),
            fail: false,
            applied: Vec::new(),
        }
    }
}

fn kind(change: &Change) -> &'static str {
    match change {
        Change::SaveTrust { .. } => "trust",
        Change::SaveSessions { .. } => "sessions",
        Change::DeleteSessions { .. } => "delete",
        Change::AcceptPreKeyMessage { .. } => "accept-prekey",
        Change::SaveGroup { .. } => "group",
        _ => "other",
    }
}

impl IdentityStore for FlakyStore {
    fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, StoreError> {
        self.inner.trust_record(account)
    }
}

impl PreKeyStorage for FlakyStore {
    fn signed_prekey(&self, id: PreKeyId) -> Result<Option<SignedPreKey>, StoreError> {
        self.inner.signed_prekey(id)
    }
    fn one_time_prekey(&self, id: PreKeyId) -> Result<Option<OneTimePreKey>, StoreError> {
        self.inner.one_time_prekey(id)
    }
    fn kem_prekey(&self, id: PreKeyId) -> Result<Option<KemPreKey>, StoreError> {
        self.inner.kem_prekey(id)
    }
    fn has_accepted_base_key(&self, base_key: &PublicKey) -> Result<bool, StoreError> {
        self.inner.has_accepted_base_key(base_key)
    }
}

impl SessionStore for FlakyStore {
    fn session_record(
        &self,
        address: &DeviceAddress,
    ) -> Result<Option<ratchetbox::devices::SessionRecord>, StoreError> {
        self.inner.session_record(address)
    }
    fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, StoreError> {
        self.inner.session_devices(account)
    }
}

impl GroupStore for FlakyStore {
    fn group_session(&self, group_id: &[u8]) -> Result<Option<GroupSession>, StoreError> {
        self.inner.group_session(group_id)
    }
}

impl ProtocolStore for FlakyStore {
    fn apply(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        self.applied
            .push(changes.changes().iter().map(kind).collect());
        if self.fail {
            return Err(StoreError::Unavailable);
        }
        self.inner.apply(changes)
    }
}

fn flaky_device(rng: &mut ChaCha20Rng, name: &str) -> SessionManager<FlakyStore> {
    let identity = identity(name, 0);
    let mut prekeys = PreKeyStore::generate(rng, &identity, 1);
    prekeys.generate_one_time_prekeys(rng, 2).unwrap();
    SessionManager::new(
        LocalDevice {
            account: account(name),
            device_id: 1,
            identity,
        },
        FlakyStore::new(prekeys),
    )
}

fn flaky_snapshot(device: &SessionManager<FlakyStore>) -> Vec<u8> {
    device.store().inner.encode().to_vec()
}

#[test]
fn failed_write_during_a_prekey_decrypt_spends_nothing() {
    let mut rng = rng(60);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = flaky_device(&mut rng, "bob");
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let alice_at = addr("alice", 1);

    // The flaky device's identity (the manager lends it and its store only
    // one at a time).
    let bob_identity = identity("bob", 0);
    assert_eq!(bob_identity.public_key(), bob.local().identity.public_key());
    let bundle = publish(
        &mut rng,
        &bob_identity,
        bob.store_mut().inner.prekeys_mut(),
        true,
    );
    let one_time = bundle.one_time_prekey().unwrap().0;
    let kem = bundle.kem_prekey().id;
    alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
    let out = alice
        .encrypt(&mut rng, &bob_id, b"first", &[1], &[1])
        .unwrap();
    let count = bob.store().inner.prekeys().one_time_prekey_count();
    let kem_count = bob.store().inner.prekeys().one_time_kem_prekey_count();
    assert!(bob.store().kem_prekey(kem).unwrap().is_some());
    let base_key = prekey_base_key(&out[0].message);

    bob.store_mut().fail = true;
    let before = flaky_snapshot(&bob);
    for _ in 0..2 {
        assert_eq!(
            bob.decrypt(&alice_at, &out[0].message),
            Err(DeviceError::Store(StoreError::Unavailable))
        );
        assert_eq!(flaky_snapshot(&bob), before);
        assert_eq!(bob.store().inner.prekeys().one_time_prekey_count(), count);
        assert!(bob.store().one_time_prekey(one_time).unwrap().is_some());
        assert_eq!(
            bob.store().inner.prekeys().one_time_kem_prekey_count(),
            kem_count
        );
        assert!(bob.store().kem_prekey(kem).unwrap().is_some());
        assert_eq!(bob.trust_record(&alice_id).unwrap(), None);
        assert_eq!(
            bob.store().session_record(&alice_at).unwrap().map(|_| ()),
            None
        );
        assert!(!bob.store().has_accepted_base_key(&base_key).unwrap());
    }
    // One change set holds everything the decrypt writes.
    assert_eq!(
        bob.store().applied.last().unwrap(),
        &["trust", "accept-prekey", "sessions"]
    );

    bob.store_mut().fail = false;
    let got = bob.decrypt(&alice_at, &out[0].message).unwrap();
    assert_eq!(got.plaintext, b"first");
    assert_eq!(got.session, SessionUse::Created);
    assert_eq!(
        bob.store().inner.prekeys().one_time_prekey_count(),
        count - 1
    );
    assert!(bob.store().one_time_prekey(one_time).unwrap().is_none());
    // The one-time KEM prekey is spent with it.
    assert_eq!(
        bob.store().inner.prekeys().one_time_kem_prekey_count(),
        kem_count - 1
    );
    assert!(bob.store().kem_prekey(kem).unwrap().is_none());
    assert!(bob.store().has_accepted_base_key(&base_key).unwrap());
    assert_eq!(
        bob.trust_record(&alice_id).unwrap().unwrap().identity(),
        alice.local().identity.public_key()
    );

    // A ratchet message whose write fails can be decrypted again (not a duplicate).
    let reply = bob
        .encrypt(&mut rng, &alice_id, b"reply", &[1], &[1])
        .unwrap();
    assert_eq!(
        receive(&mut alice, &addr("bob", 1), &reply).plaintext,
        b"reply"
    );
    let out = alice
        .encrypt(&mut rng, &bob_id, b"second", &[1], &[1])
        .unwrap();
    assert!(!is_prekey_message(&out[0].message));
    bob.store_mut().fail = true;
    assert_eq!(
        bob.decrypt(&alice_at, &out[0].message),
        Err(DeviceError::Store(StoreError::Unavailable))
    );
    bob.store_mut().fail = false;
    let got = bob.decrypt(&alice_at, &out[0].message).unwrap();
    assert_eq!(got.plaintext, b"second");
    assert_eq!(
        bob.decrypt(&alice_at, &out[0].message),
        Err(DeviceError::Protocol(Error::DuplicateMessage))
    );
}

#[test]
fn failed_write_during_encrypt_leaves_no_state_skew() {
    let mut rng = rng(61);
    let mut alice = flaky_device(&mut rng, "alice");
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (alice_at, bob_at) = (addr("alice", 1), addr("bob", 1));

    // A failed process_bundle starts nothing.
    alice.store_mut().fail = true;
    let bundle = bundle_of(&mut rng, &mut bob);
    assert_eq!(
        alice.process_bundle(&mut rng, &bob_id, bundle.clone()),
        Err(DeviceError::Store(StoreError::Unavailable))
    );
    assert_eq!(alice.trust_record(&bob_id).unwrap(), None);
    assert_eq!(
        alice.session_devices(&bob_id).unwrap(),
        Vec::<DeviceId>::new()
    );
    alice.store_mut().fail = false;
    alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();

    // The first message's write fails: it is never sent.
    alice.store_mut().fail = true;
    let before = flaky_snapshot(&alice);
    assert_eq!(
        alice.encrypt(&mut rng, &bob_id, b"never sent", &[1], &[1]),
        Err(DeviceError::Store(StoreError::Unavailable))
    );
    assert_eq!(flaky_snapshot(&alice), before);
    alice.store_mut().fail = false;
    let out = alice
        .encrypt(&mut rng, &bob_id, b"sent", &[1], &[1])
        .unwrap();
    let got = receive(&mut bob, &alice_at, &out);
    assert_eq!(got.plaintext, b"sent");

    // Same on an established session, twice in a row.
    let reply = bob
        .encrypt(&mut rng, &alice_id, b"reply", &[1], &[1])
        .unwrap();
    assert_eq!(receive(&mut alice, &bob_at, &reply).plaintext, b"reply");
    let mut sent = Vec::new();
    for i in 0..4 {
        alice.store_mut().fail = i % 2 == 0;
        match alice.encrypt(&mut rng, &bob_id, &text("m", i), &[1], &[1]) {
            Ok(out) => sent.push((text("m", i), out)),
            Err(e) => assert_eq!(e, DeviceError::Store(StoreError::Unavailable)),
        }
    }
    assert_eq!(sent.len(), 2);
    for (plaintext, out) in sent {
        let got = receive(&mut bob, &alice_at, &out);
        assert_eq!(
            (got.plaintext.to_vec(), got.session),
            (plaintext, SessionUse::Active)
        );
    }
    let reply = bob
        .encrypt(&mut rng, &alice_id, b"all good", &[1], &[1])
        .unwrap();
    assert_eq!(receive(&mut alice, &bob_at, &reply).plaintext, b"all good");
}

// ---------------------------------------------------------------------------
// 9. Sealed fan-out.

/// The server's split of a multi-recipient envelope, checked: `(recipient, part)`.
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
            assert_eq!(part.write_to(&mut bytes), Ok(part.len()));
            (owned(part.recipient()), bytes)
        })
        .collect()
}

fn part_for<'a>(parts: &'a [(DeviceAddress, Vec<u8>)], to: &DeviceAddress) -> &'a [u8] {
    &parts.iter().find(|(a, _)| a == to).unwrap().1
}

#[test]
fn sealed_fan_out_opens_on_every_device_and_only_there() {
    let mut rng = rng(70);
    let server = SealedServer::new();
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut bob1 = device(&mut rng, "bob", 1);
    let mut bob2 = device(&mut rng, "bob", 2);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    introduce(&mut rng, &mut phone, &mut bob1);
    introduce(&mut rng, &mut phone, &mut bob2);
    introduce(&mut rng, &mut phone, &mut desktop);
    let cert = server.certificate_of(&phone);
    let keys = |a: &AccountId| Some(access_key(a.as_bytes()));
    let sealing = Sealing {
        certificate: &cert,
        access_keys: &keys,
    };
    let phone_at = addr("alice", 1);

    for round in 0..3 {
        let plaintext = text("sealed", round);
        let envelope = phone
            .encrypt_sealed(&mut rng, &bob_id, &plaintext, &[1, 2], &[1, 2], &sealing)
            .unwrap();
        let parts = split(&envelope);
        let mut listed: Vec<_> = parts.iter().map(|(a, _)| *a).collect();
        listed.sort();
        assert_eq!(listed, [addr("alice", 2), addr("bob", 1), addr("bob", 2)]);

        // Every part opens only on its own device.
        for (to, part) in &parts {
            for other in [&mut bob1, &mut bob2, &mut desktop] {
                if other.local().address() == *to {
                    continue;
                }
                let before = snapshot(other);
                assert_eq!(
                    other.open_sealed(part, &server.trust, NOW).map(|_| ()),
                    Err(DeviceError::Protocol(Error::WrongRecipient)),
                    "{} opened the part for {to}",
                    other.local().address()
                );
                assert_eq!(snapshot(other), before);
            }
        }
        // The sender's own device refuses the part it would get... it gets none;
        // a part for the desktop opened by the phone is a self-send or wrong recipient.
        assert!(
            phone
                .open_sealed(part_for(&parts, &addr("alice", 2)), &server.trust, NOW)
                .is_err()
        );

        for receiver in [&mut bob1, &mut bob2, &mut desktop] {
            let me = receiver.local().address();
            let (from, got) = receiver
                .open_sealed(part_for(&parts, &me), &server.trust, NOW)
                .unwrap();
            assert_eq!(from, phone_at);
            assert_eq!(got.plaintext, plaintext);
            let expected = if round == 0 {
                SessionUse::Created
            } else {
                SessionUse::Active
            };
            assert_eq!(got.session, expected, "{me} round {round}");
        }
        // Bob's devices answer in the clear after the first round, so the
        // phone's next messages are ratchet messages.
        if round == 0 {
            for (bob, n) in [(&mut bob1, 1), (&mut bob2, 2)] {
                // Each of Bob's devices holds a session with the phone only
                // (and none with its sibling), so it lists just those.
                let out = bob
                    .encrypt(&mut rng, &alice_id, b"ack", &[1], &[n])
                    .unwrap();
                assert_eq!(receive(&mut phone, &addr("bob", n), &out).plaintext, b"ack");
            }
            let out = desktop
                .encrypt(&mut rng, &alice_id, b"ack", &[1, 2], &[])
                .unwrap();
            receive(&mut phone, &addr("alice", 2), &out);
        }
    }
}

#[test]
fn sealed_fan_out_size_limit_is_checked_before_any_session_advances() {
    use ratchetbox::PREKEY_MESSAGE_OVERHEAD;
    use ratchetbox::sealed::MAX_PAYLOAD_LEN;
    let mut rng = rng(73);
    let server = SealedServer::new();
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut bob = device(&mut rng, "bob", 1);
    introduce(&mut rng, &mut phone, &mut bob);
    introduce(&mut rng, &mut phone, &mut desktop);
    let cert = server.certificate_of(&phone);
    let keys = |a: &AccountId| Some(access_key(a.as_bytes()));
    let sealing = Sealing {
        certificate: &cert,
        access_keys: &keys,
    };
    let largest = MAX_PAYLOAD_LEN - PREKEY_MESSAGE_OVERHEAD;

    let before = snapshot(&phone);
    assert_eq!(
        phone.encrypt_sealed(
            &mut rng,
            &account("bob"),
            &vec![7u8; largest + 1],
            &[1],
            &[1, 2],
            &sealing,
        ),
        Err(DeviceError::Protocol(Error::MessageTooLarge))
    );
    assert_eq!(snapshot(&phone), before);

    let plaintext = vec![9u8; largest];
    let envelope = phone
        .encrypt_sealed(
            &mut rng,
            &account("bob"),
            &plaintext,
            &[1],
            &[1, 2],
            &sealing,
        )
        .unwrap();
    // The whole envelope opens too (the device finds its own entry).
    let (_, got) = bob.open_sealed(&envelope, &server.trust, NOW).unwrap();
    assert_eq!(got.plaintext, plaintext);
    let parts = split(&envelope);
    let (_, got) = desktop
        .open_sealed(part_for(&parts, &addr("alice", 2)), &server.trust, NOW)
        .unwrap();
    assert_eq!(got.plaintext, plaintext);
}

/// A certified sender whose certificate names another identity than the one
/// the session authenticates. For prekey messages `open_sealed` reports
/// `SenderIdentityMismatch`, as documented; for ratchet messages the manager
/// skips every session of another identity and reports `SessionDesync`, which
/// tells the app to reset a healthy session.
#[test]
fn sealed_ratchet_message_under_a_foreign_certificate_is_an_identity_mismatch() {
    use ratchetbox::sealed::{ContentHint, InnerKind, SealedContent, seal};
    let (mut rng, mut alice, mut bob) = established(71);
    let server = SealedServer::new();
    let alice_at = addr("alice", 1);
    // Mallory holds a certificate for Alice's address under her own key and
    // replays one of Alice's ratchet messages inside it.
    let mallory = identity("mallory", 0);
    let forged_cert = server.certify(&alice_at, mallory.public_key());
    let prekey = alice
        .encrypt(&mut rng, &account("bob"), b"real", &[1], &[1])
        .unwrap();
    assert!(!is_prekey_message(&prekey[0].message));
    let envelope = seal(
        &mut rng,
        &mallory,
        &forged_cert,
        addr("bob", 1).as_address(),
        bob.local().identity.public_key(),
        SealedContent {
            kind: InnerKind::Ratchet,
            hint: ContentHint::Default,
            message: &prekey[0].message,
        },
        None,
    )
    .unwrap();
    let before = snapshot(&bob);
    assert_eq!(
        bob.open_sealed(&envelope, &server.trust, NOW).map(|_| ()),
        Err(DeviceError::Protocol(Error::SenderIdentityMismatch))
    );
    assert_eq!(snapshot(&bob), before);
}

#[test]
fn sealed_prekey_message_under_a_foreign_certificate_is_an_identity_mismatch() {
    use ratchetbox::sealed::{ContentHint, InnerKind, SealedContent, seal};
    let mut rng = rng(72);
    let server = SealedServer::new();
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let alice_at = addr("alice", 1);
    introduce(&mut rng, &mut alice, &mut bob);
    let out = alice
        .encrypt(&mut rng, &account("bob"), b"hi", &[1], &[1])
        .unwrap();
    let mallory = identity("mallory", 0);
    let forged_cert = server.certify(&alice_at, mallory.public_key());
    let envelope = seal(
        &mut rng,
        &mallory,
        &forged_cert,
        addr("bob", 1).as_address(),
        bob.local().identity.public_key(),
        SealedContent {
            kind: InnerKind::PreKey,
            hint: ContentHint::Default,
            message: &out[0].message,
        },
        None,
    )
    .unwrap();
    let before = snapshot(&bob);
    assert_eq!(
        bob.open_sealed(&envelope, &server.trust, NOW).map(|_| ()),
        Err(DeviceError::Protocol(Error::SenderIdentityMismatch))
    );
    assert_eq!(snapshot(&bob), before);
    // Alice's genuine envelope opens.
    let genuine = seal(
        &mut rng,
        &alice.local().identity,
        &server.certificate_of(&alice),
        addr("bob", 1).as_address(),
        bob.local().identity.public_key(),
        SealedContent {
            kind: InnerKind::PreKey,
            hint: ContentHint::Default,
            message: &out[0].message,
        },
        None,
    )
    .unwrap();
    let (from, got) = bob.open_sealed(&genuine, &server.trust, NOW).unwrap();
    assert_eq!(from, alice_at);
    assert_eq!(got.plaintext, b"hi");
}

// ---------------------------------------------------------------------------
// 10. Safety numbers.

#[test]
fn safety_numbers_through_the_manager() {
    let (mut rng, mut alice, bob) = established(80);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let on_alice = alice.safety_number(&bob_id).unwrap();
    let on_bob = bob.safety_number(&alice_id).unwrap();
    assert_eq!(on_alice.digits(), on_bob.digits());
    assert_eq!(
        on_alice.compare_scanned(&on_bob.scannable()),
        Ok(SafetyNumberMatch::Match)
    );
    assert_eq!(
        on_bob.compare_scanned(&on_alice.scannable()),
        Ok(SafetyNumberMatch::Match)
    );
    // Scanning one's own code is not a match.
    assert_eq!(
        on_alice.compare_scanned(&on_alice.scannable()),
        Ok(SafetyNumberMatch::Mismatch)
    );

    // Bob reinstalls; Alice sees the new key (unverified: allowed).
    let old = *bob.local().identity.public_key();
    let mut bob = reinstalled_bob(&mut rng);
    let new = *bob.local().identity.public_key();
    let bundle = bundle_of(&mut rng, &mut bob);
    alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
    let changed = alice.safety_number(&bob_id).unwrap();
    assert_ne!(changed.digits(), on_alice.digits());
    assert_eq!(
        changed.compare_scanned(&on_bob.scannable()),
        Ok(SafetyNumberMatch::Mismatch)
    );
    // New Bob learns Alice's key from her first message, and the numbers agree again.
    let out = alice.encrypt(&mut rng, &bob_id, b"hi", &[1], &[1]).unwrap();
    receive(&mut bob, &addr("alice", 1), &out);
    let on_new_bob = bob.safety_number(&alice_id).unwrap();
    assert_eq!(changed.digits(), on_new_bob.digits());
    assert_eq!(
        changed.compare_scanned(&on_new_bob.scannable()),
        Ok(SafetyNumberMatch::Match)
    );

    // Verifying needs the key the number was computed from.
    assert_eq!(
        alice.mark_verified(&bob_id, &old),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    alice.mark_verified(&bob_id, &new).unwrap();
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Verified
    );
    bob.mark_verified(&alice_id, alice.local().identity.public_key())
        .unwrap();
    assert_eq!(
        bob.trust_record(&alice_id).unwrap().unwrap().state(),
        &TrustState::Verified
    );
}

#[test]
fn verifying_the_new_key_also_unblocks() {
    let (mut rng, mut alice, bob) = established(81);
    let bob_id = account("bob");
    alice
        .mark_verified(&bob_id, bob.local().identity.public_key())
        .unwrap();
    let mut bob = reinstalled_bob(&mut rng);
    let new = *bob.local().identity.public_key();
    let bundle = bundle_of(&mut rng, &mut bob);
    assert_eq!(
        blocked_account(&alice.process_bundle(&mut rng, &bob_id, bundle.clone())),
        Some(bob_id)
    );
    // The user compares the new safety number (computed from the recorded key)
    // and verifies it.
    let number = alice.safety_number(&bob_id).unwrap();
    let expected = ratchetbox::SafetyNumber::new(
        &account("alice"),
        alice.local().identity.public_key(),
        &bob_id,
        &new,
    );
    assert_eq!(number.digits(), expected.digits());
    alice.mark_verified(&bob_id, &new).unwrap();
    assert_eq!(
        alice.trust_record(&bob_id).unwrap().unwrap().state(),
        &TrustState::Verified
    );
    alice.process_bundle(&mut rng, &bob_id, bundle).unwrap();
    let out = alice
        .encrypt(&mut rng, &bob_id, b"verified", &[1], &[1])
        .unwrap();
    assert_eq!(
        receive(&mut bob, &addr("alice", 1), &out).plaintext,
        b"verified"
    );
}

// ---------------------------------------------------------------------------
// 11. Self-send and own-account impostors.

#[test]
fn own_bundle_and_own_messages_are_self_sends() {
    let mut rng = rng(90);
    let mut alice = device(&mut rng, "alice", 1);
    let alice_id = account("alice");
    let own = bundle_of(&mut rng, &mut alice);
    assert_eq!(
        alice.process_bundle(&mut rng, &alice_id, own),
        Err(DeviceError::Protocol(Error::SelfSend))
    );
    assert_eq!(
        alice.session_devices(&alice_id).unwrap(),
        Vec::<DeviceId>::new()
    );

    // A message claiming to come from this very device.
    let mut twin = device(&mut rng, "alice", 2);
    introduce(&mut rng, &mut twin, &mut alice);
    let out = twin.encrypt(&mut rng, &alice_id, b"x", &[1], &[]).unwrap();
    assert_eq!(
        alice.decrypt(&addr("alice", 1), &out[0].message),
        Err(DeviceError::Protocol(Error::SelfSend))
    );
}

#[test]
fn own_account_device_with_a_foreign_identity_is_an_impostor() {
    let mut rng = rng(91);
    let mut alice = device(&mut rng, "alice", 1);
    let alice_id = account("alice");
    // "alice/3" registered by someone holding another identity.
    let mut impostor = device_with_identity(&mut rng, "alice", 3, identity("mallory", 0));
    let bundle = bundle_of(&mut rng, &mut impostor);
    let before = snapshot(&alice);
    assert_eq!(
        alice.process_bundle(&mut rng, &alice_id, bundle),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    assert_eq!(snapshot(&alice), before);

    // The impostor's own manager refuses Alice's real bundle the same way (to
    // it, "alice" is its own account under another identity) ...
    let alice_bundle = bundle_of(&mut rng, &mut alice);
    assert_eq!(
        impostor.process_bundle(&mut rng, &alice_id, alice_bundle),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    // ... so it writes first with the raw session API, spending one of Alice's
    // one-time prekeys.
    let alice_bundle = bundle_of(&mut rng, &mut alice);
    let one_time = alice_bundle.one_time_prekey().unwrap().0;
    let kem = alice_bundle.kem_prekey().id;
    let mut session = ratchetbox::Session::initiate(
        &mut rng,
        impostor.local(),
        &alice_id,
        &alice_bundle.verify().unwrap(),
    )
    .unwrap();
    let message = session.encrypt(&mut rng, b"it's me, your laptop").unwrap();
    let before = snapshot(&alice);
    assert_eq!(
        alice.decrypt(&addr("alice", 3), &message),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    assert_eq!(snapshot(&alice), before);
    assert!(
        alice
            .store()
            .prekeys()
            .find_one_time_prekey(one_time)
            .is_some()
    );
    assert_eq!(
        alice.store().prekeys().find_kem_prekey(kem).unwrap().1,
        KemPreKeyKind::OneTime
    );
    assert_eq!(alice.trust_record(&alice_id).unwrap(), None);
}

// ---------------------------------------------------------------------------
// 12. Group state in the store.

#[test]
fn group_state_lives_in_the_store() {
    let mut rng = rng(95);
    let mut phone = device(&mut rng, "alice", 1);
    let mut desktop = device(&mut rng, "alice", 2);
    let mut bob = device(&mut rng, "bob", 1);
    let (alice_id, bob_id) = (account("alice"), account("bob"));
    let (phone_at, bob_at) = (addr("alice", 1), addr("bob", 1));
    let group_id = b"family";
    introduce(&mut rng, &mut phone, &mut bob);
    introduce(&mut rng, &mut phone, &mut desktop);

    assert_eq!(
        phone
            .with_group(group_id, |g| g.encrypt(&mut rng, b"x"))
            .err(),
        Some(DeviceError::UnknownGroup)
    );
    phone
        .save_group(GroupSession::create(&mut rng, group_id).unwrap())
        .unwrap();
    let distribution = phone
        .with_group(group_id, |g| Ok(g.distribution().to_vec()))
        .unwrap();
    // The distribution travels over the 1:1 sessions, to Bob and the desktop.
    let out = phone
        .encrypt(&mut rng, &bob_id, &distribution, &[1], &[1, 2])
        .unwrap();
    for receiver in [&mut bob, &mut desktop] {
        let got = receive(receiver, &phone_at, &out);
        receiver
            .save_group(GroupSession::create(&mut rng, group_id).unwrap())
            .unwrap();
        receiver
            .with_group(group_id, |g| {
                g.process_distribution(phone_at.as_address(), &got.plaintext)
            })
            .unwrap();
    }

    let mut messages = Vec::new();
    for i in 0..3 {
        let plaintext = text("group", i);
        let ciphertext = phone
            .with_group(group_id, |g| g.encrypt(&mut rng, &plaintext))
            .unwrap();
        messages.push((plaintext, ciphertext));
    }
    // Delivered out of order; the stored state keeps the skipped key.
    for index in [1, 0, 2] {
        let (plaintext, ciphertext) = &messages[index];
        for receiver in [&mut bob, &mut desktop] {
            let got = receiver
                .with_group(group_id, |g| g.decrypt(phone_at.as_address(), ciphertext))
                .unwrap();
            assert_eq!(&got, plaintext);
        }
    }
    // The state was saved: a second delivery is a duplicate.
    assert_eq!(
        bob.with_group(group_id, |g| g
            .decrypt(phone_at.as_address(), &messages[0].1)),
        Err(DeviceError::Protocol(Error::DuplicateMessage))
    );
    // A failing operation saves nothing.
    let before = snapshot(&bob);
    let mut tampered = messages[2].1.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(
        bob.with_group(group_id, |g| g.decrypt(phone_at.as_address(), &tampered))
            .is_err()
    );
    assert_eq!(snapshot(&bob), before);

    // Bob's chain the other way, and through a store snapshot. Bob has not
    // talked to the desktop yet.
    assert_eq!(
        bob.encrypt(&mut rng, &alice_id, b"x", &[1, 2], &[1]),
        Err(DeviceError::DeviceListMismatch {
            missing: vec![addr("alice", 2)],
            stale: vec![],
        })
    );
    introduce(&mut rng, &mut bob, &mut desktop);
    let bob_distribution = bob
        .with_group(group_id, |g| Ok(g.distribution().to_vec()))
        .unwrap();
    let out = bob
        .encrypt(&mut rng, &alice_id, &bob_distribution, &[1, 2], &[1])
        .unwrap();
    for receiver in [&mut phone, &mut desktop] {
        let got = receive(receiver, &bob_at, &out);
        receiver
            .with_group(group_id, |g| {
                g.process_distribution(bob_at.as_address(), &got.plaintext)
            })
            .unwrap();
    }
    let ciphertext = bob
        .with_group(group_id, |g| g.encrypt(&mut rng, b"from bob"))
        .unwrap();
    let (local, store) = desktop.into_parts();
    let mut desktop = SessionManager::new(local, MemoryStore::decode(&store.encode()).unwrap());
    for receiver in [&mut phone, &mut desktop] {
        assert_eq!(
            receiver
                .with_group(group_id, |g| g.decrypt(bob_at.as_address(), &ciphertext))
                .unwrap(),
            b"from bob"
        );
    }
    assert!(bob.store().group_session(group_id).unwrap().is_some());
    assert!(bob.store().group_session(b"other").unwrap().is_none());
}

/// The account an operation was blocked for by the identity-change policy.
fn blocked_account<T>(result: &Result<T, DeviceError>) -> Option<AccountId> {
    match result {
        Err(DeviceError::UntrustedIdentity { change }) => {
            assert!(change.was_verified);
            assert_ne!(change.previous, change.new);
            Some(change.account)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Regressions from the security review
// ---------------------------------------------------------------------------

/// A session under another key (here the server let Mallory pose as `bob/2`)
/// never speaks for a contact the user verified: the session is dropped when
/// Bob's real key is recorded again, and any new one under Mallory's key is
/// refused once Bob is verified, while Bob's own session keeps working.
#[test]
fn sessions_under_a_key_the_record_does_not_hold_are_refused() {
    let mut rng = rng(77);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let mut mallory = device_with_identity(&mut rng, "bob", 2, identity("mallory", 0));
    let (alice_id, bob_id) = (account("alice"), account("bob"));

    let b = bundle_of(&mut rng, &mut alice);
    bob.process_bundle(&mut rng, &alice_id, b).unwrap();
    let m = bob
        .encrypt(&mut rng, &alice_id, b"hi from bob", &[1], &[])
        .unwrap();
    alice.decrypt(&addr("bob", 1), &m[0].message).unwrap();

    // Unverified: Mallory's key is a reported, allowed change.
    let b = bundle_of(&mut rng, &mut alice);
    mallory.process_bundle(&mut rng, &alice_id, b).unwrap();
    let m = mallory
        .encrypt(&mut rng, &alice_id, b"mallory 1", &[1], &[])
        .unwrap();
    let got = alice.decrypt(&addr("bob", 2), &m[0].message).unwrap();
    assert!(got.identity_change.is_some());
    // Bob's session at bob/1 was under the replaced key, so it was dropped,
    // and his next message (a repeat of his accepted prekey message) is refused
    // (v2: as a repeat; v1 refused it for its spent one-time prekey).
    assert_eq!(alice.session_devices(&bob_id).unwrap(), vec![2]);
    let m = bob
        .encrypt(&mut rng, &alice_id, b"still me", &[1], &[])
        .unwrap();
    assert_eq!(
        alice.decrypt(&addr("bob", 1), &m[0].message),
        Err(DeviceError::Protocol(Error::RepeatedPreKeyMessage {
            base_key: prekey_base_key(&m[0].message)
        }))
    );

    // Bob starts afresh: his key is recorded again and Mallory's session is gone.
    let b = bundle_of(&mut rng, &mut alice);
    bob.process_bundle(&mut rng, &alice_id, b).unwrap();
    let m = bob
        .encrypt(&mut rng, &alice_id, b"bob again", &[1], &[])
        .unwrap();
    alice.decrypt(&addr("bob", 1), &m[0].message).unwrap();
    assert_eq!(alice.session_devices(&bob_id).unwrap(), vec![1]);

    let bob_key = *bob.local().identity.public_key();
    alice.mark_verified(&bob_id, &bob_key).unwrap();
    // Mallory's old session is gone; she starts a new one.
    let b = bundle_of(&mut rng, &mut alice);
    mallory.process_bundle(&mut rng, &alice_id, b).unwrap();
    let before = snapshot(&alice);
    let m = mallory
        .encrypt(&mut rng, &alice_id, b"send me the code", &[1], &[])
        .unwrap();
    assert_eq!(
        blocked_account(&alice.decrypt(&addr("bob", 2), &m[0].message)),
        Some(bob_id)
    );
    assert!(
        snapshot(&alice) != before,
        "the blocking change is recorded"
    );
    // Bob's verified session still works while the change is blocked.
    let m = bob
        .encrypt(&mut rng, &alice_id, b"it's really me", &[1], &[])
        .unwrap();
    let got = alice.decrypt(&addr("bob", 1), &m[0].message).unwrap();
    assert_eq!(got.plaintext, b"it's really me");
}

/// Accepting or verifying a key drops the account's sessions under other keys.
#[test]
fn verifying_a_key_prunes_sessions_under_other_keys() {
    let mut rng = rng(78);
    let mut alice = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    let bob2 = device_with_identity(&mut rng, "bob", 2, identity("bob", 1));
    let bob_id = account("bob");
    // Alice talks to bob/1, then bob/2 turns up under a new key (a reinstall):
    // the unverified change is allowed, and bob/1's old-key session is dropped.
    introduce(&mut rng, &mut alice, &mut bob);
    let b = bundle_without_one_time(&bob2);
    let started = alice.process_bundle(&mut rng, &bob_id, b).unwrap();
    assert!(started.identity_change.is_some());
    assert_eq!(alice.session_devices(&bob_id).unwrap(), vec![2]);
    let bob2_key = *bob2.local().identity.public_key();
    alice.mark_verified(&bob_id, &bob2_key).unwrap();
    assert_eq!(alice.session_devices(&bob_id).unwrap(), vec![2]);
}

/// The per-account device bound holds for bundles and prekey messages alike.
#[test]
fn an_account_cannot_grow_past_the_device_bound() {
    let mut rng = rng(79);
    let mut alice = device(&mut rng, "alice", 1);
    let bob_id = account("bob");
    for id in 1..=MAX_DEVICES_PER_ACCOUNT as u32 {
        let bob = device_with_identity(&mut rng, "bob", id, identity("bob", 0));
        alice
            .process_bundle(&mut rng, &bob_id, bundle_without_one_time(&bob))
            .unwrap();
    }
    let mut extra = device_with_identity(&mut rng, "bob", 999, identity("bob", 0));
    let b = bundle_of(&mut rng, &mut alice);
    extra
        .process_bundle(&mut rng, &account("alice"), b)
        .unwrap();
    let before = snapshot(&alice);
    assert_eq!(
        alice.process_bundle(&mut rng, &bob_id, bundle_without_one_time(&extra)),
        Err(DeviceError::TooManyDevices { account: bob_id })
    );
    let m = extra
        .encrypt(&mut rng, &account("alice"), b"one more", &[1], &[])
        .unwrap();
    assert_eq!(
        alice.decrypt(&addr("bob", 999), &m[0].message),
        Err(DeviceError::TooManyDevices { account: bob_id })
    );
    assert!(snapshot(&alice) == before, "nothing was written");
}

/// A sender certificate for another device is refused before any session moves.
#[test]
fn sealing_with_someone_elses_certificate_advances_nothing() {
    let mut rng = rng(80);
    let server = SealedServer::new();
    let mut phone = device(&mut rng, "alice", 1);
    let mut bob = device(&mut rng, "bob", 1);
    introduce(&mut rng, &mut phone, &mut bob);
    let wrong = server.certificate_of(&bob);
    let keys = |a: &AccountId| Some(access_key(a.as_bytes()));
    let sealing = Sealing {
        certificate: &wrong,
        access_keys: &keys,
    };
    let before = snapshot(&phone);
    assert_eq!(
        phone.encrypt_sealed(&mut rng, &account("bob"), b"x", &[1], &[1], &sealing),
        Err(DeviceError::Protocol(Error::IdentityMismatch))
    );
    assert!(snapshot(&phone) == before, "no session advanced");
}
