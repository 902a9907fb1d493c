//! Known-answer vectors for safety numbers, trust records, device linking and
//! sealed state (`tests/vectors/devices_v2.txt`, SPEC.md §11–§14), from fixed
//! secrets drawn through a scripted RNG.
//!
//! Checked in both directions: computing from the inputs reproduces every output
//! byte, and the stored outputs parse, open and compare as they should. Set
//! `RATCHETBOX_WRITE_VECTORS=1` to regenerate the file after a deliberate format
//! change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/scripted_rng.rs"]
mod scripted_rng;
use scripted_rng::{ScriptedRng, check_vectors, read_vectors};

use std::collections::BTreeMap;

use ratchetbox::at_rest::{self, StorageKey};
use ratchetbox::provisioning::{LinkRequest, provision};
use ratchetbox::{
    AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch, TrustRecord, TrustState,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/devices_v2.txt");

fn arr(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

fn inputs() -> BTreeMap<&'static str, Vec<u8>> {
    let pattern = |start: u8| {
        (0..32u8)
            .map(|i| start.wrapping_add(i))
            .collect::<Vec<u8>>()
    };
    let devices: Vec<u8> = [1u32, 7].iter().flat_map(|d| d.to_be_bytes()).collect();
    BTreeMap::from([
        ("alice_account_id", b"alice".to_vec()),
        ("alice_identity_seed", pattern(0x41)),
        ("bob_account_id", b"bob".to_vec()),
        ("bob_identity_seed", pattern(0x61)),
        ("bob_new_identity_seed", pattern(0x71)),
        ("link_request_secret", pattern(0x91)),
        ("link_request_link_secret", pattern(0xa1)),
        ("provisioning_ephemeral_secret", pattern(0xb1)),
        ("provisioning_devices", devices),
        ("storage_key", pattern(0xd1)),
        ("storage_nonce_identity", (0xc0..0xd8u8).collect()),
        ("storage_nonce_trust", (0xe0..0xf8u8).collect()),
        ("storage_slot_identity", b"local identity".to_vec()),
        ("storage_slot_trust", b"bob".to_vec()),
    ])
}

struct Parties {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    bob_new: IdentityKeyPair,
    alice_id: AccountId,
    bob_id: AccountId,
}

fn parties(i: &BTreeMap<impl AsRef<str> + Ord, Vec<u8>>) -> Parties {
    let get = |k: &str| {
        i.iter()
            .find(|(name, _)| name.as_ref() == k)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_else(|| panic!("input {k}"))
    };
    Parties {
        alice: IdentityKeyPair::from_seed(&arr(get("alice_identity_seed"))),
        bob: IdentityKeyPair::from_seed(&arr(get("bob_identity_seed"))),
        bob_new: IdentityKeyPair::from_seed(&arr(get("bob_new_identity_seed"))),
        alice_id: AccountId::new(get("alice_account_id")).unwrap(),
        bob_id: AccountId::new(get("bob_account_id")).unwrap(),
    }
}

/// The three trust records: bob first seen, verified, then changed to his new key.
fn trust_records(p: &Parties) -> [TrustRecord; 3] {
    let unverified = TrustRecord::first_seen(*p.bob.public_key());
    let mut verified = unverified;
    verified.mark_verified(p.bob.public_key()).unwrap();
    let mut changed = verified;
    changed.observe(p.bob_new.public_key());
    [unverified, verified, changed]
}

fn devices(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn run(input: &BTreeMap<&str, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let i = |k: &str| input[k].as_slice();
    let p = parties(input);
    let mut out = BTreeMap::new();

    let on_alice = SafetyNumber::new(
        &p.alice_id,
        p.alice.public_key(),
        &p.bob_id,
        p.bob.public_key(),
    );
    let on_bob = SafetyNumber::new(
        &p.bob_id,
        p.bob.public_key(),
        &p.alice_id,
        p.alice.public_key(),
    );
    assert_eq!(on_alice.digits(), on_bob.digits());
    out.insert("safety_number_digits".into(), on_alice.digits().to_vec());
    out.insert("alice_scannable".into(), on_alice.scannable().to_vec());
    out.insert("bob_scannable".into(), on_bob.scannable().to_vec());

    let [unverified, verified, changed] = trust_records(&p);
    out.insert("trust_record_unverified".into(), unverified.encode());
    out.insert("trust_record_verified".into(), verified.encode());
    out.insert("trust_record_changed".into(), changed.encode());

    let mut rng = ScriptedRng::new(&[i("link_request_secret"), i("link_request_link_secret")]);
    let request = LinkRequest::new(&mut rng);
    rng.assert_exhausted();
    out.insert("link_request".into(), request.code().to_vec());
    let mut rng = ScriptedRng::new(&[i("provisioning_ephemeral_secret")]);
    let (payload, code) = provision(
        &mut rng,
        &p.alice,
        &p.alice_id,
        &devices(i("provisioning_devices")),
        &*request.code(),
    )
    .unwrap();
    rng.assert_exhausted();
    out.insert("provisioning_payload".into(), payload);
    out.insert("confirmation_code".into(), code.digits().to_vec());

    let key = StorageKey::from_bytes(arr(i("storage_key")));
    let mut rng = ScriptedRng::new(&[i("storage_nonce_identity")]);
    out.insert(
        "sealed_identity".into(),
        at_rest::seal(&mut rng, &key, i("storage_slot_identity"), &p.alice),
    );
    let mut rng = ScriptedRng::new(&[i("storage_nonce_trust")]);
    out.insert(
        "sealed_trust_record".into(),
        at_rest::seal(&mut rng, &key, i("storage_slot_trust"), &changed),
    );
    rng.assert_exhausted();
    out
}

const HEADER: &str = "# ratchetbox v2 trust, linking and storage known-answer vector (SPEC.md\n\
         # §11-§14). Hex; integers big-endian; names are alphabetical.\n\
         #\n\
         # Identities come from the *_identity_seed Ed25519 seeds (§3.1).\n\
         # safety_number_digits: the 60 ASCII digits (§11.2) for alice and bob;\n\
         # *_scannable: each side's scannable form (§11.3).\n\
         # trust_record_*: bob's key first seen, then verified, then changed to\n\
         # bob_new (a blocking change) (§12.2).\n\
         # link_request: the new device's code from link_request_secret (its link\n\
         # key) and link_request_link_secret (its link secret), drawn in that order (§14.1);\n\
         # provisioning_payload: alice's identity, account id and\n\
         # provisioning_devices sealed to it, the primary's RNG yielding\n\
         # provisioning_ephemeral_secret (§14.2); confirmation_code: its 8 ASCII\n\
         # digits (§14.4). X25519 secrets are clamped when used.\n\
         # sealed_identity / sealed_trust_record: alice's identity key pair (kind 1)\n\
         # and trust_record_changed (kind 4) sealed under storage_key with the 24-byte\n\
         # nonces storage_nonce_identity and storage_nonce_trust, for the slots\n\
         # storage_slot_identity and storage_slot_trust (§13.1).\n";

#[test]
fn device_vector_is_reproduced() {
    let input = inputs();
    check_vectors(PATH, HEADER, &input, &run(&input));
}

#[test]
fn stored_outputs_parse_open_and_compare() {
    let (input, output) = read_vectors(PATH);
    let i = |k: &str| input[k].as_slice();
    let o = |k: &str| output[k].as_slice();
    let p = parties(&input);

    // Each side accepts the other's stored scannable form, not its own.
    let on_alice = SafetyNumber::new(
        &p.alice_id,
        p.alice.public_key(),
        &p.bob_id,
        p.bob.public_key(),
    );
    assert_eq!(
        on_alice.compare_scanned(o("bob_scannable")),
        Ok(SafetyNumberMatch::Match)
    );
    assert_eq!(
        on_alice.compare_scanned(o("alice_scannable")),
        Ok(SafetyNumberMatch::Mismatch)
    );
    assert!(o("safety_number_digits").iter().all(u8::is_ascii_digit));

    // Stored trust records decode to the expected states and re-encode.
    for (name, expected) in [
        "trust_record_unverified",
        "trust_record_verified",
        "trust_record_changed",
    ]
    .iter()
    .zip(trust_records(&p))
    {
        let record = TrustRecord::decode(o(name)).unwrap();
        assert_eq!(record, expected, "{name}");
        assert_eq!(record.encode(), o(name));
    }
    let changed = TrustRecord::decode(o("trust_record_changed")).unwrap();
    assert_eq!(
        changed.state(),
        &TrustState::Changed {
            previous: *p.bob.public_key(),
            was_verified: true
        }
    );

    // The stored payload opens for the request made from the stored secret.
    let mut rng = ScriptedRng::new(&[i("link_request_secret"), i("link_request_link_secret")]);
    let mut request = LinkRequest::new(&mut rng);
    assert_eq!(request.code().as_slice(), o("link_request"));
    let account = request.accept(o("provisioning_payload")).unwrap();
    assert_eq!(account.identity_key(), p.alice.public_key());
    assert_eq!(account.account(), &p.alice_id);
    assert_eq!(
        account.existing_devices(),
        devices(i("provisioning_devices"))
    );
    assert_eq!(account.confirmation_code().digits(), o("confirmation_code"));

    // The stored blobs open under the storage key, and only as their kind.
    let key = StorageKey::from_bytes(arr(i("storage_key")));
    let identity: IdentityKeyPair =
        at_rest::open(&key, i("storage_slot_identity"), o("sealed_identity")).unwrap();
    assert_eq!(identity.public_key(), p.alice.public_key());
    let record: TrustRecord =
        at_rest::open(&key, i("storage_slot_trust"), o("sealed_trust_record")).unwrap();
    assert_eq!(record, changed);
    assert!(
        at_rest::open::<TrustRecord>(&key, i("storage_slot_identity"), o("sealed_identity"))
            .is_err()
    );
    // ... and only in their slots.
    assert!(at_rest::open::<TrustRecord>(&key, b"carol", o("sealed_trust_record")).is_err());
}
