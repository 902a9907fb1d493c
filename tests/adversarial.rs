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
//! signatures (over signed and KEM prekeys) and weak or non-canonical identity
//! keys; tampered, foreign, relabelled and spent ML-KEM prekeys and forged KEM
//! ciphertexts; a new ratchet key while the sending step is due; identity substitution,
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
    AccountId, BUNDLE_LEN_WITH_ONE_TIME, BUNDLE_LEN_WITHOUT_ONE_TIME, BundleKemPreKey, DecodeError,
    DeviceAddress, Error, IdentityKey, IdentityKeyPair, KEM_CIPHERTEXT_LEN, KEM_PUBLIC_KEY_LEN,
    KemPreKeyKind, KemPublicKey, LocalDevice, Message, PREKEY_PREFIX_LEN, PreKeyBundle, PreKeyId,
    PreKeyMessage, PreKeyStore, PublicKey, RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder,
    Session,
};

type TestRng = ChaCha20Rng;

const BOB_DEVICE: u32 = 7;
const DEFAULT_MAX_SKIP: u32 = 1000;

// Wire offsets (SPEC.md §4.1, §4.2, §4.4).
const BUNDLE_IDENTITY_AT: usize = 1;
const BUNDLE_SPK_AT: usize = 1 + 32 + 4 + 4;
const BUNDLE_SIGNATURE_AT: usize = BUNDLE_SPK_AT + 32;
const BUNDLE_KEM_ID_AT: usize = BUNDLE_SIGNATURE_AT + 64;
const BUNDLE_KEM_KEY_AT: usize = BUNDLE_KEM_ID_AT + 4;
const BUNDLE_KEM_SIGNATURE_AT: usize = BUNDLE_KEM_KEY_AT + KEM_PUBLIC_KEY_LEN;
const BUNDLE_FLAG_AT: usize = BUNDLE_KEM_SIGNATURE_AT + 64;
const RATCHET_KEY_AT: usize = 1;
const PN_AT: usize = 33;
const N_AT: usize = 37;
const PREKEY_IDENTITY_AT: usize = 1;
const PREKEY_BASE_KEY_AT: usize = 33;
const PREKEY_SIGNED_ID_AT: usize = 65;
const PREKEY_KEM_ID_AT: usize = 69;
const PREKEY_KEM_CIPHERTEXT_AT: usize = 73;
const PREKEY_FLAG_AT: usize = PREKEY_KEM_CIPHERTEXT_AT + KEM_CIPHERTEXT_LEN;
const PREKEY_ONE_TIME_ID_AT: usize = PREKEY_FLAG_AT + 1;
const PREKEY_EMBEDDED_AT: usize = PREKEY_PREFIX_LEN;

// The layouts above, against the crate's own sizes.
const _: () = {
    assert!(BUNDLE_KEM_ID_AT == 137 && BUNDLE_KEM_KEY_AT == 141);
    assert!(BUNDLE_KEM_SIGNATURE_AT == 1325 && BUNDLE_FLAG_AT == 1389);
    assert!(BUNDLE_FLAG_AT + 1 == BUNDLE_LEN_WITHOUT_ONE_TIME);
    assert!(BUNDLE_FLAG_AT + 1 + 4 + 32 == BUNDLE_LEN_WITH_ONE_TIME);
    assert!(PREKEY_FLAG_AT == 1161 && PREKEY_ONE_TIME_ID_AT == 1162);
    assert!(PREKEY_ONE_TIME_ID_AT + 4 == PREKEY_PREFIX_LEN);
};

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
fn assert_rejected(session: &mut Session, wire: &[u8], expected: Error) {
    let before = session.encode().to_vec();
    let skipped_before = session.skipped_key_count();
    let result = session.decrypt(wire);
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
    let result = responder.accept(from, &message);
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
/// `BOB_DEVICE` of "bob", with one-time prekey 1 and the last-resort KEM
/// prekey 1) and has sent `first`; Bob has not accepted it yet.
struct Handshake {
    rng: TestRng,
    alice_device: LocalDevice,
    bob_device: LocalDevice,
    mallory_id: IdentityKeyPair,
    store: PreKeyStore,
    one_time_ids: Vec<PreKeyId>,
    /// Bob's one-time KEM prekeys (empty unless asked for).
    kem_ids: Vec<PreKeyId>,
    alice: Session,
    first: Vec<u8>,
}

fn handshake(seed: u8) -> Handshake {
    handshake_with(seed, false)
}

/// [`handshake`], and with `one_time_kem` Bob also has one-time KEM prekeys 2
/// and 3, and the bundle names KEM prekey 2.
fn handshake_with(seed: u8, one_time_kem: bool) -> Handshake {
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
    let kem_ids = if one_time_kem {
        let ids = store
            .generate_one_time_kem_prekeys(&mut rng, &bob_device.identity, 2)
            .unwrap();
        assert_eq!(ids, [2, 3]);
        ids
    } else {
        Vec::new()
    };
    let published = PreKeyBundle::from_store_with_kem(
        bob_device.identity.public_key(),
        &store,
        Some(one_time_ids[0]),
        kem_ids.first().copied(),
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
        kem_ids,
        alice,
        first,
    }
}

/// A conversation: Alice sent `first` (chain A1), Bob accepted it and replied
/// (chain B1), Alice decrypted the reply. Now Alice receives on B1 (Nr = 1)
/// and the sending half of her ratchet step is due (her next encrypt starts
/// chain A2); Bob sends on B1 and receives on A1 (Nr = 1).
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
            &alice_device.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    assert_eq!(plaintext, b"first message from Alice");
    let reply = bob.encrypt(&mut rng, b"reply from Bob").unwrap();
    assert_eq!(alice.decrypt(&reply).unwrap(), b"reply from Bob");
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

/// The bundle form of a store's KEM prekey (its id, key and signature).
fn bundle_kem(store: &PreKeyStore, id: PreKeyId) -> BundleKemPreKey {
    let (kem, _) = store.find_kem_prekey(id).unwrap();
    BundleKemPreKey {
        id: kem.id(),
        key: kem.public_key().clone(),
        signature: *kem.signature(),
    }
}

/// A KEM prekey (id 1) signed by `signer`: the last-resort one of a store made
/// for `signer` from a fixed seed, so the same `signer` gives the same key.
fn signed_kem(signer: &IdentityKeyPair) -> BundleKemPreKey {
    let store = PreKeyStore::generate(&mut rng(0xce), signer, BOB_DEVICE);
    bundle_kem(&store, store.last_resort_kem_prekey().id())
}

/// A bundle for `identity`'s device whose signed prekey is `spk`, signed by
/// `signer` over `0x05 ‖ spk` (and a KEM prekey signed by `signer` too).
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
        signed_kem(signer),
        one_time.map(|(id, k)| (id, PublicKey::from_bytes(k).unwrap())),
    )
}

