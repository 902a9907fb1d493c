//! Scenario tests for sessions, through the public API only: setup from a
//! bundle (with and without a one-time prekey) and failed accepts, repeated
//! prekey messages, long conversations, out-of-order delivery and loss across
//! DH ratchet steps, the skip limits at their boundaries and eviction, replay,
//! transactional decryption of tampered, truncated and out-of-bounds messages,
//! binding to both device addresses, signed prekey rotation, the lifecycle of
//! one-time and last-resort KEM prekeys, the deferred sending half of a DH
//! ratchet step, persistence mid-conversation, caller buffers and the encoded
//! sizes of bundles, messages and sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    ALICE_DEVICE, BOB_DEVICE, Pair, TestRng, accept, account, alice, bob, device, identity,
    prekey_message, prekey_store, rejected, rejected_accept, rng, text, verified_bundle,
};
use ratchetbox::rand_core::Rng;
use ratchetbox::{
    BUNDLE_LEN_WITH_ONE_TIME, BUNDLE_LEN_WITHOUT_ONE_TIME, DecodeError, DeviceAddress, Error,
    HEADER_LEN, KEM_CIPHERTEXT_LEN, KemPreKeyKind, LocalDevice, MAX_ONE_TIME_KEM_PREKEYS,
    MAX_PREVIOUS_RATCHET_KEYS, Message, PREKEY_MESSAGE_OVERHEAD, PREKEY_PREFIX_LEN, PreKeyBundle,
    PreKeyId, PreKeyMessage, PreKeyStore, RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder,
    Role, Session, SessionConfig, VerifiedBundle,
};

// Field offsets in a ratchet message (SPEC.md §4.2, §4.3), protocol version 2:
// `0x04 ‖ ratchet key(32) ‖ PN u32 ‖ N u32 ‖ nonce(12)`, then the ciphertext.
const RATCHET_KEY_AT: usize = 1;
const PN_AT: usize = 33;
const N_AT: usize = 37;
const NONCE_AT: usize = 41;

// Field offsets in a prekey message (SPEC.md §4.4), hybrid handshake:
// `0x05 ‖ IK_A(32) ‖ base key(32) ‖ SPK id u32 ‖ KEM id u32 ‖ KEM
// ciphertext(1088) ‖ OPK flag u8 ‖ OPK id u32` (1166 bytes), then the ratchet
// message.
const PREKEY_IDENTITY_AT: usize = 1;
const PREKEY_BASE_KEY_AT: usize = 33;
const PREKEY_SIGNED_ID_AT: usize = 65;
const PREKEY_KEM_ID_AT: usize = 69;
const PREKEY_KEM_CIPHERTEXT_AT: usize = 73;
const PREKEY_ONE_TIME_FLAG_AT: usize = PREKEY_KEM_CIPHERTEXT_AT + KEM_CIPHERTEXT_LEN;
const PREKEY_ONE_TIME_ID_AT: usize = PREKEY_ONE_TIME_FLAG_AT + 1;
const _: () = assert!(PREKEY_ONE_TIME_ID_AT + 4 == PREKEY_PREFIX_LEN);

// Field offsets in a stored session (SPEC.md §6.3), version 2: `0x53 ‖ 0x02 ‖
// max skip ‖ max skipped keys ‖ role ‖ local identity ‖ remote identity ‖ local
// address ‖ remote address ‖ base key ‖ root key ‖ sending flag ‖ [sending
// ratchet secret ‖ sending chain key ‖ Ns] ‖ PN ‖ receiving flag ‖ [receiving
// ratchet key ‖ receiving chain key ‖ Nr] ‖ ...`. An address is `u8 len ‖
// account ‖ u32 device`; between "alice" and "bob" (either side) the two take
// 18 bytes. The sending chain is absent (flag 0) while the sending half of a
// DH ratchet step is due, which moves every later field.
const STATE_VERSION: u8 = 2;
const STATE_VERSION_AT: usize = 1;
const STATE_MAX_SKIP_AT: usize = 2;
const STATE_ROLE_AT: usize = 10;
const STATE_ADDRESSES_AT: usize = STATE_ROLE_AT + 1 + 2 * 32;
const STATE_ADDRESSES_LEN: usize = (1 + 5 + 4) + (1 + 3 + 4);
const STATE_SENDING_FLAG_AT: usize = STATE_ADDRESSES_AT + STATE_ADDRESSES_LEN + 2 * 32;
const STATE_NS_AT: usize = STATE_SENDING_FLAG_AT + 1 + 2 * 32;

/// Offset of the receiving flag in a stored session between "alice" and
/// "bob": after PN, which follows the sending chain if there is one.
fn state_receiving_flag_at(blob: &[u8]) -> usize {
    match blob[STATE_SENDING_FLAG_AT] {
        1 => STATE_NS_AT + 4 + 4,
        0 => STATE_SENDING_FLAG_AT + 1 + 4,
        flag => panic!("sending flag {flag}"),
    }
}

/// Offset of Nr in a stored session between "alice" and "bob" that has a
/// receiving chain.
fn state_nr_at(blob: &[u8]) -> usize {
    let flag_at = state_receiving_flag_at(blob);
    assert_eq!(blob[flag_at], 1, "no receiving chain");
    flag_at + 1 + 2 * 32
}

// Sizes of stored sessions between "alice" and "bob".
/// An initiator that has not read a reply: sending chain, no receiving chain,
/// and the KEM ciphertext it repeats in every prekey message.
const SIZE_FRESH_INITIATOR: usize = 1402;
/// A responder right after accepting (or an initiator right after reading the
/// first reply): a receiving chain, the sending half of the step still due.
const SIZE_FRESH_RESPONDER: usize = 314;
/// What a sending chain adds (secret ‖ chain key ‖ Ns) once the side sends.
const SIZE_SENDING_CHAIN: usize = 68;
const SIZE_PER_SKIPPED_KEY: usize = 68;
const SIZE_PER_PREVIOUS_KEY: usize = 32;

fn config(max_skip: u32, max_skipped_keys: u32) -> SessionConfig {
    SessionConfig::new(max_skip, max_skipped_keys).unwrap()
}

/// A copy of `wire` with `bytes` written at `at`.
fn patched(wire: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = wire.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

/// A copy of a ratchet message with some header fields replaced (the tag then
/// no longer verifies, which does not matter for checks made before it).
fn forged(wire: &[u8], ratchet_key: Option<[u8; 32]>, pn: Option<u32>, n: Option<u32>) -> Vec<u8> {
    let mut out = wire.to_vec();
    if let Some(key) = ratchet_key {
        out[RATCHET_KEY_AT..RATCHET_KEY_AT + 32].copy_from_slice(&key);
    }
    if let Some(pn) = pn {
        out[PN_AT..PN_AT + 4].copy_from_slice(&pn.to_be_bytes());
    }
    if let Some(n) = n {
        out[N_AT..N_AT + 4].copy_from_slice(&n.to_be_bytes());
    }
    out
}

fn shuffle<T>(rng: &mut TestRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.next_u32() as usize % (i + 1);
        items.swap(i, j);
    }
}

fn message_number(wire: &[u8]) -> u32 {
    match Message::parse(wire).unwrap() {
        Message::PreKey(m) => m.message().header().message_number,
        Message::Ratchet(m) => m.header().message_number,
    }
}

fn previous_chain_length(wire: &[u8]) -> u32 {
    RatchetMessage::parse(wire)
        .unwrap()
        .header()
        .previous_chain_length
}

// ---------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------

#[test]
fn encoded_sizes_of_bundles_messages_and_sessions() {
    let mut rng = rng(100);
    let alice = alice(&mut rng);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
    let with_one_time =
        PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(ids[0])).encode();
    let without_one_time =
        PreKeyBundle::from_store(bob.identity.public_key(), &store, None).encode();

    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let alice_fresh = alice_session.encode().len();
    let prekey_empty = alice_session.encrypt(&mut rng, b"").unwrap();
    let prekey_256 = alice_session.encrypt(&mut rng, &[0x42; 256]).unwrap();

    let (mut bob_session, plaintext) = accept(
        &bob,
        &mut store,
        &alice.address(),
        &prekey_empty,
        SessionConfig::default(),
    )
    .unwrap();
    assert!(plaintext.is_empty());
    let bob_fresh = bob_session.encode().len();
    assert_eq!(bob_session.decrypt(&prekey_256).unwrap(), [0x42; 256]);
    let ratchet_256 = bob_session.encrypt(&mut rng, &[7; 256]).unwrap();
    // Bob's first send did the sending half of his ratchet step.
    let bob_after_reply = bob_session.encode().len();
    assert_eq!(alice_session.decrypt(&ratchet_256).unwrap(), [7; 256]);
    // Alice read the reply: no more KEM ciphertext, her next step is due.
    let alice_after_reply = alice_session.encode().len();
    alice_session.encrypt(&mut rng, b"ok").unwrap();
    let alice_after_sending = alice_session.encode().len();

    println!(
        "bundle without one-time prekey: {} bytes",
        without_one_time.len()
    );
    println!(
        "bundle with one-time prekey:    {} bytes",
        with_one_time.len()
    );
    println!(
        "prekey message, 0-byte text:    {} bytes",
        prekey_empty.len()
    );
    println!("prekey message, 256-byte text:  {} bytes", prekey_256.len());
    println!(
        "ratchet message, 256-byte text: {} bytes",
        ratchet_256.len()
    );
    println!("fresh session, Alice:           {alice_fresh} bytes");
    println!("fresh session, Bob:             {bob_fresh} bytes");
    println!("Bob after his first reply:      {bob_after_reply} bytes");
    println!("Alice after reading it:         {alice_after_reply} bytes");
    println!("Alice after sending again:      {alice_after_sending} bytes");

    // Hybrid handshake: the bundle carries the signed ML-KEM-768 prekey (id,
    // 1184-byte key, signature) and the prekey message its KEM id and
    // 1088-byte ciphertext.
    assert_eq!(without_one_time.len(), 1390);
    assert_eq!(without_one_time.len(), BUNDLE_LEN_WITHOUT_ONE_TIME);
    assert_eq!(with_one_time.len(), 1426);
    assert_eq!(with_one_time.len(), BUNDLE_LEN_WITH_ONE_TIME);
    assert_eq!(prekey_empty.len(), 1235);
    assert_eq!(prekey_empty.len(), PREKEY_MESSAGE_OVERHEAD);
    assert_eq!(
        prekey_empty.len(),
        PREKEY_PREFIX_LEN + RATCHET_MESSAGE_OVERHEAD
    );
    assert_eq!(prekey_256.len(), 1491);
    assert_eq!(ratchet_256.len(), 325);
    assert_eq!(ratchet_256.len(), RATCHET_MESSAGE_OVERHEAD + 256);
    assert_eq!(alice_fresh, SIZE_FRESH_INITIATOR);
    assert_eq!(bob_fresh, SIZE_FRESH_RESPONDER);
    assert_eq!(bob_after_reply, SIZE_FRESH_RESPONDER + SIZE_SENDING_CHAIN);
    assert_eq!(alice_after_reply, SIZE_FRESH_RESPONDER);
    assert_eq!(
        alice_after_sending,
        SIZE_FRESH_RESPONDER + SIZE_SENDING_CHAIN
    );
}

// ---------------------------------------------------------------------------
// Setup and failed accepts
// ---------------------------------------------------------------------------

