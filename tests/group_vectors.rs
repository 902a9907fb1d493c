//! Known-answer vectors for sender-key groups (`tests/vectors/group_v2.txt`):
//! a sender's distribution message, its first three group messages, and the
//! stored state of a receiver that decrypted them out of order.
//!
//! Every random value is a vector input, handed out by a scripted generator in
//! the order `GroupSession::create` draws it (`OwnChain::generate` in
//! src/group/session.rs): the 32-byte chain key, then the 32-bit chain id
//! (`next_u32`, which this generator makes from the next 4 bytes read as a
//! little-endian integer), then the 32-byte Ed25519 seed of the group signing
//! key (`IdentityKeyPair::generate`); then each `encrypt` draws the message's
//! 12-byte nonce. Ed25519 signatures are deterministic, so every output is fixed.
//!
//! Checked in both directions: running the protocol from the inputs reproduces
//! every output byte, and the stored messages verify and decrypt, in a receiver
//! built from the stored distribution, to the stored plaintexts and states. Set
//! `RATCHETBOX_WRITE_VECTORS=1` to regenerate the file after a deliberate
//! format change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/scripted_rng.rs"]
mod scripted_rng;
use scripted_rng::{ScriptedRng, check_vectors, hex, read_vectors};

use std::collections::BTreeMap;

use ratchetbox::group::{GroupSession, group_message_overhead};
use ratchetbox::sealed::Address;
use ratchetbox::{IdentityKeyPair, KEY_LEN, SIGNATURE_LEN, TAG_LEN, hazmat};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/group_v2.txt");

fn arr(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

/// The inputs: fixed, distinct byte patterns.
fn inputs() -> BTreeMap<&'static str, Vec<u8>> {
    let pattern = |start: u8| {
        (0..32u8)
            .map(|i| start.wrapping_add(i))
            .collect::<Vec<u8>>()
    };
    BTreeMap::from([
        ("group_id", b"ratchetbox group vector".to_vec()),
        ("sender_account", b"alice".to_vec()),
        ("sender_device", 1u32.to_be_bytes().to_vec()),
        ("sender_chain_key", pattern(0x10)),
        ("sender_chain_id_draw", vec![0x11, 0x22, 0x33, 0x44]),
        ("sender_signing_seed", pattern(0x40)),
        ("receiver_chain_key", pattern(0x70)),
        ("receiver_chain_id_draw", vec![0xa1, 0xb2, 0xc3, 0xd4]),
        ("receiver_signing_seed", pattern(0xa0)),
        ("sender_nonce_0", pattern(0xc0)[..12].to_vec()),
        ("sender_nonce_1", pattern(0xd0)[..12].to_vec()),
        ("sender_nonce_2", pattern(0xe0)[..12].to_vec()),
        ("plaintext_0", b"First message to the group.".to_vec()),
        ("plaintext_1", b"Second, delivered last.".to_vec()),
        ("plaintext_2", b"Third, delivered first.".to_vec()),
    ])
}

/// The generator of `party` ("sender" or "receiver"), in draw order.
fn party_rng(input: &BTreeMap<String, Vec<u8>>, party: &str) -> ScriptedRng {
    let get = |field: &str| input[&format!("{party}_{field}")].as_slice();
    ScriptedRng::new(&[get("chain_key"), get("chain_id_draw"), get("signing_seed")])
}

fn sender_address(input: &BTreeMap<String, Vec<u8>>) -> Address<'_> {
    let device = u32::from_be_bytes(input["sender_device"].as_slice().try_into().unwrap());
    Address::new(&input["sender_account"], device).unwrap()
}

