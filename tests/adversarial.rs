//! Adversarial tests: one `#[test]` per attack, through the public API (plus
//! `hazmat::x25519` to make valid X25519 public keys).
//!
//! Every test asserts a specific typed [`Error`] or [`DecodeError`] variant and,
//! where there is state, that the state is byte-for-byte unchanged
//! (`Session::encode()` / `PreKeyStore::encode()` before and after). Bundle
//! verification is stateless: there the assertion is that no `VerifiedBundle`
//! (and so no session) comes out.
//!
//! Covered: small-order X25519 keys (refused by the DH) and non-canonical ones
//! (refused when decoding, protocol v2) in every position a peer controls
//! (bundle signed and one-time prekeys, prekey-message base key, ratchet keys
//! in headers, stored state); malleated, non-canonical and forged Ed25519
//! signatures and weak or non-canonical identity keys; identity substitution,
//! unknown key share and identity misbinding, including a relabelled sender or
//! recipient device address; replay on current and old chains, of skipped
//! messages and of consumed prekey messages (remembered by the prekey store in
//! v2); reflection; tampering with prekey-message fields (stripped or swapped
//! prekeys, base key); skipped-key exhaustion with message numbers near
//! `u32::MAX` and huge `PN`; truncation at every byte and trailing garbage for
//! every wire and stored format; unknown format tags and versions (v1 tags and
//! versions included); non-canonical presence flags; and, for the later
//! layers, expired, revoked and wrong-root certificates, self-send, duplicate
//! recipients, a forged group signature and a group message from a removed member.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use ratchetbox::hazmat;
use ratchetbox::rand_core::{Rng, SeedableRng};
use ratchetbox::{
    AccountId, DecodeError, DeviceAddress, Error, IdentityKey, IdentityKeyPair, LocalDevice,
    Message, PREKEY_PREFIX_LEN, PreKeyBundle, PreKeyId, PreKeyMessage, PreKeyStore, PublicKey,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder, Session,
};

type TestRng = ChaCha20Rng;

const BOB_DEVICE: u32 = 7;
const DEFAULT_MAX_SKIP: u32 = 1000;

// Wire offsets (SPEC.md §4.1, §4.2, §4.4).
const BUNDLE_IDENTITY_AT: usize = 1;
const BUNDLE_SPK_AT: usize = 1 + 32 + 4 + 4;
const BUNDLE_SIGNATURE_AT: usize = BUNDLE_SPK_AT + 32;
const BUNDLE_FLAG_AT: usize = BUNDLE_SIGNATURE_AT + 64;
const RATCHET_KEY_AT: usize = 1;
const PN_AT: usize = 33;
const N_AT: usize = 37;
const PREKEY_IDENTITY_AT: usize = 1;
const PREKEY_BASE_KEY_AT: usize = 33;
const PREKEY_SIGNED_ID_AT: usize = 65;
const PREKEY_FLAG_AT: usize = 69;
const PREKEY_ONE_TIME_ID_AT: usize = 70;
const PREKEY_EMBEDDED_AT: usize = PREKEY_PREFIX_LEN;

/// The X25519 base point, u = 9.
const BASE_POINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 9;
    b
};

/// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
const ELL: [u8; 32] = h32("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

/// Every canonical X25519 u-coordinate encoding of a point of small order.
///
/// Curve25519 has eight points of small order (its 8-torsion): the point at
/// infinity and (0, 0) (both u = 0), (1, ±√486664) (order 4) and two pairs of
/// order 8. X25519 sees only u, so these eight points are the first four rows.
/// Then u = p − 1, of order 4 on the twist (X25519 accepts twist points). These
/// are canonical encodings, so they decode; the protocol's DH refuses them with
/// `NonContributoryDh`.
const SMALL_ORDER_X25519: [(&str, [u8; 32]); 5] = [
    (
        "0 (infinity and (0,0))",
        h32("0000000000000000000000000000000000000000000000000000000000000000"),
    ),
    (
        "1 (order 4)",
        h32("0100000000000000000000000000000000000000000000000000000000000000"),
    ),
    (
        "order 8 (a)",
        h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ),
    (
        "order 8 (b)",
        h32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ),
    (
        "p - 1 (twist, order 4)",
        h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
];

/// Non-canonical X25519 encodings: u ≥ p, or bit 255 set (which RFC 7748
/// ignores). Protocol version 2 refuses every one of them when decoding
/// (`DecodeError::NonCanonicalKey`), before any DH: the small-order ones (p ≡
/// 0, p + 1 ≡ 1, and the table above with the high bit set) and ones of large
/// order (2^255 − 1 ≡ 18, and the base point with the high bit set).
const NON_CANONICAL_X25519: [(&str, [u8; 32]); 11] = [
    (
        "p (non-canonical 0)",
        h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "p + 1 (non-canonical 1)",
        h32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "2^255 - 1 (non-canonical 18, large order)",
        h32("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "2^255 + 0",
        h32("0000000000000000000000000000000000000000000000000000000000000080"),
    ),
    (
        "2^255 + 1",
        h32("0100000000000000000000000000000000000000000000000000000000000080"),
    ),
    (
        "2^255 + 9 (base point, large order)",
        h32("0900000000000000000000000000000000000000000000000000000000000080"),
    ),
    (
        "2^255 + order 8 (a)",
        h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
    ),
    (
        "2^255 + order 8 (b)",
        h32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7"),
    ),
    (
        "2^255 + p - 1",
        h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    ),
    (
        "2^255 + p",
        h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    ),
    (
        "2^255 + p + 1",
        h32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    ),
];

/// The error for a non-canonical X25519 key in the field named `field`.
fn non_canonical(field: &'static str) -> DecodeError {
    DecodeError::NonCanonicalKey { field }
}

/// Ed25519 encodings of the eight points of small order (y, with the sign of x
/// in bit 255).
const SMALL_ORDER_ED25519: [(&str, [u8; 32]); 8] = [
    (
        "identity (order 1)",
        h32("0100000000000000000000000000000000000000000000000000000000000000"),
    ),
    (
        "(0, -1) (order 2)",
        h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "(+sqrt(-1), 0) (order 4)",
        h32("0000000000000000000000000000000000000000000000000000000000000000"),
    ),
    (
        "(-sqrt(-1), 0) (order 4)",
        h32("0000000000000000000000000000000000000000000000000000000000000080"),
    ),
    (
        "order 8 (a, +)",
        h32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    ),
    (
        "order 8 (a, -)",
        h32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    ),
    (
        "order 8 (b, +)",
        h32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    ),
    (
        "order 8 (b, -)",
        h32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    ),
];

/// Non-canonical Ed25519 encodings of points of small order: x = 0 with the
/// sign bit set, y ≥ p.
const NON_CANONICAL_SMALL_ORDER_ED25519: [(&str, [u8; 32]); 4] = [
    (
        "identity with sign bit (x = -0)",
        h32("0100000000000000000000000000000000000000000000000000000000000080"),
    ),
    (
        "(0, -1) with sign bit (x = -0)",
        h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    ),
    (
        "y = p (= 0, order 4)",
        h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "y = p + 1 (= 1, identity)",
        h32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
];

/// Non-canonical Ed25519 encodings of a point of large order (y = p + 3 ≡ 3):
/// only a canonicity check, not the small-order check, can reject these.
const NON_CANONICAL_LARGE_ORDER_ED25519: [(&str, [u8; 32]); 2] = [
    (
        "y = p + 3 (= 3, large order)",
        h32("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ),
    (
        "y = p + 3 with sign bit (large order)",
        h32("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    ),
];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const fn h32(hex: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit"),
        }
    }
    let s = hex.as_bytes();
    assert!(s.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

fn rng(seed: u8) -> TestRng {
    let mut bytes = [seed; 32];
    bytes[31] = 0xad;
    ChaCha20Rng::from_seed(bytes)
}

/// A valid (large-order) X25519 public key from a random scalar.
fn random_public_key(rng: &mut TestRng) -> [u8; 32] {
    let mut scalar = [0u8; 32];
    rng.fill_bytes(&mut scalar);
    hazmat::x25519(scalar, BASE_POINT).unwrap()
}

fn patched(wire: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = wire.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

/// A ratchet message (at `offset` inside `wire`) with header fields replaced.
fn forged_header(
    wire: &[u8],
    offset: usize,
    key: Option<[u8; 32]>,
    pn: Option<u32>,
    n: Option<u32>,
) -> Vec<u8> {
    let mut out = wire.to_vec();
    if let Some(key) = key {
        out[offset + RATCHET_KEY_AT..offset + RATCHET_KEY_AT + 32].copy_from_slice(&key);
    }
    if let Some(pn) = pn {
        out[offset + PN_AT..offset + PN_AT + 4].copy_from_slice(&pn.to_be_bytes());
    }
    if let Some(n) = n {
        out[offset + N_AT..offset + N_AT + 4].copy_from_slice(&n.to_be_bytes());
    }
    out
}

/// `0x05 ‖ key`, what a signed prekey signature covers.
fn signed_encoding(key: &[u8; 32]) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = 0x05;
    out[1..].copy_from_slice(key);
    out
}

/// A decrypt that must fail with `expected`, leaving the session unchanged.
fn assert_rejected(session: &mut Session, rng: &mut TestRng, wire: &[u8], expected: Error) {
    let before = session.encode().to_vec();
    let skipped_before = session.skipped_key_count();
    let result = session.decrypt(rng, wire);
    assert_eq!(result.as_ref().err(), Some(&expected), "{result:?}");
    assert_eq!(
        *session.encode(),
        before,
        "a rejected message ({expected:?}) changed the session"
    );
    assert_eq!(session.skipped_key_count(), skipped_before);
}

/// An accept by `local` of `wire`, said to come from device `from`, that must
/// fail with `expected`, leaving the prekey store unchanged.
fn assert_accept_rejected(
    rng: &mut TestRng,
    local: &LocalDevice,
    store: &mut PreKeyStore,
    from: &DeviceAddress,
    wire: &[u8],
    expected_initiator: Option<&IdentityKey>,
    expected: Error,
) {
    let before = store.encode().to_vec();
    let message = PreKeyMessage::parse(wire).expect("well-formed prekey message");
    let mut responder = Responder::new(local, store);
    if let Some(initiator) = expected_initiator {
        responder = responder.expect_initiator(initiator);
    }
    let result = responder.accept(rng, from, &message);
    assert_eq!(
        result.as_ref().err(),
        Some(&expected),
        "accept gave {:?}",
        result.as_ref().map(|(_, p)| p)
    );
    assert_eq!(
        *store.encode(),
        before,
        "a rejected accept ({expected:?}) changed the prekey store"
    );
}

/// A device of `account` with a fresh identity.
fn device(rng: &mut TestRng, account: &[u8], device_id: u32) -> LocalDevice {
    LocalDevice {
        account: AccountId::new(account).unwrap(),
        device_id,
        identity: IdentityKeyPair::generate(rng),
    }
}

/// Alice (device 1 of "alice") has a session from the bundle of Bob (device
/// `BOB_DEVICE` of "bob", with one-time prekey 1) and has sent `first`; Bob has
/// not accepted it yet.
struct Handshake {
    rng: TestRng,
    alice_device: LocalDevice,
    bob_device: LocalDevice,
    mallory_id: IdentityKeyPair,
    store: PreKeyStore,
    one_time_ids: Vec<PreKeyId>,
    alice: Session,
    first: Vec<u8>,
}

fn handshake(seed: u8) -> Handshake {
    let mut rng = rng(seed);
    let alice_device = device(&mut rng, b"alice", 1);
    let bob_device = device(&mut rng, b"bob", BOB_DEVICE);
    let mallory_id = IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::generate(&mut rng, &bob_device.identity, BOB_DEVICE);
    let one_time_ids: Vec<PreKeyId> = store
        .generate_one_time_prekeys(&mut rng, 3)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let published = PreKeyBundle::from_store(
        bob_device.identity.public_key(),
        &store,
        Some(one_time_ids[0]),
    );
    let bundle = PreKeyBundle::decode(&published.encode())
        .unwrap()
        .verify_for(bob_device.identity.public_key())
        .unwrap();
    let mut alice =
        Session::initiate(&mut rng, &alice_device, &bob_device.account, &bundle).unwrap();
    let first = alice
        .encrypt(&mut rng, b"first message from Alice")
        .unwrap();
    Handshake {
        rng,
        alice_device,
        bob_device,
        mallory_id,
        store,
        one_time_ids,
        alice,
        first,
    }
}

/// A conversation: Alice sent `first` (chain A1), Bob accepted it and replied
/// (chain B1), Alice decrypted the reply. Now Alice receives on B1 (Nr = 1)
/// and sends on a fresh chain; Bob receives on A1 (Nr = 1).
struct Pair {
    rng: TestRng,
    alice_device: LocalDevice,
    bob_device: LocalDevice,
    mallory_id: IdentityKeyPair,
    store: PreKeyStore,
    alice: Session,
    bob: Session,
    first: Vec<u8>,
    reply: Vec<u8>,
}

fn pair(seed: u8) -> Pair {
    let Handshake {
        mut rng,
        alice_device,
        bob_device,
        mallory_id,
        mut store,
        mut alice,
        first,
        ..
    } = handshake(seed);
    let (mut bob, plaintext) = Responder::new(&bob_device, &mut store)
        .accept(
            &mut rng,
            &alice_device.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    assert_eq!(plaintext, b"first message from Alice");
    let reply = bob.encrypt(&mut rng, b"reply from Bob").unwrap();
    assert_eq!(alice.decrypt(&mut rng, &reply).unwrap(), b"reply from Bob");
    assert!(!alice.is_awaiting_reply());
    Pair {
        rng,
        alice_device,
        bob_device,
        mallory_id,
        store,
        alice,
        bob,
        first,
        reply,
    }
}

/// A bundle for `identity`'s device whose signed prekey is `spk`, signed by
/// `signer` over `0x05 ‖ spk`.
fn bundle_with(
    identity: &IdentityKeyPair,
    signer: &IdentityKeyPair,
    spk: [u8; 32],
    one_time: Option<(PreKeyId, [u8; 32])>,
) -> PreKeyBundle {
    let signature = signer.sign(&signed_encoding(&spk));
    PreKeyBundle::new(
        *identity.public_key(),
        BOB_DEVICE,
        1,
        PublicKey::from_bytes(spk).unwrap(),
        signature,
        one_time.map(|(id, k)| (id, PublicKey::from_bytes(k).unwrap())),
    )
}

/// The wire bytes of [`bundle_with`], written by hand (SPEC.md §4.1: `0x06 ‖
/// identity ‖ device id ‖ signed prekey id ‖ signed prekey ‖ signature ‖ flag
/// [‖ one-time id ‖ one-time prekey]`), so that keys the constructor cannot
/// hold (non-canonical ones) can be put on the wire.
fn bundle_wire_with(
    identity: &IdentityKeyPair,
    signer: &IdentityKeyPair,
    spk: [u8; 32],
    one_time: Option<(PreKeyId, [u8; 32])>,
) -> Vec<u8> {
    let mut wire = vec![0x06];
    wire.extend_from_slice(&identity.public_key().to_bytes());
    wire.extend_from_slice(&BOB_DEVICE.to_be_bytes());
    wire.extend_from_slice(&1u32.to_be_bytes());
    wire.extend_from_slice(&spk);
    wire.extend_from_slice(&signer.sign(&signed_encoding(&spk)));
    assert_eq!(wire.len(), BUNDLE_FLAG_AT);
    match one_time {
        Some((id, key)) => {
            wire.push(1);
            wire.extend_from_slice(&id.to_be_bytes());
            wire.extend_from_slice(&key);
        }
        None => wire.push(0),
    }
    wire
}

/// Little-endian 256-bit `a + b` (no overflow for the inputs used here).
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for (i, o) in out.iter_mut().enumerate() {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        *o = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

// ---------------------------------------------------------------------------
// Small-order X25519 keys → NonContributoryDh; non-canonical → NonCanonicalKey
// ---------------------------------------------------------------------------

#[test]
fn small_order_table_is_non_contributory_for_any_scalar() {
    // Sanity check of the table itself, through the protocol's DH wrapper.
    let mut rng = rng(1);
    for (name, point) in SMALL_ORDER_X25519 {
        for _ in 0..4 {
            let mut scalar = [0u8; 32];
            rng.fill_bytes(&mut scalar);
            assert_eq!(
                hazmat::x25519(scalar, point),
                Err(Error::NonContributoryDh),
                "{name}"
            );
        }
    }
    // And a valid key is accepted.
    assert!(hazmat::x25519([1; 32], random_public_key(&mut rng)).is_ok());
}

#[test]
fn non_canonical_table_is_refused_for_any_scalar() {
    // Protocol v2: a non-canonical encoding never reaches the DH, whatever
    // point RFC 7748 would reduce it to.
    let mut rng = rng(1);
    for (name, point) in NON_CANONICAL_X25519 {
        assert_eq!(
            PublicKey::from_bytes(point),
            Err(non_canonical("X25519 public key")),
            "{name}"
        );
        for _ in 0..4 {
            let mut scalar = [0u8; 32];
            rng.fill_bytes(&mut scalar);
            assert_eq!(
                hazmat::x25519(scalar, point),
                Err(Error::Decode(non_canonical("X25519 public key"))),
                "{name}"
            );
        }
    }
}

#[test]
fn small_order_signed_prekey_in_validly_signed_bundle_is_non_contributory() {
    let mut rng = rng(2);
    let alice = device(&mut rng, b"alice", 1);
    let bob = IdentityKeyPair::generate(&mut rng);
    let bob_account = AccountId::new(b"bob").unwrap();
    for (name, point) in SMALL_ORDER_X25519 {
        for one_time in [None, Some((1, random_public_key(&mut rng)))] {
            // Signed by Bob's real identity: the signature is fine, the key is not.
            let wire = bundle_with(&bob, &bob, point, one_time).encode();
            assert_eq!(wire, bundle_wire_with(&bob, &bob, point, one_time));
            let bundle = PreKeyBundle::decode(&wire)
                .unwrap()
                .verify_for(bob.public_key())
                .unwrap_or_else(|e| panic!("{name}: a correctly signed bundle must verify: {e:?}"));
            assert_eq!(
                Session::initiate(&mut rng, &alice, &bob_account, &bundle).err(),
                Some(Error::NonContributoryDh),
                "{name}"
            );
        }
    }
    // A non-canonical signed prekey, validly signed as those exact bytes, does
    // not even decode (protocol v2).
    for (name, point) in NON_CANONICAL_X25519 {
        for one_time in [None, Some((1, random_public_key(&mut rng)))] {
            let wire = bundle_wire_with(&bob, &bob, point, one_time);
            assert_eq!(
                PreKeyBundle::decode(&wire).err(),
                Some(non_canonical("signed prekey")),
                "{name}"
            );
        }
    }
}

#[test]
fn small_order_one_time_prekey_in_bundle_is_non_contributory() {
    let mut rng = rng(3);
    let alice = device(&mut rng, b"alice", 1);
    let bob = IdentityKeyPair::generate(&mut rng);
    let bob_account = AccountId::new(b"bob").unwrap();
    let store = PreKeyStore::generate(&mut rng, &bob, BOB_DEVICE);
    let spk = *store.signed_prekey().public_key();
    for (name, point) in SMALL_ORDER_X25519 {
        let bundle = PreKeyBundle::new(
            *bob.public_key(),
            BOB_DEVICE,
            store.signed_prekey().id(),
            spk,
            *store.signed_prekey().signature(),
            Some((5, PublicKey::from_bytes(point).unwrap())),
        );
        let bundle = PreKeyBundle::decode(&bundle.encode())
            .unwrap()
            .verify()
            .unwrap();
        assert_eq!(
            Session::initiate(&mut rng, &alice, &bob_account, &bundle).err(),
            Some(Error::NonContributoryDh),
            "{name}"
        );
    }
    // A non-canonical one-time prekey (it is not signed: the server or anyone
    // on the path could put one there) does not even decode (protocol v2).
    let genuine = PreKeyBundle::new(
        *bob.public_key(),
        BOB_DEVICE,
        store.signed_prekey().id(),
        spk,
        *store.signed_prekey().signature(),
        Some((
            5,
            PublicKey::from_bytes(random_public_key(&mut rng)).unwrap(),
        )),
    )
    .encode();
    for (name, point) in NON_CANONICAL_X25519 {
        let forged = patched(&genuine, BUNDLE_FLAG_AT + 1 + 4, &point);
        assert_eq!(
            PreKeyBundle::decode(&forged).err(),
            Some(non_canonical("one-time prekey")),
            "{name}"
        );
    }
}

#[test]
fn small_order_base_key_in_prekey_message_is_non_contributory() {
    let mut h = handshake(4);
    for (name, point) in SMALL_ORDER_X25519 {
        let forged = patched(&h.first, PREKEY_BASE_KEY_AT, &point);
        let before = h.store.encode().to_vec();
        let result = Responder::new(&h.bob_device, &mut h.store).accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&forged).unwrap(),
        );
        assert_eq!(
            result.as_ref().err(),
            Some(&Error::NonContributoryDh),
            "{name}"
        );
        assert_eq!(*h.store.encode(), before, "{name}");
    }
    // A non-canonical base key does not even parse (protocol v2).
    for (name, point) in NON_CANONICAL_X25519 {
        let forged = patched(&h.first, PREKEY_BASE_KEY_AT, &point);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(non_canonical("base key")),
            "{name}"
        );
        assert_eq!(
            Message::parse(&forged).err(),
            Some(non_canonical("base key")),
            "{name}"
        );
    }
    // The genuine message is still accepted: nothing was burnt.
    assert!(
        Responder::new(&h.bob_device, &mut h.store)
            .accept(
                &mut h.rng,
                &h.alice_device.address(),
                &PreKeyMessage::parse(&h.first).unwrap()
            )
            .is_ok()
    );
}

#[test]
fn small_order_ratchet_key_in_prekey_message_header_is_non_contributory() {
    let mut h = handshake(5);
    for (name, point) in SMALL_ORDER_X25519 {
        let forged = forged_header(&h.first, PREKEY_EMBEDDED_AT, Some(point), None, None);
        let before = h.store.encode().to_vec();
        let result = Responder::new(&h.bob_device, &mut h.store).accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&forged).unwrap(),
        );
        assert_eq!(
            result.as_ref().err(),
            Some(&Error::NonContributoryDh),
            "{name}"
        );
        assert_eq!(*h.store.encode(), before, "{name}");
    }
    // A non-canonical one does not even parse (protocol v2).
    for (name, point) in NON_CANONICAL_X25519 {
        let forged = forged_header(&h.first, PREKEY_EMBEDDED_AT, Some(point), None, None);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(non_canonical("ratchet key")),
            "{name}"
        );
    }
}

#[test]
fn small_order_ratchet_key_in_message_header_is_non_contributory() {
    let mut p = pair(6);
    let from_bob = p.bob.encrypt(&mut p.rng, b"to Alice").unwrap();
    let from_alice = p.alice.encrypt(&mut p.rng, b"to Bob").unwrap();
    for (_, point) in SMALL_ORDER_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut p.alice, &mut p.rng, &forged, Error::NonContributoryDh);
        let forged = forged_header(&from_alice, 0, Some(point), None, None);
        assert_rejected(&mut p.bob, &mut p.rng, &forged, Error::NonContributoryDh);
        // Also with PN and N asking for skipped keys (old and new chain): the
        // keys derived before the DH fails must not be kept.
        let forged = forged_header(&from_alice, 0, Some(point), Some(5), Some(3));
        assert_rejected(&mut p.bob, &mut p.rng, &forged, Error::NonContributoryDh);
    }
    // Non-canonical ratchet keys are refused while parsing (protocol v2),
    // before the header bounds or any DH.
    let refused = Error::Decode(non_canonical("ratchet key"));
    for (_, point) in NON_CANONICAL_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut p.alice, &mut p.rng, &forged, refused);
        let forged = forged_header(&from_alice, 0, Some(point), Some(5), Some(3));
        assert_rejected(&mut p.bob, &mut p.rng, &forged, refused);
        let forged = forged_header(&from_alice, 0, Some(point), Some(u32::MAX), Some(3));
        assert_rejected(&mut p.bob, &mut p.rng, &forged, refused);
    }
    // A fresh initiator (no receiving chain yet) rejects them too.
    let mut h = handshake(7);
    for (_, point) in SMALL_ORDER_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut h.alice, &mut h.rng, &forged, Error::NonContributoryDh);
    }
    for (_, point) in NON_CANONICAL_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut h.alice, &mut h.rng, &forged, refused);
    }
    // The genuine messages still decrypt afterwards.
    assert_eq!(p.alice.decrypt(&mut p.rng, &from_bob).unwrap(), b"to Alice");
    assert_eq!(p.bob.decrypt(&mut p.rng, &from_alice).unwrap(), b"to Bob");
}