#[test]
fn session_from_bundle_with_and_without_one_time_prekey() {
    for with_one_time in [false, true] {
        let mut rng = rng(1);
        let alice = alice(&mut rng);
        let bob = bob(&mut rng);
        let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 3);
        let one_time = with_one_time.then_some(ids[1]);
        let bundle = verified_bundle(&bob.identity, &store, one_time);
        assert_eq!(bundle.identity_key(), bob.identity.public_key());
        assert_eq!(bundle.device_id(), BOB_DEVICE);

        let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
        assert_eq!(alice_session.role(), Role::Initiator);
        assert!(alice_session.is_awaiting_reply());
        // The session is bound to both devices: Alice's own, and the bundle's
        // device of the account she asked for.
        assert_eq!(alice_session.local_address(), &alice.address());
        assert_eq!(
            alice_session.remote_address(),
            &DeviceAddress::new(account("bob"), BOB_DEVICE)
        );
        let wire = alice_session.encrypt(&mut rng, b"first").unwrap();
        let message = prekey_message(&wire);
        assert_eq!(message.identity_key(), alice.identity.public_key());
        assert_eq!(message.base_key(), alice_session.base_key());
        assert_eq!(message.signed_prekey_id(), store.signed_prekey().id());
        assert_eq!(message.one_time_prekey_id(), one_time);
        // No one-time KEM prekey is published: the bundle (hence the message)
        // names the last-resort KEM prekey.
        let last_resort = store.last_resort_kem_prekey().id();
        assert_eq!(bundle.kem_prekey().0, last_resort);
        assert_eq!(message.kem_prekey_id(), last_resort);
        assert_eq!(
            store.one_time_prekey_count(),
            3,
            "nothing is spent before accept"
        );

        let (mut bob_session, plaintext) = Responder::new(&bob, &mut store)
            .expect_initiator(alice.identity.public_key())
            .accept(&alice.address(), &message)
            .unwrap();
        assert_eq!(plaintext, b"first");
        let remaining: Vec<_> = store.one_time_prekey_ids().collect();
        if with_one_time {
            assert_eq!(
                remaining,
                [ids[0], ids[2]],
                "exactly the named key is spent"
            );
        } else {
            assert_eq!(remaining, ids, "no one-time prekey is spent");
        }
        assert_eq!(
            store.find_kem_prekey(last_resort).map(|(_, kind)| kind),
            Some(KemPreKeyKind::LastResort),
            "the last-resort KEM prekey stays"
        );
        assert_eq!(bob_session.role(), Role::Responder);
        assert_eq!(bob_session.local_identity(), bob.identity.public_key());
        assert_eq!(bob_session.remote_identity(), alice.identity.public_key());
        assert_eq!(alice_session.remote_identity(), bob.identity.public_key());
        assert_eq!(bob_session.local_address(), &bob.address());
        assert_eq!(bob_session.remote_address(), &alice.address());
        assert_eq!(bob_session.base_key(), alice_session.base_key());
        assert!(bob_session.owns_prekey_message(&message));
        assert!(!bob_session.is_awaiting_reply());
        assert_eq!(bob_session.config(), &SessionConfig::default());
        // The sending half of Bob's first ratchet step waits for his first send.
        assert_eq!(bob_session.encode()[STATE_SENDING_FLAG_AT], 0);

        let reply = bob_session.encrypt(&mut rng, b"reply").unwrap();
        assert_eq!(bob_session.encode()[STATE_SENDING_FLAG_AT], 1);
        assert!(matches!(
            Message::parse(&reply).unwrap(),
            Message::Ratchet(_)
        ));
        assert_eq!(alice_session.decrypt(&reply).unwrap(), b"reply");
        assert!(!alice_session.is_awaiting_reply());
        let third = alice_session.encrypt(&mut rng, b"third").unwrap();
        assert!(matches!(
            Message::parse(&third).unwrap(),
            Message::Ratchet(_)
        ));
        assert_eq!(bob_session.decrypt(&third).unwrap(), b"third");
    }
}

#[test]
fn failed_accepts_leave_the_prekey_store_untouched() {
    let mut rng = rng(2);
    let alice = alice(&mut rng);
    let bob = bob(&mut rng);
    let mallory = identity(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 2);
    // A one-time KEM prekey that Alice's bundle does not name.
    let other_kem = store
        .generate_one_time_kem_prekeys(&mut rng, &bob.identity, 1)
        .unwrap()[0];
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    assert_eq!(bundle.kem_prekey().0, store.last_resort_kem_prekey().id());
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let wire = alice_session.encrypt(&mut rng, b"hello Bob").unwrap();
    let pristine = store.encode().to_vec();
    let default = SessionConfig::default();

    let ciphertext_at = PREKEY_PREFIX_LEN + HEADER_LEN;
    let tampered = patched(&wire, ciphertext_at, &[wire[ciphertext_at] ^ 1]);
    assert_eq!(
        rejected_accept(&bob, &mut store, &alice.address(), &tampered, default, None),
        Error::DecryptionFailed
    );
    let last = wire.len() - 1;
    let tampered = patched(&wire, last, &[wire[last] ^ 0x80]);
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &tampered,
            default,
            Some(alice.identity.public_key())
        ),
        Error::DecryptionFailed
    );
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &wire,
            default,
            Some(mallory.public_key())
        ),
        Error::IdentityMismatch
    );
    let unknown_signed = patched(&wire, PREKEY_SIGNED_ID_AT, &99u32.to_be_bytes());
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &unknown_signed,
            default,
            None
        ),
        Error::UnknownSignedPreKey { id: 99 }
    );
    let unknown_one_time = patched(&wire, PREKEY_ONE_TIME_ID_AT, &99u32.to_be_bytes());
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &unknown_one_time,
            default,
            None
        ),
        Error::UnknownOneTimePreKey { id: 99 }
    );
    let unknown_kem = patched(&wire, PREKEY_KEM_ID_AT, &99u32.to_be_bytes());
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &unknown_kem,
            default,
            None
        ),
        Error::UnknownKemPreKey { id: 99 }
    );
    // The ids are checked in order: signed prekey, KEM prekey, one-time prekey.
    let unknown_all = patched(&unknown_kem, PREKEY_SIGNED_ID_AT, &98u32.to_be_bytes());
    let unknown_all = patched(&unknown_all, PREKEY_ONE_TIME_ID_AT, &97u32.to_be_bytes());
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &unknown_all,
            default,
            None
        ),
        Error::UnknownSignedPreKey { id: 98 }
    );
    let unknown_kem_and_one_time =
        patched(&unknown_kem, PREKEY_ONE_TIME_ID_AT, &97u32.to_be_bytes());
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &unknown_kem_and_one_time,
            default,
            None
        ),
        Error::UnknownKemPreKey { id: 99 }
    );
    // The ciphertext relabelled for another KEM prekey Bob holds, or altered:
    // ML-KEM's implicit rejection gives another shared secret, so the message
    // does not decrypt, and the one-time KEM prekey is not spent.
    let other_kem_id = patched(&wire, PREKEY_KEM_ID_AT, &other_kem.to_be_bytes());
    let kem_ciphertext_flipped = patched(
        &wire,
        PREKEY_KEM_CIPHERTEXT_AT + 500,
        &[wire[PREKEY_KEM_CIPHERTEXT_AT + 500] ^ 0x04],
    );
    for tampered in [&other_kem_id, &kem_ciphertext_flipped] {
        assert_eq!(
            rejected_accept(&bob, &mut store, &alice.address(), tampered, default, None),
            Error::DecryptionFailed
        );
    }
    assert_eq!(
        store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [other_kem]
    );

    // The session is bound to both device addresses (SPEC.md §5.1): the message
    // relabelled as coming from another device or account, or accepted by a
    // device of Bob's with another address, does not decrypt.
    for from in [
        DeviceAddress::new(account("alice"), ALICE_DEVICE + 1),
        DeviceAddress::new(account("carol"), ALICE_DEVICE),
    ] {
        assert_eq!(
            rejected_accept(&bob, &mut store, &from, &wire, default, None),
            Error::DecryptionFailed,
            "from {from}"
        );
    }
    for (name, device_id) in [("bob", BOB_DEVICE + 1), ("bobby", BOB_DEVICE)] {
        let mut elsewhere = LocalDevice::decode(&bob.encode()).unwrap();
        elsewhere.account = account(name);
        elsewhere.device_id = device_id;
        assert_eq!(
            rejected_accept(
                &elsewhere,
                &mut store,
                &alice.address(),
                &wire,
                default,
                None
            ),
            if device_id == BOB_DEVICE {
                // Another account: the AD differs.
                Error::DecryptionFailed
            } else {
                // Another device id than the prekey store's: refused up front.
                Error::InvalidConfig {
                    reason: "the prekey store belongs to another device id than the local device",
                }
            },
            "Bob as {}",
            elsewhere.address()
        );
    }

    // Every byte altered in turn: never accepted, never a change to the store.
    // Every prefix field is bound into the associated data, so an altered
    // identity, base key or KEM ciphertext fails to decrypt, as does any
    // altered byte from the embedded message's nonce on; an altered prekey id
    // names a key Bob does not hold.
    let mut parsed = 0;
    let id_at =
        |tampered: &[u8], at: usize| u32::from_be_bytes(tampered[at..at + 4].try_into().unwrap());
    for i in 0..wire.len() {
        let tampered = patched(&wire, i, &[wire[i] ^ 0x01]);
        if PreKeyMessage::parse(&tampered).is_err() {
            continue;
        }
        parsed += 1;
        let error = rejected_accept(&bob, &mut store, &alice.address(), &tampered, default, None);
        if i >= PREKEY_PREFIX_LEN + NONCE_AT
            || (PREKEY_IDENTITY_AT..PREKEY_SIGNED_ID_AT).contains(&i)
            || (PREKEY_KEM_CIPHERTEXT_AT..PREKEY_ONE_TIME_FLAG_AT).contains(&i)
        {
            assert_eq!(error, Error::DecryptionFailed, "byte {i}");
        } else if (PREKEY_SIGNED_ID_AT..PREKEY_KEM_ID_AT).contains(&i) {
            let id = id_at(&tampered, PREKEY_SIGNED_ID_AT);
            assert_eq!(error, Error::UnknownSignedPreKey { id }, "byte {i}");
        } else if (PREKEY_KEM_ID_AT..PREKEY_KEM_CIPHERTEXT_AT).contains(&i) {
            let id = id_at(&tampered, PREKEY_KEM_ID_AT);
            assert_eq!(error, Error::UnknownKemPreKey { id }, "byte {i}");
        } else if (PREKEY_ONE_TIME_ID_AT..PREKEY_PREFIX_LEN).contains(&i) {
            let id = id_at(&tampered, PREKEY_ONE_TIME_ID_AT);
            assert_eq!(error, Error::UnknownOneTimePreKey { id }, "byte {i}");
        }
    }
    assert!(
        parsed > wire.len() / 2,
        "only {parsed} tampered messages parsed"
    );
    assert_eq!(store.encode().to_vec(), pristine);
    assert_eq!(store.one_time_prekey_count(), 2);
    assert_eq!(store.one_time_kem_prekey_count(), 1);

    // The genuine message is still accepted; only now is the one-time prekey spent.
    let (mut bob_session, plaintext) =
        accept(&bob, &mut store, &alice.address(), &wire, default).unwrap();
    assert_eq!(plaintext, b"hello Bob");
    assert_eq!(store.one_time_prekey_ids().collect::<Vec<_>>(), [ids[1]]);
    // It named the last-resort KEM prekey: the one-time KEM prekey stays.
    assert_eq!(
        store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [other_kem]
    );
    let reply = bob_session.encrypt(&mut rng, b"ok").unwrap();
    assert_eq!(alice_session.decrypt(&reply).unwrap(), b"ok");
}

