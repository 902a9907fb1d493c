//! Known-answer vectors for the hybrid PQXDH handshake and the first Double
//! Ratchet messages
//! (`tests/vectors/session_v2.txt`, described in SPEC.md §8).
//!
//! Checked in both directions: running the protocol from the vector's secret
//! inputs reproduces every output byte, and the stored messages decrypt to the
//! stored plaintexts. Set `RATCHETBOX_WRITE_VECTORS=1` to regenerate the file
//! after a deliberate format change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/scripted_rng.rs"]
mod scripted_rng;
use scripted_rng::{ScriptedRng, check_vectors, read_vectors};

use std::collections::BTreeMap;

use ratchetbox::{
    AccountId, IdentityKeyPair, LocalDevice, Message, PreKeyBundle, PreKeyMessage, PreKeyStore,
    Responder, Session, hazmat,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/session_v2.txt");

fn arr(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

/// The secret inputs: fixed, distinct byte patterns.
fn inputs() -> BTreeMap<&'static str, Vec<u8>> {
    let pattern = |start: u8| {
        (0..32u8)
            .map(|i| start.wrapping_add(i))
            .collect::<Vec<u8>>()
    };
    BTreeMap::from([
        ("alice_identity_seed", pattern(0x10)),
        ("bob_identity_seed", pattern(0x30)),
        ("bob_signed_prekey_secret", pattern(0x50)),
        (
            "bob_last_resort_kem_seed",
            [pattern(0x58), pattern(0x78)].concat(),
        ),
        ("bob_one_time_prekey_secret", pattern(0x70)),
        (
            "bob_one_time_kem_seed",
            [pattern(0x98), pattern(0xb8)].concat(),
        ),
        ("alice_ephemeral_secret", pattern(0x90)),
        ("alice_kem_encapsulation_randomness", pattern(0xa8)),
        ("alice_ratchet_secret_1", pattern(0xb0)),
        ("bob_ratchet_secret_1", pattern(0xd0)),
        ("alice_ratchet_secret_2", pattern(0xf0)),
        ("alice_nonce_0", pattern(0x20)[..12].to_vec()),
        ("alice_nonce_1", pattern(0x40)[..12].to_vec()),
        ("bob_nonce_2", pattern(0x60)[..12].to_vec()),
        ("alice_nonce_3", pattern(0x80)[..12].to_vec()),
        ("plaintext_0", b"Hello Bob, this is Alice.".to_vec()),
        (
            "plaintext_1",
            b"A second message before any reply.".to_vec(),
        ),
        ("plaintext_2", b"Hi Alice! Bob here.".to_vec()),
        (
            "plaintext_3",
            b"Alice again, under a new ratchet key.".to_vec(),
        ),
    ])
}

/// Device 1 of `account`, with the identity from `seed`.
fn device(account: &[u8], seed: &[u8]) -> LocalDevice {
    LocalDevice {
        account: AccountId::new(account).unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&arr(seed)),
    }
}

/// Runs the scripted conversation and returns every output.
fn run(input: &BTreeMap<&str, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let i = |k: &str| input[k].as_slice();
    let mut out = BTreeMap::new();
    let alice = device(b"alice", i("alice_identity_seed"));
    let bob_device = device(b"bob", i("bob_identity_seed"));
    let bob = &bob_device.identity;

    let mut bob_rng = ScriptedRng::new(&[
        i("bob_signed_prekey_secret"),
        i("bob_last_resort_kem_seed"),
        i("bob_one_time_prekey_secret"),
        i("bob_one_time_kem_seed"),
        i("bob_ratchet_secret_1"),
        i("bob_nonce_2"),
    ]);
    let (mut bob_store, bundle) = bob_prekeys(&mut bob_rng, bob);
    out.insert("bundle".into(), bundle.encode());

    let mut alice_rng = alice_rng(input);
    let verified = PreKeyBundle::decode(&bundle.encode())
        .unwrap()
        .verify()
        .unwrap();
    let (mut alice_session, sk, ad) =
        hazmat::initiate_traced(&mut alice_rng, &alice, &bob_device.account, &verified).unwrap();
    out.insert("pqxdh_shared_secret".into(), sk.to_vec());
    out.insert("session_associated_data".into(), ad.to_vec());
    out.insert(
        "alice_root_key_1".into(),
        hazmat::root_key(&alice_session).to_vec(),
    );
    out.insert(
        "alice_sending_chain_key_1".into(),
        hazmat::sending_chain_key(&alice_session).unwrap().to_vec(),
    );
    let m0 = alice_session
        .encrypt(&mut alice_rng, i("plaintext_0"))
        .unwrap();
    let m1 = alice_session
        .encrypt(&mut alice_rng, i("plaintext_1"))
        .unwrap();
    out.insert("message_0".into(), m0.clone());
    out.insert("message_1".into(), m1.clone());

    let (mut bob_session, p0) = Responder::new(&bob_device, &mut bob_store)
        .accept(&alice.address(), &PreKeyMessage::parse(&m0).unwrap())
        .unwrap();
    assert_eq!(p0, i("plaintext_0"));
    out.insert(
        "bob_root_key_1".into(),
        hazmat::root_key(&bob_session).to_vec(),
    );
    out.insert(
        "bob_receiving_chain_key_1".into(),
        hazmat::receiving_chain_key(&bob_session).unwrap().to_vec(),
    );
    assert_eq!(bob_session.decrypt(&m1).unwrap(), i("plaintext_1"));
    // Bob's first send performs the sending half of his first ratchet step.
    let m2 = bob_session.encrypt(&mut bob_rng, i("plaintext_2")).unwrap();
    out.insert("message_2".into(), m2.clone());
    out.insert(
        "bob_root_key_2".into(),
        hazmat::root_key(&bob_session).to_vec(),
    );
    assert_eq!(alice_session.decrypt(&m2).unwrap(), i("plaintext_2"));
    out.insert(
        "alice_root_key_2".into(),
        hazmat::root_key(&alice_session).to_vec(),
    );
    let m3 = alice_session
        .encrypt(&mut alice_rng, i("plaintext_3"))
        .unwrap();
    out.insert("message_3".into(), m3.clone());
    out.insert(
        "alice_root_key_3".into(),
        hazmat::root_key(&alice_session).to_vec(),
    );
    assert_eq!(bob_session.decrypt(&m3).unwrap(), i("plaintext_3"));
    alice_rng.assert_exhausted();
    bob_rng.assert_exhausted();
    out
}