// ---------------------------------------------------------------------------
// Ed25519: malleated and forged signatures, weak identity keys
// ---------------------------------------------------------------------------

/// Bob's genuine bundle (wire bytes) and identity.
fn genuine_bundle(seed: u8) -> (IdentityKeyPair, PreKeyStore, Vec<u8>) {
    let mut rng = rng(seed);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::generate(&mut rng, &bob, BOB_DEVICE);
    store.generate_one_time_prekeys(&mut rng, 1).unwrap();
    let wire = PreKeyBundle::from_store(bob.public_key(), &store, Some(1)).encode();
    assert!(PreKeyBundle::decode(&wire).unwrap().verify().is_ok());
    (bob, store, wire)
}

fn bundle_verdict(wire: &[u8]) -> Result<(), Error> {
    PreKeyBundle::decode(wire)?.verify().map(|_| ())
}

#[test]
fn signature_with_s_plus_ell_is_rejected() {
    let (_, _, wire) = genuine_bundle(10);
    let s: [u8; 32] = wire[BUNDLE_SIGNATURE_AT + 32..BUNDLE_SIGNATURE_AT + 64]
        .try_into()
        .unwrap();
    // S + ℓ is the same scalar mod ℓ, so a verifier that reduces S would accept it.
    let s_plus_ell = add_le(&s, &ELL);
    let forged = patched(&wire, BUNDLE_SIGNATURE_AT + 32, &s_plus_ell);
    assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    // S = ℓ exactly (≡ 0 mod ℓ) and S = 2^256 − 1 are out of range too.
    for bad_s in [ELL, [0xff; 32]] {
        let forged = patched(&wire, BUNDLE_SIGNATURE_AT + 32, &bad_s);
        assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    }
}

#[test]
fn signature_with_any_flipped_bit_is_rejected() {
    let (_, _, wire) = genuine_bundle(11);
    for bit in 0..512 {
        let mut forged = wire.clone();
        forged[BUNDLE_SIGNATURE_AT + bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            bundle_verdict(&forged),
            Err(Error::InvalidSignature),
            "bit {bit} of {}",
            if bit < 256 { "R" } else { "S" }
        );
    }
}

#[test]
fn signature_with_small_order_or_non_canonical_r_is_rejected() {
    let (_, _, wire) = genuine_bundle(12);
    let s = wire[BUNDLE_SIGNATURE_AT + 32..BUNDLE_SIGNATURE_AT + 64].to_vec();
    for (name, r) in SMALL_ORDER_ED25519
        .iter()
        .chain(NON_CANONICAL_SMALL_ORDER_ED25519.iter())
        .chain(NON_CANONICAL_LARGE_ORDER_ED25519.iter())
    {
        for s in [s.as_slice(), &[0u8; 32][..]] {
            let mut forged = patched(&wire, BUNDLE_SIGNATURE_AT, r);
            forged[BUNDLE_SIGNATURE_AT + 32..BUNDLE_SIGNATURE_AT + 64].copy_from_slice(s);
            assert_eq!(
                bundle_verdict(&forged),
                Err(Error::InvalidSignature),
                "R = {name}"
            );
        }
    }
    // The all-zero signature.
    let forged = patched(&wire, BUNDLE_SIGNATURE_AT, &[0u8; 64]);
    assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
}

/// Every decoder that takes an identity key rejects `key`.
fn assert_identity_key_rejected(name: &str, key: &[u8; 32]) {
    let (_, _, bundle_wire) = genuine_bundle(13);
    let h = handshake(13);
    {
        assert_eq!(
            IdentityKey::from_bytes(key),
            Err(DecodeError::InvalidIdentityKey),
            "{name}"
        );
        let forged = patched(&bundle_wire, BUNDLE_IDENTITY_AT, key);
        assert_eq!(
            PreKeyBundle::decode(&forged),
            Err(DecodeError::InvalidIdentityKey),
            "bundle, {name}"
        );
        let forged = patched(&h.first, PREKEY_IDENTITY_AT, key);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(DecodeError::InvalidIdentityKey),
            "prekey message, {name}"
        );
        assert_eq!(
            Message::parse(&forged).err(),
            Some(DecodeError::InvalidIdentityKey),
            "prekey message via Message::parse, {name}"
        );
        // Through the protocol's verification entry point, with a signature
        // that is otherwise well-formed.
        assert_eq!(
            hazmat::ed25519_verify(key, b"m", &[0x11; 64]),
            Err(Error::Decode(DecodeError::InvalidIdentityKey)),
            "ed25519_verify, {name}"
        );
    }
}

#[test]
fn small_order_identity_key_is_rejected_at_decode() {
    for (name, key) in SMALL_ORDER_ED25519
        .iter()
        .chain(NON_CANONICAL_SMALL_ORDER_ED25519.iter())
    {
        assert_identity_key_rejected(name, key);
    }
}

#[test]
fn non_canonical_identity_key_is_rejected_at_decode() {
    for (name, key) in &NON_CANONICAL_LARGE_ORDER_ED25519 {
        assert_identity_key_rejected(name, key);
    }
}

#[test]
fn universal_forgery_under_small_order_identity_key_is_rejected() {
    // With A = R = the identity point and S = 0, the cofactorless equation
    // [S]B = R + [k]A holds for every message: a verifier that accepted weak
    // keys would accept this "signature" on anything.
    let identity_point = SMALL_ORDER_ED25519[0].1;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity_point);
    for message in [
        &b""[..],
        &b"any message"[..],
        &signed_encoding(&[9; 32])[..],
    ] {
        assert_eq!(
            hazmat::ed25519_verify(&identity_point, message, &signature),
            Err(Error::Decode(DecodeError::InvalidIdentityKey))
        );
    }
    // In a bundle it never gets past decoding.
    let mut rng = rng(14);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mut wire = bundle_with(&bob, &bob, random_public_key(&mut rng), None).encode();
    wire[BUNDLE_IDENTITY_AT..BUNDLE_IDENTITY_AT + 32].copy_from_slice(&identity_point);
    wire[BUNDLE_SIGNATURE_AT..BUNDLE_SIGNATURE_AT + 64].copy_from_slice(&signature);
    assert_eq!(
        PreKeyBundle::decode(&wire),
        Err(DecodeError::InvalidIdentityKey)
    );
}

#[test]
fn identity_key_substituted_in_bundle_is_invalid_signature() {
    let (bob, store, wire) = genuine_bundle(15);
    let mallory = IdentityKeyPair::from_seed(&[0x4d; 32]);
    // Mallory's key with Bob's signature, on the wire...
    let forged = patched(&wire, BUNDLE_IDENTITY_AT, &mallory.public_key().to_bytes());
    assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    // ...and through the constructor; verify_for(mallory) passes the identity
    // comparison and then fails on the signature.
    let spk = store.signed_prekey();
    let substituted = PreKeyBundle::new(
        *mallory.public_key(),
        BOB_DEVICE,
        spk.id(),
        *spk.public_key(),
        *spk.signature(),
        None,
    );
    assert_eq!(
        substituted.clone().verify().err(),
        Some(Error::InvalidSignature)
    );
    assert_eq!(
        substituted.verify_for(mallory.public_key()).err(),
        Some(Error::InvalidSignature)
    );
    // Bob's identity with another of Bob's keys' bytes moved around (the
    // one-time prekey presented as the signed prekey) is not signed either.
    let one_time = *store.find_one_time_prekey(1).unwrap().public_key();
    let swapped = PreKeyBundle::new(
        *bob.public_key(),
        BOB_DEVICE,
        spk.id(),
        one_time,
        *spk.signature(),
        Some((1, *spk.public_key())),
    );
    assert_eq!(swapped.verify().err(), Some(Error::InvalidSignature));
}

#[test]
fn bundle_verified_for_wrong_identity_is_identity_mismatch() {
    let (bob, _, wire) = genuine_bundle(16);
    let mallory = IdentityKeyPair::from_seed(&[0x4d; 32]);
    assert_eq!(
        PreKeyBundle::decode(&wire)
            .unwrap()
            .verify_for(mallory.public_key())
            .err(),
        Some(Error::IdentityMismatch)
    );
    assert!(
        PreKeyBundle::decode(&wire)
            .unwrap()
            .verify_for(bob.public_key())
            .is_ok()
    );
}

#[test]
fn signed_prekey_signed_by_wrong_identity_is_invalid_signature() {
    let mut rng = rng(17);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mallory = IdentityKeyPair::generate(&mut rng);
    let spk = random_public_key(&mut rng);
    let forged = bundle_with(&bob, &mallory, spk, None);
    assert_eq!(forged.clone().verify().err(), Some(Error::InvalidSignature));
    assert_eq!(
        forged.verify_for(bob.public_key()).err(),
        Some(Error::InvalidSignature)
    );
    // Signed by Bob, but without the 0x05 key-type byte (no domain separation).
    let undomained = PreKeyBundle::new(
        *bob.public_key(),
        BOB_DEVICE,
        1,
        PublicKey::from_bytes(spk).unwrap(),
        bob.sign(&spk),
        None,
    );
    assert_eq!(undomained.verify().err(), Some(Error::InvalidSignature));
    // Signed by Bob with another key-type byte.
    let mut other_type = signed_encoding(&spk);
    other_type[0] = 0x06;
    let wrong_type = PreKeyBundle::new(
        *bob.public_key(),
        BOB_DEVICE,
        1,
        PublicKey::from_bytes(spk).unwrap(),
        bob.sign(&other_type),
        None,
    );
    assert_eq!(wrong_type.verify().err(), Some(Error::InvalidSignature));
}

// ---------------------------------------------------------------------------
// Identity misbinding / unknown key share
// ---------------------------------------------------------------------------

#[test]
fn prekey_message_relabelled_with_mallorys_identity_is_rejected() {
    let mut h = handshake(20);
    let relabelled = patched(
        &h.first,
        PREKEY_IDENTITY_AT,
        &h.mallory_id.public_key().to_bytes(),
    );
    // DH1 and AD both change: Bob cannot be made to believe Mallory sent it.
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &relabelled,
        None,
        Error::DecryptionFailed,
    );
    // Bob's store is unchanged, so Alice's genuine message is still accepted
    // and bound to Alice.
    let (bob, plaintext) = Responder::new(&h.bob_device, &mut h.store)
        .accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&h.first).unwrap(),
        )
        .unwrap();
    assert_eq!(plaintext, b"first message from Alice");
    assert_eq!(bob.remote_identity(), h.alice_device.identity.public_key());
}