#[test]
fn a_used_one_time_prekey_cannot_be_used_again() {
    let mut rng = rng(3);
    let alice = alice(&mut rng);
    let carol = device(&mut rng, "carol", ALICE_DEVICE);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
    let default = SessionConfig::default();
    // Alice and Carol both fetched the same bundle while Bob was offline.
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let mut carol_session = Session::initiate(&mut rng, &carol, &bob.account, &bundle).unwrap();
    let from_alice = alice_session.encrypt(&mut rng, b"from alice").unwrap();
    let from_carol = carol_session.encrypt(&mut rng, b"from carol").unwrap();

    let (_, plaintext) = accept(&bob, &mut store, &alice.address(), &from_alice, default).unwrap();
    assert_eq!(plaintext, b"from alice");
    assert_eq!(store.one_time_prekey_count(), 0);

    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &carol.address(),
            &from_carol,
            default,
            None
        ),
        Error::UnknownOneTimePreKey { id: ids[0] }
    );
    // A replay of Alice's first message cannot create a second session either.
    // Protocol v2: the store remembers the base key of every accepted prekey
    // message, so the replay is named as such (v1: UnknownOneTimePreKey).
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &alice.address(),
            &from_alice,
            default,
            None
        ),
        Error::RepeatedPreKeyMessage {
            base_key: *alice_session.base_key()
        }
    );
    assert!(store.has_accepted_base_key(alice_session.base_key()));
    assert!(!store.has_accepted_base_key(carol_session.base_key()));

    // A fresh bundle no longer offers the spent key, and Carol gets through with it.
    assert_eq!(
        PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(ids[0]))
            .encode()
            .len(),
        BUNDLE_LEN_WITHOUT_ONE_TIME
    );
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut carol_session = Session::initiate(&mut rng, &carol, &bob.account, &bundle).unwrap();
    let retry = carol_session.encrypt(&mut rng, b"again").unwrap();
    assert_eq!(prekey_message(&retry).one_time_prekey_id(), None);
    let (_, plaintext) = accept(&bob, &mut store, &carol.address(), &retry, default).unwrap();
    assert_eq!(plaintext, b"again");
}

// ---------------------------------------------------------------------------
// Prekey messages until the first reply
// ---------------------------------------------------------------------------

#[test]
fn initiator_sends_prekey_messages_until_it_reads_a_reply() {
    let mut rng = rng(4);
    let alice = alice(&mut rng);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();

    let early: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let wire = alice_session.encrypt(&mut rng, &text("early", i)).unwrap();
            assert!(alice_session.is_awaiting_reply());
            wire
        })
        .collect();
    for (i, wire) in early.iter().enumerate() {
        let message = prekey_message(wire);
        assert_eq!(wire.len(), PREKEY_MESSAGE_OVERHEAD + text("early", i).len());
        assert_eq!(message.base_key(), alice_session.base_key());
        assert_eq!(message.one_time_prekey_id(), Some(ids[0]));
        assert_eq!(message.message().header().message_number, i as u32);
    }

    // The first message is delayed; Bob accepts the second.
    let (mut bob_session, plaintext) = accept(
        &bob,
        &mut store,
        &alice.address(),
        &early[1],
        SessionConfig::default(),
    )
    .unwrap();
    assert_eq!(plaintext, text("early", 1));
    assert_eq!(store.one_time_prekey_count(), 0);
    assert_eq!(bob_session.skipped_key_count(), 1);

    // Repeats of this session's prekey message go through Session::decrypt.
    assert!(bob_session.owns_prekey_message(&prekey_message(&early[3])));
    assert_eq!(bob_session.decrypt(&early[3]).unwrap(), text("early", 3));
    assert_eq!(bob_session.skipped_key_count(), 2);
    assert_eq!(bob_session.decrypt(&early[0]).unwrap(), text("early", 0));
    assert_eq!(bob_session.skipped_key_count(), 1);
    // The one that created the session is a duplicate now.
    assert_eq!(
        rejected(&mut bob_session, &early[1]),
        Error::DuplicateMessage
    );

    // Bob replies, but until Alice reads it her messages stay prekey messages.
    let reply = bob_session.encrypt(&mut rng, b"reply").unwrap();
    let late = alice_session.encrypt(&mut rng, &text("early", 4)).unwrap();
    assert!(matches!(Message::parse(&late).unwrap(), Message::PreKey(_)));
    assert_eq!(bob_session.decrypt(&late).unwrap(), text("early", 4));

    assert_eq!(alice_session.decrypt(&reply).unwrap(), b"reply");
    assert!(!alice_session.is_awaiting_reply());
    let ordinary = alice_session.encrypt(&mut rng, b"ordinary").unwrap();
    assert!(matches!(
        Message::parse(&ordinary).unwrap(),
        Message::Ratchet(_)
    ));
    assert_eq!(ordinary.len(), RATCHET_MESSAGE_OVERHEAD + 8);
    assert_eq!(bob_session.decrypt(&ordinary).unwrap(), b"ordinary");

    // The prekey message still outstanding arrives after Alice's DH ratchet step.
    assert_eq!(bob_session.decrypt(&early[2]).unwrap(), text("early", 2));
    assert_eq!(bob_session.skipped_key_count(), 0);
}

#[test]
fn prekey_message_of_another_session_is_wrong_session() {
    let mut rng = rng(5);
    let alice = alice(&mut rng);
    let carol = device(&mut rng, "carol", ALICE_DEVICE);
    let bob = bob(&mut rng);
    let (mut store, _) = prekey_store(&mut rng, &bob.identity, 0);
    let bundle = verified_bundle(&bob.identity, &store, None);
    let default = SessionConfig::default();

    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let first = alice_session.encrypt(&mut rng, b"one").unwrap();
    let second = alice_session.encrypt(&mut rng, b"two").unwrap();
    let (mut bob_session, _) = accept(&bob, &mut store, &alice.address(), &first, default).unwrap();

    // Alice's second session (new base key), and Carol's session.
    let mut alice_again = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let other = alice_again.encrypt(&mut rng, b"other session").unwrap();
    let mut carol_session = Session::initiate(&mut rng, &carol, &bob.account, &bundle).unwrap();
    let from_carol = carol_session.encrypt(&mut rng, b"carol").unwrap();
    for wire in [&other, &from_carol] {
        assert!(!bob_session.owns_prekey_message(&prekey_message(wire)));
        assert_eq!(rejected(&mut bob_session, wire), Error::WrongSession);
    }
    // Same base key with another identity, or same identity with another base key.
    let swapped_identity = patched(
        &second,
        PREKEY_IDENTITY_AT,
        &carol.identity.public_key().to_bytes(),
    );
    let swapped_base = patched(
        &second,
        PREKEY_BASE_KEY_AT,
        alice_again.base_key().as_bytes(),
    );
    for wire in [&swapped_identity, &swapped_base] {
        assert_eq!(rejected(&mut bob_session, wire), Error::WrongSession);
    }
    // An initiator owns no prekey message, not even its own.
    assert!(!alice_session.owns_prekey_message(&prekey_message(&first)));
    assert_eq!(rejected(&mut alice_session, &second), Error::WrongSession);

    // Bob's own session is unaffected, and the other session starts normally.
    assert_eq!(bob_session.decrypt(&second).unwrap(), b"two");
    let (_, plaintext) = accept(&bob, &mut store, &alice.address(), &other, default).unwrap();
    assert_eq!(plaintext, b"other session");

    // Protocol v2: a repeat of a prekey message without a one-time prekey,
    // given to the responder again, is refused (v1 made a second session).
    assert_eq!(
        rejected_accept(&bob, &mut store, &alice.address(), &first, default, None),
        Error::RepeatedPreKeyMessage {
            base_key: *alice_session.base_key()
        }
    );
}

// ---------------------------------------------------------------------------
// Long conversations
// ---------------------------------------------------------------------------

#[test]
fn long_alternating_conversation() {
    let mut p = Pair::established(6, SessionConfig::default());
    for i in 0..300 {
        let plaintext = text("alice", i);
        let wire = p.alice_sends(&plaintext);
        assert_eq!(p.bob_receives(&wire).unwrap(), plaintext, "alice #{i}");
        let plaintext = text("bob", i);
        let wire = p.bob_sends(&plaintext);
        assert_eq!(p.alice_receives(&wire).unwrap(), plaintext, "bob #{i}");
    }
    assert_eq!(p.alice.skipped_key_count(), 0);
    assert_eq!(p.bob.skipped_key_count(), 0);
}

#[test]
fn long_conversation_in_bursts_and_crossing_messages() {
    let mut p = Pair::established(7, SessionConfig::default());
    let mut count = 0;
    // One side at a time, bursts of different lengths.
    for (round, &burst) in [1usize, 7, 50, 2, 120, 3, 64, 1, 1, 33].iter().enumerate() {
        let alice_turn = round % 2 == 0;
        let tag = format!("burst{round}");
        let wires: Vec<Vec<u8>> = (0..burst)
            .map(|i| {
                if alice_turn {
                    p.alice_sends(&text(&tag, i))
                } else {
                    p.bob_sends(&text(&tag, i))
                }
            })
            .collect();
        for (i, wire) in wires.iter().enumerate() {
            let received = if alice_turn {
                p.bob_receives(wire)
            } else {
                p.alice_receives(wire)
            };
            assert_eq!(received.unwrap(), text(&tag, i), "round {round} #{i}");
            count += 1;
        }
    }
    // Both sides send before either receives: messages cross in flight.
    for round in 0..20 {
        let a_tag = format!("cross-a{round}");
        let b_tag = format!("cross-b{round}");
        let from_alice: Vec<_> = (0..(round % 5 + 1))
            .map(|i| p.alice_sends(&text(&a_tag, i)))
            .collect();
        let from_bob: Vec<_> = (0..(round % 3 + 2))
            .map(|i| p.bob_sends(&text(&b_tag, i)))
            .collect();
        for (i, wire) in from_alice.iter().enumerate() {
            assert_eq!(p.bob_receives(wire).unwrap(), text(&a_tag, i));
            count += 1;
        }
        for (i, wire) in from_bob.iter().enumerate() {
            assert_eq!(p.alice_receives(wire).unwrap(), text(&b_tag, i));
            count += 1;
        }
    }
    assert!(count > 300, "{count} messages");
    assert_eq!(p.alice.skipped_key_count(), 0);
    assert_eq!(p.bob.skipped_key_count(), 0);
}

// ---------------------------------------------------------------------------
// Out-of-order delivery and loss
// ---------------------------------------------------------------------------

#[test]
fn out_of_order_across_dh_ratchet_steps() {
    let mut p = Pair::established(8, SessionConfig::default());

    // Alice's chain 1: Bob gets 0 and 3.
    let a1: Vec<_> = (0..5).map(|i| p.alice_sends(&text("a1", i))).collect();
    assert_eq!(p.bob_receives(&a1[0]).unwrap(), text("a1", 0));
    assert_eq!(p.bob_receives(&a1[3]).unwrap(), text("a1", 3));
    assert_eq!(p.bob.skipped_key_count(), 2);
    // Bob's reply makes Alice step her ratchet.
    let b1 = p.bob_sends(b"b1");
    assert_eq!(p.alice_receives(&b1).unwrap(), b"b1");
    let a2: Vec<_> = (0..3).map(|i| p.alice_sends(&text("a2", i))).collect();
    assert_eq!(previous_chain_length(&a2[0]), 5);
    // The new chain arrives first: a1[4] (rest of the old chain) and a2[0] are skipped.
    assert_eq!(p.bob_receives(&a2[1]).unwrap(), text("a2", 1));
    assert_eq!(p.bob.skipped_key_count(), 4);
    for (wire, expected) in [
        (&a1[4], text("a1", 4)),
        (&a1[1], text("a1", 1)),
        (&a2[0], text("a2", 0)),
        (&a1[2], text("a1", 2)),
        (&a2[2], text("a2", 2)),
    ] {
        assert_eq!(p.bob_receives(wire).unwrap(), expected);
    }
    assert_eq!(p.bob.skipped_key_count(), 0);

    // The same the other way round, across one of Bob's ratchet steps.
    let c1: Vec<_> = (0..4).map(|i| p.bob_sends(&text("c1", i))).collect();
    assert_eq!(p.alice_receives(&c1[2]).unwrap(), text("c1", 2));
    let x = p.alice_sends(b"x");
    assert_eq!(p.bob_receives(&x).unwrap(), b"x");
    let c2: Vec<_> = (0..3).map(|i| p.bob_sends(&text("c2", i))).collect();
    for (wire, expected) in [
        (&c2[2], text("c2", 2)),
        (&c1[0], text("c1", 0)),
        (&c2[0], text("c2", 0)),
        (&c1[3], text("c1", 3)),
        (&c2[1], text("c2", 1)),
        (&c1[1], text("c1", 1)),
    ] {
        assert_eq!(p.alice_receives(wire).unwrap(), expected);
    }
    assert_eq!(p.alice.skipped_key_count(), 0);
}

