//! Secret hygiene of the public secret-holding types: `IdentityKeyPair`,
//! `PreKeyStore`, `SignedPreKey`, `OneTimePreKey`, `KemPreKey` and `Session`.
//!
//! - `Debug` (`{:?}` and `{:#?}`) never prints secret key bytes. The secrets
//!   are known exactly: identities come from fixed seeds (with their expanded
//!   SHA-512 halves), and the X25519 private keys, ML-KEM seeds, root, chain
//!   and skipped message keys are read out of the `encode()` blobs at the offsets of
//!   SPEC.md §6 (cross-checked against `hazmat` and against the public keys).
//!   For every 32-byte secret, neither its hex (lower or upper case), nor its
//!   `[a, b, …]` decimal rendering, nor any 8-byte window of either appears.
//! - None of those types is `Clone`, `Copy` or `Display`: checked at compile
//!   time with the "ambiguous impl" trick (as `static_assertions` does it).
//! - The stored forms are `Zeroizing<Vec<u8>>` by type.
//!
//! There is no test that memory is wiped on drop. Observing a dropped value's
//! bytes needs a raw pointer read after the drop (or a custom global
//! allocator that reads freed blocks), both `unsafe`, and the crate forbids
//! `unsafe` in every target. A test without it could only check that some
//! `Drop` exists, which says nothing about whether the bytes are gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::at_rest::StorageKey;
use ratchetbox::devices::{LocalDevice, SessionManager, SessionRecord};
use ratchetbox::hazmat;
use ratchetbox::provisioning::{LinkRequest, LinkedDevice, ProvisionedAccount, provision};
use ratchetbox::rand_core::Rng;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::store::{MemoryStore, SessionStore};
use ratchetbox::{AccountId, DeviceAddress};
use ratchetbox::{
    IdentityKeyPair, KEM_CIPHERTEXT_LEN, KemPreKey, KemPreKeyKind, OneTimePreKey, PreKeyBundle,
    PreKeyMessage, PreKeyStore, Responder, Session, SignedPreKey,
};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

/// The X25519 base point, u = 9.
const BASE_POINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 9;
    b
};

// ---------------------------------------------------------------------------
// Compile-time: secret types are not Clone, Copy or Display
// ---------------------------------------------------------------------------

/// Fails to compile if `$ty` implements any of the traits: each implemented
/// trait adds a second candidate impl of `AmbiguousIfImpl<_>`, so the `_`
/// cannot be inferred. (Checked by hand: with `PreKeyBundle: Clone` in the
/// list, this file does not compile, with error E0283 "type annotations
/// needed".)
macro_rules! assert_not_impl_any {
    ($ty:ty: $($tr:path),+ $(,)?) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            $({
                #[allow(dead_code)]
                struct Invalid;
                impl<T: ?Sized + $tr> AmbiguousIfImpl<Invalid> for T {}
            })+
            let _ = <$ty as AmbiguousIfImpl<_>>::some_item;
        };
    };
}

