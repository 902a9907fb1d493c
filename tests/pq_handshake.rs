//! The hybrid (PQXDH, ML-KEM-768) handshake end to end: one-time and
//! last-resort KEM prekeys, rotation with the signed prekey, replay of a
//! prekey message that used the reusable last-resort key, and every malformed
//! KEM input, through `Session`/`Responder` and through `SessionManager`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::devices::{DeviceError, SessionManager};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::store::MemoryStore;
use ratchetbox::{
    AccountId, BUNDLE_LEN_WITH_ONE_TIME, BundleKemPreKey, DecodeError, DeviceAddress, Error,
    IdentityKeyPair, KEM_PUBLIC_KEY_LEN, KemPreKey, KemPreKeyKind, KemPublicKey, LocalDevice,
    PREKEY_MESSAGE_OVERHEAD, PREKEY_PREFIX_LEN, PreKeyBundle, PreKeyMessage, PreKeyStore,
    Responder, Session,
};

/// Offsets in a prekey message (SPEC.md §4.4).
const KEM_ID_AT: usize = 69;
const CIPHERTEXT_AT: usize = 73;
const CIPHERTEXT_END: usize = 1161;
/// Offsets in a bundle (SPEC.md §4.1).
const BUNDLE_KEM_KEY_AT: usize = 141;
const BUNDLE_KEM_SIGNATURE_AT: usize = 1325;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn device(rng: &mut ChaCha20Rng, name: &str) -> LocalDevice {
    LocalDevice {
        account: AccountId::new(name.as_bytes()).unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::generate(rng),
    }
}

/// Bob's prekeys: `one_time` X25519 one-time prekeys and `kem` one-time KEM
/// prekeys besides the signed and last-resort ones.
fn prekeys(rng: &mut ChaCha20Rng, bob: &LocalDevice, one_time: usize, kem: usize) -> PreKeyStore {
    let mut store = PreKeyStore::generate(rng, &bob.identity, bob.device_id);
    store.generate_one_time_prekeys(rng, one_time).unwrap();
    store
        .generate_one_time_kem_prekeys(rng, &bob.identity, kem)
        .unwrap();
    store
}

/// A first message from `alice` to `bob` over `bundle`.
fn first_message(
    rng: &mut ChaCha20Rng,
    alice: &LocalDevice,
    bob: &LocalDevice,
    bundle: &PreKeyBundle,
    plaintext: &[u8],
) -> (Session, Vec<u8>) {
    let verified = bundle.clone().verify().unwrap();
    let mut session = Session::initiate(rng, alice, &bob.account, &verified).unwrap();
    let wire = session.encrypt(rng, plaintext).unwrap();
    (session, wire)
}

fn accept(
    bob: &LocalDevice,
    store: &mut PreKeyStore,
    from: &LocalDevice,
    wire: &[u8],
) -> Result<(Session, Vec<u8>), Error> {
    let message = PreKeyMessage::parse(wire)?;
    Responder::new(bob, store).accept(&from.address(), &message)
}

/// `accept`, asserting that a failure changed nothing in the store.
fn refused(bob: &LocalDevice, store: &mut PreKeyStore, from: &LocalDevice, wire: &[u8]) -> Error {
    let before = store.encode();
    let error = accept(bob, store, from, wire).expect_err("refused");
    assert_eq!(
        store.encode(),
        before,
        "a refused message changed the store"
    );
    error
}