#[test]
fn shuffled_delivery_with_loss_over_many_chains() {
    let mut p = Pair::established(9, SessionConfig::default());
    let mut held = Vec::new();
    for chain in 0..8 {
        let tag = format!("chain{chain}");
        let mut burst: Vec<(Vec<u8>, Vec<u8>)> = (0..12)
            .map(|i| {
                let plaintext = text(&tag, i);
                (p.alice_sends(&plaintext), plaintext)
            })
            .collect();
        // One message of each chain arrives on time, so every chain is a new DH
        // ratchet step for Bob and his reply makes Alice step hers.
        let (wire, plaintext) = burst.remove(chain % 12);
        assert_eq!(p.bob_receives(&wire).unwrap(), plaintext);
        held.extend(burst);
        let reply = p.bob_sends(tag.as_bytes());
        assert_eq!(p.alice_receives(&reply).unwrap(), tag.as_bytes());
    }
    // One more chain, so that Bob has derived the rest of the last one.
    let after = p.alice_sends(b"after");
    assert_eq!(p.bob_receives(&after).unwrap(), b"after");
    assert_eq!(p.bob.skipped_key_count(), held.len());
    shuffle(&mut p.rng, &mut held);
    let mut lost = 0;
    for (k, (wire, plaintext)) in held.iter().enumerate() {
        if k % 7 == 3 {
            lost += 1;
            continue;
        }
        assert_eq!(p.bob_receives(wire).unwrap(), *plaintext, "held #{k}");
    }
    // Keys for lost messages stay until evicted; the conversation goes on.
    assert_eq!(p.bob.skipped_key_count(), lost);
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let last = p.alice_sends(b"last");
    assert_eq!(p.bob_receives(&last).unwrap(), b"last");
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[test]
fn max_skip_boundary_in_the_current_chain() {
    let limits = config(5, 50);
    let mut p = Pair::established(10, limits);
    assert_eq!(p.bob.config(), &limits);
    assert_eq!(p.alice.config(), &limits);
    let m: Vec<_> = (0..8).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(p.bob_receives(&m[0]).unwrap(), text("m", 0));
    // Bob expects message 1: message 7 would skip 6 keys, message 6 exactly 5.
    assert_eq!(
        p.bob_rejects(&m[7]),
        Error::TooManySkippedMessages {
            requested: 6,
            max: 5
        }
    );
    assert_eq!(p.bob_receives(&m[6]).unwrap(), text("m", 6));
    assert_eq!(p.bob.skipped_key_count(), 5);
    assert_eq!(p.bob_receives(&m[7]).unwrap(), text("m", 7));
    for (i, wire) in m.iter().enumerate().take(6).skip(1) {
        assert_eq!(p.bob_receives(wire).unwrap(), text("m", i));
    }
    assert_eq!(p.bob.skipped_key_count(), 0);

    // With max_skip = 0 nothing may be skipped at all.
    let mut strict = Pair::established(11, config(0, 0));
    let m: Vec<_> = (0..3).map(|i| strict.alice_sends(&text("s", i))).collect();
    assert_eq!(strict.bob_receives(&m[0]).unwrap(), text("s", 0));
    assert_eq!(
        strict.bob_rejects(&m[2]),
        Error::TooManySkippedMessages {
            requested: 1,
            max: 0
        }
    );
    assert_eq!(strict.bob_receives(&m[1]).unwrap(), text("s", 1));
    assert_eq!(strict.bob_receives(&m[2]).unwrap(), text("s", 2));
}

#[test]
fn max_skip_boundary_on_a_new_ratchet_key() {
    let mut p = Pair::established(12, config(5, 50));
    // Alice has stepped her ratchet; Bob has read all of her previous chain.
    let m: Vec<_> = (0..7).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(
        p.bob_rejects(&m[6]),
        Error::TooManySkippedMessages {
            requested: 6,
            max: 5
        }
    );
    assert_eq!(p.bob_receives(&m[5]).unwrap(), text("m", 5));
    assert_eq!(p.bob.skipped_key_count(), 5);
    assert_eq!(p.bob_receives(&m[6]).unwrap(), text("m", 6));
    for (i, wire) in m.iter().enumerate().take(5) {
        assert_eq!(p.bob_receives(wire).unwrap(), text("m", i));
    }
    assert_eq!(p.bob.skipped_key_count(), 0);
}

#[test]
fn max_skip_boundary_counts_the_old_chain_and_the_new_gap() {
    let mut p = Pair::established(13, config(5, 50));
    let c: Vec<_> = (0..4).map(|i| p.alice_sends(&text("c", i))).collect();
    assert_eq!(p.bob_receives(&c[0]).unwrap(), text("c", 0));
    let d = p.bob_sends(b"d");
    assert_eq!(p.alice_receives(&d).unwrap(), b"d");
    let e: Vec<_> = (0..4).map(|i| p.alice_sends(&text("e", i))).collect();
    // Three keys remain in the old chain (1, 2, 3), plus e's number.
    assert_eq!(
        p.bob_rejects(&e[3]),
        Error::TooManySkippedMessages {
            requested: 6,
            max: 5
        }
    );
    assert_eq!(p.bob_receives(&e[2]).unwrap(), text("e", 2));
    assert_eq!(p.bob.skipped_key_count(), 5);
    assert_eq!(p.bob_receives(&e[3]).unwrap(), text("e", 3));
    for (wire, expected) in [
        (&c[3], text("c", 3)),
        (&c[1], text("c", 1)),
        (&e[0], text("e", 0)),
        (&c[2], text("c", 2)),
        (&e[1], text("e", 1)),
    ] {
        assert_eq!(p.bob_receives(wire).unwrap(), expected);
    }
    assert_eq!(p.bob.skipped_key_count(), 0);

    // The old chain alone can exceed the limit; reading more of it unblocks.
    let f: Vec<_> = (0..7).map(|i| p.bob_sends(&text("f", i))).collect();
    assert_eq!(p.alice_receives(&f[0]).unwrap(), text("f", 0));
    let g = p.alice_sends(b"g");
    assert_eq!(p.bob_receives(&g).unwrap(), b"g");
    let h = p.bob_sends(b"h");
    assert_eq!(
        p.alice_rejects(&h),
        Error::TooManySkippedMessages {
            requested: 6,
            max: 5
        }
    );
    assert_eq!(p.alice_receives(&f[1]).unwrap(), text("f", 1));
    assert_eq!(p.alice_receives(&h).unwrap(), b"h");
    assert_eq!(p.alice.skipped_key_count(), 5);
}

#[test]
fn max_skip_boundary_when_accepting() {
    let limits = config(5, 50);
    let mut rng = rng(14);
    let alice = alice(&mut rng);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut alice_session =
        Session::initiate_with_config(&mut rng, &alice, &bob.account, &bundle, limits).unwrap();
    let p: Vec<_> = (0..7)
        .map(|i| alice_session.encrypt(&mut rng, &text("p", i)).unwrap())
        .collect();
    assert_eq!(
        rejected_accept(&bob, &mut store, &alice.address(), &p[6], limits, None),
        Error::TooManySkippedMessages {
            requested: 6,
            max: 5
        }
    );
    assert_eq!(store.one_time_prekey_count(), 1);
    let (mut bob_session, plaintext) =
        accept(&bob, &mut store, &alice.address(), &p[5], limits).unwrap();
    assert_eq!(plaintext, text("p", 5));
    assert_eq!(bob_session.config(), &limits);
    assert_eq!(bob_session.skipped_key_count(), 5);
    assert_eq!(store.one_time_prekey_count(), 0);
    for i in [6, 0, 4, 1, 3, 2] {
        assert_eq!(bob_session.decrypt(&p[i]).unwrap(), text("p", i));
    }
    assert_eq!(bob_session.skipped_key_count(), 0);
}

#[test]
fn the_total_cap_evicts_the_oldest_skipped_keys_first() {
    const CAP: usize = 6;
    let mut p = Pair::established(15, config(10, CAP as u32));
    let receive = |p: &mut Pair, wire: &[u8]| {
        let result = p.bob_receives(wire);
        assert!(p.bob.skipped_key_count() <= CAP);
        result
    };

    let m: Vec<_> = (0..16).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(receive(&mut p, &m[3]).unwrap(), text("m", 3)); // skips 0 1 2
    assert_eq!(receive(&mut p, &m[7]).unwrap(), text("m", 7)); // skips 4 5 6
    assert_eq!(p.bob.skipped_key_count(), 6);
    assert_eq!(receive(&mut p, &m[9]).unwrap(), text("m", 9)); // skips 8, evicts 0
    assert_eq!(p.bob.skipped_key_count(), CAP);
    assert_eq!(p.bob_rejects(&m[0]), Error::DuplicateMessage);
    assert_eq!(receive(&mut p, &m[8]).unwrap(), text("m", 8));
    assert_eq!(receive(&mut p, &m[1]).unwrap(), text("m", 1));
    // Held: 2 4 5 6. Message 15 skips 10..=14, evicting 2, 4 and 5.
    assert_eq!(receive(&mut p, &m[15]).unwrap(), text("m", 15));
    assert_eq!(p.bob.skipped_key_count(), CAP);
    for i in [2, 4, 5] {
        assert_eq!(p.bob_rejects(&m[i]), Error::DuplicateMessage, "m{i}");
    }
    for i in [6, 14, 10] {
        assert_eq!(receive(&mut p, &m[i]).unwrap(), text("m", i));
    }
    // Held: 11 12 13 (old chain from now on).
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let n: Vec<_> = (0..8).map(|i| p.alice_sends(&text("n", i))).collect();
    // New chain: skips n0..n6, evicting the old chain's 11 12 13 and n0.
    assert_eq!(receive(&mut p, &n[7]).unwrap(), text("n", 7));
    assert_eq!(p.bob.skipped_key_count(), CAP);
    for wire in [&m[11], &m[12], &m[13], &n[0]] {
        assert_eq!(p.bob_rejects(wire), Error::DuplicateMessage);
    }
    assert_eq!(receive(&mut p, &n[1]).unwrap(), text("n", 1));
    assert_eq!(receive(&mut p, &n[6]).unwrap(), text("n", 6));

    // One message that skips more keys than the cap holds keeps the newest.
    let reply = p.bob_sends(b"reply 2");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply 2");
    let q: Vec<_> = (0..11).map(|i| p.alice_sends(&text("q", i))).collect();
    assert_eq!(receive(&mut p, &q[10]).unwrap(), text("q", 10));
    assert_eq!(p.bob.skipped_key_count(), CAP);
    for wire in q[..4].iter().chain(&n[2..6]) {
        assert_eq!(p.bob_rejects(wire), Error::DuplicateMessage);
    }
    for (i, wire) in q.iter().enumerate().take(10).skip(4) {
        assert_eq!(receive(&mut p, wire).unwrap(), text("q", i));
    }
    assert_eq!(p.bob.skipped_key_count(), 0);
}

#[test]
fn skipped_key_count_never_exceeds_the_cap_under_random_loss() {
    const CAP: usize = 6;
    let mut p = Pair::established(16, config(20, CAP as u32));
    let (mut decrypted, mut evicted) = (0, 0);
    for round in 0..60 {
        let tag = format!("r{round}");
        let count = 1 + p.rng.next_u32() as usize % 10;
        let mut sent: Vec<(Vec<u8>, Vec<u8>)> = (0..count)
            .map(|i| {
                let plaintext = text(&tag, i);
                (p.alice_sends(&plaintext), plaintext)
            })
            .collect();
        shuffle(&mut p.rng, &mut sent);
        // About a third is lost, but at least one message gets through.
        for (k, (wire, plaintext)) in sent.iter().enumerate() {
            if k > 0 && p.rng.next_u32().is_multiple_of(3) {
                continue;
            }
            match p.bob_receives(wire) {
                Ok(received) => {
                    assert_eq!(received, *plaintext);
                    decrypted += 1;
                }
                Err(Error::DuplicateMessage) => evicted += 1,
                Err(other) => panic!("round {round}: {other:?}"),
            }
            assert!(p.bob.skipped_key_count() <= CAP);
        }
        let reply = p.bob_sends(tag.as_bytes());
        assert_eq!(p.alice_receives(&reply).unwrap(), tag.as_bytes());
    }
    assert!(decrypted > 100, "{decrypted} decrypted");
    assert!(evicted > 0, "the cap was never reached");
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[test]
fn replay_is_a_duplicate_in_the_current_and_old_chains() {
    let mut p = Pair::established(17, SessionConfig::default());
    let m: Vec<_> = (0..4).map(|i| p.alice_sends(&text("m", i))).collect();
    for i in [0, 2, 1] {
        assert_eq!(p.bob_receives(&m[i]).unwrap(), text("m", i));
    }
    // Current chain: in order, and from a used skipped key.
    for wire in &m[..3] {
        assert_eq!(p.bob_rejects(wire), Error::DuplicateMessage);
    }
    assert_eq!(p.bob_receives(&m[3]).unwrap(), text("m", 3));
    // Old chain, after a DH ratchet step on both sides.
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let next = p.alice_sends(b"next");
    assert_eq!(p.bob_receives(&next).unwrap(), b"next");
    for wire in &m {
        assert_eq!(p.bob_rejects(wire), Error::DuplicateMessage);
    }
    assert_eq!(p.bob_rejects(&next), Error::DuplicateMessage);
    assert_eq!(p.alice_rejects(&reply), Error::DuplicateMessage);

    // Chains are remembered for replay classification up to a limit.
    let mut per_chain = Vec::new();
    for round in 0..=MAX_PREVIOUS_RATCHET_KEYS + 1 {
        let wire = p.alice_sends(&text("chain", round));
        assert_eq!(p.bob_receives(&wire).unwrap(), text("chain", round));
        per_chain.push(wire);
        let reply = p.bob_sends(b"ack");
        assert_eq!(p.alice_receives(&reply).unwrap(), b"ack");
    }
    let newest = per_chain.len() - 1;
    for back in 0..=MAX_PREVIOUS_RATCHET_KEYS {
        assert_eq!(
            p.bob_rejects(&per_chain[newest - back]),
            Error::DuplicateMessage,
            "{back} chains back"
        );
    }
    // Further back the chain is no longer recognised: the replay costs a DH
    // attempt, fails to authenticate and changes nothing.
    assert_eq!(
        p.bob_rejects(&per_chain[newest - MAX_PREVIOUS_RATCHET_KEYS - 1]),
        Error::DecryptionFailed
    );
}

// ---------------------------------------------------------------------------
// Transactional decryption
// ---------------------------------------------------------------------------

/// Alters every byte of `wire` in turn (three ways) and checks each result is
/// rejected without changing the receiver; bytes from `aead_from` on are
/// covered by the AEAD and must give `DecryptionFailed`.
fn assert_every_byte_flip_rejected(session: &mut Session, wire: &[u8], aead_from: usize) {
    for i in 0..wire.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let tampered = patched(wire, i, &[wire[i] ^ mask]);
            let error = rejected(session, &tampered);
            if i >= aead_from {
                assert_eq!(error, Error::DecryptionFailed, "byte {i} ^ {mask:#04x}");
            }
        }
    }
}