assert_not_impl_any!(IdentityKeyPair: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(Session: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(PreKeyStore: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(SignedPreKey: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(OneTimePreKey: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(KemPreKey: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(StorageKey: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(LinkRequest: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(ProvisionedAccount: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(LinkedDevice: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(SessionRecord: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(MemoryStore: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(LocalDevice: Clone, Copy, core::fmt::Display);
assert_not_impl_any!(SessionManager<MemoryStore>: Clone, Copy, core::fmt::Display);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn array(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `1,2,3` — the elements of an array's `Debug` rendering with all whitespace
/// removed, which is what both `{:?}` and `{:#?}` reduce to.
fn decimal_list(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Why `text` leaks `secret`, if it does: its full hex or decimal-array
/// rendering, or any 8-byte window of them (public keys are printed as 8-byte
/// hex prefixes, so a secret printed the same way must be caught too).
fn leak(text: &str, secret: &[u8; 32]) -> Option<String> {
    let compact = without_whitespace(text);
    if compact.contains(&format!("[{}]", decimal_list(secret))) {
        return Some("decimal array".into());
    }
    let lower = text.to_lowercase();
    for window in secret.windows(8) {
        if lower.contains(&hex_lower(window)) {
            return Some(format!("hex window {}", hex_lower(window)));
        }
        if compact.contains(&decimal_list(window)) {
            return Some(format!("decimal window {}", decimal_list(window)));
        }
    }
    None
}

/// Asserts that neither Debug rendering of `value` shows any of `secrets`.
fn assert_no_secret<T: core::fmt::Debug>(what: &str, value: &T, secrets: &[(String, [u8; 32])]) {
    let outputs = [format!("{value:?}"), format!("{value:#?}")];
    assert!(!outputs[0].is_empty());
    for output in &outputs {
        for (name, secret) in secrets {
            if let Some(how) = leak(output, secret) {
                panic!("Debug of {what} shows {name} ({how}):\n{output}");
            }
        }
    }
}

/// The detector itself catches each rendering it is meant to catch.
#[test]
fn leak_detector_catches_every_rendering() {
    let secret: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let renderings = [
        format!("{secret:?}"),
        format!("{secret:#?}"),
        format!("S {{ k: {secret:#?} }}"),
        hex_lower(&secret),
        hex_upper(&secret),
        format!("Key({}…)", hex_lower(&secret[..8])),
        format!("Key({}…)", hex_upper(&secret[20..28])),
        format!("{:?}", &secret[3..11]),
        format!("{:#?}", &secret[24..]),
    ];
    for text in &renderings {
        assert!(leak(text, &secret).is_some(), "missed: {text}");
    }
    assert!(leak("PublicKey(0a1b2c3d…)", &secret).is_none());
}

// ---------------------------------------------------------------------------
// Secrets, read from the stored forms (SPEC.md §6)
// ---------------------------------------------------------------------------

/// The secrets of an identity: its seed and both halves of SHA-512(seed) (the
/// first, clamped, is the Ed25519 and X25519 scalar; the second the nonce key).
fn identity_secrets(seed: &[u8; 32]) -> Vec<(String, [u8; 32])> {
    let expanded = Sha512::digest(seed);
    let mut scalar = array(&expanded[..32]);
    let unclamped = scalar;
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    vec![
        ("identity seed".into(), *seed),
        ("identity scalar (clamped)".into(), scalar),
        ("identity scalar (unclamped)".into(), unclamped),
        ("identity nonce key".into(), array(&expanded[32..])),
    ]
}

/// The secret of a 64-byte ML-KEM seed as three 32-byte windows: `d`, `z`
/// and the middle, so every 8-byte window of the seed lies in one of them.
fn kem_seed_secrets(name: &str, seed: &[u8]) -> Vec<(String, [u8; 32])> {
    assert_eq!(seed.len(), 64);
    vec![
        (format!("{name} seed d"), array(&seed[..32])),
        (format!("{name} seed middle"), array(&seed[16..48])),
        (format!("{name} seed z"), array(&seed[32..])),
    ]
}

/// The KEM prekey row `id ‖ seed (64) ‖ signature (64)` at `at` of a stored
/// prekey store, checked against the store's KEM prekey of that id (decoding
/// the row regenerates the key pair from the seed): its seed's secrets.
fn kem_row_secrets(
    store: &PreKeyStore,
    blob: &[u8],
    at: usize,
    kind: KemPreKeyKind,
    name: &str,
) -> Vec<(String, [u8; 32])> {
    let id = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
    let mut row = vec![0x5B];
    row.extend_from_slice(&blob[at..at + 132]);
    let decoded = KemPreKey::decode(&row).unwrap();
    let (held, held_kind) = store.find_kem_prekey(id).unwrap();
    assert_eq!(held_kind, kind, "{name}");
    assert_eq!(decoded.id(), id);
    assert_eq!(decoded.public_key(), held.public_key(), "{name}");
    assert_eq!(decoded.signature(), held.signature(), "{name}");
    kem_seed_secrets(&format!("{name} (KEM id {id})"), &blob[at + 4..at + 68])
}

/// Every secret in a stored prekey store (§6.2): the X25519 private keys,
/// checked against the public keys the store reports, and the ML-KEM seeds,
/// checked against its KEM prekeys.
///
/// Version 2 layout: `0x50 ‖ 0x02 ‖ device id ‖ SPK (id ‖ secret 32 ‖ sig 64)
/// ‖ last-resort KEM (id ‖ seed 64 ‖ sig 64) ‖ retired count u8 ‖ retired ×
/// (SPK ‖ KEM ‖ retired-at u64) ‖ next OPK id ‖ OPK count ‖ OPK × (id ‖
/// secret) ‖ next KEM id ‖ one-time KEM count ‖ KEM × (id ‖ seed ‖ sig) ‖
/// accepted count ‖ accepted × (SPK id ‖ KEM id ‖ base key)`.
fn prekey_store_secrets(store: &PreKeyStore) -> Vec<(String, [u8; 32])> {
    let blob = store.encode();
    assert_eq!(blob[..2], [0x50, 0x02]);
    let mut secrets = Vec::new();
    let spk = array(&blob[10..42]);
    assert_eq!(
        hazmat::x25519(spk, BASE_POINT).unwrap(),
        *store.signed_prekey().public_key().as_bytes()
    );
    secrets.push(("current signed prekey".into(), spk));
    assert_eq!(
        blob[106..110],
        store.last_resort_kem_prekey().id().to_be_bytes()
    );
    secrets.extend(kem_row_secrets(
        store,
        &blob,
        106,
        KemPreKeyKind::LastResort,
        "current last-resort KEM prekey",
    ));
    let retired = usize::from(blob[238]);
    let mut at = 239;
    for i in 0..retired {
        let id = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
        let secret = array(&blob[at + 4..at + 36]);
        assert_eq!(
            hazmat::x25519(secret, BASE_POINT).unwrap(),
            *store
                .find_signed_prekey(id)
                .unwrap()
                .public_key()
                .as_bytes()
        );
        secrets.push((format!("retired signed prekey {i}"), secret));
        secrets.extend(kem_row_secrets(
            store,
            &blob,
            at + 100,
            KemPreKeyKind::LastResort,
            &format!("retired last-resort KEM prekey {i}"),
        ));
        at += 100 + 132 + 8;
    }
    let count = u32::from_be_bytes(blob[at + 4..at + 8].try_into().unwrap()) as usize;
    assert_eq!(count, store.one_time_prekey_count());
    at += 8;
    for _ in 0..count {
        let id = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
        let secret = array(&blob[at + 4..at + 36]);
        assert_eq!(
            hazmat::x25519(secret, BASE_POINT).unwrap(),
            *store
                .find_one_time_prekey(id)
                .unwrap()
                .public_key()
                .as_bytes()
        );
        secrets.push((format!("one-time prekey {id}"), secret));
        at += 36;
    }
    let kem_count = u32::from_be_bytes(blob[at + 4..at + 8].try_into().unwrap()) as usize;
    assert_eq!(kem_count, store.one_time_kem_prekey_count());
    at += 8;
    for i in 0..kem_count {
        secrets.extend(kem_row_secrets(
            store,
            &blob,
            at,
            KemPreKeyKind::OneTime,
            &format!("one-time KEM prekey {i}"),
        ));
        at += 132;
    }
    // Version 2 ends with the base keys of accepted prekey messages: public
    // keys, with the signed and KEM prekey ids each was accepted under.
    let accepted = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(accepted, store.accepted_base_key_count());
    at += 4 + 40 * accepted;
    assert_eq!(at, blob.len());
    secrets
}

/// Every secret in a stored session (§6.3): root key, sending ratchet private
/// key, sending and receiving chain keys, skipped message keys.
///
/// Version 2 layout: `0x53 ‖ 0x02 ‖ limits(8) ‖ role ‖ two identity keys (64)`
/// (75 bytes), then the local and remote addresses (`u8 len ‖ account ‖ u32
/// device` each), then base key, root key, the sending chain flag (and if set:
/// sending ratchet secret, sending chain key, Ns), PN, the receiving chain
/// flag (and if set: DHr, CKr, Nr), the previous ratchet keys, the handshake
/// prekey ids, the KEM key and ciphertext hashes, the pending flag (and if
/// set: the KEM ciphertext) and the skipped message keys.
fn session_secrets(session: &Session) -> Vec<(String, [u8; 32])> {
    let blob = session.encode();
    assert_eq!(blob[..2], [0x53, 0x02]);
    let mut at = 75;
    for address in [session.local_address(), session.remote_address()] {
        let account = address.account().as_bytes();
        assert_eq!(usize::from(blob[at]), account.len());
        assert_eq!(&blob[at + 1..at + 1 + account.len()], account);
        at += 1 + account.len();
        assert_eq!(blob[at..at + 4], address.device_id().to_be_bytes());
        at += 4;
    }
    assert_eq!(&blob[at..at + 32], session.base_key().as_bytes());
    let root = at + 32;
    let mut secrets = vec![("root key".to_string(), array(&blob[root..root + 32]))];
    assert_eq!(secrets[0].1, hazmat::root_key(session));
    // The sending chain flag: clear while the sending half of a ratchet step
    // is due.
    at = root + 32;
    if blob[at] == 1 {
        let chain = array(&blob[at + 33..at + 65]);
        assert_eq!(Some(chain), hazmat::sending_chain_key(session));
        secrets.push((
            "sending ratchet private key".into(),
            array(&blob[at + 1..at + 33]),
        ));
        secrets.push(("sending chain key".into(), chain));
        at += 1 + 32 + 32 + 4;
    } else {
        assert_eq!(blob[at], 0);
        assert_eq!(hazmat::sending_chain_key(session), None);
        at += 1;
    }
    // After PN: the receiving chain flag.
    at += 4;
    if blob[at] == 1 {
        let receiving = array(&blob[at + 33..at + 65]);
        assert_eq!(Some(receiving), hazmat::receiving_chain_key(session));
        secrets.push(("receiving chain key".into(), receiving));
        at += 1 + 32 + 32 + 4;
    } else {
        assert_eq!(blob[at], 0);
        assert_eq!(hazmat::receiving_chain_key(session), None);
        at += 1;
    }
    // Previous ratchet keys, handshake prekey ids (SPK, KEM, OPK flag and id),
    // the two hashes, then the pending flag and the KEM ciphertext (public).
    at += 1 + 32 * usize::from(blob[at]);
    at += 4 + 4 + 1 + 4 + 32 + 32;
    assert_eq!(blob[at] == 1, session.is_awaiting_reply());
    at += 1 + if blob[at] == 1 { KEM_CIPHERTEXT_LEN } else { 0 };
    let skipped = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(skipped, session.skipped_key_count());
    at += 4;
    for i in 0..skipped {
        let entry = at + 68 * i;
        secrets.push((
            format!("skipped message key {i}"),
            array(&blob[entry + 36..entry + 68]),
        ));
    }
    assert_eq!(at + 68 * skipped, blob.len());
    secrets
}

// ---------------------------------------------------------------------------
// Debug output
// ---------------------------------------------------------------------------

#[test]
fn identity_key_pair_debug_shows_no_secret() {
    for seed in [[0x00; 32], [0xab; 32], core::array::from_fn(|i| i as u8)] {
        let identity = IdentityKeyPair::from_seed(&seed);
        let secrets = identity_secrets(&seed);
        // The clamped scalar really is the identity's X25519 secret.
        assert_eq!(
            hazmat::x25519(secrets[1].1, BASE_POINT).unwrap(),
            *identity.public_key().dh_public().as_bytes()
        );
        assert_eq!(identity.encode()[2..], seed);
        assert_no_secret("IdentityKeyPair", &identity, &secrets);
        // Decoded from its stored form, too.
        let decoded = IdentityKeyPair::decode(&identity.encode()).unwrap();
        assert_no_secret("decoded IdentityKeyPair", &decoded, &secrets);
    }
}

#[test]
fn prekey_store_and_prekeys_debug_show_no_secret() {
    let mut rng = rng(1);
    let identity = IdentityKeyPair::from_seed(&[0x21; 32]);
    let mut store = PreKeyStore::generate(&mut rng, &identity, 7);
    store.generate_one_time_prekeys(&mut rng, 5).unwrap();
    let kem_ids = store
        .generate_one_time_kem_prekeys(&mut rng, &identity, 3)
        .unwrap();
    assert_eq!(kem_ids, [2, 3, 4]);
    store
        .rotate_signed_prekey(&mut rng, &identity, 100)
        .unwrap();
    store
        .rotate_signed_prekey(&mut rng, &identity, 200)
        .unwrap();
    let mut secrets = prekey_store_secrets(&store);
    // Signed prekeys (current and two retired) and five one-time prekeys; the
    // seeds (three windows each) of three last-resort KEM prekeys (current
    // and two retired) and three one-time KEM prekeys.
    assert_eq!(secrets.len(), 1 + 2 + 5 + 3 * (3 + 3));
    secrets.extend(identity_secrets(&[0x21; 32]));

    assert_no_secret("PreKeyStore", &store, &secrets);
    let decoded = PreKeyStore::decode(&store.encode()).unwrap();
    assert_no_secret("decoded PreKeyStore", &decoded, &secrets);
    for id in 1..=3 {
        let signed = store.find_signed_prekey(id).unwrap();
        assert_no_secret("SignedPreKey", signed, &secrets);
    }
    let ids: Vec<u32> = store.one_time_prekey_ids().collect();
    assert_eq!(ids.len(), 5);
    for id in ids {
        let one_time = store.find_one_time_prekey(id).unwrap();
        assert_no_secret("OneTimePreKey", one_time, &secrets);
    }
    // KEM ids 1, 5 and 6 are last-resort keys (the first and the two made by
    // the rotations), 2..=4 one-time keys.
    for id in 1..=6 {
        let (kem, kind) = store.find_kem_prekey(id).unwrap();
        let expected = if (2..=4).contains(&id) {
            KemPreKeyKind::OneTime
        } else {
            KemPreKeyKind::LastResort
        };
        assert_eq!(kind, expected, "KEM id {id}");
        assert_no_secret("KemPreKey", kem, &secrets);
        let row = KemPreKey::decode(&kem.encode()).unwrap();
        assert_no_secret("decoded KemPreKey", &row, &secrets);
    }
}

#[test]
fn session_debug_shows_no_secret() {
    let mut rng = rng(2);
    let alice_seed = [0x31; 32];
    let bob_seed = [0x32; 32];
    let alice = LocalDevice {
        account: AccountId::new(b"alice").unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&alice_seed),
    };
    // Bob's device id is the one his prekey store (and so his bundle) names.
    let bob = LocalDevice {
        account: AccountId::new(b"bob").unwrap(),
        device_id: 7,
        identity: IdentityKeyPair::from_seed(&bob_seed),
    };
    let mut store = PreKeyStore::generate(&mut rng, &bob.identity, bob.device_id);
    store.generate_one_time_prekeys(&mut rng, 2).unwrap();
    let mut always = identity_secrets(&alice_seed);
    always.extend(identity_secrets(&bob_seed));
    always.extend(prekey_store_secrets(&store));

    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(1))
        .verify()
        .unwrap();
    let (mut alice_session, shared_secret, _) =
        hazmat::initiate_traced(&mut rng, &alice, &bob.account, &bundle).unwrap();
    always.push(("PQXDH shared secret".into(), shared_secret));

    // A pending initiator (no receiving chain).
    let mut secrets = always.clone();
    secrets.extend(session_secrets(&alice_session));
    assert_no_secret("pending initiator Session", &alice_session, &secrets);

    // The responder after a first message that skipped two keys, and the
    // initiator after the reply, both also after a round trip through storage.
    let _lost: Vec<Vec<u8>> = (0..2)
        .map(|i| alice_session.encrypt(&mut rng, &[i; 10]).unwrap())
        .collect();
    let first = alice_session.encrypt(&mut rng, b"third").unwrap();
    let (mut bob_session, _) = Responder::new(&bob, &mut store)
        .accept(&alice.address(), &PreKeyMessage::parse(&first).unwrap())
        .unwrap();
    // Right after the accept the responder has no sending chain yet (the
    // sending half of its first ratchet step is made at its first encrypt);
    // after the reply it has one, and the initiator's step is due.
    assert_eq!(hazmat::sending_chain_key(&bob_session), None);
    let mut secrets = always.clone();
    secrets.extend(session_secrets(&bob_session));
    assert_no_secret("responder Session before its reply", &bob_session, &secrets);
    let reply = bob_session.encrypt(&mut rng, b"reply").unwrap();
    assert!(hazmat::sending_chain_key(&bob_session).is_some());
    let mut secrets = always.clone();
    secrets.extend(session_secrets(&bob_session));
    assert_no_secret("responder Session after its reply", &bob_session, &secrets);
    alice_session.decrypt(&reply).unwrap();
    assert_eq!(hazmat::sending_chain_key(&alice_session), None);
    let mut secrets = always.clone();
    secrets.extend(session_secrets(&alice_session));
    assert_no_secret(
        "initiator Session before its step",
        &alice_session,
        &secrets,
    );
    let more: Vec<Vec<u8>> = (0..3)
        .map(|i| alice_session.encrypt(&mut rng, &[i; 5]).unwrap())
        .collect();
    bob_session.decrypt(&more[2]).unwrap();
    assert_eq!(bob_session.skipped_key_count(), 4);

    for (what, session) in [("responder", &bob_session), ("initiator", &alice_session)] {
        let mut secrets = always.clone();
        secrets.extend(session_secrets(session));
        assert_no_secret(&format!("{what} Session"), session, &secrets);
        let decoded = Session::decode(&session.encode()).unwrap();
        assert_no_secret(&format!("decoded {what} Session"), &decoded, &secrets);
    }
}

// ---------------------------------------------------------------------------
// Stored forms zeroize on drop (by type)
// ---------------------------------------------------------------------------

#[test]
fn stored_forms_are_zeroizing_by_type() {
    let mut rng = rng(3);
    let local = LocalDevice {
        account: AccountId::new(b"alice").unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&[0x41; 32]),
    };
    let store = PreKeyStore::generate(&mut rng, &local.identity, 1);
    let bundle = PreKeyBundle::from_store(local.identity.public_key(), &store, None)
        .verify()
        .unwrap();
    let bob = AccountId::new(b"bob").unwrap();
    let session = Session::initiate(&mut rng, &local, &bob, &bundle).unwrap();
    // These bindings only compile while `encode()` returns `Zeroizing`.
    let identity_blob: Zeroizing<Vec<u8>> = local.identity.encode();
    let store_blob: Zeroizing<Vec<u8>> = store.encode();
    let session_blob: Zeroizing<Vec<u8>> = session.encode();
    let device_blob: Zeroizing<Vec<u8>> = local.encode();
    // Version 2: the prekey store holds a signed prekey (100) and a
    // last-resort KEM prekey (132) and ends with (here empty) retired, one-time,
    // one-time KEM and accepted base key lists; a fresh initiator session holds
    // both device addresses and the pending KEM ciphertext (1088).
    assert_eq!(
        (
            identity_blob.len(),
            store_blob.len(),
            session_blob.len(),
            device_blob.len()
        ),
        (
            34,
            2 + 4 + 100 + 132 + 1 + 4 + 4 + 4 + 4 + 4,
            1402,
            3 + 5 + 4 + 32
        )
    );
}

// ---------------------------------------------------------------------------
// Trust, devices, linking and storage
// ---------------------------------------------------------------------------

#[test]
fn storage_key_and_linking_debug_show_no_secret() {
    let key_bytes = [0x51; 32];
    let key = StorageKey::from_bytes(key_bytes);
    assert_no_secret("StorageKey", &key, &[("storage key".into(), key_bytes)]);

    // A link request draws its link key's private key (the first 32 bytes its
    // generator yields, clamped), then its 32-byte link secret (the next 32).
    let mut drawn = [0u8; 64];
    rng(5).fill_bytes(&mut drawn);
    let link_key_raw = array(&drawn[..32]);
    let mut link_key = link_key_raw;
    link_key[0] &= 248;
    link_key[31] &= 127;
    link_key[31] |= 64;
    let link_secret = array(&drawn[32..]);
    let mut request = LinkRequest::new(&mut rng(5));
    let code = request.code();
    assert_eq!(code[1..33], hazmat::x25519(link_key, BASE_POINT).unwrap());
    assert_eq!(code[33..], link_secret);
    let seed = [0x52; 32];
    let mut secrets = identity_secrets(&seed);
    secrets.push(("link key (unclamped)".into(), link_key_raw));
    secrets.push(("link key".into(), link_key));
    secrets.push(("link secret".into(), link_secret));
    assert_no_secret("LinkRequest", &request, &secrets);

    let identity = IdentityKeyPair::from_seed(&seed);
    let account = AccountId::new(b"alice").unwrap();
    let (payload, _) = provision(&mut rng(6), &identity, &account, &[1], &*code).unwrap();
    let linked = request.accept(&payload).unwrap();
    assert_no_secret("ProvisionedAccount", &linked, &secrets);
    assert_no_secret("completed LinkRequest", &request, &secrets);
    let device = linked.into_device(&mut rng(7));
    let mut with_prekeys = secrets.clone();
    with_prekeys.extend(prekey_store_secrets(&device.prekeys));
    assert_no_secret("LinkedDevice", &device, &with_prekeys);
}

#[test]
fn session_manager_and_store_debug_show_no_secret() {
    let mut rng = rng(8);
    let (alice_seed, bob_seed) = ([0x61; 32], [0x62; 32]);
    let manager = |rng: &mut ChaCha20Rng, seed: [u8; 32], name: &[u8]| {
        let identity = IdentityKeyPair::from_seed(&seed);
        let prekeys = PreKeyStore::generate(rng, &identity, 1);
        let local = LocalDevice {
            account: AccountId::new(name).unwrap(),
            device_id: 1,
            identity,
        };
        SessionManager::new(local, MemoryStore::new(prekeys))
    };
    let mut alice = manager(&mut rng, alice_seed, b"alice");
    let bob = manager(&mut rng, bob_seed, b"bob");
    let bob_account = bob.local().account;
    let bundle = PreKeyBundle::from_store(
        bob.local().identity.public_key(),
        bob.store().prekeys(),
        None,
    );
    alice
        .process_bundle(&mut rng, &bob_account, bundle)
        .unwrap();
    alice
        .encrypt(&mut rng, &bob_account, b"hello", &[1], &[1])
        .unwrap();

    let record = alice
        .store()
        .session_record(&DeviceAddress::new(bob_account, 1))
        .unwrap()
        .unwrap();
    let mut secrets = identity_secrets(&alice_seed);
    secrets.extend(prekey_store_secrets(alice.store().prekeys()));
    secrets.extend(session_secrets(record.active()));
    assert_no_secret("SessionRecord", &record, &secrets);
    assert_no_secret("MemoryStore", alice.store(), &secrets);
    assert_no_secret("LocalDevice", alice.local(), &secrets);
    assert_no_secret("SessionManager", &alice, &secrets);
    // Stored forms hold secrets, so they are zeroizing by type.
    let _: Zeroizing<Vec<u8>> = record.encode();
    let _: Zeroizing<Vec<u8>> = alice.store().encode();
}
