//! Known-answer vectors for sealed envelopes (`tests/vectors/sealed_v2.txt`,
//! SPEC.md §9): a sender certificate chain, a single-recipient envelope, a
//! three-device multi-recipient envelope and its split parts, all from fixed
//! secrets drawn through a scripted RNG.
//!
//! Checked in both directions: sealing from the vector's inputs reproduces every
//! output byte, and the stored envelopes and parts open to the stored content.
//! Set `RATCHETBOX_WRITE_VECTORS=1` to regenerate the file after a deliberate
//! format change (only `sealed_vector_is_reproduced` writes, atomically).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/scripted_rng.rs"]
mod scripted_rng;
use scripted_rng::{ScriptedRng, check_vectors, hex, read_vectors};

use std::collections::BTreeMap;

use ratchetbox::sealed::{
    Address, ContentHint, DeliveryAccessKey, InnerKind, MultiRecipient, Recipient, SealedContent,
    SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot, TrustStore, ValidatedEnvelope,
    open, seal, seal_multi, validate,
};
use ratchetbox::{IdentityKeyPair, hazmat};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/sealed_v2.txt");

/// The X25519 base point, to recompute ephemeral public keys from their secrets.
const BASEPOINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 9;
    b
};

fn arr(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes(v.try_into().expect("u32"))
}

fn be64(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().expect("u64"))
}

fn kind(v: &[u8]) -> InnerKind {
    match v {
        [1] => InnerKind::PreKey,
        [2] => InnerKind::Ratchet,
        [3] => InnerKind::Opaque,
        _ => panic!("inner kind {v:?}"),
    }
}

fn hint(v: &[u8]) -> ContentHint {
    match v {
        [0] => ContentHint::Default,
        [1] => ContentHint::Resendable,
        [2] => ContentHint::Implicit,
        _ => panic!("content hint {v:?}"),
    }
}

/// The inputs: fixed, distinct byte patterns and fields.
fn inputs() -> BTreeMap<&'static str, Vec<u8>> {
    let pattern = |start: u8| {
        (0..32u8)
            .map(|i| start.wrapping_add(i))
            .collect::<Vec<u8>>()
    };
    BTreeMap::from([
        ("root_identity_seed", pattern(0x01)),
        ("server_identity_seed", pattern(0x21)),
        ("alice_identity_seed", pattern(0x41)),
        ("bob_identity_seed", pattern(0x61)),
        ("carol_identity_seed", pattern(0x81)),
        ("single_ephemeral_secret", pattern(0xa1)),
        ("multi_content_key", pattern(0xc1)),
        ("multi_ephemeral_secret", pattern(0xe1)),
        ("bob_delivery_secret", pattern(0x11)),
        ("carol_delivery_secret", pattern(0x31)),
        ("root_id", 1u32.to_be_bytes().to_vec()),
        ("server_key_id", 0x0102u32.to_be_bytes().to_vec()),
        (
            "certificate_expires",
            2_000_000_000u64.to_be_bytes().to_vec(),
        ),
        ("alice_account_id", b"alice".to_vec()),
        ("alice_device_id", 1u32.to_be_bytes().to_vec()),
        ("bob_account_id", b"bob".to_vec()),
        ("bob_device_id_1", 1u32.to_be_bytes().to_vec()),
        ("bob_device_id_2", 2u32.to_be_bytes().to_vec()),
        ("carol_account_id", b"carol".to_vec()),
        ("carol_device_id", 7u32.to_be_bytes().to_vec()),
        ("single_kind", vec![2]),
        ("single_hint", vec![1]),
        ("single_message", b"Hello Bob, sealed by Alice.".to_vec()),
        ("multi_kind", vec![3]),
        ("multi_hint", vec![2]),
        (
            "multi_message",
            b"One ciphertext for Bob's two devices and Carol.".to_vec(),
        ),
        ("multi_payload_bob_1", b"for bob's device 1".to_vec()),
        ("multi_payload_bob_2", Vec::new()),
        ("multi_payload_carol_7", b"for carol".to_vec()),
    ])
}

/// Everyone, rebuilt from the inputs.
struct Parties {
    root: IdentityKeyPair,
    server: IdentityKeyPair,
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    carol: IdentityKeyPair,
    trust: TrustStore,
    bob_key: DeliveryAccessKey,
    carol_key: DeliveryAccessKey,
}

fn parties(i: &BTreeMap<impl AsRef<str> + Ord, Vec<u8>>) -> Parties {
    let get = |k: &str| {
        i.iter()
            .find(|(name, _)| name.as_ref() == k)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_else(|| panic!("input {k}"))
    };
    let root = IdentityKeyPair::from_seed(&arr(get("root_identity_seed")));
    let trust =
        TrustStore::new(&[TrustRoot::new(be32(get("root_id")), *root.public_key())]).unwrap();
    Parties {
        server: IdentityKeyPair::from_seed(&arr(get("server_identity_seed"))),
        alice: IdentityKeyPair::from_seed(&arr(get("alice_identity_seed"))),
        bob: IdentityKeyPair::from_seed(&arr(get("bob_identity_seed"))),
        carol: IdentityKeyPair::from_seed(&arr(get("carol_identity_seed"))),
        bob_key: DeliveryAccessKey::derive(&arr(get("bob_delivery_secret"))),
        carol_key: DeliveryAccessKey::derive(&arr(get("carol_delivery_secret"))),
        root,
        trust,
    }
}