#[test]
fn tampered_messages_leave_the_session_unchanged() {
    // A short ratchet message in the receiver's current chain.
    let mut p = Pair::established(18, SessionConfig::default());
    let first = p.alice_sends(b"first");
    assert_eq!(p.bob_receives(&first).unwrap(), b"first");
    let short = p.alice_sends(b"tamper me");
    assert_every_byte_flip_rejected(&mut p.bob, &short, NONCE_AT);
    assert_eq!(p.bob_receives(&short).unwrap(), b"tamper me");

    // The first message of a new chain, with keys to skip in both chains.
    let c: Vec<_> = (0..3).map(|i| p.alice_sends(&text("c", i))).collect();
    assert_eq!(p.bob_receives(&c[0]).unwrap(), text("c", 0));
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let e: Vec<_> = (0..2).map(|i| p.alice_sends(&text("e", i))).collect();
    assert_every_byte_flip_rejected(&mut p.bob, &e[1], NONCE_AT);
    assert_eq!(p.bob.skipped_key_count(), 0);
    assert_eq!(p.bob_receives(&e[1]).unwrap(), text("e", 1));
    assert_eq!(p.bob.skipped_key_count(), 3);
    for (wire, expected) in [
        (&c[1], text("c", 1)),
        (&e[0], text("e", 0)),
        (&c[2], text("c", 2)),
    ] {
        assert_eq!(p.bob_receives(wire).unwrap(), expected);
    }

    // A repeated prekey message to the responder session, and the responder's
    // first reply to an initiator still awaiting it.
    let mut p = Pair::started(19, SessionConfig::default());
    let repeat = p.alice_sends(b"again");
    assert_every_byte_flip_rejected(&mut p.bob, &repeat, PREKEY_PREFIX_LEN + NONCE_AT);
    assert_eq!(p.bob_receives(&repeat).unwrap(), b"again");
    let reply = p.bob_sends(b"reply");
    assert_every_byte_flip_rejected(&mut p.alice, &reply, NONCE_AT);
    assert!(p.alice.is_awaiting_reply());
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    assert!(!p.alice.is_awaiting_reply());
}

/// SPEC.md §4.4, §5.6: a repeat must match the identity, base key, the prekey
/// ids and the KEM ciphertext of the message that created the session.
#[test]
fn altered_prekey_ids_in_a_repeated_prekey_message_are_rejected() {
    let mut p = Pair::started(20, SessionConfig::default());
    let repeat = p.alice_sends(b"again");
    assert!(p.bob.owns_prekey_message(&prekey_message(&repeat)));
    let ciphertext_byte = PREKEY_KEM_CIPHERTEXT_AT + KEM_CIPHERTEXT_LEN - 1;
    for altered in [
        patched(&repeat, PREKEY_SIGNED_ID_AT, &99u32.to_be_bytes()),
        patched(&repeat, PREKEY_KEM_ID_AT, &99u32.to_be_bytes()),
        patched(&repeat, ciphertext_byte, &[repeat[ciphertext_byte] ^ 1]),
        patched(&repeat, PREKEY_ONE_TIME_ID_AT, &99u32.to_be_bytes()),
        patched(&repeat, PREKEY_ONE_TIME_FLAG_AT, &[0, 0, 0, 0, 0]),
    ] {
        assert!(!p.bob.owns_prekey_message(&prekey_message(&altered)));
        assert_eq!(p.bob_rejects(&altered), Error::WrongSession);
    }
    assert_eq!(p.bob_receives(&repeat).unwrap(), b"again");
}

#[test]
fn truncated_and_extended_messages_leave_the_session_unchanged() {
    let mut p = Pair::started(21, SessionConfig::default());
    // A prekey message to the responder session.
    let repeat = p.alice_sends(b"a short one");
    for len in 0..repeat.len() {
        let error = rejected(&mut p.bob, &repeat[..len]);
        if len < PREKEY_MESSAGE_OVERHEAD {
            assert!(matches!(error, Error::Decode(_)), "{len}: {error:?}");
        } else {
            assert_eq!(error, Error::DecryptionFailed, "{len}");
        }
    }
    let mut longer = repeat.clone();
    longer.push(0);
    assert_eq!(p.bob_rejects(&longer), Error::DecryptionFailed);
    assert_eq!(
        p.bob_rejects(&[]),
        Error::Decode(DecodeError::Truncated {
            field: "format tag"
        })
    );
    assert_eq!(p.bob_receives(&repeat).unwrap(), b"a short one");

    // Ratchet messages: the first of a new chain and one in the current chain.
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let new_chain = p.alice_sends(b"new chain");
    let current = p.alice_sends(b"current");
    for (wire, plaintext) in [
        (&new_chain, b"new chain".as_slice()),
        (&current, b"current"),
    ] {
        for len in 0..wire.len() {
            let error = rejected(&mut p.bob, &wire[..len]);
            if len < RATCHET_MESSAGE_OVERHEAD {
                assert!(matches!(error, Error::Decode(_)), "{len}: {error:?}");
            } else {
                assert_eq!(error, Error::DecryptionFailed, "{len}");
            }
        }
        let mut longer = wire.clone();
        longer.extend_from_slice(&[0; 3]);
        assert_eq!(p.bob_rejects(&longer), Error::DecryptionFailed);
        assert_eq!(p.bob_receives(wire).unwrap(), plaintext);
    }
}