/// The wire bytes of [`bundle_with`], written by hand (SPEC.md §4.1: `0x06 ‖
/// identity ‖ device id ‖ signed prekey id ‖ signed prekey ‖ signature ‖ KEM
/// prekey id ‖ KEM prekey ‖ KEM signature ‖ flag [‖ one-time id ‖ one-time
/// prekey]`), so that keys the constructor cannot hold (non-canonical ones)
/// can be put on the wire.
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
    assert_eq!(wire.len(), BUNDLE_KEM_ID_AT);
    let kem = signed_kem(signer);
    wire.extend_from_slice(&kem.id.to_be_bytes());
    wire.extend_from_slice(kem.key.as_bytes());
    wire.extend_from_slice(&kem.signature);
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
            bundle_kem(&store, 1),
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
        bundle_kem(&store, 1),
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
        assert_rejected(&mut p.alice, &forged, Error::NonContributoryDh);
        let forged = forged_header(&from_alice, 0, Some(point), None, None);
        assert_rejected(&mut p.bob, &forged, Error::NonContributoryDh);
        // Also with PN and N asking for skipped keys (old and new chain): the
        // keys derived before the DH fails must not be kept.
        let forged = forged_header(&from_alice, 0, Some(point), Some(5), Some(3));
        assert_rejected(&mut p.bob, &forged, Error::NonContributoryDh);
    }
    // Non-canonical ratchet keys are refused while parsing (protocol v2),
    // before the header bounds or any DH.
    let refused = Error::Decode(non_canonical("ratchet key"));
    for (_, point) in NON_CANONICAL_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut p.alice, &forged, refused);
        let forged = forged_header(&from_alice, 0, Some(point), Some(5), Some(3));
        assert_rejected(&mut p.bob, &forged, refused);
        let forged = forged_header(&from_alice, 0, Some(point), Some(u32::MAX), Some(3));
        assert_rejected(&mut p.bob, &forged, refused);
    }
    // A fresh initiator (no receiving chain yet) rejects them too.
    let mut h = handshake(7);
    for (_, point) in SMALL_ORDER_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut h.alice, &forged, Error::NonContributoryDh);
    }
    for (_, point) in NON_CANONICAL_X25519 {
        let forged = forged_header(&from_bob, 0, Some(point), None, None);
        assert_rejected(&mut h.alice, &forged, refused);
    }
    // The genuine messages still decrypt afterwards.
    assert_eq!(p.alice.decrypt(&from_bob).unwrap(), b"to Alice");
    assert_eq!(p.bob.decrypt(&from_alice).unwrap(), b"to Bob");
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
        bundle_kem(&store, 1),
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
        bundle_kem(&store, 1),
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
        signed_kem(&bob),
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
        signed_kem(&bob),
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
    assert_rejected(&mut p.bob, &relabelled, Error::WrongSession);
    // And a fresh accept of it fails. Protocol v2: the store remembers the base
    // key of the accepted message, and the relabelled copy has the same one
    // (v1 found the one-time prekey gone: `UnknownOneTimePreKey { id: 1 }`).
    assert_accept_rejected(
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
    assert_rejected(&mut p.bob, &wire, Error::WrongSession);
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[test]
fn replay_on_current_chain_is_duplicate() {
    let mut p = pair(30);
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    let a1 = p.alice.encrypt(&mut p.rng, b"a1").unwrap();
    assert_eq!(p.bob.decrypt(&a0).unwrap(), b"a0");
    assert_eq!(p.bob.decrypt(&a1).unwrap(), b"a1");
    assert_rejected(&mut p.bob, &a1, Error::DuplicateMessage);
    assert_rejected(&mut p.bob, &a0, Error::DuplicateMessage);
    // Alice's side: Bob's reply again.
    let reply = p.reply.clone();
    assert_rejected(&mut p.alice, &reply, Error::DuplicateMessage);
}

#[test]
fn replay_of_skipped_message_is_duplicate() {
    let mut p = pair(31);
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    let a1 = p.alice.encrypt(&mut p.rng, b"a1").unwrap();
    assert_eq!(p.bob.decrypt(&a1).unwrap(), b"a1");
    assert_eq!(p.bob.skipped_key_count(), 1);
    assert_eq!(p.bob.decrypt(&a0).unwrap(), b"a0");
    assert_eq!(p.bob.skipped_key_count(), 0);
    assert_rejected(&mut p.bob, &a0, Error::DuplicateMessage);
}

#[test]
fn replay_on_old_chain_is_duplicate() {
    let mut p = pair(32);
    // Alice's chain A2.
    let a0 = p.alice.encrypt(&mut p.rng, b"a0").unwrap();
    assert_eq!(p.bob.decrypt(&a0).unwrap(), b"a0");
    // Bob replies on B2, Alice answers on A3; Bob now remembers A1 and A2.
    let b = p.bob.encrypt(&mut p.rng, b"b").unwrap();
    assert_eq!(p.alice.decrypt(&b).unwrap(), b"b");
    let a = p.alice.encrypt(&mut p.rng, b"a").unwrap();
    assert_eq!(p.bob.decrypt(&a).unwrap(), b"a");
    assert_rejected(&mut p.bob, &a0, Error::DuplicateMessage);
    // The very first message (chain A1), as a prekey message and stripped to
    // its ratchet message.
    let first = p.first.clone();
    assert_rejected(&mut p.bob, &first, Error::DuplicateMessage);
    assert_rejected(
        &mut p.bob,
        &first[PREKEY_EMBEDDED_AT..],
        Error::DuplicateMessage,
    );
    // Alice: Bob's first reply (chain B1, now old).
    let b2 = p.bob.encrypt(&mut p.rng, b"b2").unwrap();
    assert_eq!(p.alice.decrypt(&b2).unwrap(), b"b2");
    let reply = p.reply.clone();
    assert_rejected(&mut p.alice, &reply, Error::DuplicateMessage);
    assert_rejected(&mut p.alice, &b, Error::DuplicateMessage);
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
    assert_rejected(&mut p.bob, &first, Error::DuplicateMessage);
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
            &alice_device.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    assert!(bob.owns_prekey_message(&PreKeyMessage::parse(&first).unwrap()));
    assert_accept_rejected(
        &bob_device,
        &mut store,
        &alice_device.address(),
        &first,
        None,
        Error::RepeatedPreKeyMessage {
            base_key: *bob.base_key(),
        },
    );
    assert_rejected(&mut bob, &first, Error::DuplicateMessage);
}

// ---------------------------------------------------------------------------
// Reflection
// ---------------------------------------------------------------------------

#[test]
fn reflected_ratchet_message_is_rejected_by_its_sender() {
    let mut p = pair(40);
    let to_bob = p.alice.encrypt(&mut p.rng, b"to Bob").unwrap();
    assert_rejected(&mut p.alice, &to_bob, Error::DecryptionFailed);
    let to_alice = p.bob.encrypt(&mut p.rng, b"to Alice").unwrap();
    assert_rejected(&mut p.bob, &to_alice, Error::DecryptionFailed);
    // Nothing was consumed: both still reach their intended recipient.
    assert_eq!(p.bob.decrypt(&to_bob).unwrap(), b"to Bob");
    assert_eq!(p.alice.decrypt(&to_alice).unwrap(), b"to Alice");
}

#[test]
fn reflected_prekey_message_is_rejected_by_its_sender() {
    let mut h = handshake(41);
    let first = h.first.clone();
    // To Alice's session: an initiator owns no prekey message.
    assert_rejected(&mut h.alice, &first, Error::WrongSession);
    // Its embedded ratchet message, to Alice's session (no receiving chain yet).
    assert_rejected(
        &mut h.alice,
        &first[PREKEY_EMBEDDED_AT..],
        Error::DecryptionFailed,
    );
    // To Alice's own Responder, whose prekey ids (signed 1, KEM 1, one-time 1)
    // collide with Bob's: the handshake runs with Alice's keys and fails to
    // authenticate.
    // The transport claims it came from Bob's device, or from Alice's own.
    let mut alice_store = PreKeyStore::generate(&mut h.rng, &h.alice_device.identity, 1);
    alice_store
        .generate_one_time_prekeys(&mut h.rng, 1)
        .unwrap();
    for from in [h.bob_device.address(), h.alice_device.address()] {
        assert_accept_rejected(
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
    assert_rejected(&mut p.alice, &forged, Error::CounterExhausted);
    // New ratchet key, with and without a huge PN.
    for pn in [0, 1, u32::MAX] {
        let forged = forged_header(&from_alice, 0, Some(fresh), Some(pn), Some(u32::MAX));
        assert_rejected(&mut p.bob, &forged, Error::CounterExhausted);
    }
    // Embedded in a prekey message.
    let mut h = handshake(51);
    let forged = forged_header(&h.first, PREKEY_EMBEDDED_AT, None, None, Some(u32::MAX));
    assert_accept_rejected(
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
    assert_eq!(p.bob.decrypt(&a).unwrap(), b"a");
    let first = p.first.clone();
    let forged = forged_header(&first[PREKEY_EMBEDDED_AT..], 0, None, None, Some(u32::MAX));
    assert_rejected(&mut p.bob, &forged, Error::CounterExhausted);
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
                &forged,
                Error::TooManySkippedMessages {
                    requested: u64::from(pn - 1) + u64::from(n),
                    max: DEFAULT_MAX_SKIP,
                },
            );
        }
    }
    // The genuine message (N = 0, PN = 1) still decrypts afterwards.
    assert_eq!(p.bob.decrypt(&from_alice).unwrap(), b"x");
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
            let error = session.decrypt(wire).unwrap_err();
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
    assert_rejected(&mut p.alice, &forged, Error::DecryptionFailed);
    let forged = forged_header(&from_alice, 0, Some(fresh), Some(500), Some(501));
    assert_rejected(&mut p.bob, &forged, Error::DecryptionFailed);
    // One more is out of bounds.
    let forged = forged_header(&from_bob, 0, None, None, Some(DEFAULT_MAX_SKIP + 2));
    assert_rejected(
        &mut p.alice,
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
        let error = p.alice.decrypt(&forged).unwrap_err();
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
    assert_eq!(p.alice.decrypt(&wire).unwrap(), b"authenticated");
}

#[test]
fn new_ratchet_key_while_the_sending_step_is_due_is_rejected_before_any_dh() {
    // Deferred sending ratchet step: a session that has just read a message
    // under a new ratchet key has sent nothing under a new key of its own, so
    // an honest peer cannot have moved on. Another new ratchet key is refused
    // before any DH (a small-order one included) and before deriving the
    // skipped keys its PN asks for, and changes nothing.
    let mut p = pair(59);
    assert_eq!(hazmat::sending_chain_key(&p.alice), None);
    let mut h = handshake(65);
    let (mut bob, _) = Responder::new(&h.bob_device, &mut h.store)
        .accept(
            &h.alice_device.address(),
            &PreKeyMessage::parse(&h.first).unwrap(),
        )
        .unwrap();
    assert_eq!(hazmat::sending_chain_key(&bob), None);
    let fresh = random_public_key(&mut p.rng);
    let keys = SMALL_ORDER_X25519.iter().map(|(_, k)| *k).chain([fresh]);
    for key in keys {
        for (pn, n) in [(None, None), (Some(3), Some(2))] {
            let forged = forged_header(&p.reply, 0, Some(key), pn, n);
            assert_rejected(&mut p.alice, &forged, Error::DecryptionFailed);
            let forged = forged_header(&h.first[PREKEY_EMBEDDED_AT..], 0, Some(key), pn, n);
            assert_rejected(&mut bob, &forged, Error::DecryptionFailed);
        }
    }
    assert_eq!(hazmat::sending_chain_key(&p.alice), None);
    assert_eq!(hazmat::sending_chain_key(&bob), None);
    // The step, made at the next encrypt, then works both ways.
    let a = p.alice.encrypt(&mut p.rng, b"on A2").unwrap();
    assert!(hazmat::sending_chain_key(&p.alice).is_some());
    assert_eq!(p.bob.decrypt(&a).unwrap(), b"on A2");
    let b = bob.encrypt(&mut h.rng, b"on B1").unwrap();
    assert!(hazmat::sending_chain_key(&bob).is_some());
    assert_eq!(h.alice.decrypt(&b).unwrap(), b"on B1");
}

// ---------------------------------------------------------------------------
// ML-KEM prekeys (PQXDH): signatures, keys, ids, spent keys, ciphertexts
// ---------------------------------------------------------------------------

#[test]
fn kem_signature_with_any_flipped_bit_is_rejected() {
    let (_, _, wire) = genuine_bundle(100);
    for bit in 0..512 {
        let mut forged = wire.clone();
        forged[BUNDLE_KEM_SIGNATURE_AT + bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            bundle_verdict(&forged),
            Err(Error::InvalidSignature),
            "bit {bit} of the KEM prekey signature"
        );
    }
    // S + ℓ (the same scalar mod ℓ), S = ℓ, and the all-zero signature.
    let s: [u8; 32] = wire[BUNDLE_KEM_SIGNATURE_AT + 32..BUNDLE_KEM_SIGNATURE_AT + 64]
        .try_into()
        .unwrap();
    for bad_s in [add_le(&s, &ELL), ELL] {
        let forged = patched(&wire, BUNDLE_KEM_SIGNATURE_AT + 32, &bad_s);
        assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    }
    let forged = patched(&wire, BUNDLE_KEM_SIGNATURE_AT, &[0u8; 64]);
    assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    // The two signatures swapped: each covers only its own key.
    let spk_signature = wire[BUNDLE_SIGNATURE_AT..BUNDLE_SIGNATURE_AT + 64].to_vec();
    let kem_signature = wire[BUNDLE_KEM_SIGNATURE_AT..BUNDLE_KEM_SIGNATURE_AT + 64].to_vec();
    let mut swapped = patched(&wire, BUNDLE_SIGNATURE_AT, &kem_signature);
    swapped[BUNDLE_KEM_SIGNATURE_AT..BUNDLE_KEM_SIGNATURE_AT + 64].copy_from_slice(&spk_signature);
    assert_eq!(bundle_verdict(&swapped), Err(Error::InvalidSignature));
    assert_eq!(bundle_verdict(&wire), Ok(()));
}

#[test]
fn kem_prekey_tampered_in_bundle_is_rejected() {
    let (bob, store, wire) = genuine_bundle(101);
    let genuine = store.last_resort_kem_prekey().public_key().as_bytes();
    assert_eq!(
        wire[BUNDLE_KEM_KEY_AT..BUNDLE_KEM_KEY_AT + KEM_PUBLIC_KEY_LEN],
        genuine[..]
    );
    // The last 32 bytes of an encapsulation key are the seed ρ: any value is
    // a valid key, so an altered ρ fails only the signature.
    for at in [KEM_PUBLIC_KEY_LEN - 32, KEM_PUBLIC_KEY_LEN - 1] {
        let forged = patched(&wire, BUNDLE_KEM_KEY_AT + at, &[genuine[at] ^ 1]);
        assert!(PreKeyBundle::decode(&forged).is_ok());
        assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    }
    // The first 1152 bytes are 768 coefficients of 12 bits, each below q =
    // 3329 (FIPS 203 modulus check). Coefficient 0 is byte 0 and the low
    // nibble of byte 1: q - 1 is in range (and fails the signature); q and
    // 4095 are not keys at all.
    let with_coefficient_0 = |c: u16| {
        let mut key = *genuine;
        key[0] = c as u8;
        key[1] = (key[1] & 0xf0) | (c >> 8) as u8;
        key
    };
    let in_range = with_coefficient_0(3328);
    assert!(KemPublicKey::from_bytes(&in_range).is_ok());
    let forged = patched(&wire, BUNDLE_KEM_KEY_AT, &in_range[..2]);
    assert_eq!(bundle_verdict(&forged), Err(Error::InvalidSignature));
    for c in [3329, 4095] {
        let key = with_coefficient_0(c);
        assert_eq!(
            KemPublicKey::from_bytes(&key),
            Err(DecodeError::InvalidKemKey),
            "coefficient {c}"
        );
        let forged = patched(&wire, BUNDLE_KEM_KEY_AT, &key[..2]);
        assert_eq!(
            PreKeyBundle::decode(&forged),
            Err(DecodeError::InvalidKemKey)
        );
    }
    // A flip anywhere in the coefficients is one or the other, never a key
    // that verifies.
    for byte in (0..KEM_PUBLIC_KEY_LEN - 32).step_by(29) {
        let mut forged = wire.clone();
        forged[BUNDLE_KEM_KEY_AT + byte] ^= 1 << (byte % 8);
        let verdict = bundle_verdict(&forged);
        assert!(
            matches!(
                verdict,
                Err(Error::InvalidSignature | Error::Decode(DecodeError::InvalidKemKey))
            ),
            "byte {byte}: {verdict:?}"
        );
    }

    let spk = store.signed_prekey();
    let with_kem = |kem: BundleKemPreKey| {
        PreKeyBundle::new(
            *bob.public_key(),
            BOB_DEVICE,
            spk.id(),
            *spk.public_key(),
            *spk.signature(),
            kem,
            None,
        )
    };
    // Mallory's KEM prekey, validly signed by Mallory, in Bob's bundle.
    let mallory = IdentityKeyPair::from_seed(&[0x4d; 32]);
    assert_eq!(
        with_kem(signed_kem(&mallory)).verify().err(),
        Some(Error::InvalidSignature)
    );
    // Bob's KEM key signed by Bob, but over the bare key or with the X25519
    // key-type byte (0x05) instead of the ML-KEM one (0x0A).
    let key = store.last_resort_kem_prekey().public_key();
    let typed = |type_byte: u8| {
        let mut m = vec![type_byte];
        m.extend_from_slice(key.as_bytes());
        m
    };
    for signature in [bob.sign(key.as_bytes()), bob.sign(&typed(0x05))] {
        let kem = BundleKemPreKey {
            id: 1,
            key: key.clone(),
            signature,
        };
        assert_eq!(with_kem(kem).verify().err(), Some(Error::InvalidSignature));
    }
    let kem = BundleKemPreKey {
        id: 1,
        key: key.clone(),
        signature: bob.sign(&typed(0x0a)),
    };
    assert!(with_kem(kem).verify().is_ok());
}

#[test]
fn kem_prekey_id_relabelled_in_bundle_is_caught_by_the_responder() {
    // A signature covers the KEM key, not its id (as for the signed prekey):
    // anyone on the path can relabel the id and the bundle still verifies.
    // Bob then decapsulates with the key of that id, and AD names another id
    // and key hash: the first message fails, and nothing is spent.
    let mut h = handshake_with(102, true);
    let bob_key = h.bob_device.identity.public_key();
    let spare_one_time = h.one_time_ids[1];
    let published =
        PreKeyBundle::from_store_with_kem(bob_key, &h.store, Some(spare_one_time), Some(2))
            .encode();
    let from = h.alice_device.address();
    for (id, expected) in [
        (3, Error::DecryptionFailed),
        (1, Error::DecryptionFailed),
        (99, Error::UnknownKemPreKey { id: 99 }),
    ] {
        let relabelled = patched(&published, BUNDLE_KEM_ID_AT, &PreKeyId::to_be_bytes(id));
        let bundle = PreKeyBundle::decode(&relabelled)
            .unwrap()
            .verify_for(bob_key)
            .unwrap();
        assert_eq!(bundle.kem_prekey().0, id);
        let mut alice =
            Session::initiate(&mut h.rng, &h.alice_device, &h.bob_device.account, &bundle).unwrap();
        let wire = alice.encrypt(&mut h.rng, b"to a relabelled key").unwrap();
        assert_eq!(PreKeyMessage::parse(&wire).unwrap().kem_prekey_id(), id);
        assert_accept_rejected(&h.bob_device, &mut h.store, &from, &wire, None, expected);
    }
    assert_eq!(
        h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(h.store.find_one_time_prekey(spare_one_time).is_some());
    // Alice's genuine message still gets through and spends only its own key.
    Responder::new(&h.bob_device, &mut h.store)
        .accept(&from, &PreKeyMessage::parse(&h.first).unwrap())
        .unwrap();
    assert_eq!(h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
}

#[test]
fn kem_prekey_id_swapped_in_prekey_message_is_rejected() {
    let mut h = handshake_with(103, true);
    let from = h.alice_device.address();
    assert_eq!(PreKeyMessage::parse(&h.first).unwrap().kem_prekey_id(), 2);
    // Another one-time KEM prekey Bob holds, and his last-resort one: the
    // ciphertext is not for them, and AD names the id. Neither is spent.
    for id in [3u32, 1] {
        let swapped = patched(&h.first, PREKEY_KEM_ID_AT, &id.to_be_bytes());
        assert_accept_rejected(
            &h.bob_device,
            &mut h.store,
            &from,
            &swapped,
            None,
            Error::DecryptionFailed,
        );
    }
    // Ids Bob never issued.
    for id in [0u32, 4, u32::MAX] {
        let unknown = patched(&h.first, PREKEY_KEM_ID_AT, &id.to_be_bytes());
        assert_accept_rejected(
            &h.bob_device,
            &mut h.store,
            &from,
            &unknown,
            None,
            Error::UnknownKemPreKey { id },
        );
    }
    assert_eq!(h.store.one_time_kem_prekey_count(), 2);
    Responder::new(&h.bob_device, &mut h.store)
        .accept(&from, &PreKeyMessage::parse(&h.first).unwrap())
        .unwrap();
    assert_eq!(h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
}

#[test]
fn spent_one_time_kem_prekey_is_unknown_kem_prekey() {
    // A server hands the same one-time prekey and one-time KEM prekey to Alice
    // and to Carol. Alice's message is accepted first and spends both.
    let mut h = handshake_with(104, true);
    let bob_key = *h.bob_device.identity.public_key();
    let carol = device(&mut h.rng, b"carol", 1);
    let bundle =
        PreKeyBundle::from_store_with_kem(&bob_key, &h.store, Some(h.one_time_ids[0]), Some(2))
            .verify()
            .unwrap();
    let mut carol_session =
        Session::initiate(&mut h.rng, &carol, &h.bob_device.account, &bundle).unwrap();
    let from_carol = carol_session.encrypt(&mut h.rng, b"from Carol").unwrap();
    let (bob, _) = Responder::new(&h.bob_device, &mut h.store)
        .accept(
            &h.alice_device.address(),
            &PreKeyMessage::parse(&h.first).unwrap(),
        )
        .unwrap();
    assert!(h.store.find_kem_prekey(2).is_none());
    assert!(h.store.find_one_time_prekey(h.one_time_ids[0]).is_none());
    assert_eq!(h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
    // Carol's names the spent KEM prekey: checked after the signed prekey and
    // before the (also spent) one-time prekey.
    let to_bob = carol.address();
    assert_accept_rejected(
        &h.bob_device,
        &mut h.store,
        &to_bob,
        &from_carol,
        None,
        Error::UnknownKemPreKey { id: 2 },
    );
    let unknown_signed = patched(&from_carol, PREKEY_SIGNED_ID_AT, &9u32.to_be_bytes());
    assert_accept_rejected(
        &h.bob_device,
        &mut h.store,
        &to_bob,
        &unknown_signed,
        None,
        Error::UnknownSignedPreKey { id: 9 },
    );
    // With a KEM prekey Bob holds, the spent one-time prekey is what is missing.
    let held_kem = patched(&from_carol, PREKEY_KEM_ID_AT, &3u32.to_be_bytes());
    assert_accept_rejected(
        &h.bob_device,
        &mut h.store,
        &to_bob,
        &held_kem,
        None,
        Error::UnknownOneTimePreKey {
            id: h.one_time_ids[0],
        },
    );
    // Alice's message again is a repeat, named before any prekey lookup.
    assert_accept_rejected(
        &h.bob_device,
        &mut h.store,
        &h.alice_device.address(),
        &h.first,
        None,
        Error::RepeatedPreKeyMessage {
            base_key: *bob.base_key(),
        },
    );
    // The last-resort KEM prekey is never spent: two sessions through it.
    for name in [&b"dave"[..], b"erin"] {
        let initiator = device(&mut h.rng, name, 1);
        let bundle = PreKeyBundle::from_store(&bob_key, &h.store, None)
            .verify()
            .unwrap();
        assert_eq!(bundle.kem_prekey().0, 1);
        let mut session =
            Session::initiate(&mut h.rng, &initiator, &h.bob_device.account, &bundle).unwrap();
        let wire = session.encrypt(&mut h.rng, b"via the last resort").unwrap();
        Responder::new(&h.bob_device, &mut h.store)
            .accept(&initiator.address(), &PreKeyMessage::parse(&wire).unwrap())
            .unwrap();
        assert_eq!(
            h.store.find_kem_prekey(1).map(|(_, kind)| kind),
            Some(KemPreKeyKind::LastResort)
        );
    }
    assert_eq!(h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
}

#[test]
fn forged_kem_ciphertext_in_prekey_message_is_decryption_failed() {
    // Any 1088 bytes parse as a ciphertext; one not made for the named key
    // decapsulates (ML-KEM implicit rejection) to an unrelated secret, and the
    // ciphertext's hash is in AD. The first message fails; nothing changes.
    let mut h = handshake_with(105, true);
    let bob_key = *h.bob_device.identity.public_key();
    let from = h.alice_device.address();
    let genuine = *PreKeyMessage::parse(&h.first).unwrap().kem_ciphertext();
    // Real ciphertexts: another to the same KEM key, and one to another of
    // Bob's KEM keys.
    let mut ciphertext_to = |kem: PreKeyId| {
        let bundle = PreKeyBundle::from_store_with_kem(&bob_key, &h.store, None, Some(kem))
            .verify()
            .unwrap();
        let mut session =
            Session::initiate(&mut h.rng, &h.alice_device, &h.bob_device.account, &bundle).unwrap();
        let wire = session.encrypt(&mut h.rng, b"x").unwrap();
        *PreKeyMessage::parse(&wire).unwrap().kem_ciphertext()
    };
    let same_key = ciphertext_to(2);
    let other_key = ciphertext_to(3);
    let mut random = [0u8; KEM_CIPHERTEXT_LEN];
    h.rng.fill_bytes(&mut random);
    let flipped = |at: usize, bit: u8| {
        let mut ciphertext = genuine;
        ciphertext[at] ^= bit;
        ciphertext
    };
    let forgeries: [(&str, [u8; KEM_CIPHERTEXT_LEN]); 8] = [
        ("all zero", [0; KEM_CIPHERTEXT_LEN]),
        ("all 0xff", [0xff; KEM_CIPHERTEXT_LEN]),
        ("random", random),
        ("first bit flipped", flipped(0, 1)),
        ("middle bit flipped", flipped(KEM_CIPHERTEXT_LEN / 2, 0x10)),
        ("last bit flipped", flipped(KEM_CIPHERTEXT_LEN - 1, 0x80)),
        ("another ciphertext to the same key", same_key),
        ("a ciphertext to another key", other_key),
    ];
    for (name, ciphertext) in &forgeries {
        assert_ne!(*ciphertext, genuine, "{name}");
        let forged = patched(&h.first, PREKEY_KEM_CIPHERTEXT_AT, ciphertext);
        assert_eq!(
            PreKeyMessage::parse(&forged).unwrap().kem_ciphertext(),
            ciphertext,
            "{name}"
        );
        assert_accept_rejected(
            &h.bob_device,
            &mut h.store,
            &from,
            &forged,
            None,
            Error::DecryptionFailed,
        );
    }
    assert_eq!(
        h.store.one_time_kem_prekey_ids().collect::<Vec<_>>(),
        h.kem_ids
    );
    assert_eq!(h.store.one_time_prekey_count(), 3);
    assert_eq!(h.store.accepted_base_key_count(), 0);

    // Bob accepts the genuine message. A copy with another ciphertext is then
    // not his session's (its ciphertext hash differs) and, to a fresh
    // Responder, a repeat of a remembered base key: both change nothing.
    let (mut bob, _) = Responder::new(&h.bob_device, &mut h.store)
        .accept(&from, &PreKeyMessage::parse(&h.first).unwrap())
        .unwrap();
    for (name, ciphertext) in &forgeries {
        let forged = patched(&h.first, PREKEY_KEM_CIPHERTEXT_AT, ciphertext);
        assert!(
            !bob.owns_prekey_message(&PreKeyMessage::parse(&forged).unwrap()),
            "{name}"
        );
        assert_rejected(&mut bob, &forged, Error::WrongSession);
        assert_accept_rejected(
            &h.bob_device,
            &mut h.store,
            &from,
            &forged,
            None,
            Error::RepeatedPreKeyMessage {
                base_key: *bob.base_key(),
            },
        );
    }
    // Alice repeats the genuine ciphertext until she sees a reply: her second
    // message is Bob's session's.
    let second = h.alice.encrypt(&mut h.rng, b"second").unwrap();
    assert_eq!(
        PreKeyMessage::parse(&second).unwrap().kem_ciphertext(),
        &genuine
    );
    assert_eq!(bob.decrypt(&second).unwrap(), b"second");
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
            &h.alice_device.address(),
            &PreKeyMessage::parse(&wire).unwrap(),
        )
        .unwrap();
    let repeat = h.alice.encrypt(&mut h.rng, b"repeat").unwrap();
    for len in min..repeat.len() {
        assert_rejected(&mut bob, &repeat[..len], Error::DecryptionFailed);
    }
    let mut padded = repeat.clone();
    padded.push(0);
    assert_rejected(&mut bob, &padded, Error::DecryptionFailed);
    assert_eq!(bob.decrypt(&repeat).unwrap(), b"repeat");
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
        let error = p.alice.decrypt(&wire[..len]).unwrap_err();
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
        assert_rejected(&mut p.alice, &wire[..len], Error::DecryptionFailed);
    }
    for garbage in [&[0u8][..], &[0xff; 16], &wire[wire.len() - 16..]] {
        let mut padded = wire.clone();
        padded.extend_from_slice(garbage);
        assert_rejected(&mut p.alice, &padded, Error::DecryptionFailed);
    }
    assert_eq!(
        p.alice.decrypt(&wire).unwrap(),
        b"a ratchet message of some length"
    );
}

/// A responder session with sending and receiving chains, previous ratchet
/// keys and skipped keys, so that every field of the stored form is populated,
/// and its initiator, whose sending step is due (no sending chain).
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
        p.bob.decrypt(&sent[2]).unwrap();
        let reply = p.bob.encrypt(&mut p.rng, b"r").unwrap();
        p.alice.decrypt(&reply).unwrap();
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
    // One-time KEM prekeys 2 and 3; the rotations make last-resort ones 4 and 5.
    let kem_ids = store
        .generate_one_time_kem_prekeys(&mut rng, &bob, 2)
        .unwrap();
    assert_eq!(kem_ids, [2, 3]);
    store.rotate_signed_prekey(&mut rng, &bob, 1_000).unwrap();
    store.rotate_signed_prekey(&mut rng, &bob, 2_000).unwrap();
    assert_eq!(store.last_resort_kem_prekey().id(), 5);
    store.remove_one_time_prekey(2);
    // Version 2 stores also hold base keys of accepted prekey messages: one
    // under the retired last-resort KEM prekey 1 (which stays), one under the
    // one-time KEM prekey 2 (which is spent).
    for (signed_prekey_id, kem_prekey_id) in [(1, 1), (3, 2)] {
        let base_key = PublicKey::from_bytes(random_public_key(&mut rng)).unwrap();
        assert!(store.record_accepted(
            signed_prekey_id,
            kem_prekey_id,
            Some(signed_prekey_id),
            &base_key
        ));
    }
    assert_eq!(store.accepted_base_key_count(), 2);
    assert_eq!(store.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
    assert_eq!(
        store.find_kem_prekey(1).map(|(_, kind)| kind),
        Some(KemPreKeyKind::LastResort)
    );
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
            assert_rejected(&mut p.bob, &forged, expected);
        } else {
            // Message::parse treats anything but the prekey tag as a ratchet
            // message (the v1 tags included).
            assert_rejected(
                &mut p.bob,
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
            assert_rejected(&mut p.alice, &forged, Error::Decode(error));
        } else {
            assert_rejected(
                &mut p.alice,
                &forged,
                Error::Decode(DecodeError::UnknownFormat {
                    expected: RATCHET_TAG,
                    found: tag,
                }),
            );
        }
    }
    assert_eq!(p.alice.decrypt(&wire).unwrap(), b"tagged");
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
    // key, root key, the sending chain flag (set: Bob has just replied) with
    // the sending ratchet secret, sending chain key and Ns, then PN, the
    // receiving chain flag, receiving ratchet key, chain key and Nr, the count
    // of previous ratchet keys and the keys, the handshake prekey ids (signed,
    // KEM, one-time flag and id), the KEM key and ciphertext hashes, and the
    // awaiting reply flag.
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
    let sending_flag_at = base_key_at + 2 * 32;
    let sending_secret_at = sending_flag_at + 1;
    let receiving_flag_at = sending_secret_at + 2 * 32 + 4 + 4;
    let receiving_key_at = receiving_flag_at + 1;
    let previous_count_at = receiving_flag_at + 1 + 32 + 32 + 4;
    let previous = usize::from(blob[previous_count_at]);
    assert!(
        previous >= 1 && blob[sending_flag_at] == 1 && blob[receiving_flag_at] == 1,
        "a responder with a sending and a receiving chain"
    );
    let handshake_at = previous_count_at + 1 + 32 * previous;
    assert_eq!(blob[handshake_at..handshake_at + 4], 1u32.to_be_bytes());
    assert_eq!(blob[handshake_at + 4..handshake_at + 8], 1u32.to_be_bytes());
    let one_time_flag_at = handshake_at + 8;
    assert_eq!(
        blob[one_time_flag_at], 1,
        "the handshake used one-time prekey 1"
    );
    let kem_digest_at = one_time_flag_at + 1 + 4;
    let awaiting_flag_at = kem_digest_at + 32 + 32;
    let skipped_count_at = awaiting_flag_at + 1;
    assert_eq!(
        u32::from_be_bytes(
            blob[skipped_count_at..skipped_count_at + 4]
                .try_into()
                .unwrap()
        ) as usize,
        bob.skipped_key_count()
    );
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
            patched(&blob, sending_flag_at, &[2]),
            Error::Decode(DecodeError::InvalidFlag {
                field: "sending chain flag",
            }),
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
            // "No one-time prekey" with a nonzero id.
            patched(&blob, one_time_flag_at, &[0]),
            Error::Decode(DecodeError::InvalidFlag {
                field: "handshake one-time prekey id",
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
            patched(&blob, awaiting_flag_at, &[1]),
            Error::Decode(DecodeError::InvalidValue {
                field: "awaiting reply flag",
            }),
        ),
    ];
    for (tampered, expected) in session_cases {
        assert_eq!(Session::decode(&tampered).err(), Some(expected));
    }
    // The KEM key and ciphertext hashes are not checked when decoding (a
    // responder keeps no ciphertext), but they are bound into AD: an altered
    // one gives another session, which no longer reads Alice's messages.
    for at in [kem_digest_at, kem_digest_at + 32] {
        let altered = Session::decode(&patched(&blob, at, &[blob[at] ^ 1])).unwrap();
        assert_ne!(
            hazmat::associated_data(&altered),
            hazmat::associated_data(&bob)
        );
    }

    // A fresh initiator (1402 bytes): sending chain, no receiving chain, and
    // the pending KEM ciphertext after the awaiting reply flag.
    let h = handshake(92);
    let blob = h.alice.encode().to_vec();
    assert_eq!(blob.len(), 1402);
    let sending_flag_at = 75 + (1 + 5 + 4) + (1 + 3 + 4) + 32 + 32;
    let receiving_flag_at = sending_flag_at + 1 + 32 + 32 + 4 + 4;
    assert_eq!((blob[sending_flag_at], blob[receiving_flag_at]), (1, 0));
    let awaiting_flag_at = receiving_flag_at + 1 + 1 + 4 + 4 + 1 + 4 + 32 + 32;
    assert_eq!(blob[awaiting_flag_at], 1);
    let ciphertext_at = awaiting_flag_at + 1;
    assert_eq!(
        blob[ciphertext_at..ciphertext_at + KEM_CIPHERTEXT_LEN],
        *PreKeyMessage::parse(&h.first).unwrap().kem_ciphertext()
    );
    assert_eq!(ciphertext_at + KEM_CIPHERTEXT_LEN + 4, blob.len());
    // No sending chain and no receiving chain: nothing to take the sending
    // step against.
    let mut no_chain = blob.clone();
    no_chain.splice(sending_flag_at..sending_flag_at + 1 + 32 + 32 + 4, [0]);
    let initiator_cases: Vec<(Vec<u8>, Error)> = vec![
        (
            no_chain,
            Error::Decode(DecodeError::InvalidValue {
                field: "sending chain flag",
            }),
        ),
        (
            patched(&blob, awaiting_flag_at, &[2]),
            Error::Decode(DecodeError::InvalidFlag {
                field: "awaiting reply flag",
            }),
        ),
        (
            // The ciphertext is not the one whose hash the AD was made over.
            patched(&blob, ciphertext_at + 100, &[blob[ciphertext_at + 100] ^ 1]),
            Error::Decode(DecodeError::InvalidValue {
                field: "KEM ciphertext",
            }),
        ),
    ];
    for (tampered, expected) in initiator_cases {
        assert_eq!(Session::decode(&tampered).err(), Some(expected));
    }
    assert!(Session::decode(&blob).is_ok());

    let mut rng = rng(91);
    let identity = IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::generate(&mut rng, &identity, BOB_DEVICE);
    store.generate_one_time_prekeys(&mut rng, 2).unwrap();
    let kem_ids = store
        .generate_one_time_kem_prekeys(&mut rng, &identity, 2)
        .unwrap();
    assert_eq!(kem_ids, [2, 3]);
    let base_keys: Vec<PublicKey> = (0..2)
        .map(|_| PublicKey::from_bytes(random_public_key(&mut rng)).unwrap())
        .collect();
    for base_key in &base_keys {
        assert!(store.record_accepted(1, 1, None, base_key));
    }
    let blob = store.encode().to_vec();
    // No retired keys: the signed prekey at 6 (secret at 10), the last-resort
    // KEM prekey at 106 (id ‖ seed ‖ signature, 132 bytes), retired count at
    // 238, next one-time id at 239, count at 243, entries (36 bytes) at 247;
    // next KEM id at 319, one-time KEM count at 323, entries (132 bytes) at
    // 327; then the accepted base keys: count at 591, then `signed prekey id ‖
    // KEM prekey id ‖ base key` (40 bytes) at 595.
    assert_eq!(blob[106..110], 1u32.to_be_bytes());
    assert_eq!(blob[238], 0);
    assert_eq!(blob[239..243], 3u32.to_be_bytes());
    assert_eq!(blob[319..323], 4u32.to_be_bytes());
    assert_eq!(blob[323..327], 2u32.to_be_bytes());
    assert_eq!(blob[327..331], 2u32.to_be_bytes());
    assert_eq!(blob[459..463], 3u32.to_be_bytes());
    assert_eq!(blob[591..595], 2u32.to_be_bytes());
    assert_eq!(blob[595..603], [0, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(&blob[603..635], base_keys[0].as_bytes());
    assert_eq!(&blob[643..], base_keys[1].as_bytes());
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
            patched(&blob, 238, &[5]),
            DecodeError::LimitExceeded {
                field: "retired signed prekeys",
                max: 4,
                found: 5,
            },
        ),
        (
            patched(&blob, 243, &10_001u32.to_be_bytes()),
            DecodeError::LimitExceeded {
                field: "one-time prekey count",
                max: 10_000,
                found: 10_001,
            },
        ),
        (
            patched(&blob, 247 + 4, &[blob[247 + 4] | 1]),
            DecodeError::InvalidValue {
                field: "one-time prekey secret",
            },
        ),
        (
            // Second id equal to the first: not strictly increasing.
            patched(&blob, 247 + 36, &1u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "one-time prekey id",
            },
        ),
        (
            // Next id not above the ids held.
            patched(&blob, 239, &2u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "one-time prekey id",
            },
        ),
        (
            patched(&blob, 323, &1_001u32.to_be_bytes()),
            DecodeError::LimitExceeded {
                field: "one-time KEM prekey count",
                max: 1_000,
                found: 1_001,
            },
        ),
        (
            // Second one-time KEM id equal to the first.
            patched(&blob, 459, &2u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "one-time KEM prekey id",
            },
        ),
        (
            // Next KEM id not above the one-time KEM prekey 3.
            patched(&blob, 319, &3u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "KEM prekey id",
            },
        ),
        (
            // The last-resort KEM prekey with the id of one-time KEM prekey 2.
            patched(&blob, 106, &2u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "KEM prekey id",
            },
        ),
        (
            patched(&blob, 591, &1_001u32.to_be_bytes()),
            DecodeError::LimitExceeded {
                field: "accepted base key count",
                max: 1_000,
                found: 1_001,
            },
        ),
        (
            // A base key accepted under a signed prekey the store does not hold.
            patched(&blob, 595, &9u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "accepted signed prekey id",
            },
        ),
        (
            // ... or under a KEM prekey id never issued (the next id is 4).
            patched(&blob, 599, &4u32.to_be_bytes()),
            DecodeError::InvalidValue {
                field: "accepted KEM prekey id",
            },
        ),
        (
            patched(&blob, 603, &NON_CANONICAL_X25519[1].1),
            non_canonical("accepted base key"),
        ),
        (
            // The same base key twice.
            patched(&blob, 643, base_keys[0].as_bytes()),
            DecodeError::InvalidValue {
                field: "accepted base key",
            },
        ),
    ];
    for (tampered, expected) in store_cases {
        assert_eq!(PreKeyStore::decode(&tampered).err(), Some(expected));
    }
    assert_eq!(*PreKeyStore::decode(&blob).unwrap().encode(), *blob);
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