#[test]
fn relabelled_repeat_of_prekey_message_is_wrong_session() {
    let mut p = pair(21);
    // Bob's session recognises Alice's prekey message as a repeat; the same
    // bytes under Mallory's name are not this session's.
    let relabelled = patched(
        &p.first,
        PREKEY_IDENTITY_AT,
        &p.mallory_id.public_key().to_bytes(),
    );
    assert!(
        !p.bob
            .owns_prekey_message(&PreKeyMessage::parse(&relabelled).unwrap())
    );
    assert_rejected(&mut p.bob, &mut p.rng, &relabelled, Error::WrongSession);
    // And a fresh accept of it fails. Protocol v2: the store remembers the base
    // key of the accepted message, and the relabelled copy has the same one
    // (v1 found the one-time prekey gone: `UnknownOneTimePreKey { id: 1 }`).
    assert_accept_rejected(
        &mut p.rng,
        &p.bob_device,
        &mut p.store,
        &p.alice_device.address(),
        &relabelled,
        None,
        Error::RepeatedPreKeyMessage {
            base_key: *p.bob.base_key(),
        },
    );
}

#[test]
fn prekey_message_relabelled_with_another_sender_address_is_rejected() {
    // Protocol v2 binds both device addresses into the associated data: the
    // transport's claim of who sent the message is authenticated too.
    let mut h = handshake(29);
    let mallory = DeviceAddress::new(AccountId::new(b"mallory").unwrap(), 1);
    let alice_other_device = DeviceAddress::new(h.alice_device.account, 2);
    for from in [mallory, alice_other_device] {
        assert_accept_rejected(
            &mut h.rng,
            &h.bob_device,
            &mut h.store,
            &from,
            &h.first,
            None,
            Error::DecryptionFailed,
        );
    }
    // Nor does a device of Bob's account other than the one Alice addressed
    // (same identity key, same prekeys): the responder refuses a prekey store
    // of another device id before any cryptography, as a setup mistake.
    let mut other_bob = LocalDevice::decode(&h.bob_device.encode()).unwrap();
    other_bob.device_id = BOB_DEVICE + 1;
    assert_accept_rejected(
        &mut h.rng,
        &other_bob,
        &mut h.store,
        &h.alice_device.address(),
        &h.first,
        None,
        Error::InvalidConfig {
            reason: "the prekey store belongs to another device id than the local device",
        },
    );
    // The genuine delivery still works, and the session names both devices.
    let (bob, _) = Responder::new(&h.bob_device, &mut h.store)
        .accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&h.first).unwrap(),
        )
        .unwrap();
    assert_eq!(bob.remote_address(), &h.alice_device.address());
    assert_eq!(bob.local_address(), &h.bob_device.address());
    assert_eq!(h.alice.remote_address(), &h.bob_device.address());
}

#[test]
fn responder_expecting_another_initiator_is_identity_mismatch() {
    let mut h = handshake(22);
    let mallory = *h.mallory_id.public_key();
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &h.first,
        Some(&mallory),
        Error::IdentityMismatch,
    );
    // Relabelled to match the expectation: passes the check, fails to decrypt.
    let relabelled = patched(&h.first, PREKEY_IDENTITY_AT, &mallory.to_bytes());
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &relabelled,
        Some(&mallory),
        Error::DecryptionFailed,
    );
    let alice = *h.alice_device.identity.public_key();
    let (session, _) = Responder::new(&h.bob_device, &mut h.store)
        .expect_initiator(&alice)
        .accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&h.first).unwrap(),
        )
        .unwrap();
    assert_eq!(session.remote_identity(), &alice);
}

#[test]
fn bobs_prekey_signed_under_mallorys_identity_is_caught() {
    // Mallory republishes Bob's signed prekey, signed with her own identity.
    let mut h = handshake(23);
    let spk = *h.store.signed_prekey().public_key().as_bytes();
    let forged = bundle_with(&h.mallory_id, &h.mallory_id, spk, None);
    // Alice, who knows she wants Bob, catches it.
    assert_eq!(
        forged
            .clone()
            .verify_for(h.bob_device.identity.public_key())
            .err(),
        Some(Error::IdentityMismatch)
    );
    // An Alice who only checks self-consistency gets a session "with
    // Mallory" whose messages Bob rejects (DH2 and AD name Mallory).
    let verified = forged.verify().unwrap();
    let mallory_account = AccountId::new(b"mallory").unwrap();
    let mut alice =
        Session::initiate(&mut h.rng, &h.alice_device, &mallory_account, &verified).unwrap();
    let wire = alice.encrypt(&mut h.rng, b"meant for Mallory").unwrap();
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &wire,
        None,
        Error::DecryptionFailed,
    );
}

// ---------------------------------------------------------------------------
// Tampered prekey-message fields
// ---------------------------------------------------------------------------

#[test]
fn one_time_prekey_stripped_from_prekey_message_is_rejected() {
    let mut h = handshake(24);
    // Flag 0 and id 0: a canonical "no one-time prekey" message. DH4 is then
    // missing from Bob's SK, so the embedded message does not authenticate.
    let mut stripped = patched(&h.first, PREKEY_FLAG_AT, &[0]);
    stripped[PREKEY_ONE_TIME_ID_AT..PREKEY_ONE_TIME_ID_AT + 4].copy_from_slice(&[0; 4]);
    assert_eq!(
        PreKeyMessage::parse(&stripped)
            .unwrap()
            .one_time_prekey_id(),
        None
    );
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &stripped,
        None,
        Error::DecryptionFailed,
    );
    assert_eq!(h.store.one_time_prekey_count(), 3);
}

#[test]
fn one_time_prekey_id_swapped_in_prekey_message_is_rejected() {
    let mut h = handshake(25);
    // Another one-time prekey Bob really holds: it must not be burnt.
    let other = h.one_time_ids[1];
    let swapped = patched(&h.first, PREKEY_ONE_TIME_ID_AT, &other.to_be_bytes());
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &swapped,
        None,
        Error::DecryptionFailed,
    );
    assert!(h.store.find_one_time_prekey(other).is_some());
    // An id Bob never issued.
    let unknown = patched(&h.first, PREKEY_ONE_TIME_ID_AT, &999u32.to_be_bytes());
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &unknown,
        None,
        Error::UnknownOneTimePreKey { id: 999 },
    );
}

#[test]
fn unknown_signed_prekey_id_in_prekey_message_is_rejected() {
    let mut h = handshake(26);
    for id in [0u32, 2, u32::MAX] {
        let forged = patched(&h.first, PREKEY_SIGNED_ID_AT, &id.to_be_bytes());
        assert_accept_rejected(
            &mut h.rng,
            &h.bob_device,
            &mut h.store,
            &h.alice_device.address(),
            &forged,
            None,
            Error::UnknownSignedPreKey { id },
        );
    }
}

#[test]
fn base_key_replaced_in_prekey_message_is_rejected() {
    let mut h = handshake(27);
    let other = random_public_key(&mut h.rng);
    let forged = patched(&h.first, PREKEY_BASE_KEY_AT, &other);
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &forged,
        None,
        Error::DecryptionFailed,
    );
}