/// Offset of `E` in the single envelope: tag, address of "bob", token flag, token.
const SINGLE_E_AT: usize = 1 + (1 + 3 + 4) + 1 + 16;

/// Seals everything from the inputs and returns every output.
fn run(input: &BTreeMap<&str, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let i = |k: &str| input[k].as_slice();
    let p = parties(input);
    let mut out = BTreeMap::new();

    let root_id = be32(i("root_id"));
    let server_cert = ServerCertificate::issue(
        root_id,
        &p.root,
        be32(i("server_key_id")),
        p.server.public_key(),
    );
    let alice_address = Address::new(i("alice_account_id"), be32(i("alice_device_id"))).unwrap();
    let cert = SenderCertificate::issue(
        alice_address,
        p.alice.public_key(),
        be64(i("certificate_expires")),
        &p.server,
        server_cert.clone(),
    )
    .unwrap();
    out.insert("server_certificate".into(), server_cert.encode());
    out.insert("sender_certificate".into(), cert.encode());
    out.insert("bob_delivery_key".into(), p.bob_key.to_bytes().to_vec());
    out.insert("carol_delivery_key".into(), p.carol_key.to_bytes().to_vec());

    // Single: the only draw is the ephemeral secret.
    let bob1 = Address::new(i("bob_account_id"), be32(i("bob_device_id_1"))).unwrap();
    let mut rng = ScriptedRng::new(&[i("single_ephemeral_secret")]);
    let single = seal(
        &mut rng,
        &p.alice,
        &cert,
        bob1,
        p.bob.public_key(),
        SealedContent {
            kind: kind(i("single_kind")),
            hint: hint(i("single_hint")),
            message: i("single_message"),
        },
        Some(&p.bob_key),
    )
    .unwrap();
    assert!(rng.bytes.is_empty(), "seal draws exactly one secret");
    let e = hazmat::x25519(arr(i("single_ephemeral_secret")), BASEPOINT).unwrap();
    assert_eq!(&single[SINGLE_E_AT..SINGLE_E_AT + 32], &e);
    out.insert("single_envelope".into(), single);

    // Multi: M first, then the ephemeral secret.
    let bob2 = Address::new(i("bob_account_id"), be32(i("bob_device_id_2"))).unwrap();
    let carol7 = Address::new(i("carol_account_id"), be32(i("carol_device_id"))).unwrap();
    let recipients = [
        MultiRecipient {
            address: carol7,
            identity_key: p.carol.public_key(),
            payload: i("multi_payload_carol_7"),
        },
        MultiRecipient {
            address: bob2,
            identity_key: p.bob.public_key(),
            payload: i("multi_payload_bob_2"),
        },
        MultiRecipient {
            address: bob1,
            identity_key: p.bob.public_key(),
            payload: i("multi_payload_bob_1"),
        },
    ];
    let token = DeliveryAccessKey::combine([&p.bob_key, &p.carol_key]);
    out.insert("multi_token".into(), token.to_bytes().to_vec());
    let mut rng = ScriptedRng::new(&[i("multi_content_key"), i("multi_ephemeral_secret")]);
    let multi = seal_multi(
        &mut rng,
        &p.alice,
        &cert,
        &recipients,
        SealedContent {
            kind: kind(i("multi_kind")),
            hint: hint(i("multi_hint")),
            message: i("multi_message"),
        },
        Some(&token),
    )
    .unwrap();
    assert!(rng.bytes.is_empty(), "seal_multi draws exactly M and E");
    let e = hazmat::x25519(arr(i("multi_ephemeral_secret")), BASEPOINT).unwrap();
    assert_eq!(&multi[1..33], &e, "E is the second draw");
    for (name, part) in split(&multi, &p) {
        out.insert(name, part);
    }
    out.insert("multi_envelope".into(), multi);
    out
}

/// The server's split, named `multi_part_<account>_<device>`.
fn split(multi: &[u8], p: &Parties) -> Vec<(String, Vec<u8>)> {
    let registry = |account: &[u8]| match account {
        b"bob" => Some(p.bob_key.clone()),
        b"carol" => Some(p.carol_key.clone()),
        _ => None,
    };
    let ValidatedEnvelope::Multi(m) = validate(multi, &ServerPolicy::default(), &registry).unwrap()
    else {
        panic!("not a multi-recipient envelope");
    };
    m.parts()
        .map(|part| {
            let mut bytes = vec![0u8; part.len()];
            part.write_to(&mut bytes).unwrap();
            let r = part.recipient();
            let account = std::str::from_utf8(r.account_id()).unwrap();
            (format!("multi_part_{account}_{}", r.device_id()), bytes)
        })
        .collect()
}

