//! ratchetbox against vodozemac's Olm (`vodozemac::olm`), in one criterion run
//! so that the ratios between them are meaningful on a noisy machine.
//!
//! Every case starts from a pair of sessions past the handshake (the initiator
//! has decrypted one reply), so no prekey messages are involved.
//!
//! - `peer/one_way_{256B,16KiB}/*`: per iteration A encrypts one message and B
//!   decrypts it, all on the same sending chain (one KDF step and one AEAD
//!   operation on each side).
//! - `peer/alternating_256B/*`: per iteration A→B then B→A, so every message
//!   starts a new DH ratchet step.
//!
//! Ids: `ratchetbox` uses `encrypt_into` / `RatchetMessage::parse` /
//! `decrypt_into` with preallocated buffers (wire bytes in and out);
//! `vodozemac` passes the `OlmMessage` value straight from `encrypt` to
//! `decrypt`, as its API allows; `vodozemac_wire` also serializes it with
//! `to_parts` and parses it back with `from_parts`, which is what a transport
//! needs and what the ratchetbox path already includes.
//!
//! `cd benches/peer && cargo bench`

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::{
    AccountId, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyMessage, PreKeyStore,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder, Session,
};
use vodozemac::olm::{Account, OlmMessage, Session as OlmSession, SessionConfig};

/// A ratchetbox pair where Bob has replied once and Alice has decrypted it.
fn ratchetbox_pair(rng: &mut ChaCha20Rng) -> (Session, Session) {
    let device = |rng: &mut ChaCha20Rng, name: &[u8]| LocalDevice {
        account: AccountId::new(name).expect("account id"),
        device_id: 1,
        identity: IdentityKeyPair::generate(rng),
    };
    let alice = device(rng, b"alice");
    let bob = device(rng, b"bob");
    let mut store = PreKeyStore::generate(rng, &bob.identity, 1);
    let one_time = store
        .generate_one_time_prekeys(rng, 1)
        .expect("one-time prekey");
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(one_time[0].0))
        .verify()
        .expect("valid bundle");
    let mut a = Session::initiate(rng, &alice, &bob.account, &bundle).expect("initiate");
    let first = a.encrypt(rng, b"hello").expect("encrypt");
    let (mut b, _) = Responder::new(&bob, &mut store)
        .accept(
            &alice.address(),
            &PreKeyMessage::parse(&first).expect("parse"),
        )
        .expect("accept");
    let reply = b.encrypt(rng, b"hi").expect("encrypt");
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"hi");
    assert!(!a.is_awaiting_reply());
    (a, b)
}

/// A vodozemac Olm pair where Bob has replied once and Alice has decrypted it.
fn vodozemac_pair() -> (OlmSession, OlmSession) {
    let config = SessionConfig::version_1();
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let one_time_key = *bob.one_time_keys().values().next().expect("one-time key");
    bob.mark_keys_as_published();
    let mut a = alice
        .create_outbound_session(config, bob.curve25519_key(), one_time_key)
        .expect("outbound session");
    let OlmMessage::PreKey(first) = a.encrypt(b"hello").expect("encrypt") else {
        unreachable!("the first message is a pre-key message")
    };
    let mut b = bob
        .create_inbound_session(config, alice.curve25519_key(), &first)
        .expect("inbound session")
        .session;
    let reply = b.encrypt(b"hi").expect("encrypt");
    assert!(matches!(reply, OlmMessage::Normal(_)));
    assert_eq!(a.decrypt(&reply).expect("decrypt"), b"hi");
    // From here on A's messages are normal (not pre-key) messages.
    assert!(a.has_received_message());
    (a, b)
}

/// One ratchetbox message A→B through wire bytes; returns the plaintext length.
fn ratchetbox_send(
    rng: &mut ChaCha20Rng,
    from: &mut Session,
    to: &mut Session,
    plaintext: &[u8],
    wire: &mut [u8],
    out: &mut [u8],
) -> usize {
    let n = from.encrypt_into(rng, plaintext, wire).expect("encrypt");
    let message = RatchetMessage::parse(&wire[..n]).expect("parse");
    to.decrypt_into(&message, out).expect("decrypt")
}

fn vodozemac_send(from: &mut OlmSession, to: &mut OlmSession, plaintext: &[u8]) -> Vec<u8> {
    let message = from.encrypt(plaintext).expect("encrypt");
    to.decrypt(&message).expect("decrypt")
}

fn vodozemac_send_wire(from: &mut OlmSession, to: &mut OlmSession, plaintext: &[u8]) -> Vec<u8> {
    let (kind, bytes) = from.encrypt(plaintext).expect("encrypt").to_parts();
    let message = OlmMessage::from_parts(kind, &bytes).expect("parse");
    to.decrypt(&message).expect("decrypt")
}