/// Runs the scripted exchange and returns every output.
fn run(input: &BTreeMap<&str, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let input: BTreeMap<String, Vec<u8>> = input
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let i = |k: &str| input[k].as_slice();
    let mut out = BTreeMap::new();
    let from = sender_address(&input);

    let mut rng = party_rng(&input, "sender");
    let mut sender = GroupSession::create(&mut rng, i("group_id")).unwrap();
    rng.assert_exhausted();
    let mut nonces = ScriptedRng::new(&[
        i("sender_nonce_0"),
        i("sender_nonce_1"),
        i("sender_nonce_2"),
    ]);
    let chain_id = u32::from_le_bytes(i("sender_chain_id_draw").try_into().unwrap());
    out.insert("sender_chain_id".into(), chain_id.to_be_bytes().to_vec());
    out.insert(
        "sender_signing_public_key".into(),
        IdentityKeyPair::from_seed(&arr(i("sender_signing_seed")))
            .public_key()
            .to_bytes()
            .to_vec(),
    );
    let distribution = sender.distribution();
    out.insert("distribution".into(), distribution.to_vec());
    let messages: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            sender
                .encrypt(&mut nonces, i(&format!("plaintext_{n}")))
                .unwrap()
        })
        .collect();
    nonces.assert_exhausted();
    for (n, m) in messages.iter().enumerate() {
        out.insert(format!("message_{n}"), m.clone());
    }
    out.insert("sender_state".into(), sender.encode().to_vec());

    let mut rng = party_rng(&input, "receiver");
    let mut receiver = GroupSession::create(&mut rng, i("group_id")).unwrap();
    rng.assert_exhausted();
    receiver.process_distribution(from, &distribution).unwrap();
    for n in [2, 0] {
        assert_eq!(
            receiver.decrypt(from, &messages[n]).unwrap(),
            i(&format!("plaintext_{n}"))
        );
    }
    out.insert(
        "receiver_state_after_2_0".into(),
        receiver.encode().to_vec(),
    );
    assert_eq!(
        receiver.decrypt(from, &messages[1]).unwrap(),
        i("plaintext_1")
    );
    out.insert("receiver_state_final".into(), receiver.encode().to_vec());
    out
}

const HEADER: &str = "# ratchetbox v2 sender-key group known-answer vector. Hex, alphabetical.\n\
         #\n\
         # Random draws, in order, by GroupSession::create (OwnChain::generate):\n\
         #   1. chain key, 32 bytes              (<party>_chain_key)\n\
         #   2. chain id via next_u32: 4 bytes   (<party>_chain_id_draw), read as a\n\
         #      LITTLE-endian u32 by the scripted RNG; sender_chain_id is that u32 as\n\
         #      it appears on the wire (big-endian)\n\
         #   3. Ed25519 seed of the group signing key, 32 bytes (<party>_signing_seed)\n\
         # and then, by each encrypt, the message's 12-byte nonce (sender_nonce_<n>).\n\
         # The sender creates its session, emits `distribution` (iteration 0) and\n\
         # encrypts plaintext_0..2 as message_0..2 (Ed25519 signatures are\n\
         # deterministic); sender_state is its stored session afterwards. The\n\
         # receiver (default GroupConfig) creates its own session, processes the\n\
         # distribution from sender_account/sender_device (device id big-endian),\n\
         # decrypts message_2 then message_0 (receiver_state_after_2_0 keeps the\n\
         # skipped key of iteration 1), then message_1 (receiver_state_final).\n";

/// The only test that writes the file.
#[test]
fn group_vector_is_reproduced() {
    let input = inputs();
    check_vectors(PATH, HEADER, &input, &run(&input));
}

/// Byte offsets of the group message fields, for a group id of `g` bytes.
struct Layout {
    header: usize,
    signed: usize,
}

impl Layout {
    fn of(g: usize, message_len: usize) -> Self {
        Self {
            header: 2 + g + 8 + 12,
            signed: message_len - SIGNATURE_LEN,
        }
    }
}