#[test]
fn prekey_message_of_another_session_is_wrong_session() {
    let mut p = pair(28);
    // A second session from Alice to Bob (new base key) is not Bob's session.
    let bundle = PreKeyBundle::from_store(p.bob_device.identity.public_key(), &p.store, None)
        .verify()
        .unwrap();
    let mut second =
        Session::initiate(&mut p.rng, &p.alice_device, &p.bob_device.account, &bundle).unwrap();
    let wire = second.encrypt(&mut p.rng, b"second session").unwrap();
    assert_rejected(&mut p.bob, &mut p.rng, &wire, Error::WrongSession);
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[test]
fn replay_on_current_chain_is_duplicate() {
    let mut p = pair(30);
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    let a1 = p.alice.encrypt(&mut p.rng, b"a1").unwrap();
    assert_eq!(p.bob.decrypt(&mut p.rng, &a0).unwrap(), b"a0");
    assert_eq!(p.bob.decrypt(&mut p.rng, &a1).unwrap(), b"a1");
    assert_rejected(&mut p.bob, &mut p.rng, &a1, Error::DuplicateMessage);
    assert_rejected(&mut p.bob, &mut p.rng, &a0, Error::DuplicateMessage);
    // Alice's side: Bob's reply again.
    let reply = p.reply.clone();
    assert_rejected(&mut p.alice, &mut p.rng, &reply, Error::DuplicateMessage);
}

#[test]
fn replay_of_skipped_message_is_duplicate() {
    let mut p = pair(31);
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    let a1 = p.alice.encrypt(&mut p.rng, b"a1").unwrap();
    assert_eq!(p.bob.decrypt(&mut p.rng, &a1).unwrap(), b"a1");
    assert_eq!(p.bob.skipped_key_count(), 1);
    assert_eq!(p.bob.decrypt(&mut p.rng, &a0).unwrap(), b"a0");
    assert_eq!(p.bob.skipped_key_count(), 0);
    assert_rejected(&mut p.bob, &mut p.rng, &a0, Error::DuplicateMessage);
}

#[test]
fn replay_on_old_chain_is_duplicate() {
    let mut p = pair(32);
    // Alice's chain A2.
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    assert_eq!(p.bob.decrypt(&mut p.rng, &a0).unwrap(), b"a0");
    // Bob replies on B2, Alice answers on A3; Bob now remembers A1 and A2.
    let b = p.bob.encrypt(&mut p.rng, b"b").unwrap();
    assert_eq!(p.alice.decrypt(&mut p.rng, &b).unwrap(), b"b");
    let a = p.alice.encrypt(&mut p.rng, b"a").unwrap();
    assert_eq!(p.bob.decrypt(&mut p.rng, &a).unwrap(), b"a");
    assert_rejected(&mut p.bob, &mut p.rng, &a0, Error::DuplicateMessage);
    // The very first message (chain A1), as a prekey message and stripped to
    // its ratchet message.
    let first = p.first.clone();
    assert_rejected(&mut p.bob, &mut p.rng, &first, Error::DuplicateMessage);
    assert_rejected(
        &mut p.bob,
        &mut p.rng,
        &first[PREKEY_EMBEDDED_AT..],
        Error::DuplicateMessage,
    );
    // Alice: Bob's first reply (chain B1, now old).
    let b2 = p.bob.encrypt(&mut p.rng, b"b2").unwrap();
    assert_eq!(p.alice.decrypt(&mut p.rng, &b2).unwrap(), b"b2");
    let reply = p.reply.clone();
    assert_rejected(&mut p.alice, &mut p.rng, &reply, Error::DuplicateMessage);
    assert_rejected(&mut p.alice, &mut p.rng, &b, Error::DuplicateMessage);
}

#[test]
fn replay_of_consumed_prekey_message_to_responder_is_repeated_prekey_message() {
    // Protocol v2: the prekey store remembers the base key of every accepted
    // prekey message, so a replay to the Responder is named as such (v1 found
    // its one-time prekey spent: `UnknownOneTimePreKey { id: 1 }`).
    let mut p = pair(33);
    let first = p.first.clone();
    assert!(p.store.has_accepted_base_key(p.bob.base_key()));
    assert_eq!(p.store.accepted_base_key_count(), 1);
    assert_accept_rejected(
        &mut p.rng,
        &p.bob_device,
        &mut p.store,
        &p.alice_device.address(),
        &first,
        None,
        Error::RepeatedPreKeyMessage {
            base_key: *p.bob.base_key(),
        },
    );
    // Routed to the existing session instead, it is a repeat already seen.
    assert_rejected(&mut p.bob, &mut p.rng, &first, Error::DuplicateMessage);
}

#[test]
fn replay_of_prekey_message_without_one_time_prekey_is_caught_by_session() {
    // Without a one-time prekey, X3DH itself cannot stop a replay to a fresh
    // Responder. Protocol v2 closes that gap in the prekey store, which
    // remembers the base keys it accepted: the replay given to the Responder
    // is `RepeatedPreKeyMessage` (v1 made a second session from it). The
    // application routes repeats to the session (SPEC.md §5.6 step 1), which
    // recognises it and reports a duplicate.
    let mut rng = rng(34);
    let alice_device = device(&mut rng, b"alice", 1);
    let bob_device = device(&mut rng, b"bob", BOB_DEVICE);
    let mut store = PreKeyStore::generate(&mut rng, &bob_device.identity, BOB_DEVICE);
    let bundle = PreKeyBundle::from_store(bob_device.identity.public_key(), &store, None)
        .verify()
        .unwrap();
    let mut alice =
        Session::initiate(&mut rng, &alice_device, &bob_device.account, &bundle).unwrap();
    let first = alice.encrypt(&mut rng, b"hi").unwrap();
    let (mut bob, _) = Responder::new(&bob_device, &mut store)
        .accept(
            &mut rng,
            &alice_device.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    assert!(bob.owns_prekey_message(&PreKeyMessage::parse(&first).unwrap()));
    assert_accept_rejected(
        &mut rng,
        &bob_device,
        &mut store,
        &alice_device.address(),
        &first,
        None,
        Error::RepeatedPreKeyMessage {
            base_key: *bob.base_key(),
        },
    );
    assert_rejected(&mut bob, &mut rng, &first, Error::DuplicateMessage);
}

// ---------------------------------------------------------------------------
// Reflection
// ---------------------------------------------------------------------------

#[test]
fn reflected_ratchet_message_is_rejected_by_its_sender() {
    let mut p = pair(40);
    let to_bob = p.alice.encrypt(&mut p.rng, b"to Bob").unwrap();
    assert_rejected(&mut p.alice, &mut p.rng, &to_bob, Error::DecryptionFailed);
    let to_alice = p.bob.encrypt(&mut p.rng, b"to Alice").unwrap();
    assert_rejected(&mut p.bob, &mut p.rng, &to_alice, Error::DecryptionFailed);
    // Nothing was consumed: both still reach their intended recipient.
    assert_eq!(p.bob.decrypt(&mut p.rng, &to_bob).unwrap(), b"to Bob");
    assert_eq!(p.alice.decrypt(&mut p.rng, &to_alice).unwrap(), b"to Alice");
}

#[test]
fn reflected_prekey_message_is_rejected_by_its_sender() {
    let mut h = handshake(41);
    let first = h.first.clone();
    // To Alice's session: an initiator owns no prekey message.
    assert_rejected(&mut h.alice, &mut h.rng, &first, Error::WrongSession);
    // Its embedded ratchet message, to Alice's session (no receiving chain yet).
    assert_rejected(
        &mut h.alice,
        &mut h.rng,
        &first[PREKEY_EMBEDDED_AT..],
        Error::DecryptionFailed,
    );
    // To Alice's own Responder, whose prekey ids (signed 1, one-time 1) collide
    // with Bob's: the handshake runs with Alice's keys and fails to authenticate.
    // The transport claims it came from Bob's device, or from Alice's own.
    let mut alice_store = PreKeyStore::generate(&mut h.rng, &h.alice_device.identity, 1);
    alice_store
        .generate_one_time_prekeys(&mut h.rng, 1)
        .unwrap();
    for from in [h.bob_device.address(), h.alice_device.address()] {
        assert_accept_rejected(
            &mut h.rng,
            &h.alice_device,
            &mut alice_store,
            &from,
            &first,
            None,
            Error::DecryptionFailed,
        );
    }
}

// ---------------------------------------------------------------------------
// Skipped-key exhaustion and counter limits
// ---------------------------------------------------------------------------

#[test]
fn message_number_u32_max_is_counter_exhausted() {
    let mut p = pair(50);
    let from_alice = p.alice.encrypt(&mut p.rng, b"x").unwrap();
    let from_bob = p.bob.encrypt(&mut p.rng, b"y").unwrap();
    let fresh = random_public_key(&mut p.rng);
    // Current chain (Alice receives on B1; Bob's `from_bob` is on B1 too).
    let forged = forged_header(&from_bob, 0, None, None, Some(u32::MAX));
    assert_rejected(&mut p.alice, &mut p.rng, &forged, Error::CounterExhausted);
    // New ratchet key, with and without a huge PN.
    for pn in [0, 1, u32::MAX] {
        let forged = forged_header(&from_alice, 0, Some(fresh), Some(pn), Some(u32::MAX));
        assert_rejected(&mut p.bob, &mut p.rng, &forged, Error::CounterExhausted);
    }
    // Embedded in a prekey message.
    let mut h = handshake(51);
    let forged = forged_header(&h.first, PREKEY_EMBEDDED_AT, None, None, Some(u32::MAX));
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &forged,
        None,
        Error::CounterExhausted,
    );
}

#[test]
fn message_number_u32_max_on_old_chain_is_counter_exhausted() {
    // SPEC.md §5.7 step 1 comes before the duplicate classification of step 3.
    let mut p = pair(52);
    // Bob moves from chain A1 to A2: A1 is now a previous ratchet key.
    let a = p.alice.encrypt(&mut p.rng, b"a").unwrap();
    assert_eq!(p.bob.decrypt(&mut p.rng, &a).unwrap(), b"a");
    let first = p.first.clone();
    let forged = forged_header(&first[PREKEY_EMBEDDED_AT..], 0, None, None, Some(u32::MAX));
    assert_rejected(&mut p.bob, &mut p.rng, &forged, Error::CounterExhausted);
}

#[test]
fn message_number_u32_max_minus_one_is_too_many_skipped() {
    let mut p = pair(53);
    let from_alice = p.alice.encrypt(&mut p.rng, b"x").unwrap();
    let from_bob = p.bob.encrypt(&mut p.rng, b"y").unwrap();
    let n = u32::MAX - 1;
    // Current chain: Alice's Nr on B1 is 1.
    let forged = forged_header(&from_bob, 0, None, None, Some(n));
    assert_rejected(
        &mut p.alice,
        &mut p.rng,
        &forged,
        Error::TooManySkippedMessages {
            requested: u64::from(n) - 1,
            max: DEFAULT_MAX_SKIP,
        },
    );
    // New ratchet key (Alice's real next chain A2), PN within Bob's chain A1.
    let forged = forged_header(&from_alice, 0, None, Some(1), Some(n));
    assert_rejected(
        &mut p.bob,
        &mut p.rng,
        &forged,
        Error::TooManySkippedMessages {
            requested: u64::from(n),
            max: DEFAULT_MAX_SKIP,
        },
    );
    // Both: PN = 2^32 − 1 on the old chain (Nr = 1) and N = 2^32 − 2; the sum
    // overflows u32 and must not wrap.
    let forged = forged_header(&from_alice, 0, None, Some(u32::MAX), Some(n));
    assert_rejected(
        &mut p.bob,
        &mut p.rng,
        &forged,
        Error::TooManySkippedMessages {
            requested: u64::from(u32::MAX - 1) + u64::from(n),
            max: DEFAULT_MAX_SKIP,
        },
    );
    // Prekey message.
    let mut h = handshake(54);
    let forged = forged_header(&h.first, PREKEY_EMBEDDED_AT, None, None, Some(n));
    assert_accept_rejected(
        &mut h.rng,
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &forged,
        None,
        Error::TooManySkippedMessages {
            requested: u64::from(n),
            max: DEFAULT_MAX_SKIP,
        },
    );
}

#[test]
fn huge_previous_chain_length_on_new_ratchet_key_is_too_many_skipped() {
    let mut p = pair(55);
    let from_alice = p.alice.encrypt(&mut p.rng, b"x").unwrap();
    let fresh = random_public_key(&mut p.rng);
    // Bob receives on A1 with Nr = 1: gap_old = PN − 1.
    for (pn, n) in [(u32::MAX, 0), (1002, 0), (1001, 1), (2, 1000), (500, 502)] {
        for key in [None, Some(fresh)] {
            let forged = forged_header(&from_alice, 0, key, Some(pn), Some(n));
            assert_rejected(
                &mut p.bob,
                &mut p.rng,
                &forged,
                Error::TooManySkippedMessages {
                    requested: u64::from(pn - 1) + u64::from(n),
                    max: DEFAULT_MAX_SKIP,
                },
            );
        }
    }
    // The genuine message (N = 0, PN = 1) still decrypts afterwards.
    assert_eq!(p.bob.decrypt(&mut p.rng, &from_alice).unwrap(), b"x");
}

#[test]
fn forged_out_of_bounds_headers_derive_nothing_and_are_cheap() {
    let mut p = pair(56);
    let from_alice = p.alice.encrypt(&mut p.rng, b"x").unwrap();
    let from_bob = p.bob.encrypt(&mut p.rng, b"y").unwrap();
    let fresh = random_public_key(&mut p.rng);
    let forgeries: Vec<(bool, Vec<u8>)> = vec![
        (
            true,
            forged_header(&from_bob, 0, None, None, Some(u32::MAX)),
        ),
        (
            true,
            forged_header(&from_bob, 0, None, None, Some(u32::MAX - 1)),
        ),
        (true, forged_header(&from_bob, 0, None, None, Some(1_002))),
        (
            false,
            forged_header(&from_alice, 0, Some(fresh), Some(u32::MAX), Some(0)),
        ),
        (
            false,
            forged_header(&from_alice, 0, Some(fresh), Some(0), Some(u32::MAX - 1)),
        ),
        (
            false,
            forged_header(&from_alice, 0, None, Some(u32::MAX), Some(u32::MAX - 1)),
        ),
    ];
    let alice_before = p.alice.encode().to_vec();
    let bob_before = p.bob.encode().to_vec();
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        for (to_alice, wire) in &forgeries {
            let session = if *to_alice { &mut p.alice } else { &mut p.bob };
            let error = session.decrypt(&mut p.rng, wire).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::CounterExhausted | Error::TooManySkippedMessages { .. }
                ),
                "{error:?}"
            );
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(*p.alice.encode(), alice_before);
    assert_eq!(*p.bob.encode(), bob_before);
    assert_eq!(p.alice.skipped_key_count(), 0);
    assert_eq!(p.bob.skipped_key_count(), 0);
    // Rejected before any key derivation: 1 200 rejections take microseconds
    // each. Deriving even 2^20 keys for one of them would blow this budget.
    assert!(
        elapsed < Duration::from_secs(2),
        "{} forged headers took {elapsed:?}",
        rounds * forgeries.len()
    );
}

#[test]
fn forged_in_bounds_header_keeps_no_derived_keys() {
    let mut p = pair(57);
    let from_alice = p.alice.encrypt(&mut p.rng, b"x").unwrap();
    let from_bob = p.bob.encrypt(&mut p.rng, b"y").unwrap();
    let fresh = random_public_key(&mut p.rng);
    // Exactly MAX_SKIP keys to derive (Alice's Nr on B1 is 1; Bob's gap_old
    // is PN − 1): the receiver derives them, the tag fails, and all of them
    // are discarded.
    let forged = forged_header(&from_bob, 0, None, None, Some(DEFAULT_MAX_SKIP + 1));
    assert_rejected(&mut p.alice, &mut p.rng, &forged, Error::DecryptionFailed);
    let forged = forged_header(&from_alice, 0, Some(fresh), Some(500), Some(501));
    assert_rejected(&mut p.bob, &mut p.rng, &forged, Error::DecryptionFailed);
    // One more is out of bounds.
    let forged = forged_header(&from_bob, 0, None, None, Some(DEFAULT_MAX_SKIP + 2));
    assert_rejected(
        &mut p.alice,
        &mut p.rng,
        &forged,
        Error::TooManySkippedMessages {
            requested: u64::from(DEFAULT_MAX_SKIP) + 1,
            max: DEFAULT_MAX_SKIP,
        },
    );
    assert_eq!(p.alice.skipped_key_count(), 0);
    assert_eq!(p.bob.skipped_key_count(), 0);
}