const HEADER: &str = "# ratchetbox v2 sealed-envelope known-answer vector (SPEC.md §9). Hex; integers\n\
         # big-endian; kind and hint are their one-byte codes (§9.3); names are\n\
         # alphabetical, not in order of use.\n\
         #\n\
         # Identities come from the *_identity_seed Ed25519 seeds (§3.1). The root\n\
         # (root_id) certifies the server key (server_key_id); the server certifies\n\
         # alice_account_id/alice_device_id with certificate_expires (§9.2).\n\
         # Delivery keys: AK = HKDF(32 zero bytes, *_delivery_secret,\n\
         # DELIVERY_KEY_INFO, 16) (§9.4).\n\
         #\n\
         # single_envelope (§9.5): Alice to bob/bob_device_id_1 with token\n\
         # bob_delivery_key; the sender's RNG yields single_ephemeral_secret.\n\
         # multi_envelope (§9.6): Alice to bob/bob_device_id_1, bob/bob_device_id_2\n\
         # and carol/carol_device_id with the multi_payload_* payloads (bob_2's is\n\
         # empty) and token multi_token = bob_delivery_key XOR carol_delivery_key;\n\
         # the RNG yields multi_content_key (M) then multi_ephemeral_secret.\n\
         # multi_part_<account>_<device> (§9.7): the server's split parts.\n\
         # Ephemeral secrets are X25519 private keys, clamped when used.\n";

#[test]
fn sealed_vector_is_reproduced() {
    let input = inputs();
    check_vectors(PATH, HEADER, &input, &run(&input));
}

#[test]
fn stored_envelopes_open() {
    let (input, output) = read_vectors(PATH);
    let i = |k: &str| input[k].as_slice();
    let o = |k: &str| output[k].as_slice();
    let p = parties(&input);
    let expires = be64(i("certificate_expires"));
    let now = expires - 1;

    // The stored certificates decode, chain to the root, and name Alice.
    let server_cert = ServerCertificate::decode(o("server_certificate")).unwrap();
    let cert = SenderCertificate::decode(o("sender_certificate")).unwrap();
    assert_eq!(cert.encode(), o("sender_certificate"));
    assert_eq!(server_cert.key_id(), be32(i("server_key_id")));
    assert_eq!(cert.identity_key(), p.alice.public_key());
    assert_eq!(cert.expires(), expires);
    let sender = cert.validate(&p.trust, now).unwrap();
    assert_eq!(sender.account_id, i("alice_account_id"));
    assert_eq!(sender.device_id, be32(i("alice_device_id")));

    // Delivery keys and the combined token.
    assert_eq!(p.bob_key.to_bytes(), o("bob_delivery_key"));
    assert_eq!(p.carol_key.to_bytes(), o("carol_delivery_key"));
    let xor: Vec<u8> = o("bob_delivery_key")
        .iter()
        .zip(o("carol_delivery_key"))
        .map(|(x, y)| x ^ y)
        .collect();
    assert_eq!(o("multi_token"), xor);

    // The single envelope opens for bob/1.
    let bob1 = Address::new(i("bob_account_id"), be32(i("bob_device_id_1"))).unwrap();
    let bob2 = Address::new(i("bob_account_id"), be32(i("bob_device_id_2"))).unwrap();
    let carol7 = Address::new(i("carol_account_id"), be32(i("carol_device_id"))).unwrap();
    let me = |identity, address| Recipient {
        identity,
        address,
        trust: &p.trust,
        now,
    };
    let opened = open(o("single_envelope"), &me(&p.bob, bob1)).unwrap();
    assert_eq!(opened.message, i("single_message"));
    assert_eq!(opened.kind, kind(i("single_kind")));
    assert_eq!(opened.hint, hint(i("single_hint")));
    assert_eq!(opened.sender, sender);
    assert!(opened.payload.is_empty());

    // The stored multi envelope splits into the stored parts, and every part (and
    // the whole envelope) opens for its device with its payload.
    let parts = split(o("multi_envelope"), &p);
    assert_eq!(parts.len(), 3);
    for (name, part) in &parts {
        assert_eq!(hex(part), hex(o(name)), "{name}");
    }
    for (name, identity, address, payload) in [
        ("multi_part_bob_1", &p.bob, bob1, i("multi_payload_bob_1")),
        ("multi_part_bob_2", &p.bob, bob2, i("multi_payload_bob_2")),
        (
            "multi_part_carol_7",
            &p.carol,
            carol7,
            i("multi_payload_carol_7"),
        ),
    ] {
        for bytes in [o(name), o("multi_envelope")] {
            let opened = open(bytes, &me(identity, address)).unwrap();
            assert_eq!(opened.message, i("multi_message"), "{name}");
            assert_eq!(opened.payload, payload, "{name}");
            assert_eq!(opened.kind, kind(i("multi_kind")));
            assert_eq!(opened.hint, hint(i("multi_hint")));
            assert_eq!(opened.sender, sender);
        }
    }
}