#[test]
fn out_of_bounds_headers_leave_the_session_unchanged() {
    let mut p = Pair::established(22, SessionConfig::default());
    let m: Vec<_> = (0..3).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(p.bob_receives(&m[0]).unwrap(), text("m", 0));
    assert_eq!(p.bob_receives(&m[1]).unwrap(), text("m", 1));
    let next = 2u32;
    let template = &m[2];
    let unknown_key = [0x33u8; 32];
    let cases = [
        (
            forged(template, None, None, Some(u32::MAX)),
            Error::CounterExhausted,
        ),
        (
            forged(template, None, None, Some(next + 1001)),
            Error::TooManySkippedMessages {
                requested: 1001,
                max: 1000,
            },
        ),
        (
            forged(template, None, None, Some(u32::MAX - 1)),
            Error::TooManySkippedMessages {
                requested: u64::from(u32::MAX - 1 - next),
                max: 1000,
            },
        ),
        (
            forged(template, Some(unknown_key), Some(u32::MAX), Some(0)),
            Error::TooManySkippedMessages {
                requested: u64::from(u32::MAX - next),
                max: 1000,
            },
        ),
        (
            forged(template, Some(unknown_key), Some(next + 600), Some(401)),
            Error::TooManySkippedMessages {
                requested: 1001,
                max: 1000,
            },
        ),
        (
            forged(template, Some(unknown_key), Some(0), Some(u32::MAX)),
            Error::CounterExhausted,
        ),
        // Within the limits, derivable but not authentic: staged skipped keys
        // must not be committed.
        (
            forged(template, Some(unknown_key), Some(next + 600), Some(400)),
            Error::DecryptionFailed,
        ),
        (
            forged(template, None, None, Some(next + 1000)),
            Error::DecryptionFailed,
        ),
    ];
    for (wire, expected) in &cases {
        assert_eq!(p.bob_rejects(wire), *expected);
    }
    // Small-order ratchet keys. Bob has read Alice's new ratchet key but not
    // sent since, so the sending half of his step is still due: no honest
    // message can carry yet another new key, and it is refused before any DH.
    // Once Bob has sent under a new key of his own, the DH is tried and its
    // degenerate output refused.
    let degenerate = [
        forged(template, Some([0; 32]), Some(next), Some(0)),
        forged(template, Some(small_order_one()), Some(next), Some(0)),
    ];
    assert_eq!(p.bob.encode()[STATE_SENDING_FLAG_AT], 0);
    for wire in &degenerate {
        assert_eq!(p.bob_rejects(wire), Error::DecryptionFailed);
    }
    let _undelivered = p.bob_sends(b"sending half of the step");
    for wire in &degenerate {
        assert_eq!(p.bob_rejects(wire), Error::NonContributoryDh);
    }
    assert_eq!(p.bob.skipped_key_count(), 0);
    assert_eq!(p.bob_receives(template).unwrap(), text("m", 2));
    assert_eq!(p.bob.skipped_key_count(), 0);

    // An initiator with no receiving chain yet.
    let mut p = Pair::started(23, SessionConfig::default());
    let reply = p.bob_sends(b"reply");
    assert_eq!(
        p.alice_rejects(&forged(&reply, None, None, Some(u32::MAX))),
        Error::CounterExhausted
    );
    assert_eq!(
        p.alice_rejects(&forged(&reply, Some([0; 32]), None, None)),
        Error::NonContributoryDh
    );
    assert_eq!(
        p.alice_rejects(&forged(&reply, None, Some(5), Some(1001))),
        Error::TooManySkippedMessages {
            requested: 1001,
            max: 1000
        }
    );
    assert!(p.alice.is_awaiting_reply());
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
}

/// The X25519 point u = 1, of small order.
fn small_order_one() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[0] = 1;
    key
}

#[test]
fn message_counters_stop_just_below_the_maximum() {
    let mut p = Pair::established(24, SessionConfig::default());
    let m0 = p.alice_sends(b"m0");
    assert_eq!(p.bob_receives(&m0).unwrap(), b"m0");
    // Move both counters of Alice's current chain to 2^32 − 2 (SPEC.md §6.3).
    let mut alice_blob = p.alice.encode().to_vec();
    assert_eq!(alice_blob[STATE_SENDING_FLAG_AT], 1);
    assert_eq!(alice_blob[STATE_NS_AT..STATE_NS_AT + 4], 1u32.to_be_bytes());
    alice_blob[STATE_NS_AT..STATE_NS_AT + 4].copy_from_slice(&(u32::MAX - 1).to_be_bytes());
    let mut bob_blob = p.bob.encode().to_vec();
    // Bob has read m0 under Alice's new ratchet key and not sent since: his
    // sending chain is absent, so his receiving chain comes right after PN.
    assert_eq!(bob_blob[STATE_SENDING_FLAG_AT], 0);
    let nr_at = state_nr_at(&bob_blob);
    assert_eq!(bob_blob[nr_at..nr_at + 4], 1u32.to_be_bytes());
    bob_blob[nr_at..nr_at + 4].copy_from_slice(&(u32::MAX - 1).to_be_bytes());
    p.alice = Session::decode(&alice_blob).unwrap();
    p.bob = Session::decode(&bob_blob).unwrap();

    let last = p.alice_sends(b"last");
    assert_eq!(message_number(&last), u32::MAX - 1);
    assert_eq!(p.bob_receives(&last).unwrap(), b"last");
    let before = p.alice.encode().to_vec();
    assert_eq!(
        p.alice.encrypt(&mut p.rng, b"one more"),
        Err(Error::CounterExhausted)
    );
    let mut buffer = [0u8; 128];
    assert_eq!(
        p.alice.encrypt_into(&mut p.rng, b"one more", &mut buffer),
        Err(Error::CounterExhausted)
    );
    assert_eq!(p.alice.encode().to_vec(), before);
    assert_eq!(
        p.bob_rejects(&forged(&last, None, None, Some(u32::MAX))),
        Error::CounterExhausted
    );
    // A DH ratchet step starts a fresh chain.
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let fresh = p.alice_sends(b"fresh");
    assert_eq!(message_number(&fresh), 0);
    assert_eq!(previous_chain_length(&fresh), u32::MAX);
    assert_eq!(p.bob_receives(&fresh).unwrap(), b"fresh");
    assert_eq!(p.bob.skipped_key_count(), 0);
}

/// SPEC.md §5.7 step 1 rejects n = 2^32 − 1 before anything else.
#[test]
fn counter_exhausted_comes_before_replay_classification() {
    let mut p = Pair::established(25, SessionConfig::default());
    let old = p.alice_sends(b"old chain");
    assert_eq!(p.bob_receives(&old).unwrap(), b"old chain");
    let reply = p.bob_sends(b"reply");
    assert_eq!(p.alice_receives(&reply).unwrap(), b"reply");
    let new = p.alice_sends(b"new chain");
    assert_eq!(p.bob_receives(&new).unwrap(), b"new chain");
    assert_eq!(
        p.bob_rejects(&forged(&old, None, None, Some(u32::MAX))),
        Error::CounterExhausted
    );
}

// ---------------------------------------------------------------------------
// Signed prekey rotation
// ---------------------------------------------------------------------------

#[test]
fn signed_prekey_rotation_with_grace_period_and_expiry() {
    const ROTATED_AT: u64 = 1_000;
    const GRACE: u64 = 7 * 24 * 3600;
    let mut rng = rng(26);
    let alice = alice(&mut rng);
    let carol = device(&mut rng, "carol", ALICE_DEVICE);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 2);
    let default = SessionConfig::default();
    // Alice and Carol fetch bundles for signed prekey 1 ...
    let old_for_alice = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let old_for_carol = verified_bundle(&bob.identity, &store, None);
    // (and last-resort KEM prekey 1) ...
    assert_eq!(store.last_resort_kem_prekey().id(), 1);
    assert_eq!(old_for_alice.kem_prekey().0, 1);
    // ... then Bob rotates: the last-resort KEM prekey rotates with the signed
    // prekey and takes the next KEM id.
    let rotated = store
        .rotate_signed_prekey(&mut rng, &bob.identity, ROTATED_AT)
        .unwrap()
        .id();
    assert_eq!(rotated, 2);
    assert_eq!(store.signed_prekey().id(), 2);
    assert!(store.find_signed_prekey(1).is_some());
    assert_eq!(store.last_resort_kem_prekey().id(), 2);
    assert_eq!(
        store.find_kem_prekey(1).map(|(_, kind)| kind),
        Some(KemPreKeyKind::LastResort)
    );

    let mut alice_session =
        Session::initiate(&mut rng, &alice, &bob.account, &old_for_alice).unwrap();
    let from_alice = alice_session.encrypt(&mut rng, b"to the old key").unwrap();
    assert_eq!(prekey_message(&from_alice).signed_prekey_id(), 1);
    assert_eq!(prekey_message(&from_alice).kem_prekey_id(), 1);
    assert_eq!(
        store.expire_retired_signed_prekeys(ROTATED_AT + GRACE - 1, GRACE),
        0
    );
    let (mut bob_session, plaintext) =
        accept(&bob, &mut store, &alice.address(), &from_alice, default).unwrap();
    assert_eq!(plaintext, b"to the old key");
    assert_eq!(store.one_time_prekey_ids().collect::<Vec<_>>(), [ids[1]]);

    let mut carol_session =
        Session::initiate(&mut rng, &carol, &bob.account, &old_for_carol).unwrap();
    let from_carol = carol_session.encrypt(&mut rng, b"too late").unwrap();
    assert_eq!(
        store.expire_retired_signed_prekeys(ROTATED_AT + GRACE, GRACE),
        1
    );
    assert!(store.find_signed_prekey(1).is_none());
    assert!(
        store.find_kem_prekey(1).is_none(),
        "retired with signed prekey 1"
    );
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &carol.address(),
            &from_carol,
            default,
            None
        ),
        Error::UnknownSignedPreKey { id: 1 }
    );

    // The session made during the grace period does not depend on the key.
    let reply = bob_session.encrypt(&mut rng, b"still here").unwrap();
    assert_eq!(alice_session.decrypt(&reply).unwrap(), b"still here");
    let more = alice_session.encrypt(&mut rng, b"good").unwrap();
    assert_eq!(bob_session.decrypt(&more).unwrap(), b"good");

    // A current bundle names the new key and works.
    let current = verified_bundle(&bob.identity, &store, Some(ids[1]));
    let mut carol_session = Session::initiate(&mut rng, &carol, &bob.account, &current).unwrap();
    let retry = carol_session.encrypt(&mut rng, b"retry").unwrap();
    assert_eq!(prekey_message(&retry).signed_prekey_id(), 2);
    assert_eq!(prekey_message(&retry).kem_prekey_id(), 2);
    let (_, plaintext) = accept(&bob, &mut store, &carol.address(), &retry, default).unwrap();
    assert_eq!(plaintext, b"retry");
    assert_eq!(store.one_time_prekey_count(), 0);
}

// ---------------------------------------------------------------------------
// KEM prekeys
// ---------------------------------------------------------------------------

/// A bundle of `store` (Bob's) with the given one-time prekeys, through its wire
/// encoding.
fn bundle_with_kem(
    bob: &LocalDevice,
    store: &PreKeyStore,
    one_time: Option<PreKeyId>,
    one_time_kem: Option<PreKeyId>,
) -> VerifiedBundle {
    let published =
        PreKeyBundle::from_store_with_kem(bob.identity.public_key(), store, one_time, one_time_kem);
    PreKeyBundle::decode(&published.encode())
        .unwrap()
        .verify_for(bob.identity.public_key())
        .unwrap()
}

/// `from` starts a session with Bob from `bundle`; returns it and its first
/// message.
fn first_message(
    rng: &mut TestRng,
    from: &LocalDevice,
    bundle: &VerifiedBundle,
    plaintext: &[u8],
) -> (Session, Vec<u8>) {
    let mut session = Session::initiate(rng, from, &account("bob"), bundle).unwrap();
    let wire = session.encrypt(rng, plaintext).unwrap();
    (session, wire)
}