#[test]
fn any_bit_flip_in_a_ratchet_message_is_rejected_without_state_change() {
    let mut p = pair(58);
    let wire = p.bob.encrypt(&mut p.rng, b"authenticated").unwrap();
    for bit in 0..wire.len() * 8 {
        let mut forged = wire.clone();
        forged[bit / 8] ^= 1 << (bit % 8);
        let before = p.alice.encode().to_vec();
        let error = p.alice.decrypt(&mut p.rng, &forged).unwrap_err();
        let expected = match bit / 8 {
            // The tag: flipping bit 0 of 0x04 gives the prekey tag 0x05, and
            // the bytes are then parsed (and refused) as a prekey message.
            0 if forged[0] == PREKEY_TAG => {
                Error::Decode(PreKeyMessage::parse(&forged).unwrap_err())
            }
            0 => Error::Decode(DecodeError::UnknownFormat {
                expected: RATCHET_TAG,
                found: forged[0],
            }),
            // Bit 255 of the ratchet key: a non-canonical encoding (v2).
            32 if bit % 8 == 7 => Error::Decode(non_canonical("ratchet key")),
            // Ratchet key: a new chain whose keys do not match.
            1..33 => Error::DecryptionFailed,
            // PN is authenticated (and ignored on the current chain).
            33..37 => Error::DecryptionFailed,
            // N: within bounds the keys differ; beyond, too many skipped.
            37..41 => {
                let n = u32::from_be_bytes(forged[N_AT..N_AT + 4].try_into().unwrap());
                // Alice's Nr on this chain is 1 (`wire` is Bob's message 1).
                if n == 0 {
                    Error::DuplicateMessage
                } else if n == u32::MAX {
                    Error::CounterExhausted
                } else if n - 1 > DEFAULT_MAX_SKIP {
                    Error::TooManySkippedMessages {
                        requested: u64::from(n - 1),
                        max: DEFAULT_MAX_SKIP,
                    }
                } else {
                    Error::DecryptionFailed
                }
            }
            // The nonce (41..53, v2), the ciphertext and the tag.
            _ => Error::DecryptionFailed,
        };
        assert_eq!(error, expected, "bit {bit}");
        assert_eq!(*p.alice.encode(), before, "bit {bit}");
    }
    assert_eq!(
        p.alice.decrypt(&mut p.rng, &wire).unwrap(),
        b"authenticated"
    );
}

// ---------------------------------------------------------------------------
// Truncation and trailing garbage
// ---------------------------------------------------------------------------

fn assert_truncated<T: core::fmt::Debug>(result: Result<T, DecodeError>, what: &str, len: usize) {
    assert!(
        matches!(result, Err(DecodeError::Truncated { .. })),
        "{what} truncated to {len}: {result:?}"
    );
}

#[test]
fn truncated_or_padded_bundle_is_a_decode_error() {
    let (bob, store, with_one_time) = genuine_bundle(60);
    let without = PreKeyBundle::from_store(bob.public_key(), &store, None).encode();
    for wire in [with_one_time, without] {
        for len in 0..wire.len() {
            assert_truncated(PreKeyBundle::decode(&wire[..len]), "bundle", len);
        }
        for extra in 1..=3 {
            let mut padded = wire.clone();
            padded.extend(std::iter::repeat_n(0u8, extra));
            assert_eq!(
                PreKeyBundle::decode(&padded),
                Err(DecodeError::TrailingBytes { extra })
            );
        }
    }
}

#[test]
fn truncated_or_padded_prekey_message_is_rejected() {
    let mut h = handshake(61);
    let wire = h.first.clone();
    let min = PREKEY_PREFIX_LEN + RATCHET_MESSAGE_OVERHEAD;
    for len in 0..min {
        assert_truncated(PreKeyMessage::parse(&wire[..len]), "prekey message", len);
        assert_truncated(
            Message::parse(&wire[..len]).map(|_| ()),
            "prekey message (Message::parse)",
            len,
        );
    }
    // Long enough to parse: the AEAD tag is then whatever 16 bytes end the
    // truncated input, and the accept fails without touching the store.
    for len in min..wire.len() {
        assert_accept_rejected(
            &mut h.rng,
            &h.bob_device,
            &mut h.store,
            &h.alice_device.address(),
            &wire[..len],
            None,
            Error::DecryptionFailed,
        );
    }
    // Trailing garbage becomes part of the ciphertext: it does not authenticate.
    for garbage in [&[0u8][..], &[0xff; 16], &wire[wire.len() - 16..]] {
        let mut padded = wire.clone();
        padded.extend_from_slice(garbage);
        assert_accept_rejected(
            &mut h.rng,
            &h.bob_device,
            &mut h.store,
            &h.alice_device.address(),
            &padded,
            None,
            Error::DecryptionFailed,
        );
    }
    // The same to an existing session, through the repeat path.
    let (mut bob, _) = Responder::new(&h.bob_device, &mut h.store)
        .accept(
            &mut h.rng,
            &h.alice_device.address(),
            &PreKeyMessage::parse(&wire).unwrap(),
        )
        .unwrap();
    let repeat = h.alice.encrypt(&mut h.rng, b"repeat").unwrap();
    for len in min..repeat.len() {
        assert_rejected(
            &mut bob,
            &mut h.rng,
            &repeat[..len],
            Error::DecryptionFailed,
        );
    }
    let mut padded = repeat.clone();
    padded.push(0);
    assert_rejected(&mut bob, &mut h.rng, &padded, Error::DecryptionFailed);
    assert_eq!(bob.decrypt(&mut h.rng, &repeat).unwrap(), b"repeat");
}

#[test]
fn truncated_or_padded_ratchet_message_is_rejected() {
    let mut p = pair(62);
    let wire = p
        .bob
        .encrypt(&mut p.rng, b"a ratchet message of some length")
        .unwrap();
    for len in 0..RATCHET_MESSAGE_OVERHEAD {
        assert_truncated(RatchetMessage::parse(&wire[..len]), "ratchet message", len);
        let before = p.alice.encode().to_vec();
        let error = p.alice.decrypt(&mut p.rng, &wire[..len]).unwrap_err();
        assert!(
            matches!(error, Error::Decode(DecodeError::Truncated { .. })),
            "{len}: {error:?}"
        );
        assert_eq!(*p.alice.encode(), before);
    }
    // ≥ 69 bytes (v2 overhead): it parses (shorter plaintext, the tag is other
    // bytes) and must then fail to decrypt.
    for len in RATCHET_MESSAGE_OVERHEAD..wire.len() {
        let parsed = RatchetMessage::parse(&wire[..len]).unwrap();
        assert_eq!(parsed.plaintext_len(), len - RATCHET_MESSAGE_OVERHEAD);
        assert_rejected(
            &mut p.alice,
            &mut p.rng,
            &wire[..len],
            Error::DecryptionFailed,
        );
    }
    for garbage in [&[0u8][..], &[0xff; 16], &wire[wire.len() - 16..]] {
        let mut padded = wire.clone();
        padded.extend_from_slice(garbage);
        assert_rejected(&mut p.alice, &mut p.rng, &padded, Error::DecryptionFailed);
    }
    assert_eq!(
        p.alice.decrypt(&mut p.rng, &wire).unwrap(),
        b"a ratchet message of some length"
    );
}

/// A responder session with a receiving chain, previous ratchet keys and
/// skipped keys, so that every field of the stored form is populated.
fn rich_session(seed: u8) -> (Session, Session) {
    let mut p = pair(seed);
    for round in 0..3 {
        let sent: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                p.alice
                    .encrypt(&mut p.rng, format!("{round}/{i}").as_bytes())
                    .unwrap()
            })
            .collect();
        // Deliver only the last: two skipped keys per round.
        p.bob.decrypt(&mut p.rng, &sent[2]).unwrap();
        let reply = p.bob.encrypt(&mut p.rng, b"r").unwrap();
        p.alice.decrypt(&mut p.rng, &reply).unwrap();
    }
    assert!(p.bob.skipped_key_count() >= 6);
    (p.alice, p.bob)
}

#[test]
fn truncated_or_padded_session_state_is_a_decode_error() {
    let (alice, bob) = rich_session(63);
    for session in [alice, bob] {
        let blob = session.encode();
        for len in 0..blob.len() {
            let result = Session::decode(&blob[..len]).map(|_| ());
            assert!(
                matches!(result, Err(Error::Decode(DecodeError::Truncated { .. }))),
                "session state truncated to {len}: {result:?}"
            );
        }
        for extra in 1..=3 {
            let mut padded = blob.to_vec();
            padded.extend(std::iter::repeat_n(0u8, extra));
            assert_eq!(
                Session::decode(&padded).err(),
                Some(Error::Decode(DecodeError::TrailingBytes { extra }))
            );
        }
        assert_eq!(*Session::decode(&blob).unwrap().encode(), *blob);
    }
}

#[test]
fn truncated_or_padded_identity_state_is_a_decode_error() {
    let identity = IdentityKeyPair::from_seed(&[0x17; 32]);
    let blob = identity.encode();
    assert_eq!(blob.len(), 34);
    for len in 0..blob.len() {
        assert_truncated(
            IdentityKeyPair::decode(&blob[..len]).map(|_| ()),
            "identity state",
            len,
        );
    }
    for extra in 1..=3 {
        let mut padded = blob.to_vec();
        padded.extend(std::iter::repeat_n(0u8, extra));
        assert_eq!(
            IdentityKeyPair::decode(&padded).err(),
            Some(DecodeError::TrailingBytes { extra })
        );
    }
}

#[test]
fn truncated_or_padded_prekey_store_state_is_a_decode_error() {
    let mut rng = rng(64);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::generate(&mut rng, &bob, BOB_DEVICE);
    store.generate_one_time_prekeys(&mut rng, 4).unwrap();
    store.rotate_signed_prekey(&mut rng, &bob, 1_000).unwrap();
    store.rotate_signed_prekey(&mut rng, &bob, 2_000).unwrap();
    store.remove_one_time_prekey(2);
    // Version 2 stores also hold base keys of accepted prekey messages.
    for signed_prekey_id in [1, 3] {
        let base_key = PublicKey::from_bytes(random_public_key(&mut rng)).unwrap();
        assert!(store.record_accepted(signed_prekey_id, Some(signed_prekey_id), &base_key));
    }
    assert_eq!(store.accepted_base_key_count(), 2);
    let blob = store.encode();
    for len in 0..blob.len() {
        assert_truncated(
            PreKeyStore::decode(&blob[..len]).map(|_| ()),
            "prekey store state",
            len,
        );
    }
    for extra in 1..=3 {
        let mut padded = blob.to_vec();
        padded.extend(std::iter::repeat_n(0u8, extra));
        assert_eq!(
            PreKeyStore::decode(&padded).err(),
            Some(DecodeError::TrailingBytes { extra })
        );
    }
}

// ---------------------------------------------------------------------------
// Unknown format tags and versions (downgrade)
// ---------------------------------------------------------------------------

/// Protocol version 2 format tags (SPEC.md §4).
const RATCHET_TAG: u8 = 0x04;
const PREKEY_TAG: u8 = 0x05;
const BUNDLE_TAG: u8 = 0x06;

/// Tags tried in place of the right one: among them the v2 tags of the other
/// formats and all three version 1 tags (0x01 ratchet message, 0x02 prekey
/// message, 0x03 bundle), so a downgrade to v1 is covered.
const OTHER_TAGS: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x11, 0x81, 0xff];

#[test]
fn bundle_with_other_format_tag_is_unknown_format() {
    let (_, _, wire) = genuine_bundle(70);
    assert_eq!(wire[0], BUNDLE_TAG);
    for tag in OTHER_TAGS.into_iter().filter(|&t| t != BUNDLE_TAG) {
        assert_eq!(
            PreKeyBundle::decode(&patched(&wire, 0, &[tag])),
            Err(DecodeError::UnknownFormat {
                expected: BUNDLE_TAG,
                found: tag
            })
        );
    }
}