fn one_way(c: &mut Criterion, rng: &mut ChaCha20Rng, label: &str, size: usize) {
    let plaintext = vec![0x5a; size];
    let mut wire = vec![0u8; size + RATCHET_MESSAGE_OVERHEAD];
    let mut out = vec![0u8; size];

    let mut group = c.benchmark_group(format!("peer/one_way_{label}"));
    group.throughput(Throughput::Bytes(size as u64));

    let (mut a, mut b) = ratchetbox_pair(rng);
    let n = ratchetbox_send(rng, &mut a, &mut b, &plaintext, &mut wire, &mut out);
    assert_eq!(&out[..n], &plaintext[..]);
    assert_eq!(a.encrypted_len(size), wire.len(), "not a prekey message");
    group.bench_function("ratchetbox", |bench| {
        bench.iter(|| {
            black_box(ratchetbox_send(
                rng,
                &mut a,
                &mut b,
                black_box(&plaintext),
                &mut wire,
                &mut out,
            ))
        })
    });

    let (mut a, mut b) = vodozemac_pair();
    let OlmMessage::Normal(message) = a.encrypt(&plaintext).expect("encrypt") else {
        unreachable!("sessions are established")
    };
    let decrypted = b.decrypt(&OlmMessage::Normal(message)).expect("decrypt");
    assert_eq!(decrypted, plaintext);
    group.bench_function("vodozemac", |bench| {
        bench.iter(|| vodozemac_send(&mut a, &mut b, black_box(&plaintext)))
    });

    let (mut a, mut b) = vodozemac_pair();
    assert_eq!(vodozemac_send_wire(&mut a, &mut b, &plaintext), plaintext);
    group.bench_function("vodozemac_wire", |bench| {
        bench.iter(|| vodozemac_send_wire(&mut a, &mut b, black_box(&plaintext)))
    });
    group.finish();
}

fn alternating(c: &mut Criterion, rng: &mut ChaCha20Rng) {
    const SIZE: usize = 256;
    let plaintext = vec![0x5a; SIZE];
    let mut wire = vec![0u8; SIZE + RATCHET_MESSAGE_OVERHEAD];
    let mut out = vec![0u8; SIZE];

    let mut group = c.benchmark_group("peer/alternating_256B");

    let (mut a, mut b) = ratchetbox_pair(rng);
    // Check that consecutive messages each carry a new ratchet key.
    let mut last_key = None;
    for step in 0..4 {
        let (from, to) = if step % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let n = from
            .encrypt_into(rng, &plaintext, &mut wire)
            .expect("encrypt");
        let message = RatchetMessage::parse(&wire[..n]).expect("parse");
        let key = message.header().ratchet_key;
        assert_ne!(Some(key), last_key, "not a DH ratchet step");
        last_key = Some(key);
        assert_eq!(message.header().message_number, 0);
        let m = to.decrypt_into(&message, &mut out).expect("decrypt");
        assert_eq!(&out[..m], &plaintext[..]);
    }
    group.bench_function("ratchetbox", |bench| {
        bench.iter(|| {
            ratchetbox_send(
                rng,
                &mut a,
                &mut b,
                black_box(&plaintext),
                &mut wire,
                &mut out,
            );
            black_box(ratchetbox_send(
                rng,
                &mut b,
                &mut a,
                black_box(&plaintext),
                &mut wire,
                &mut out,
            ))
        })
    });

    let (mut a, mut b) = vodozemac_pair();
    let mut last_key = None;
    for step in 0..4 {
        let (from, to) = if step % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let OlmMessage::Normal(message) = from.encrypt(&plaintext).expect("encrypt") else {
            unreachable!("sessions are established")
        };
        let key = message.ratchet_key();
        assert_ne!(Some(key), last_key, "not a DH ratchet step");
        last_key = Some(key);
        assert_eq!(message.chain_index(), 0);
        let decrypted = to.decrypt(&OlmMessage::Normal(message)).expect("decrypt");
        assert_eq!(decrypted, plaintext);
    }
    group.bench_function("vodozemac", |bench| {
        bench.iter(|| {
            vodozemac_send(&mut a, &mut b, black_box(&plaintext));
            vodozemac_send(&mut b, &mut a, black_box(&plaintext))
        })
    });

    let (mut a, mut b) = vodozemac_pair();
    group.bench_function("vodozemac_wire", |bench| {
        bench.iter(|| {
            vodozemac_send_wire(&mut a, &mut b, black_box(&plaintext));
            vodozemac_send_wire(&mut b, &mut a, black_box(&plaintext))
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    one_way(c, &mut rng, "256B", 256);
    one_way(c, &mut rng, "16KiB", 16 * 1024);
    alternating(c, &mut rng);
}

criterion_group!(benches, bench);
criterion_main!(benches);