/// The prekey lifecycle on the KEM side: one-time KEM prekeys are spent by the
/// message that uses them (and only once it decrypts); when none is left the
/// last-resort KEM prekey is used by any number of sessions and stays; it
/// rotates with the signed prekey (grace period, then expiry); ids come from
/// one counter and are never reused; the store keeps it all across encode and
/// decode.
#[test]
fn one_time_kem_prekeys_are_spent_and_the_last_resort_one_stays_and_rotates() {
    const ROTATED_AT: u64 = 5_000;
    const GRACE: u64 = 3_600;
    let mut rng = rng(34);
    let bob = bob(&mut rng);
    let [alice, carol, dave, erin, frank, grace, henry] =
        ["alice", "carol", "dave", "erin", "frank", "grace", "henry"]
            .map(|name| device(&mut rng, name, ALICE_DEVICE));
    let default = SessionConfig::default();
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 2);
    assert_eq!(store.last_resort_kem_prekey().id(), 1);
    assert_eq!(store.one_time_kem_prekey_count(), 0);

    // Bob publishes one-time KEM prekeys: signed, ids after the last-resort one.
    let kem = store
        .generate_one_time_kem_prekeys(&mut rng, &bob.identity, 2)
        .unwrap();
    assert_eq!(kem, [2, 3]);
    assert_eq!(store.one_time_kem_prekey_ids().collect::<Vec<_>>(), kem);
    for &id in &kem {
        let (key, kind) = store.find_kem_prekey(id).unwrap();
        assert_eq!((key.id(), kind), (id, KemPreKeyKind::OneTime));
    }
    assert_eq!(
        store.find_kem_prekey(1).map(|(key, kind)| (key.id(), kind)),
        Some((1, KemPreKeyKind::LastResort))
    );

    // Alice uses one-time KEM prekey 2: spent only once her message decrypts.
    let bundle = bundle_with_kem(&bob, &store, Some(ids[0]), Some(kem[0]));
    let for_carol = bundle_with_kem(&bob, &store, Some(ids[1]), Some(kem[0]));
    assert_eq!(bundle.kem_prekey().0, kem[0]);
    assert_eq!(
        bundle.kem_prekey().1,
        store.find_kem_prekey(kem[0]).unwrap().0.public_key()
    );
    let (mut alice_session, from_alice) = first_message(&mut rng, &alice, &bundle, b"alice");
    assert_eq!(prekey_message(&from_alice).kem_prekey_id(), kem[0]);
    assert_eq!(store.one_time_kem_prekey_count(), 2);
    let (mut bob_alice, plaintext) =
        accept(&bob, &mut store, &alice.address(), &from_alice, default).unwrap();
    assert_eq!(plaintext, b"alice");
    assert_eq!(
        store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [kem[1]]
    );
    assert!(store.find_kem_prekey(kem[0]).is_none());
    assert_eq!(store.last_resort_kem_prekey().id(), 1);
    let reply = bob_alice.encrypt(&mut rng, b"hi alice").unwrap();
    assert_eq!(alice_session.decrypt(&reply).unwrap(), b"hi alice");

    // The server handed the same one-time KEM prekey to Carol (with another
    // one-time prekey): it is gone. Nothing is spent, not her one-time prekey
    // either; a fresh bundle works.
    let (_, from_carol) = first_message(&mut rng, &carol, &for_carol, b"carol");
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &carol.address(),
            &from_carol,
            default,
            None
        ),
        Error::UnknownKemPreKey { id: kem[0] }
    );
    assert_eq!(store.one_time_prekey_ids().collect::<Vec<_>>(), [ids[1]]);
    let bundle = bundle_with_kem(&bob, &store, Some(ids[1]), Some(kem[1]));
    let (_, from_carol) = first_message(&mut rng, &carol, &bundle, b"carol again");
    assert_eq!(prekey_message(&from_carol).kem_prekey_id(), kem[1]);
    let (_, plaintext) = accept(&bob, &mut store, &carol.address(), &from_carol, default).unwrap();
    assert_eq!(plaintext, b"carol again");
    assert_eq!(store.one_time_kem_prekey_count(), 0);
    assert_eq!(store.one_time_prekey_count(), 0);

    // None left: bundles fall back to the last-resort KEM prekey, which any
    // number of sessions use and which stays.
    let last_resort = bundle_with_kem(&bob, &store, None, Some(kem[1]));
    assert_eq!(last_resort.kem_prekey().0, 1);
    for sender in [&dave, &erin] {
        let (_, wire) = first_message(&mut rng, sender, &last_resort, b"last resort");
        assert_eq!(prekey_message(&wire).kem_prekey_id(), 1);
        let (_, plaintext) = accept(&bob, &mut store, &sender.address(), &wire, default).unwrap();
        assert_eq!(plaintext, b"last resort");
        assert_eq!(
            store.find_kem_prekey(1).map(|(_, kind)| kind),
            Some(KemPreKeyKind::LastResort)
        );
    }

    // Replenishing: new ids (never reused), within the bound.
    let kem = store
        .generate_one_time_kem_prekeys(&mut rng, &bob.identity, 2)
        .unwrap();
    assert_eq!(kem, [4, 5]);
    let before = store.encode().to_vec();
    assert_eq!(
        store.generate_one_time_kem_prekeys(&mut rng, &bob.identity, MAX_ONE_TIME_KEM_PREKEYS - 1),
        Err(Error::TooManyPreKeys {
            max: MAX_ONE_TIME_KEM_PREKEYS
        })
    );
    assert_eq!(store.encode().to_vec(), before);

    // Frank and Grace fetch bundles for signed prekey 1 (Frank: last-resort KEM
    // prekey 1; Grace: one-time KEM prekey 4); then Bob rotates.
    let for_frank = bundle_with_kem(&bob, &store, None, None);
    let for_grace = bundle_with_kem(&bob, &store, None, Some(kem[0]));
    let retired_kem = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
        .kem_prekey()
        .clone();
    assert_eq!(retired_kem.id, 1);
    store
        .rotate_signed_prekey(&mut rng, &bob.identity, ROTATED_AT)
        .unwrap();
    assert_eq!(store.signed_prekey().id(), 2);
    assert_eq!(store.last_resort_kem_prekey().id(), 6, "the next KEM id");
    assert_eq!(store.one_time_kem_prekey_ids().collect::<Vec<_>>(), kem);
    assert_eq!(
        store.find_kem_prekey(1).map(|(_, kind)| kind),
        Some(KemPreKeyKind::LastResort),
        "retired, in its grace period"
    );
    for (sender, bundle, kem_id) in [(&frank, &for_frank, 1), (&grace, &for_grace, kem[0])] {
        let (_, wire) = first_message(&mut rng, sender, bundle, b"old bundle");
        let message = prekey_message(&wire);
        assert_eq!(
            (message.signed_prekey_id(), message.kem_prekey_id()),
            (1, kem_id)
        );
        let (_, plaintext) = accept(&bob, &mut store, &sender.address(), &wire, default).unwrap();
        assert_eq!(plaintext, b"old bundle");
    }
    assert_eq!(
        store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [kem[1]]
    );

    // Expiry drops the retired pair: signed prekey 1 and last-resort KEM prekey 1.
    assert_eq!(
        store.expire_retired_signed_prekeys(ROTATED_AT + GRACE, GRACE),
        1
    );
    assert!(store.find_signed_prekey(1).is_none());
    assert!(store.find_kem_prekey(1).is_none());
    let (_, late) = first_message(&mut rng, &henry, &for_frank, b"late");
    assert_eq!(
        rejected_accept(&bob, &mut store, &henry.address(), &late, default, None),
        Error::UnknownSignedPreKey { id: 1 }
    );
    // The current signed prekey with the expired KEM prekey (still validly
    // signed): refused for the KEM prekey.
    let current = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let mixed = PreKeyBundle::new(
        *bob.identity.public_key(),
        BOB_DEVICE,
        current.signed_prekey_id(),
        *current.signed_prekey(),
        *current.signed_prekey_signature(),
        retired_kem,
        None,
    )
    .verify()
    .unwrap();
    let (_, mixed_wire) = first_message(&mut rng, &henry, &mixed, b"mixed");
    assert_eq!(
        rejected_accept(
            &bob,
            &mut store,
            &henry.address(),
            &mixed_wire,
            default,
            None
        ),
        Error::UnknownKemPreKey { id: 1 }
    );
    let (_, wire) = first_message(
        &mut rng,
        &henry,
        &bundle_with_kem(&bob, &store, None, None),
        b"current",
    );
    assert_eq!(prekey_message(&wire).kem_prekey_id(), 6);
    accept(&bob, &mut store, &henry.address(), &wire, default).unwrap();

    // Encoded and decoded (each KEM key pair regenerated from its seed), the
    // store still holds and uses the same KEM prekeys.
    let mut restored = PreKeyStore::decode(&store.encode()).unwrap();
    assert_eq!(restored.encode().to_vec(), store.encode().to_vec());
    assert_eq!(restored.last_resort_kem_prekey().id(), 6);
    assert_eq!(
        restored.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [kem[1]]
    );
    let bundle = bundle_with_kem(&bob, &store, None, Some(kem[1]));
    let (_, wire) = first_message(&mut rng, &alice, &bundle, b"after restore");
    let (_, plaintext) = accept(&bob, &mut restored, &alice.address(), &wire, default).unwrap();
    assert_eq!(plaintext, b"after restore");
    assert_eq!(restored.one_time_kem_prekey_count(), 0);
    assert_eq!(restored.last_resort_kem_prekey().id(), 6);
}

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

fn round_trip(session: &Session) -> Session {
    let blob = session.encode();
    let restored = Session::decode(&blob).unwrap();
    assert_eq!(restored.encode().to_vec(), blob.to_vec());
    assert_eq!(restored.role(), session.role());
    assert_eq!(restored.local_identity(), session.local_identity());
    assert_eq!(restored.remote_identity(), session.remote_identity());
    assert_eq!(restored.local_address(), session.local_address());
    assert_eq!(restored.remote_address(), session.remote_address());
    assert_eq!(restored.base_key(), session.base_key());
    assert_eq!(restored.config(), session.config());
    assert_eq!(restored.skipped_key_count(), session.skipped_key_count());
    assert_eq!(restored.is_awaiting_reply(), session.is_awaiting_reply());
    restored
}

#[test]
fn sessions_survive_encode_and_decode_mid_conversation() {
    let mut p = Pair::established(27, config(100, 200));
    let m: Vec<_> = (0..6).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(p.bob_receives(&m[4]).unwrap(), text("m", 4));
    assert_eq!(p.bob.skipped_key_count(), 4);
    // One previous ratchet key (Alice's first chain) and four skipped keys.
    assert_eq!(
        p.bob.encode().len(),
        SIZE_FRESH_RESPONDER + SIZE_PER_PREVIOUS_KEY + 4 * SIZE_PER_SKIPPED_KEY
    );

    // The restored session behaves exactly as the original.
    let mut twin = round_trip(&p.bob);
    let (mut rng_a, mut rng_b) = (rng(99), rng(99));
    for i in [5, 1] {
        assert_eq!(p.bob.decrypt(&m[i]).unwrap(), text("m", i));
        assert_eq!(twin.decrypt(&m[i]).unwrap(), text("m", i));
    }
    assert_eq!(p.bob.encode().to_vec(), twin.encode().to_vec());
    assert_eq!(
        p.bob.encrypt(&mut rng_a, b"same").unwrap(),
        twin.encrypt(&mut rng_b, b"same").unwrap()
    );
    assert_eq!(p.bob.encode().to_vec(), twin.encode().to_vec());

    // Carry on with restored sessions on both sides.
    p.bob = round_trip(&twin);
    for i in [0, 3, 2] {
        assert_eq!(p.bob_receives(&m[i]).unwrap(), text("m", i));
    }
    assert_eq!(p.bob.skipped_key_count(), 0);
    let replies: Vec<_> = (0..3).map(|i| p.bob_sends(&text("r", i))).collect();
    assert_eq!(p.alice_receives(&replies[2]).unwrap(), text("r", 2));
    // "same" (sent by the twin's double) and replies 0 and 1 are pending at Alice.
    assert_eq!(p.alice.skipped_key_count(), 3);
    p.alice = round_trip(&p.alice);
    assert_eq!(p.alice_receives(&replies[0]).unwrap(), text("r", 0));
    p.alice = round_trip(&p.alice);
    assert_eq!(p.alice_receives(&replies[1]).unwrap(), text("r", 1));
    for i in 0..20 {
        let wire = p.alice_sends(&text("after", i));
        assert_eq!(p.bob_receives(&wire).unwrap(), text("after", i));
        let wire = p.bob_sends(&text("back", i));
        assert_eq!(p.alice_receives(&wire).unwrap(), text("back", i));
        if i % 5 == 0 {
            p.alice = round_trip(&p.alice);
            p.bob = round_trip(&p.bob);
        }
    }
}