#[test]
fn prekey_message_with_other_format_tag_is_unknown_format() {
    let mut p = pair(71);
    let repeat = p.first.clone();
    assert_eq!(repeat[0], PREKEY_TAG);
    for tag in OTHER_TAGS.into_iter().filter(|&t| t != PREKEY_TAG) {
        let forged = patched(&repeat, 0, &[tag]);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(DecodeError::UnknownFormat {
                expected: PREKEY_TAG,
                found: tag
            })
        );
        if tag == RATCHET_TAG {
            // Downgraded to a "ratchet message": its header is Alice's identity
            // key as a ratchet key, PN and N are base-key bytes. As an X25519
            // key, the identity key's encoding has bit 255 (the sign of its x)
            // set about half the time: then it is refused as non-canonical;
            // otherwise Bob (Nr = 1 on A1) rejects it on the header bounds.
            // Either way before any DH.
            let key = &forged[RATCHET_KEY_AT..RATCHET_KEY_AT + 32];
            let expected = if key[31] & 0x80 != 0 {
                Error::Decode(non_canonical("ratchet key"))
            } else {
                let pn = u32::from_be_bytes(forged[PN_AT..PN_AT + 4].try_into().unwrap());
                let n = u32::from_be_bytes(forged[N_AT..N_AT + 4].try_into().unwrap());
                let requested = u64::from(pn.saturating_sub(1)) + u64::from(n);
                assert!(requested > u64::from(DEFAULT_MAX_SKIP) && n != u32::MAX);
                Error::TooManySkippedMessages {
                    requested,
                    max: DEFAULT_MAX_SKIP,
                }
            };
            assert_rejected(&mut p.bob, &mut p.rng, &forged, expected);
        } else {
            // Message::parse treats anything but the prekey tag as a ratchet
            // message (the v1 tags included).
            assert_rejected(
                &mut p.bob,
                &mut p.rng,
                &forged,
                Error::Decode(DecodeError::UnknownFormat {
                    expected: RATCHET_TAG,
                    found: tag,
                }),
            );
        }
    }
    // The embedded ratchet message's own tag.
    for tag in OTHER_TAGS.into_iter().filter(|&t| t != RATCHET_TAG) {
        let forged = patched(&repeat, PREKEY_EMBEDDED_AT, &[tag]);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(DecodeError::UnknownFormat {
                expected: RATCHET_TAG,
                found: tag
            })
        );
        assert_rejected(
            &mut p.bob,
            &mut p.rng,
            &forged,
            Error::Decode(DecodeError::UnknownFormat {
                expected: RATCHET_TAG,
                found: tag,
            }),
        );
    }
}

#[test]
fn ratchet_message_with_other_format_tag_is_unknown_format() {
    let mut p = pair(72);
    let wire = p.bob.encrypt(&mut p.rng, b"tagged").unwrap();
    assert_eq!(wire[0], RATCHET_TAG);
    for tag in OTHER_TAGS.into_iter().filter(|&t| t != RATCHET_TAG) {
        let forged = patched(&wire, 0, &[tag]);
        assert_eq!(
            RatchetMessage::parse(&forged).err(),
            Some(DecodeError::UnknownFormat {
                expected: RATCHET_TAG,
                found: tag
            })
        );
        if tag == PREKEY_TAG {
            // Read as a (too short) prekey message instead, whose fields are
            // the ratchet message's bytes: one of the prefix fields or the
            // embedded message (one byte long) fails to parse, and that parse
            // error is what the session reports, unchanged.
            let error = PreKeyMessage::parse(&forged).unwrap_err();
            assert!(
                matches!(
                    error,
                    DecodeError::Truncated { .. }
                        | DecodeError::InvalidIdentityKey
                        | DecodeError::NonCanonicalKey { .. }
                        | DecodeError::InvalidFlag { .. }
                        | DecodeError::UnknownFormat { .. }
                ),
                "{error:?}"
            );
            assert_rejected(&mut p.alice, &mut p.rng, &forged, Error::Decode(error));
        } else {
            assert_rejected(
                &mut p.alice,
                &mut p.rng,
                &forged,
                Error::Decode(DecodeError::UnknownFormat {
                    expected: RATCHET_TAG,
                    found: tag,
                }),
            );
        }
    }
    assert_eq!(p.alice.decrypt(&mut p.rng, &wire).unwrap(), b"tagged");
}