#[test]
fn one_time_kem_prekey_is_spent_only_after_the_first_message_decrypts() {
    let mut rng = rng(1);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let mut store = prekeys(&mut rng, &bob, 1, 2);
    let kem_ids: Vec<_> = store.one_time_kem_prekey_ids().collect();
    assert_eq!(
        kem_ids,
        [2, 3],
        "one KEM id counter: last-resort 1, then 2, 3"
    );
    let bundle =
        PreKeyBundle::from_store_with_kem(bob.identity.public_key(), &store, Some(1), Some(2));
    assert_eq!(bundle.encode().len(), BUNDLE_LEN_WITH_ONE_TIME);
    let (mut alice_session, wire) = first_message(&mut rng, &alice, &bob, &bundle, b"hello");
    assert_eq!(wire.len(), PREKEY_MESSAGE_OVERHEAD + 5);

    // A forged body spends nothing.
    let mut forged = wire.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(
        refused(&bob, &mut store, &alice, &forged),
        Error::DecryptionFailed
    );
    assert_eq!(store.one_time_kem_prekey_count(), 2);

    let (mut bob_session, plaintext) = accept(&bob, &mut store, &alice, &wire).unwrap();
    assert_eq!(plaintext, b"hello");
    assert!(
        store.find_kem_prekey(2).is_none(),
        "the one-time KEM prekey is spent"
    );
    assert_eq!(
        store.find_kem_prekey(3).map(|(k, kind)| (k.id(), kind)),
        Some((3, KemPreKeyKind::OneTime))
    );
    assert_eq!(
        store.find_kem_prekey(1).map(|(_, kind)| kind),
        Some(KemPreKeyKind::LastResort)
    );
    assert_eq!(store.one_time_prekey_count(), 0);

    // The session works both ways, and Alice stops sending prekey messages
    // once Bob's reply arrives.
    let reply = bob_session.encrypt(&mut rng, b"hi Alice").unwrap();
    assert_eq!(alice_session.decrypt(&reply).unwrap(), b"hi Alice");
    assert!(!alice_session.is_awaiting_reply());
    for round in 0..3u8 {
        let a = alice_session.encrypt(&mut rng, &[round; 40]).unwrap();
        assert_eq!(a[0], 0x04, "a ratchet message once the reply arrived");
        assert_eq!(bob_session.decrypt(&a).unwrap(), [round; 40]);
        let b = bob_session.encrypt(&mut rng, &[round; 7]).unwrap();
        assert_eq!(alice_session.decrypt(&b).unwrap(), [round; 7]);
    }
}

#[test]
fn a_spent_one_time_kem_prekey_is_unknown() {
    let mut rng = rng(2);
    let (alice, bob, carol) = (
        device(&mut rng, "alice"),
        device(&mut rng, "bob"),
        device(&mut rng, "carol"),
    );
    let mut store = prekeys(&mut rng, &bob, 0, 1);
    // The server hands the same one-time KEM prekey out twice.
    let bundle =
        PreKeyBundle::from_store_with_kem(bob.identity.public_key(), &store, None, Some(2));
    let (_, to_bob) = first_message(&mut rng, &alice, &bob, &bundle, b"first");
    let (_, also_to_bob) = first_message(&mut rng, &carol, &bob, &bundle, b"second");
    accept(&bob, &mut store, &alice, &to_bob).unwrap();
    assert_eq!(
        refused(&bob, &mut store, &carol, &also_to_bob),
        Error::UnknownKemPreKey { id: 2 }
    );
}