/// Bob's prekey store (signed prekey 1, last-resort KEM prekey 1, one-time
/// prekey 1, one-time KEM prekey 2) and the bundle with both one-time keys.
fn bob_prekeys(rng: &mut ScriptedRng, bob: &IdentityKeyPair) -> (PreKeyStore, PreKeyBundle) {
    let mut store = PreKeyStore::generate(rng, bob, 1);
    let published = store.generate_one_time_prekeys(rng, 1).unwrap();
    let kem = store.generate_one_time_kem_prekeys(rng, bob, 1).unwrap();
    assert_eq!((published[0].0, kem[0]), (1, 2));
    let bundle = PreKeyBundle::from_store_with_kem(bob.public_key(), &store, Some(1), Some(2));
    (store, bundle)
}

/// Alice's draws, in order (SPEC.md §5.5).
fn alice_rng<K: std::borrow::Borrow<str> + Ord>(input: &BTreeMap<K, Vec<u8>>) -> ScriptedRng {
    let i = |k: &str| input[k].as_slice();
    ScriptedRng::new(&[
        i("alice_ephemeral_secret"),
        i("alice_kem_encapsulation_randomness"),
        i("alice_ratchet_secret_1"),
        i("alice_nonce_0"),
        i("alice_nonce_1"),
        i("alice_ratchet_secret_2"),
        i("alice_nonce_3"),
    ])
}

const HEADER: &str = "# ratchetbox v2 session known-answer vector (SPEC.md §8). Hex, alphabetical;\n\
         # SPEC.md §8 says which party uses each input, and in which order.\n";

#[test]
fn session_vector_is_reproduced() {
    let input = inputs();
    check_vectors(PATH, HEADER, &input, &run(&input));
}

#[test]
fn stored_messages_decrypt() {
    let (input, output) = read_vectors(PATH);
    let i = |k: &str| input[k].as_slice();
    let alice = device(b"alice", i("alice_identity_seed"));
    let bob_device = device(b"bob", i("bob_identity_seed"));
    let bob = &bob_device.identity;
    let mut bob_rng = ScriptedRng::new(&[
        i("bob_signed_prekey_secret"),
        i("bob_last_resort_kem_seed"),
        i("bob_one_time_prekey_secret"),
        i("bob_one_time_kem_seed"),
    ]);
    let (mut bob_store, expected_bundle) = bob_prekeys(&mut bob_rng, bob);
    bob_rng.assert_exhausted();

    // The stored bundle is the one Bob's keys produce, and it verifies.
    let bundle = PreKeyBundle::decode(&output["bundle"]).unwrap();
    assert_eq!(bundle, expected_bundle);
    let verified = bundle.verify().unwrap();

    let Message::PreKey(first) = Message::parse(&output["message_0"]).unwrap() else {
        panic!("message_0 is a prekey message");
    };
    assert_eq!(first.identity_key(), alice.identity.public_key());
    let (mut bob_session, p0) = Responder::new(&bob_device, &mut bob_store)
        .accept(&alice.address(), &first)
        .unwrap();
    assert_eq!(p0, i("plaintext_0"));
    assert_eq!(
        bob_session.decrypt(&output["message_1"]).unwrap(),
        i("plaintext_1")
    );
    // Only now is the one-time KEM prekey spent; the last-resort one stays.
    assert_eq!(bob_store.one_time_kem_prekey_count(), 0);
    assert!(bob_store.find_kem_prekey(1).is_some());

    // Alice, rebuilt from her inputs, decrypts Bob's stored reply.
    let mut alice_rng = alice_rng(&input);
    let mut alice_session =
        Session::initiate(&mut alice_rng, &alice, &bob_device.account, &verified).unwrap();
    // Her own re-encryptions with the scripted nonces are the stored messages.
    assert_eq!(
        alice_session
            .encrypt(&mut alice_rng, i("plaintext_0"))
            .unwrap(),
        output["message_0"]
    );
    assert_eq!(
        alice_session
            .encrypt(&mut alice_rng, i("plaintext_1"))
            .unwrap(),
        output["message_1"]
    );
    assert_eq!(
        alice_session.decrypt(&output["message_2"]).unwrap(),
        i("plaintext_2")
    );

    // Bob's reply from his scripted draws is the stored one, and he reads
    // Alice's answer under her second ratchet key.
    let mut bob_rng = ScriptedRng::new(&[i("bob_ratchet_secret_1"), i("bob_nonce_2")]);
    assert_eq!(
        bob_session.encrypt(&mut bob_rng, i("plaintext_2")).unwrap(),
        output["message_2"]
    );
    assert_eq!(
        bob_session.decrypt(&output["message_3"]).unwrap(),
        i("plaintext_3")
    );
    assert_eq!(
        alice_session
            .encrypt(&mut alice_rng, i("plaintext_3"))
            .unwrap(),
        output["message_3"]
    );
    alice_rng.assert_exhausted();
}