#[test]
fn an_initiator_awaiting_a_reply_survives_encode_and_decode() {
    for with_one_time in [true, false] {
        let mut rng = rng(28);
        let alice = alice(&mut rng);
        let bob = bob(&mut rng);
        let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
        let one_time = with_one_time.then_some(ids[0]);
        let bundle = verified_bundle(&bob.identity, &store, one_time);
        let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
        let first = alice_session.encrypt(&mut rng, b"before saving").unwrap();
        assert_eq!(alice_session.encode().len(), SIZE_FRESH_INITIATOR);

        let mut restored = round_trip(&alice_session);
        drop(alice_session);
        assert!(restored.is_awaiting_reply());
        assert_eq!(restored.role(), Role::Initiator);
        let second = restored.encrypt(&mut rng, b"after restoring").unwrap();
        let (a, b) = (prekey_message(&first), prekey_message(&second));
        assert_eq!(a.base_key(), b.base_key());
        assert_eq!(a.signed_prekey_id(), b.signed_prekey_id());
        // The stored session keeps the KEM ciphertext until a reply arrives.
        assert_eq!(a.kem_prekey_id(), b.kem_prekey_id());
        assert_eq!(a.kem_ciphertext(), b.kem_ciphertext());
        assert_eq!(b.one_time_prekey_id(), one_time);
        assert_eq!(b.message().header().message_number, 1);

        let (bob_session, plaintext) = accept(
            &bob,
            &mut store,
            &alice.address(),
            &second,
            SessionConfig::default(),
        )
        .unwrap();
        assert_eq!(plaintext, b"after restoring");
        let mut bob_session = round_trip(&bob_session);
        assert_eq!(bob_session.decrypt(&first).unwrap(), b"before saving");
        let reply = bob_session.encrypt(&mut rng, b"reply").unwrap();
        assert_eq!(restored.decrypt(&reply).unwrap(), b"reply");
        let restored = round_trip(&restored);
        assert!(!restored.is_awaiting_reply());
        // The reply dropped the ciphertext; the next step's sending half is due.
        assert_eq!(restored.encode().len(), SIZE_FRESH_RESPONDER);
    }
}

#[test]
fn decoding_bad_session_blobs_is_an_error_never_a_panic() {
    let mut p = Pair::established(29, SessionConfig::default());
    let m: Vec<_> = (0..4).map(|i| p.alice_sends(&text("m", i))).collect();
    assert_eq!(p.bob_receives(&m[3]).unwrap(), text("m", 3));
    let awaiting = Pair::started(30, SessionConfig::default());
    let blobs = [
        p.bob.encode().to_vec(),
        p.alice.encode().to_vec(),
        awaiting.alice.encode().to_vec(),
        awaiting.bob.encode().to_vec(),
    ];
    for blob in &blobs {
        for len in 0..blob.len() {
            assert!(Session::decode(&blob[..len]).is_err(), "length {len}");
        }
        assert_eq!(blob[STATE_VERSION_AT], STATE_VERSION);
        // Version 1 (the previous protocol's sessions) is no longer decoded.
        for version in [0, 1, STATE_VERSION + 1, 0xff] {
            let wrong = patched(blob, STATE_VERSION_AT, &[version]);
            assert_eq!(
                Session::decode(&wrong).err(),
                Some(Error::Decode(DecodeError::UnsupportedVersion {
                    found: version
                }))
            );
        }
        assert_eq!(
            Session::decode(&patched(blob, 0, &[0x50])).err(),
            Some(Error::Decode(DecodeError::UnknownFormat {
                expected: 0x53,
                found: 0x50
            }))
        );
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(
            Session::decode(&longer).err(),
            Some(Error::Decode(DecodeError::TrailingBytes { extra: 1 }))
        );
        assert!(matches!(
            Session::decode(&patched(blob, STATE_MAX_SKIP_AT, &u32::MAX.to_be_bytes())),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            Session::decode(&patched(blob, STATE_ROLE_AT, &[2])),
            Err(Error::Decode(DecodeError::InvalidValue { field: "role" }))
        ));
        // Any single corrupted byte: an error or a session that re-encodes stably.
        for i in 0..blob.len() {
            if let Ok(session) = Session::decode(&patched(blob, i, &[blob[i] ^ 0xff])) {
                let again = session.encode();
                assert_eq!(
                    Session::decode(&again).unwrap().encode().to_vec(),
                    again.to_vec()
                );
            }
        }
    }
    // The awaiting initiator blob says it awaits a reply; as a responder it is invalid.
    let as_responder = patched(&blobs[2], STATE_ROLE_AT, &[1]);
    assert_eq!(
        Session::decode(&as_responder).err(),
        Some(Error::Decode(DecodeError::InvalidValue {
            field: "awaiting reply flag"
        }))
    );
    // It ends with the KEM ciphertext it repeats, then an empty skipped-key
    // list; the ciphertext must be the one the associated data was made over.
    let awaiting_initiator = &blobs[2];
    assert_eq!(awaiting_initiator.len(), SIZE_FRESH_INITIATOR);
    let ciphertext_at = awaiting_initiator.len() - 4 - KEM_CIPHERTEXT_LEN;
    assert_eq!(
        awaiting_initiator[ciphertext_at - 1],
        1,
        "awaiting reply flag"
    );
    let other_ciphertext = patched(
        awaiting_initiator,
        ciphertext_at + 17,
        &[awaiting_initiator[ciphertext_at + 17] ^ 0x20],
    );
    assert_eq!(
        Session::decode(&other_ciphertext).err(),
        Some(Error::Decode(DecodeError::InvalidValue {
            field: "KEM ciphertext"
        }))
    );
    // The fresh responder has no sending chain yet; without its receiving
    // chain too the blob is invalid (the due step needs the remote key).
    let responder = &blobs[3];
    assert_eq!(responder.len(), SIZE_FRESH_RESPONDER);
    assert_eq!(responder[STATE_SENDING_FLAG_AT], 0);
    let flag_at = state_receiving_flag_at(responder);
    assert_eq!(responder[flag_at], 1);
    let mut no_chains = responder[..flag_at].to_vec();
    no_chains.push(0);
    no_chains.extend_from_slice(&responder[flag_at + 1 + 2 * 32 + 4..]);
    assert_eq!(
        Session::decode(&no_chains).err(),
        Some(Error::Decode(DecodeError::InvalidValue {
            field: "sending chain flag"
        }))
    );
}

// ---------------------------------------------------------------------------
// Caller buffers
// ---------------------------------------------------------------------------

#[test]
fn encrypt_into_and_decrypt_into_with_caller_buffers() {
    let mut p = Pair::started(31, SessionConfig::default());

    // Alice, still sending prekey messages.
    let needed = p.alice.encrypted_len(5);
    assert_eq!(needed, PREKEY_MESSAGE_OVERHEAD + 5);
    let before = p.alice.encode().to_vec();
    for available in [0, needed - 1] {
        let mut small = vec![0u8; available];
        assert_eq!(
            p.alice.encrypt_into(&mut p.rng, b"hello", &mut small),
            Err(Error::BufferTooSmall { needed, available })
        );
        assert!(small.iter().all(|&b| b == 0));
    }
    assert_eq!(p.alice.encode().to_vec(), before);
    let mut buffer = vec![0xaa; needed + 10];
    assert_eq!(
        p.alice
            .encrypt_into(&mut p.rng, b"hello", &mut buffer)
            .unwrap(),
        needed
    );
    assert!(buffer[needed..].iter().all(|&b| b == 0xaa));
    let wire = &buffer[..needed];
    assert_eq!(
        message_number(wire),
        1,
        "the failed attempts used no number"
    );

    // Bob decrypts the embedded message of the repeated prekey message.
    let message = prekey_message(wire);
    assert!(p.bob.owns_prekey_message(&message));
    let before = p.bob.encode().to_vec();
    let mut small = [0u8; 4];
    assert_eq!(
        p.bob.decrypt_into(message.message(), &mut small),
        Err(Error::BufferTooSmall {
            needed: 5,
            available: 4
        })
    );
    assert_eq!(p.bob.encode().to_vec(), before);
    let mut exact = [0u8; 5];
    assert_eq!(p.bob.decrypt_into(message.message(), &mut exact), Ok(5));
    assert_eq!(&exact, b"hello");
    assert_eq!(p.bob.skipped_key_count(), 0);

    // Bob's ratchet message to Alice, with buffers that are too small and larger.
    let needed = p.bob.encrypted_len(7);
    assert_eq!(needed, RATCHET_MESSAGE_OVERHEAD + 7);
    let before = p.bob.encode().to_vec();
    let mut small = vec![0u8; needed - 1];
    assert_eq!(
        p.bob.encrypt_into(&mut p.rng, b"goodbye", &mut small),
        Err(Error::BufferTooSmall {
            needed,
            available: needed - 1
        })
    );
    assert_eq!(p.bob.encode().to_vec(), before);
    let mut wire = vec![0u8; needed];
    assert_eq!(
        p.bob.encrypt_into(&mut p.rng, b"goodbye", &mut wire),
        Ok(needed)
    );
    let message = RatchetMessage::parse(&wire).unwrap();
    assert_eq!(message.plaintext_len(), 7);
    assert_eq!(message.header().message_number, 0);
    let before = p.alice.encode().to_vec();
    let mut small = [0u8; 6];
    assert_eq!(
        p.alice.decrypt_into(&message, &mut small),
        Err(Error::BufferTooSmall {
            needed: 7,
            available: 6
        })
    );
    assert_eq!(p.alice.encode().to_vec(), before);
    assert!(p.alice.is_awaiting_reply());
    let mut roomy = [0x55u8; 20];
    assert_eq!(p.alice.decrypt_into(&message, &mut roomy), Ok(7));
    assert_eq!(&roomy[..7], b"goodbye");
    assert!(roomy[7..].iter().all(|&b| b == 0x55));
    assert!(!p.alice.is_awaiting_reply());

    // Empty plaintexts into exact and empty buffers.
    let mut wire = [0u8; RATCHET_MESSAGE_OVERHEAD];
    assert_eq!(
        p.alice.encrypt_into(&mut p.rng, b"", &mut wire),
        Ok(RATCHET_MESSAGE_OVERHEAD)
    );
    let message = RatchetMessage::parse(&wire).unwrap();
    assert_eq!(p.bob.decrypt_into(&message, &mut []), Ok(0));
}

#[test]
fn accept_into_with_a_buffer_too_small_spends_nothing() {
    let mut rng = rng(32);
    let alice = alice(&mut rng);
    let bob = bob(&mut rng);
    let (mut store, ids) = prekey_store(&mut rng, &bob.identity, 1);
    let bundle = verified_bundle(&bob.identity, &store, Some(ids[0]));
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let wire = alice_session.encrypt(&mut rng, b"twelve bytes").unwrap();
    let message = prekey_message(&wire);
    let before = store.encode().to_vec();
    let mut small = [0u8; 11];
    let error = Responder::new(&bob, &mut store)
        .accept_into(&alice.address(), &message, &mut small)
        .err();
    assert_eq!(
        error,
        Some(Error::BufferTooSmall {
            needed: 12,
            available: 11
        })
    );
    assert_eq!(store.encode().to_vec(), before);
    let mut exact = [0u8; 12];
    let (_, len) = Responder::new(&bob, &mut store)
        .accept_into(&alice.address(), &message, &mut exact)
        .unwrap();
    assert_eq!(&exact[..len], b"twelve bytes");
    assert_eq!(store.one_time_prekey_count(), 0);
}