#[test]
fn stored_formats_with_other_kind_or_version_are_rejected() {
    let (alice, _) = rich_session(73);
    let identity = IdentityKeyPair::from_seed(&[3; 32]);
    let mut rng = rng(73);
    let store = PreKeyStore::generate(&mut rng, &identity, BOB_DEVICE);
    let identity_blob = identity.encode().to_vec();
    let store_blob = store.encode().to_vec();
    let session_blob = alice.encode().to_vec();
    assert_eq!(
        (identity_blob[0], store_blob[0], session_blob[0]),
        (0x49, 0x50, 0x53)
    );
    // Identity keys are still stored as version 1; prekey stores and sessions
    // are version 2, and their version 1 blobs are refused.
    assert_eq!(
        (identity_blob[1], store_blob[1], session_blob[1]),
        (0x01, 0x02, 0x02)
    );
    for version in [0x00, 0x01, 0x02, 0x03, 0x10, 0xff] {
        if version != identity_blob[1] {
            assert_eq!(
                IdentityKeyPair::decode(&patched(&identity_blob, 1, &[version])).err(),
                Some(DecodeError::UnsupportedVersion { found: version })
            );
        }
        if version != store_blob[1] {
            assert_eq!(
                PreKeyStore::decode(&patched(&store_blob, 1, &[version])).err(),
                Some(DecodeError::UnsupportedVersion { found: version })
            );
        }
        if version != session_blob[1] {
            assert_eq!(
                Session::decode(&patched(&session_blob, 1, &[version])).err(),
                Some(Error::Decode(DecodeError::UnsupportedVersion {
                    found: version
                }))
            );
        }
    }
    for kind in [0x00, 0x01, 0x02, 0x03, 0x49, 0x50, 0x53, 0xff] {
        if kind != 0x49 {
            assert_eq!(
                IdentityKeyPair::decode(&patched(&identity_blob, 0, &[kind])).err(),
                Some(DecodeError::UnknownFormat {
                    expected: 0x49,
                    found: kind
                })
            );
        }
        if kind != 0x50 {
            assert_eq!(
                PreKeyStore::decode(&patched(&store_blob, 0, &[kind])).err(),
                Some(DecodeError::UnknownFormat {
                    expected: 0x50,
                    found: kind
                })
            );
        }
        if kind != 0x53 {
            assert_eq!(
                Session::decode(&patched(&session_blob, 0, &[kind])).err(),
                Some(Error::Decode(DecodeError::UnknownFormat {
                    expected: 0x53,
                    found: kind
                }))
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Non-canonical flags
// ---------------------------------------------------------------------------

#[test]
fn prekey_message_with_absent_one_time_prekey_but_nonzero_id_is_invalid_flag() {
    let mut p = pair(80);
    let first = p.first.clone();
    for id in [1u32, 2, 0x0100_0000, u32::MAX] {
        let mut forged = patched(&first, PREKEY_FLAG_AT, &[0]);
        forged[PREKEY_ONE_TIME_ID_AT..PREKEY_ONE_TIME_ID_AT + 4].copy_from_slice(&id.to_be_bytes());
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(DecodeError::InvalidFlag {
                field: "one-time prekey id"
            })
        );
        assert_rejected(
            &mut p.bob,
            &mut p.rng,
            &forged,
            Error::Decode(DecodeError::InvalidFlag {
                field: "one-time prekey id",
            }),
        );
    }
    // A flag that is neither 0 nor 1.
    for flag in [2u8, 0x80, 0xff] {
        let forged = patched(&first, PREKEY_FLAG_AT, &[flag]);
        assert_eq!(
            PreKeyMessage::parse(&forged).err(),
            Some(DecodeError::InvalidFlag {
                field: "one-time prekey flag"
            })
        );
    }
}

#[test]
fn bundle_with_non_canonical_one_time_prekey_flag_is_invalid_flag() {
    let (_, _, wire) = genuine_bundle(81);
    for flag in [2u8, 0x80, 0xff] {
        assert_eq!(
            PreKeyBundle::decode(&patched(&wire, BUNDLE_FLAG_AT, &[flag])),
            Err(DecodeError::InvalidFlag {
                field: "one-time prekey flag"
            })
        );
    }
}

// ---------------------------------------------------------------------------
// Tampered stored state
// ---------------------------------------------------------------------------

#[test]
fn tampered_stored_state_fields_are_rejected() {
    // SPEC.md §6: bad flags, unclamped private keys, invalid identity keys and
    // over-limit counts are decode errors.
    let (_, bob) = rich_session(90);
    let blob = bob.encode().to_vec();
    // Version 2 layout (SPEC.md §6.3): tag, version, limits, role and the two
    // identity keys take 75 bytes; then Bob's address (`u8 len ‖ "bob" ‖ u32
    // device`) and Alice's (`u8 len ‖ "alice" ‖ u32 device`); then the base
    // key, root key, sending ratchet secret, sending chain key, Ns, PN, the
    // receiving chain flag, receiving ratchet key, chain key and Nr, and the
    // count of previous ratchet keys.
    let local_address_at = 75;
    let remote_address_at = local_address_at + 1 + 3 + 4;
    let base_key_at = remote_address_at + 1 + 5 + 4;
    assert_eq!(
        &blob[local_address_at..remote_address_at],
        b"\x03bob\0\0\0\x07"
    );
    assert_eq!(
        &blob[remote_address_at..base_key_at],
        b"\x05alice\0\0\0\x01"
    );
    assert_eq!(
        &blob[base_key_at..base_key_at + 32],
        bob.base_key().as_bytes()
    );
    let sending_secret_at = base_key_at + 2 * 32;
    let receiving_flag_at = sending_secret_at + 2 * 32 + 4 + 4;
    let receiving_key_at = receiving_flag_at + 1;
    let previous_count_at = receiving_flag_at + 1 + 32 + 32 + 4;
    let previous = usize::from(blob[previous_count_at]);
    assert!(
        previous >= 1 && blob[receiving_flag_at] == 1,
        "a responder with a receiving chain"
    );
    let skipped_count_at = previous_count_at + 1 + 32 * previous + 4 + 1 + 4 + 1;
    let session_cases: Vec<(Vec<u8>, Error)> = vec![
        (
            patched(&blob, 2, &(65_537u32).to_be_bytes()),
            Error::InvalidConfig {
                reason: "max_skip above LIMIT_CEILING",
            },
        ),
        (
            patched(&blob, 10, &[2]),
            Error::Decode(DecodeError::InvalidValue { field: "role" }),
        ),
        (
            patched(&blob, 11, &SMALL_ORDER_ED25519[0].1),
            Error::Decode(DecodeError::InvalidIdentityKey),
        ),
        (
            patched(&blob, 43, &SMALL_ORDER_ED25519[4].1),
            Error::Decode(DecodeError::InvalidIdentityKey),
        ),
        (
            // An address with an empty account id.
            patched(&blob, local_address_at, &[0]),
            Error::Decode(DecodeError::InvalidValue {
                field: "account id",
            }),
        ),
        (
            // An account id longer than any address may hold.
            patched(&blob, remote_address_at, &[65]),
            Error::Decode(DecodeError::LimitExceeded {
                field: "account id length",
                max: 64,
                found: 65,
            }),
        ),
        (
            patched(&blob, base_key_at, &NON_CANONICAL_X25519[0].1),
            Error::Decode(non_canonical("base key")),
        ),
        (
            patched(&blob, sending_secret_at, &[blob[sending_secret_at] | 1]),
            Error::Decode(DecodeError::InvalidValue {
                field: "sending ratchet secret",
            }),
        ),
        (
            patched(&blob, receiving_flag_at, &[2]),
            Error::Decode(DecodeError::InvalidFlag {
                field: "receiving chain flag",
            }),
        ),
        (
            patched(&blob, receiving_key_at, &NON_CANONICAL_X25519[3].1),
            Error::Decode(non_canonical("receiving ratchet key")),
        ),
        (
            patched(&blob, previous_count_at, &[5]),
            Error::Decode(DecodeError::LimitExceeded {
                field: "previous ratchet keys",
                max: 4,
                found: 5,
            }),
        ),
        (
            patched(&blob, skipped_count_at, &2_001u32.to_be_bytes()),
            Error::Decode(DecodeError::LimitExceeded {
                field: "skipped key count",
                max: 2_000,
                found: 2_001,
            }),
        ),
        (
            // A responder awaiting a reply.
            patched(&blob, skipped_count_at - 1, &[1]),
            Error::Decode(DecodeError::InvalidValue {
                field: "awaiting reply flag",
            }),
        ),
    ];
    for (tampered, expected) in session_cases {
        assert_eq!(Session::decode(&tampered).err(), Some(expected));
    }

    let mut rng = rng(91);
    let identity = IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::generate(&mut rng, &identity, BOB_DEVICE);
    store.generate_one_time_prekeys(&mut rng, 2).unwrap();
    let base_key = PublicKey::from_bytes(random_public_key(&mut rng)).unwrap();
    assert!(store.record_accepted(1, None, &base_key));
    let blob = store.encode().to_vec();
    // No retired keys: count at 106, next id at 107, count at 111, entries at
    // 115; then (version 2) the accepted base keys: count at 187, then
    // `signed prekey id ‖ base key` at 191.
    assert_eq!(blob[106], 0);
    assert_eq!(blob[187..191], 1u32.to_be_bytes());
    assert_eq!(&blob[195..], base_key.as_bytes());
    let store_cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            patched(&blob, 10, &[blob[10] | 7]),
            DecodeError::InvalidValue {
                field: "signed prekey secret",
            },
        ),
        (
            patched(&blob, 41, &[blob[41] | 0x80]),
            DecodeError::InvalidValue {
                field: "signed prekey secret",
            },
        ),
        (
            patched(&blob, 106, &[5]),
            DecodeError::LimitExceeded {
                field: "retired signed prekeys",
                max: 4,
                found: 5,
            },
        ),
        (
            patched(&blob, 111, &10_001u32.to_be_bytes()),
            DecodeError::LimitExceeded {
                field: "one-time prekey count",
                max: 10_000,
                found: 10_001,
            },
        ),
        (
            patched(&blob, 115 + 4, &[blob[115 + 4] | 1]),
            DecodeError::InvalidValue {
                field: "one-time prekey secret",
            },
        ),
        (
            // Second id equal to the first: not strictly increasing.
            patched(&blob, 115 + 36, &1u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "one-time prekey id",
            },
        ),
        (
            // Next id not above the ids held.
            patched(&blob, 107, &2u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "one-time prekey id",
            },
        ),
        (
            patched(&blob, 187, &1_001u32.to_be_bytes()),
            DecodeError::LimitExceeded {
                field: "accepted base key count",
                max: 1_000,
                found: 1_001,
            },
        ),
        (
            // A base key accepted under a signed prekey the store does not hold.
            patched(&blob, 191, &9u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "accepted signed prekey id",
            },
        ),
        (
            patched(&blob, 195, &NON_CANONICAL_X25519[1].1),
            non_canonical("accepted base key"),
        ),
    ];
    for (tampered, expected) in store_cases {
        assert_eq!(PreKeyStore::decode(&tampered).err(), Some(expected));
    }
}

// ---------------------------------------------------------------------------
// Sealed envelopes and groups (the attacks of the later layers; their full
// suites are tests/sealed_envelopes.rs and tests/groups.rs)
// ---------------------------------------------------------------------------

mod later_layers {
    use chacha20::ChaCha20Rng;
    use ratchetbox::group::GroupSession;
    use ratchetbox::rand_core::SeedableRng;
    use ratchetbox::sealed::{
        Address, CertificateError, ContentHint, EnvelopeError, InnerKind, MultiRecipient,
        Recipient, SealedContent, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot,
        TrustStore, open, seal, seal_multi, validate,
    };
    use ratchetbox::{Error, IdentityKeyPair};

    const CONTENT: SealedContent<'static> = SealedContent {
        kind: InnerKind::Opaque,
        hint: ContentHint::Default,
        message: b"attack at dawn",
    };

    struct Pki {
        root: IdentityKeyPair,
        alice: IdentityKeyPair,
        bob: IdentityKeyPair,
        cert: SenderCertificate,
    }

    fn pki(expires: u64) -> Pki {
        let root = IdentityKeyPair::from_seed(&[0x51; 32]);
        let server = IdentityKeyPair::from_seed(&[0x52; 32]);
        let alice = IdentityKeyPair::from_seed(&[0x53; 32]);
        let bob = IdentityKeyPair::from_seed(&[0x54; 32]);
        let cert = SenderCertificate::issue(
            Address::new(b"alice", 1).unwrap(),
            alice.public_key(),
            expires,
            &server,
            ServerCertificate::issue(1, &root, 9, server.public_key()),
        )
        .unwrap();
        Pki {
            root,
            alice,
            bob,
            cert,
        }
    }

    fn sealed_to_bob(p: &Pki) -> Vec<u8> {
        let mut rng = ChaCha20Rng::from_seed([0x55; 32]);
        let bob = Address::new(b"bob", 1).unwrap();
        seal(
            &mut rng,
            &p.alice,
            &p.cert,
            bob,
            p.bob.public_key(),
            CONTENT,
            None,
        )
        .unwrap()
    }

    fn open_as_bob(p: &Pki, bytes: &[u8], trust: &TrustStore, now: u64) -> Result<(), Error> {
        let me = Recipient {
            identity: &p.bob,
            address: Address::new(b"bob", 1).unwrap(),
            trust,
            now,
        };
        open(bytes, &me).map(|_| ())
    }

    #[test]
    fn expired_sender_certificate_is_refused() {
        let p = pki(100);
        let trust = TrustStore::new(&[TrustRoot::new(1, *p.root.public_key())]).unwrap();
        assert_eq!(
            open_as_bob(&p, &sealed_to_bob(&p), &trust, 100),
            Err(Error::Certificate(CertificateError::Expired {
                expires: 100,
                now: 100
            }))
        );
    }

    #[test]
    fn revoked_server_key_is_refused() {
        let p = pki(u64::MAX);
        let mut trust = TrustStore::new(&[TrustRoot::new(1, *p.root.public_key())]).unwrap();
        trust.revoke(9).unwrap();
        assert_eq!(
            open_as_bob(&p, &sealed_to_bob(&p), &trust, 0),
            Err(Error::Certificate(CertificateError::Revoked { key_id: 9 }))
        );
    }

    #[test]
    fn certificate_from_an_unpinned_root_is_refused() {
        let p = pki(u64::MAX);
        let impostor = IdentityKeyPair::from_seed(&[0x5f; 32]);
        let wrong_id = TrustStore::new(&[TrustRoot::new(2, *p.root.public_key())]).unwrap();
        assert_eq!(
            open_as_bob(&p, &sealed_to_bob(&p), &wrong_id, 0),
            Err(Error::Certificate(CertificateError::WrongRoot {
                root_id: 1
            }))
        );
        let wrong_key = TrustStore::new(&[TrustRoot::new(1, *impostor.public_key())]).unwrap();
        assert_eq!(
            open_as_bob(&p, &sealed_to_bob(&p), &wrong_key, 0),
            Err(Error::Certificate(CertificateError::BadSignature))
        );
    }

    #[test]
    fn envelope_from_the_recipients_own_device_is_self_send() {
        let p = pki(u64::MAX);
        let trust = TrustStore::new(&[TrustRoot::new(1, *p.root.public_key())]).unwrap();
        let mut rng = ChaCha20Rng::from_seed([0x56; 32]);
        let me = Address::new(b"alice", 1).unwrap();
        let sealed = seal(
            &mut rng,
            &p.alice,
            &p.cert,
            me,
            p.alice.public_key(),
            CONTENT,
            None,
        )
        .unwrap();
        let recipient = Recipient {
            identity: &p.alice,
            address: me,
            trust: &trust,
            now: 0,
        };
        assert_eq!(open(&sealed, &recipient), Err(Error::SelfSend));
    }

    #[test]
    fn duplicate_recipient_is_refused_by_sealer_and_server() {
        let p = pki(u64::MAX);
        let mut rng = ChaCha20Rng::from_seed([0x57; 32]);
        let bob = Address::new(b"bob", 1).unwrap();
        let carol = Address::new(b"carol", 1).unwrap();
        let twice = [
            MultiRecipient {
                address: bob,
                identity_key: p.bob.public_key(),
                payload: b"",
            },
            MultiRecipient {
                address: bob,
                identity_key: p.bob.public_key(),
                payload: b"",
            },
        ];
        assert_eq!(
            seal_multi(&mut rng, &p.alice, &p.cert, &twice, CONTENT, None),
            Err(Error::Envelope(EnvelopeError::DuplicateRecipient))
        );
        // A hand-made envelope listing bob/1 twice: copy bob's entry over carol's.
        let pair = [
            twice[0],
            MultiRecipient {
                address: carol,
                identity_key: p.bob.public_key(),
                payload: b"",
            },
        ];
        let mut bytes = seal_multi(&mut rng, &p.alice, &p.cert, &pair, CONTENT, None).unwrap();
        let entry_len = 1 + 3 + 4 + 2 + 48 + 16;
        let first = 1 + 32 + 2;
        let bob_entry = bytes[first..first + entry_len].to_vec();
        // carol's entry is two bytes longer ("carol" vs "bob").
        let second = first + entry_len;
        bytes.splice(second..second + entry_len + 2, bob_entry);
        let policy = ServerPolicy {
            require_token: false,
            ..ServerPolicy::default()
        };
        let no_keys = |_: &[u8]| None;
        assert_eq!(
            validate(&bytes, &policy, &no_keys).err(),
            Some(EnvelopeError::DuplicateRecipient)
        );
    }

    fn group_pair() -> (GroupSession, GroupSession, Address<'static>) {
        let mut rng = ChaCha20Rng::from_seed([0x58; 32]);
        let alice = GroupSession::create(&mut rng, b"club").unwrap();
        let mut bob = GroupSession::create(&mut rng, b"club").unwrap();
        let from = Address::new(b"alice", 1).unwrap();
        bob.process_distribution(from, &alice.distribution())
            .unwrap();
        (alice, bob, from)
    }

    #[test]
    fn forged_group_signature_is_refused() {
        let (mut alice, mut bob, from) = group_pair();
        let mut rng = ChaCha20Rng::from_seed([0x5a; 32]);
        let mut message = alice.encrypt(&mut rng, b"hi").unwrap();
        let last = message.len() - 1;
        message[last] ^= 0x40;
        let before = bob.encode();
        assert_eq!(bob.decrypt(from, &message), Err(Error::InvalidSignature));
        assert_eq!(*bob.encode(), *before);
    }

    #[test]
    fn group_message_from_a_removed_member_is_refused() {
        let (mut alice, mut bob, from) = group_pair();
        let mut rng = ChaCha20Rng::from_seed([0x59; 32]);
        bob.remove_member(&mut rng, b"alice").unwrap();
        let message = alice.encrypt(&mut rng, b"still here").unwrap();
        let before = bob.encode();
        assert_eq!(bob.decrypt(from, &message), Err(Error::NotAMember));
        assert_eq!(
            bob.process_distribution(from, &alice.rotate(&mut rng)),
            Err(Error::NotAMember)
        );
        assert_eq!(*bob.encode(), *before);
    }
}