#[test]
fn a_kem_id_never_issued_is_unknown() {
    let mut rng = rng(3);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let mut store = prekeys(&mut rng, &bob, 0, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let (_, mut wire) = first_message(&mut rng, &alice, &bob, &bundle, b"x");
    wire[KEM_ID_AT..KEM_ID_AT + 4].copy_from_slice(&77u32.to_be_bytes());
    assert_eq!(
        refused(&bob, &mut store, &alice, &wire),
        Error::UnknownKemPreKey { id: 77 }
    );
}

#[test]
fn last_resort_kem_prekey_serves_many_sessions_and_stays() {
    let mut rng = rng(4);
    let bob = device(&mut rng, "bob");
    let mut store = prekeys(&mut rng, &bob, 0, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    assert_eq!(bundle.kem_prekey().id, 1);
    for name in ["alice", "carol", "dave"] {
        let from = device(&mut rng, name);
        let (_, wire) = first_message(&mut rng, &from, &bob, &bundle, name.as_bytes());
        let (_, plaintext) = accept(&bob, &mut store, &from, &wire).unwrap();
        assert_eq!(plaintext, name.as_bytes());
    }
    assert_eq!(store.last_resort_kem_prekey().id(), 1);
    assert_eq!(store.accepted_base_key_count(), 3);
}

#[test]
fn replayed_last_resort_prekey_message_is_detected() {
    let mut rng = rng(5);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let mut store = prekeys(&mut rng, &bob, 0, 0);
    // No one-time prekey of either kind: nothing in the message gets spent.
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let (_, wire) = first_message(&mut rng, &alice, &bob, &bundle, b"pay 10");
    let (session, _) = accept(&bob, &mut store, &alice, &wire).unwrap();
    let base_key = *session.base_key();
    drop(session); // the session is gone: only the store remembers
    assert_eq!(
        refused(&bob, &mut store, &alice, &wire),
        Error::RepeatedPreKeyMessage { base_key }
    );
    // Also after the store was saved and loaded.
    let mut reloaded = PreKeyStore::decode(&store.encode()).unwrap();
    assert_eq!(
        refused(&bob, &mut reloaded, &alice, &wire),
        Error::RepeatedPreKeyMessage { base_key }
    );
}

#[test]
fn rotation_retires_the_last_resort_kem_prekey_with_the_signed_prekey() {
    let mut rng = rng(6);
    let (alice, bob, carol) = (
        device(&mut rng, "alice"),
        device(&mut rng, "bob"),
        device(&mut rng, "carol"),
    );
    let mut store = prekeys(&mut rng, &bob, 0, 1); // one-time KEM id 2
    let old_bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let old_kem = old_bundle.kem_prekey().clone();
    assert_eq!(old_kem.id, 1);
    let (_, before_rotation) = first_message(&mut rng, &alice, &bob, &old_bundle, b"early");
    accept(&bob, &mut store, &alice, &before_rotation).unwrap();

    store
        .rotate_signed_prekey(&mut rng, &bob.identity, 1000)
        .unwrap();
    assert_eq!(store.signed_prekey().id(), 2);
    assert_eq!(store.last_resort_kem_prekey().id(), 3, "the next KEM id");
    let new_bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    assert_eq!(new_bundle.kem_prekey().id, 3);
    // Asking for a retired (last-resort) KEM id gets the current one.
    let asked = PreKeyBundle::from_store_with_kem(bob.identity.public_key(), &store, None, Some(1));
    assert_eq!(asked.kem_prekey().id, 3);

    // In the grace period the retired pair still answers.
    let (_, late) = first_message(&mut rng, &carol, &bob, &old_bundle, b"late");
    accept(&bob, &mut store, &carol, &late).unwrap();
    assert_eq!(
        store.find_kem_prekey(1).map(|(_, kind)| kind),
        Some(KemPreKeyKind::LastResort)
    );

    // Expiry drops the pair, and the memory of messages accepted under it.
    assert_eq!(
        store.expire_retired_signed_prekeys(1000 + 7 * 86_400, 7 * 86_400),
        1
    );
    assert!(store.find_kem_prekey(1).is_none());
    assert_eq!(store.accepted_base_key_count(), 0);
    let dave = device(&mut rng, "dave");
    let (_, stale) = first_message(&mut rng, &dave, &bob, &old_bundle, b"stale");
    assert_eq!(
        refused(&bob, &mut store, &dave, &stale),
        Error::UnknownSignedPreKey { id: 1 }
    );
    // The current signed prekey with the expired KEM prekey: the KEM id is unknown.
    let mixed = PreKeyBundle::new(
        *bob.identity.public_key(),
        1,
        2,
        *store.signed_prekey().public_key(),
        *store.signed_prekey().signature(),
        old_kem,
        None,
    );
    let (_, mixed) = first_message(&mut rng, &dave, &bob, &mixed, b"mixed");
    assert_eq!(
        refused(&bob, &mut store, &dave, &mixed),
        Error::UnknownKemPreKey { id: 1 }
    );
    // The new pair works.
    let (_, fresh) = first_message(&mut rng, &dave, &bob, &new_bundle, b"fresh");
    accept(&bob, &mut store, &dave, &fresh).unwrap();
}

#[test]
fn at_most_four_retired_pairs_are_kept() {
    let mut rng = rng(7);
    let bob = device(&mut rng, "bob");
    let mut store = prekeys(&mut rng, &bob, 0, 0);
    for now in 1..=5 {
        store
            .rotate_signed_prekey(&mut rng, &bob.identity, now)
            .unwrap();
    }
    // Last-resort KEM ids 1..=6 were issued; the oldest pair was dropped.
    assert!(store.find_signed_prekey(1).is_none());
    assert!(store.find_kem_prekey(1).is_none());
    for id in 2..=6 {
        assert!(store.find_kem_prekey(id).is_some(), "KEM prekey {id}");
    }
    let reloaded = PreKeyStore::decode(&store.encode()).unwrap();
    assert_eq!(reloaded.encode(), store.encode());
}

/// A bundle encoding with the first coefficient of the KEM key set to 4095.
fn with_out_of_range_coefficient(mut bundle: Vec<u8>) -> Vec<u8> {
    bundle[BUNDLE_KEM_KEY_AT] = 0xFF;
    bundle[BUNDLE_KEM_KEY_AT + 1] |= 0x0F;
    bundle
}

#[test]
fn kem_keys_failing_the_modulus_check_are_rejected() {
    let mut rng = rng(8);
    let bob = device(&mut rng, "bob");
    let store = prekeys(&mut rng, &bob, 0, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None).encode();
    assert_eq!(
        PreKeyBundle::decode(&with_out_of_range_coefficient(bundle.clone())),
        Err(DecodeError::InvalidKemKey)
    );
    // Every coefficient counts, the last one too (bits 12·767 … 12·767+11).
    let mut last = bundle.clone();
    last[BUNDLE_KEM_KEY_AT + 1150] |= 0xF0;
    last[BUNDLE_KEM_KEY_AT + 1151] = 0xFF;
    assert_eq!(PreKeyBundle::decode(&last), Err(DecodeError::InvalidKemKey));
    // 3328 = q − 1 is in range; the key then fails only its signature.
    let mut edge = bundle.clone();
    edge[BUNDLE_KEM_KEY_AT] = 0x00;
    edge[BUNDLE_KEM_KEY_AT + 1] = (edge[BUNDLE_KEM_KEY_AT + 1] & 0xF0) | 0x0D;
    let edge = PreKeyBundle::decode(&edge).expect("3328 < q");
    assert_eq!(edge.verify().err(), Some(Error::InvalidSignature));
    // The same check stands alone.
    let key: [u8; KEM_PUBLIC_KEY_LEN] = with_out_of_range_coefficient(bundle)
        [BUNDLE_KEM_KEY_AT..BUNDLE_KEM_KEY_AT + KEM_PUBLIC_KEY_LEN]
        .try_into()
        .unwrap();
    assert_eq!(
        KemPublicKey::from_bytes(&key),
        Err(DecodeError::InvalidKemKey)
    );
}

#[test]
fn kem_prekey_signatures_are_verified_strictly() {
    let mut rng = rng(9);
    let (bob, mallory) = (device(&mut rng, "bob"), device(&mut rng, "mallory"));
    let store = prekeys(&mut rng, &bob, 0, 0);
    let mallory_store = prekeys(&mut rng, &mallory, 0, 0);
    let genuine = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    assert!(genuine.clone().verify().is_ok());
    let with_kem = |kem: BundleKemPreKey| {
        PreKeyBundle::new(
            *genuine.identity_key(),
            genuine.device_id(),
            genuine.signed_prekey_id(),
            *genuine.signed_prekey(),
            *genuine.signed_prekey_signature(),
            kem,
            None,
        )
    };
    let mallory_kem = mallory_store.last_resort_kem_prekey();
    let cases = [
        // A KEM key Bob never signed (Mallory's, with Mallory's signature).
        BundleKemPreKey {
            id: 1,
            key: mallory_kem.public_key().clone(),
            signature: *mallory_kem.signature(),
        },
        // Bob's key with the signed prekey's signature.
        BundleKemPreKey {
            id: 1,
            key: store.last_resort_kem_prekey().public_key().clone(),
            signature: *genuine.signed_prekey_signature(),
        },
        // S + ℓ: the same equation, a non-canonical scalar.
        BundleKemPreKey {
            signature: add_group_order(store.last_resort_kem_prekey().signature()),
            ..genuine.kem_prekey().clone()
        },
    ];
    for kem in cases {
        assert_eq!(with_kem(kem).verify().err(), Some(Error::InvalidSignature));
    }
    // A flipped bit anywhere in the signature.
    for at in [BUNDLE_KEM_SIGNATURE_AT, BUNDLE_KEM_SIGNATURE_AT + 63] {
        let mut bytes = genuine.encode();
        bytes[at] ^= 0x01;
        let bundle = PreKeyBundle::decode(&bytes).unwrap();
        assert_eq!(bundle.verify().err(), Some(Error::InvalidSignature));
    }
}

/// `S + ℓ` for the scalar half of an Ed25519 signature.
fn add_group_order(signature: &[u8; 64]) -> [u8; 64] {
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = *signature;
    let mut carry = 0u16;
    for (byte, ell) in out[32..].iter_mut().zip(ELL) {
        let sum = u16::from(*byte) + u16::from(ell) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

#[test]
fn a_relabelled_kem_prekey_fails_to_decrypt_and_spends_nothing() {
    let mut rng = rng(10);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let mut store = prekeys(&mut rng, &bob, 0, 2); // one-time KEM ids 2, 3
    // The server names KEM id 3 but ships key 2 (validly signed: the
    // signature covers the key, not its id).
    let genuine =
        PreKeyBundle::from_store_with_kem(bob.identity.public_key(), &store, None, Some(2));
    let relabelled = PreKeyBundle::new(
        *genuine.identity_key(),
        genuine.device_id(),
        genuine.signed_prekey_id(),
        *genuine.signed_prekey(),
        *genuine.signed_prekey_signature(),
        BundleKemPreKey {
            id: 3,
            ..genuine.kem_prekey().clone()
        },
        None,
    );
    let (_, wire) = first_message(&mut rng, &alice, &bob, &relabelled, b"x");
    assert_eq!(
        refused(&bob, &mut store, &alice, &wire),
        Error::DecryptionFailed
    );
    assert_eq!(store.one_time_kem_prekey_count(), 2);
}

#[test]
fn a_wrong_kem_ciphertext_is_implicit_rejection_with_no_state_change() {
    let mut rng = rng(11);
    let (alice, bob, carol) = (
        device(&mut rng, "alice"),
        device(&mut rng, "bob"),
        device(&mut rng, "carol"),
    );
    let mut store = prekeys(&mut rng, &bob, 1, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(1));
    let (_, wire) = first_message(&mut rng, &alice, &bob, &bundle, b"genuine");
    let (_, carols) = first_message(&mut rng, &carol, &bob, &bundle, b"other");

    let mut flipped = wire.clone();
    flipped[CIPHERTEXT_AT + 500] ^= 0x40;
    let mut zeroed = wire.clone();
    zeroed[CIPHERTEXT_AT..CIPHERTEXT_END].fill(0);
    // A genuine ciphertext to the same KEM key, from another handshake.
    let mut swapped = wire.clone();
    swapped[CIPHERTEXT_AT..CIPHERTEXT_END].copy_from_slice(&carols[CIPHERTEXT_AT..CIPHERTEXT_END]);
    for forged in [flipped, zeroed, swapped] {
        assert_eq!(
            refused(&bob, &mut store, &alice, &forged),
            Error::DecryptionFailed
        );
    }
    assert_eq!(store.one_time_prekey_count(), 1, "nothing was spent");
    let (_, plaintext) = accept(&bob, &mut store, &alice, &wire).unwrap();
    assert_eq!(plaintext, b"genuine");
}

#[test]
fn truncated_kem_ciphertext_is_a_decode_error() {
    let mut rng = rng(12);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let store = prekeys(&mut rng, &bob, 0, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let (_, wire) = first_message(&mut rng, &alice, &bob, &bundle, b"");
    for len in [
        CIPHERTEXT_AT,
        CIPHERTEXT_AT + 1,
        CIPHERTEXT_END - 1,
        PREKEY_PREFIX_LEN,
    ] {
        assert!(
            matches!(
                PreKeyMessage::parse(&wire[..len]),
                Err(DecodeError::Truncated { .. })
            ),
            "{len} bytes"
        );
    }
}

#[test]
fn pending_initiator_sessions_keep_their_ciphertext_across_storage() {
    let mut rng = rng(13);
    let (alice, bob) = (device(&mut rng, "alice"), device(&mut rng, "bob"));
    let store = prekeys(&mut rng, &bob, 0, 0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None);
    let (mut session, first) = first_message(&mut rng, &alice, &bob, &bundle, b"1");
    let blob = session.encode();
    assert_eq!(
        blob.len(),
        1402,
        "SPEC.md §6.3: fresh initiator, alice/1–bob/1"
    );
    let mut restored = Session::decode(&blob).unwrap();
    let again = restored.encrypt(&mut rng, b"2").unwrap();
    assert_eq!(again[..PREKEY_PREFIX_LEN], first[..PREKEY_PREFIX_LEN]);
    assert_eq!(
        session.encrypt(&mut rng, b"3").unwrap()[..PREKEY_PREFIX_LEN],
        first[..PREKEY_PREFIX_LEN]
    );

    // The stored ciphertext must be the one the session's AD covers (it is the
    // last 1088 bytes before the skipped-key count).
    let at = blob.len() - 4 - 1088;
    let mut tampered = blob.to_vec();
    tampered[at + 10] ^= 1;
    assert!(matches!(
        Session::decode(&tampered),
        Err(Error::Decode(DecodeError::InvalidValue {
            field: "KEM ciphertext"
        }))
    ));
}

#[test]
fn kem_prekey_rows_round_trip_and_reject_malformed_input() {
    let mut rng = rng(14);
    let bob = device(&mut rng, "bob");
    let store = prekeys(&mut rng, &bob, 0, 1);
    let (key, _) = store.find_kem_prekey(2).unwrap();
    let row = key.encode();
    assert_eq!((row.len(), row[0]), (133, 0x5B));
    let decoded = KemPreKey::decode(&row).unwrap();
    assert_eq!(
        (decoded.id(), decoded.public_key(), decoded.signature()),
        (key.id(), key.public_key(), key.signature())
    );
    assert!(matches!(
        KemPreKey::decode(&row[..132]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut long = row.to_vec();
    long.push(0);
    assert!(matches!(
        KemPreKey::decode(&long),
        Err(DecodeError::TrailingBytes { .. })
    ));
    let mut wrong_tag = row.to_vec();
    wrong_tag[0] = 0x51;
    assert!(KemPreKey::decode(&wrong_tag).is_err());
    // The debug form names the key, never the seed.
    let debug = format!("{key:?}");
    let seed_hex: String = row[5..9].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&seed_hex), "{debug}");
}

#[test]
fn stored_prekey_store_keeps_every_kem_prekey() {
    let mut rng = rng(15);
    let bob = device(&mut rng, "bob");
    let fresh = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    assert_eq!(fresh.encode().len(), 259, "SPEC.md §6.2");
    let mut store = prekeys(&mut rng, &bob, 2, 3);
    store
        .rotate_signed_prekey(&mut rng, &bob.identity, 5)
        .unwrap();
    let reloaded = PreKeyStore::decode(&store.encode()).unwrap();
    assert_eq!(reloaded.encode(), store.encode());
    for id in 1..=5 {
        let (a, b) = (store.find_kem_prekey(id), reloaded.find_kem_prekey(id));
        assert_eq!(
            a.map(|(k, kind)| (k.public_key(), kind)),
            b.map(|(k, kind)| (k.public_key(), kind))
        );
    }
    assert_eq!(reloaded.one_time_kem_prekey_count(), 3);
    assert_eq!(reloaded.last_resort_kem_prekey().id(), 5);
}

fn manager(
    rng: &mut ChaCha20Rng,
    name: &str,
    one_time: usize,
    kem: usize,
) -> SessionManager<MemoryStore> {
    let local = device(rng, name);
    let store = prekeys(rng, &local, one_time, kem);
    SessionManager::new(local, MemoryStore::new(store))
}

fn manager_bundle(m: &SessionManager<MemoryStore>, kem: Option<u32>) -> PreKeyBundle {
    PreKeyBundle::from_store_with_kem(
        m.local().identity.public_key(),
        m.store().prekeys(),
        None,
        kem,
    )
}

#[test]
fn session_manager_sessions_are_hybrid_end_to_end() {
    let mut rng = rng(16);
    let mut alice = manager(&mut rng, "alice", 0, 0);
    let mut bob = manager(&mut rng, "bob", 0, 2);
    let (alice_account, bob_account) = (alice.local().account, bob.local().account);
    let alice_at = alice.local().address();
    let bob_at = DeviceAddress::new(bob_account, 1);

    alice
        .process_bundle(&mut rng, &bob_account, manager_bundle(&bob, Some(3)))
        .unwrap();
    let out = alice
        .encrypt(&mut rng, &bob_account, b"hello Bob", &[1], &[])
        .unwrap();
    assert_eq!(out[0].message[0], 0x05, "a prekey message");
    let got = bob.decrypt(&alice_at, &out[0].message).unwrap();
    assert_eq!(got.plaintext.as_bytes(), b"hello Bob");
    let ids: Vec<_> = bob.store().prekeys().one_time_kem_prekey_ids().collect();
    assert_eq!(ids, [2], "KEM prekey 3 is spent, 2 is left");

    let reply = bob
        .encrypt(&mut rng, &alice_account, b"hi Alice", &[1], &[])
        .unwrap();
    let got = alice.decrypt(&bob_at, &reply[0].message).unwrap();
    assert_eq!(got.plaintext.as_bytes(), b"hi Alice");
    let next = alice
        .encrypt(
            &mut rng,
            &bob_account,
            b"and now ratchet messages",
            &[1],
            &[],
        )
        .unwrap();
    assert_eq!(next[0].message[0], 0x04);
    let got = bob.decrypt(&alice_at, &next[0].message).unwrap();
    assert_eq!(got.plaintext.as_bytes(), b"and now ratchet messages");
}

#[test]
fn session_manager_refuses_a_replayed_last_resort_prekey_message() {
    let mut rng = rng(17);
    let mut alice = manager(&mut rng, "alice", 0, 0);
    let mut bob = manager(&mut rng, "bob", 0, 0);
    let bob_account = bob.local().account;
    let alice_at = alice.local().address();
    alice
        .process_bundle(&mut rng, &bob_account, manager_bundle(&bob, None))
        .unwrap();
    let out = alice
        .encrypt(&mut rng, &bob_account, b"once", &[1], &[])
        .unwrap();
    bob.decrypt(&alice_at, &out[0].message).unwrap();
    assert_eq!(bob.store().prekeys().last_resort_kem_prekey().id(), 1);

    // Bob drops the session (say, the device list changed); the replay is
    // still recognised, and changes nothing.
    bob.remove_device(&alice_at).unwrap();
    let before = bob.store().encode();
    let replay = bob.decrypt(&alice_at, &out[0].message).err();
    assert!(
        matches!(
            replay,
            Some(DeviceError::Protocol(Error::RepeatedPreKeyMessage { .. }))
        ),
        "{replay:?}"
    );
    assert_eq!(bob.store().encode(), before);
}
