//! Steady-state session encrypt/decrypt against its floor, measured in one run.
//!
//! The floor is what the protocol cannot avoid per message: one KDF_CK (two
//! HMAC-SHA256) plus one ChaCha20-Poly1305 seal or open of the same size.
//! `cargo bench --bench ratchet`; compare `session/*` to `floor/*` at each size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::{
    IdentityKeyPair, PreKeyBundle, PreKeyMessage, PreKeyStore, RatchetMessage, Responder, Session,
};
use sha2::Sha256;

const SIZES: [usize; 5] = [64, 256, 1024, 16 * 1024, 64 * 1024];

/// A session pair where Bob has replied once, so both sides are past the handshake.
fn session_pair(rng: &mut ChaCha20Rng) -> (Session, Session) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::generate(rng, &bob, 1);
    let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None)
        .verify()
        .expect("valid bundle");
    let mut a = Session::initiate(rng, &alice, &bundle).expect("initiate");
    let first = a.encrypt(b"hello").expect("encrypt");
    let (mut b, _) = Responder::new(&bob, &mut store)
        .accept(rng, &PreKeyMessage::parse(&first).expect("parse"))
        .expect("accept");
    let reply = b.encrypt(b"hi").expect("encrypt");
    a.decrypt(rng, &reply).expect("decrypt");
    (a, b)
}

fn kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(ck).expect("any length");
    let mut m = mac.clone();
    m.update(&[1]);
    let mut n = mac;
    n.update(&[2]);
    (
        m.finalize().into_bytes().into(),
        n.finalize().into_bytes().into(),
    )
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    for size in SIZES {
        let mut group = c.benchmark_group(format!("{size}B"));
        group.throughput(Throughput::Bytes(size as u64));
        let plaintext = vec![0x5a; size];
        let mut wire = vec![0u8; size + 64];
        let mut out = vec![0u8; size];

        // Floor: KDF_CK + AEAD seal; KDF_CK + AEAD open.
        let mut ck = [1u8; 32];
        group.bench_function(BenchmarkId::new("floor", "seal"), |bench| {
            bench.iter(|| {
                let (mk, next) = kdf_ck(&ck);
                ck = next;
                let cipher = ChaCha20Poly1305::new(&mk.into());
                let buf = InOutBuf::new(&plaintext, &mut wire[..size]).expect("same length");
                black_box(cipher.encrypt_inout_detached(&Default::default(), &[0u8; 107], buf))
            })
        });
        let key = [3u8; 32];
        let cipher = ChaCha20Poly1305::new(&key.into());
        let buf = InOutBuf::new(&plaintext, &mut wire[..size]).expect("same length");
        let tag = cipher
            .encrypt_inout_detached(&Default::default(), &[0u8; 107], buf)
            .expect("seal");
        group.bench_function(BenchmarkId::new("floor", "open"), |bench| {
            bench.iter(|| {
                let (_mk, next) = kdf_ck(&ck);
                ck = next;
                let cipher = ChaCha20Poly1305::new(&key.into());
                let buf = InOutBuf::new(&wire[..size], &mut out).expect("same length");
                black_box(cipher.decrypt_inout_detached(
                    &Default::default(),
                    &[0u8; 107],
                    buf,
                    &tag,
                ))
            })
        });

        // Session: one-way encrypt; decrypt of pre-encrypted in-order messages.
        let (mut a, _) = session_pair(&mut rng);
        group.bench_function(BenchmarkId::new("session", "encrypt"), |bench| {
            bench.iter(|| black_box(a.encrypt_into(&plaintext, &mut wire).expect("encrypt")))
        });
        // A fresh pair, so the receiver is in step with the sender.
        let (mut a, mut b) = session_pair(&mut rng);
        group.bench_function(BenchmarkId::new("session", "decrypt"), |bench| {
            bench.iter_batched_ref(
                || {
                    let mut m = vec![0u8; size + 57];
                    a.encrypt_into(&plaintext, &mut m).expect("encrypt");
                    m
                },
                |m| {
                    let msg = RatchetMessage::parse(m).expect("parse");
                    black_box(b.decrypt_into(&mut rng, &msg, &mut out).expect("decrypt"))
                },
                criterion::BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