#[test]
fn stored_group_vector_decrypts() {
    let (input, output) = read_vectors(PATH);
    let i = |k: &str| input[k].as_slice();
    let o = |k: &str| output[k].as_slice();
    let from = sender_address(&input);
    let group_id = i("group_id");
    let g = group_id.len();
    let chain_id = o("sender_chain_id");
    assert_eq!(
        chain_id,
        u32::from_le_bytes(i("sender_chain_id_draw").try_into().unwrap()).to_be_bytes()
    );
    let signing = IdentityKeyPair::from_seed(&arr(i("sender_signing_seed")));
    let public = signing.public_key().to_bytes();
    assert_eq!(o("sender_signing_public_key"), public);

    // The distribution: tag, group id, chain id, iteration 0, chain key, signing key.
    let mut expected = vec![0x33, g as u8];
    expected.extend_from_slice(group_id);
    expected.extend_from_slice(chain_id);
    expected.extend_from_slice(&0u32.to_be_bytes());
    expected.extend_from_slice(i("sender_chain_key"));
    expected.extend_from_slice(&public);
    assert_eq!(hex(o("distribution")), hex(&expected));

    // Each message: its header, its length, a strictly valid signature by the
    // sender's group signing key.
    for n in 0..3u32 {
        let message = o(&format!("message_{n}"));
        let plaintext = i(&format!("plaintext_{n}"));
        assert_eq!(message.len(), group_message_overhead(g) + plaintext.len());
        let at = Layout::of(g, message.len());
        let mut header = vec![0x34, g as u8];
        header.extend_from_slice(group_id);
        header.extend_from_slice(chain_id);
        header.extend_from_slice(&n.to_be_bytes());
        header.extend_from_slice(i(&format!("sender_nonce_{n}")));
        assert_eq!(message[..at.header], header[..]);
        let signature: [u8; SIGNATURE_LEN] = message[at.signed..].try_into().unwrap();
        hazmat::ed25519_verify(&public, &message[..at.signed], &signature).unwrap();
        assert_eq!(signing.sign(&message[..at.signed]), signature);
    }

    // A receiver built from its inputs and the stored distribution.
    let mut rng = party_rng(&input, "receiver");
    let mut receiver = GroupSession::create(&mut rng, group_id).unwrap();
    receiver
        .process_distribution(from, o("distribution"))
        .unwrap();
    for n in [2, 0] {
        assert_eq!(
            receiver.decrypt(from, o(&format!("message_{n}"))).unwrap(),
            i(&format!("plaintext_{n}"))
        );
    }
    assert_eq!(hex(&receiver.encode()), hex(o("receiver_state_after_2_0")));

    // The stored state holds the skipped key of iteration 1 as its last
    // skipped entry (before the empty removed-account list): it opens message_1
    // as ChaCha20-Poly1305 with the message's nonce and the header (tag through
    // nonce) as associated data.
    let state = o("receiver_state_after_2_0");
    let entry = state.len() - 4 - (4 + KEY_LEN);
    assert_eq!(state[entry..entry + 4], 1u32.to_be_bytes());
    let key = arr(&state[entry + 4..entry + 4 + KEY_LEN]);
    let message_1 = o("message_1");
    let at = Layout::of(g, message_1.len());
    assert_eq!(at.signed - at.header, i("plaintext_1").len() + TAG_LEN);
    assert_eq!(
        hazmat::aead_open(
            &key,
            i("sender_nonce_1").try_into().unwrap(),
            &message_1[..at.header],
            &message_1[at.header..at.signed]
        )
        .unwrap(),
        i("plaintext_1")
    );

    // The stored state decodes, decrypts the last message and ends as stored.
    let mut restored = GroupSession::decode(state).unwrap();
    assert_eq!(restored.decrypt(from, message_1).unwrap(), i("plaintext_1"));
    assert_eq!(hex(&restored.encode()), hex(o("receiver_state_final")));
    assert_eq!(receiver.decrypt(from, message_1).unwrap(), i("plaintext_1"));
    assert_eq!(hex(&receiver.encode()), hex(o("receiver_state_final")));

    // The stored sender state continues the chain at iteration 3.
    let sender = GroupSession::decode(o("sender_state")).unwrap();
    let distribution = sender.distribution();
    assert_eq!(distribution[..2 + g + 4], o("distribution")[..2 + g + 4]);
    assert_eq!(distribution[2 + g + 4..2 + g + 8], 3u32.to_be_bytes());
}
