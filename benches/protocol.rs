//! The protocol's hot paths next to their floor, in one criterion run so that
//! ratios are meaningful on a noisy machine. `benches/report.sh` runs this and
//! prints the table of medians and ratios.
//!
//! - `floor/*`: the primitives the protocol cannot avoid (KDF_CK, AEAD seal and
//!   open, the random message nonce, X25519 DH and keygen, HKDF, SHA-256,
//!   Ed25519 sign and strict verify, and what accepting a received Ed25519 key
//!   costs: decompression with the canonical and small-order checks and the
//!   Montgomery form, and the torsion check), and ML-KEM-768 key generation,
//!   encapsulation, decapsulation and the encapsulation-key check, with the
//!   SHA-256 of a ciphertext and of an encapsulation key that the session AD
//!   binds.
//! - `ratchet/*`: steady-state encrypt, decrypt and both, per size; an
//!   alternating exchange (every message a DH ratchet step); a message 1000
//!   positions ahead.
//! - `handshake/*`: the hybrid (PQXDH) handshake: bundle decoding (with the
//!   KEM key check) and verification (two signatures), initiator, responder
//!   (with its first decrypt), full establishment, and the responder's first
//!   reply (its deferred sending ratchet step).
//! - `state/*`: session encode and decode with 0 and 1000 skipped keys.
//! - `envelope/*`: sealing and opening a single-recipient envelope, sealing for
//!   10, 100 and 1000 devices, and the server's `validate` and split.
//! - `group/*`: group encrypt and decrypt (256 B), and catching up a backlog of
//!   500 messages with batch signature verification against one at a time.
//! - `devices/*`: the session manager over the in-memory store (decrypt, and a
//!   fan-out to three devices), safety numbers, sealing state at rest, linking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use libcrux_ml_kem::mlkem768;
use ratchetbox::at_rest::{self, StorageKey};
use ratchetbox::devices::{SessionManager, SessionRecord};
use ratchetbox::provisioning::{LinkRequest, provision};
use ratchetbox::rand_core::Rng;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::store::{MemoryStore, SessionStore};
use ratchetbox::{AccountId, SafetyNumber};
use ratchetbox::{
    IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyMessage, PreKeyStore,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder, Session, SessionConfig, VerifiedBundle,
};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

const SIZES: [usize; 5] = [64, 256, 1024, 16 * 1024, 64 * 1024];

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

struct Pair {
    alice: Session,
    bob: Session,
}

/// Device 1 of account `name`, with a fresh identity.
fn device(rng: &mut ChaCha20Rng, name: &[u8]) -> LocalDevice {
    LocalDevice {
        account: AccountId::new(name).unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::generate(rng),
    }
}

/// A session pair past the handshake (Bob has replied once).
fn session_pair(rng: &mut ChaCha20Rng, config: SessionConfig) -> Pair {
    let alice_device = device(rng, b"alice");
    let bob_device = device(rng, b"bob");
    let mut store = PreKeyStore::generate(rng, &bob_device.identity, 1);
    let bundle = PreKeyBundle::from_store(bob_device.identity.public_key(), &store, None)
        .verify()
        .unwrap();
    let mut alice =
        Session::initiate_with_config(rng, &alice_device, &bob_device.account, &bundle, config)
            .unwrap();
    let first = alice.encrypt(rng, b"hello").unwrap();
    let (mut bob, _) = Responder::new(&bob_device, &mut store)
        .with_config(config)
        .accept(
            &alice_device.address(),
            &PreKeyMessage::parse(&first).unwrap(),
        )
        .unwrap();
    let reply = bob.encrypt(rng, b"hi").unwrap();
    alice.decrypt(&reply).unwrap();
    Pair { alice, bob }
}

fn kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(ck).unwrap();
    let mut m = mac.clone();
    m.update(&[1]);
    let mut n = mac;
    n.update(&[2]);
    (
        m.finalize().into_bytes().into(),
        n.finalize().into_bytes().into(),
    )
}

fn seal(key: &[u8; 32], aad: &[u8], input: &[u8], output: &mut [u8]) -> [u8; 16] {
    let cipher = ChaCha20Poly1305::new(key.into());
    let buf = InOutBuf::new(input, output).unwrap();
    cipher
        .encrypt_inout_detached(&Default::default(), aad, buf)
        .unwrap()
        .into()
}

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    // A session message's associated data: the 32-byte AD and the 53-byte header.
    let aad = [7u8; 85];
    // The random nonce each message draws, from the generator the ratchet
    // benches use and from the operating system.
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    g.bench_function("random_nonce", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            rng.fill_bytes(&mut nonce);
            black_box(nonce)
        })
    });
    let mut os = ratchetbox::os_rng();
    g.bench_function("random_nonce_os", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            os.fill_bytes(&mut nonce);
            black_box(nonce)
        })
    });
    // The session AD: one SHA-256 over about 200 bytes, once per session.
    let transcript = [9u8; 200];
    g.bench_function("sha256_200B", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&transcript))))
    });
    let mut ck = [1u8; 32];
    g.bench_function("kdf_ck", |b| {
        b.iter(|| {
            let (mk, next) = kdf_ck(black_box(&ck));
            ck = next;
            black_box(mk)
        })
    });
    for size in SIZES {
        let input = vec![0x5a; size];
        let mut output = vec![0u8; size];
        let key = [3u8; 32];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("aead_seal/{}", size_name(size)), |b| {
            b.iter(|| black_box(seal(&key, &aad, &input, &mut output)))
        });
        let tag = seal(&key, &aad, &input, &mut output);
        let sealed = output.clone();
        g.bench_function(format!("aead_open/{}", size_name(size)), |b| {
            b.iter(|| {
                let cipher = ChaCha20Poly1305::new(&key.into());
                let buf = InOutBuf::new(&sealed, &mut output).unwrap();
                cipher
                    .decrypt_inout_detached(&Default::default(), &aad, buf, &tag.into())
                    .unwrap();
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let secret = StaticSecret::from([9u8; 32]);
    let public = PublicKey::from(&StaticSecret::from([11u8; 32]));
    g.bench_function("x25519_dh", |b| {
        b.iter(|| black_box(secret.diffie_hellman(black_box(&public))))
    });
    g.bench_function("x25519_keygen", |b| {
        b.iter(|| black_box(PublicKey::from(black_box(&secret))))
    });
    let ikm = [5u8; 32];
    for len in [32usize, 64] {
        g.bench_function(format!("hkdf_{len}"), |b| {
            b.iter(|| {
                let mut out = [0u8; 64];
                Hkdf::<Sha256>::new(Some(&[0u8; 32]), black_box(&ikm))
                    .expand(b"info", &mut out[..len])
                    .unwrap();
                black_box(out)
            })
        });
    }
    let signing = SigningKey::from_bytes(&[4u8; 32]);
    let verifying = signing.verifying_key();
    let message = [0x05u8; 33];
    let signature = signing.sign(&message);
    g.bench_function("ed25519_sign", |b| {
        b.iter(|| black_box(signing.sign(black_box(&message))))
    });
    g.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            verifying
                .verify_strict(black_box(&message), &signature)
                .unwrap()
        })
    });
    // What accepting a received Ed25519 key costs: decompressing it (with the
    // small-order and canonical checks) and the torsion check ([ℓ]A = 0).
    let encoded = verifying.to_bytes();
    g.bench_function("ed25519_key_checks", |b| {
        b.iter(|| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(&encoded)).unwrap();
            let canonical = !key.is_weak() && key.to_edwards().compress().to_bytes() == encoded;
            black_box((canonical, key.to_montgomery()))
        })
    });
    let point = verifying.to_edwards();
    g.bench_function("ed25519_torsion_check", |b| {
        b.iter(|| black_box(black_box(point).is_torsion_free()))
    });
    // ML-KEM-768 on the primitive, as the handshake uses it: key pairs from
    // 64-byte seeds, encapsulation with 32 random bytes.
    let kem = mlkem768::generate_key_pair([0x21; 64]);
    g.bench_function("ml_kem_768_keygen", |b| {
        b.iter(|| black_box(mlkem768::generate_key_pair(black_box([0x21; 64]))))
    });
    g.bench_function("ml_kem_768_encaps", |b| {
        b.iter(|| {
            black_box(mlkem768::encapsulate(
                kem.public_key(),
                black_box([0x22; 32]),
            ))
        })
    });
    let (ciphertext, _) = mlkem768::encapsulate(kem.public_key(), [0x22; 32]);
    g.bench_function("ml_kem_768_decaps", |b| {
        b.iter(|| {
            black_box(mlkem768::decapsulate(
                kem.private_key(),
                black_box(&ciphertext),
            ))
        })
    });
    g.bench_function("ml_kem_768_key_check", |b| {
        b.iter(|| black_box(mlkem768::validate_public_key(black_box(kem.public_key()))))
    });
    // What the session AD hashes: the ciphertext, and `0x0A ‖ ek` (once per
    // verified bundle or loaded key).
    let ciphertext_bytes = [0x33u8; 1088];
    g.bench_function("sha256_1088B", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&ciphertext_bytes))))
    });
    let encoded_key = [0x34u8; 1185];
    g.bench_function("sha256_1185B", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&encoded_key))))
    });
    g.finish();
}

fn ratchet(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let mut g = c.benchmark_group("ratchet");
    for size in SIZES {
        let name = size_name(size);
        let plaintext = vec![0x5a; size];
        let mut wire = vec![0u8; size + RATCHET_MESSAGE_OVERHEAD];
        let mut out = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));

        let mut pair = session_pair(&mut rng, SessionConfig::default());
        g.bench_function(format!("encrypt/{name}"), |b| {
            b.iter(|| {
                black_box(
                    pair.alice
                        .encrypt_into(&mut rng, &plaintext, &mut wire)
                        .unwrap(),
                )
            })
        });

        // Decrypt pre-encrypted, in-order messages; only the decrypts are timed.
        let mut pair = session_pair(&mut rng, SessionConfig::default());
        g.bench_function(format!("decrypt/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut messages = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let mut m = vec![0u8; size + RATCHET_MESSAGE_OVERHEAD];
                    pair.alice
                        .encrypt_into(&mut rng, &plaintext, &mut m)
                        .unwrap();
                    messages.push(m);
                }
                let start = Instant::now();
                for m in &messages {
                    let parsed = RatchetMessage::parse(m).unwrap();
                    black_box(pair.bob.decrypt_into(&parsed, &mut out).unwrap());
                }
                start.elapsed()
            })
        });

        let mut pair = session_pair(&mut rng, SessionConfig::default());
        g.bench_function(format!("encrypt_decrypt/{name}"), |b| {
            b.iter(|| {
                let len = pair
                    .alice
                    .encrypt_into(&mut rng, &plaintext, &mut wire)
                    .unwrap();
                let parsed = RatchetMessage::parse(&wire[..len]).unwrap();
                black_box(pair.bob.decrypt_into(&parsed, &mut out).unwrap())
            })
        });
    }

    // Alternating direction: each iteration is one message that is a DH ratchet step.
    g.throughput(Throughput::Elements(1));
    let mut pair = session_pair(&mut rng, SessionConfig::default());
    let plaintext = [0x5a; 256];
    let mut wire = [0u8; 256 + RATCHET_MESSAGE_OVERHEAD];
    let mut out = [0u8; 256];
    let mut alice_turn = true;
    g.bench_function("alternating_step/256B", |b| {
        b.iter(|| {
            let (sender, receiver) = if alice_turn {
                (&mut pair.alice, &mut pair.bob)
            } else {
                (&mut pair.bob, &mut pair.alice)
            };
            alice_turn = !alice_turn;
            let len = sender
                .encrypt_into(&mut rng, &plaintext, &mut wire)
                .unwrap();
            let parsed = RatchetMessage::parse(&wire[..len]).unwrap();
            black_box(receiver.decrypt_into(&parsed, &mut out).unwrap())
        })
    });

    // A message 1000 positions ahead: 1000 skipped keys derived and stored.
    let mut pair = session_pair(&mut rng, SessionConfig::default());
    let bob_before = pair.bob.encode();
    let mut ahead = Vec::new();
    for _ in 0..=1000 {
        ahead = pair.alice.encrypt(&mut rng, &plaintext).unwrap();
    }
    g.bench_function("decrypt_1000_ahead/256B", |b| {
        b.iter_batched(
            || Session::decode(&bob_before).unwrap(),
            |mut bob| {
                let parsed = RatchetMessage::parse(&ahead).unwrap();
                bob.decrypt_into(&parsed, &mut out).unwrap();
                bob
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The handshake's fixtures: Alice, Bob (his stored prekeys with one
/// one-time prekey, and the bundle for it), Alice's first message (256 B) and
/// Bob's stored session right after accepting it.
struct Handshake {
    alice: LocalDevice,
    bob: LocalDevice,
    store_blob: Vec<u8>,
    bundle: PreKeyBundle,
    verified: VerifiedBundle,
    first: Vec<u8>,
    bob_blob: Vec<u8>,
}

fn handshake_fixture(rng: &mut ChaCha20Rng) -> Handshake {
    let alice = device(rng, b"alice");
    let bob = device(rng, b"bob");
    let mut store = PreKeyStore::generate(rng, &bob.identity, 1);
    let ids = store.generate_one_time_prekeys(rng, 1).unwrap();
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, Some(ids[0].0));
    let verified = bundle.clone().verify().unwrap();
    let mut session = Session::initiate(rng, &alice, &bob.account, &verified).unwrap();
    let first = session.encrypt(rng, &[0x5a; 256]).unwrap();
    // The stored prekeys still hold the one-time prekey; a copy accepts.
    let store_blob = store.encode().to_vec();
    let (bob_session, _) = Responder::new(&bob, &mut store)
        .accept(&alice.address(), &PreKeyMessage::parse(&first).unwrap())
        .unwrap();
    Handshake {
        store_blob,
        bob_blob: bob_session.encode().to_vec(),
        alice,
        bob,
        bundle,
        verified,
        first,
    }
}

fn handshake(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let mut g = c.benchmark_group("handshake");
    let Handshake {
        alice,
        bob,
        store_blob,
        bundle,
        verified,
        first,
        bob_blob,
    } = handshake_fixture(&mut rng);
    let from = alice.address();
    let bundle_bytes = bundle.encode();

    g.bench_function("decode_bundle", |b| {
        b.iter(|| PreKeyBundle::decode(black_box(&bundle_bytes)).unwrap())
    });
    g.bench_function("verify_bundle", |b| {
        b.iter_batched(
            || bundle.clone(),
            |bundle| bundle.verify().unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("initiator", |b| {
        b.iter(|| Session::initiate(&mut rng, &alice, &bob.account, &verified).unwrap())
    });
    g.bench_function("responder_with_first_decrypt", |b| {
        b.iter_batched(
            || PreKeyStore::decode(&store_blob).unwrap(),
            |mut store| {
                let message = PreKeyMessage::parse(&first).unwrap();
                Responder::new(&bob, &mut store)
                    .accept(&from, &message)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    // Bob's first reply: the sending half of his first ratchet step (deferred
    // from the accept) and the message.
    g.bench_function("responder_first_reply", |b| {
        b.iter_batched(
            || Session::decode(&bob_blob).unwrap(),
            |mut session| session.encrypt(&mut rng, &[0x5a; 256]).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("establishment", |b| {
        b.iter_batched(
            || (PreKeyStore::decode(&store_blob).unwrap(), bundle.clone()),
            |(mut store, bundle)| {
                let verified = bundle.verify().unwrap();
                let mut a = Session::initiate(&mut rng, &alice, &bob.account, &verified).unwrap();
                let first = a.encrypt(&mut rng, &[0x5a; 256]).unwrap();
                let message = PreKeyMessage::parse(&first).unwrap();
                Responder::new(&bob, &mut store)
                    .accept(&from, &message)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn state(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let mut g = c.benchmark_group("state");
    for skipped in [0usize, 1000] {
        let mut pair = session_pair(&mut rng, SessionConfig::default());
        let mut last = Vec::new();
        for _ in 0..=skipped {
            last = pair.alice.encrypt(&mut rng, b"x").unwrap();
        }
        pair.bob.decrypt(&last).unwrap();
        assert_eq!(pair.bob.skipped_key_count(), skipped);
        let blob = pair.bob.encode();
        g.bench_function(format!("encode/{skipped}_skipped"), |b| {
            b.iter(|| black_box(pair.bob.encode()))
        });
        g.bench_function(format!("decode/{skipped}_skipped"), |b| {
            b.iter(|| black_box(Session::decode(&blob).unwrap()))
        });
    }
    g.finish();
}

fn envelope(c: &mut Criterion) {
    use ratchetbox::sealed::{
        Address, ContentHint, DeliveryAccessKey, InnerKind, MultiRecipient, Recipient,
        SealedContent, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot, TrustStore,
        ValidatedEnvelope, open, seal, seal_multi, validate,
    };
    let mut rng = ChaCha20Rng::from_seed([10; 32]);
    let mut g = c.benchmark_group("envelope");
    let root = IdentityKeyPair::generate(&mut rng);
    let server = IdentityKeyPair::generate(&mut rng);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())]).unwrap();
    let cert = SenderCertificate::issue(
        Address::new(b"alice-account-0001", 1).unwrap(),
        alice.public_key(),
        u64::MAX,
        &server,
        ServerCertificate::issue(1, &root, 1, server.public_key()),
    )
    .unwrap();
    let message = [0x5a; 256];
    let content = SealedContent {
        kind: InnerKind::Ratchet,
        hint: ContentHint::Default,
        message: &message,
    };
    let bob_addr = Address::new(b"bob-account-00001", 1).unwrap();
    let key = DeliveryAccessKey::derive(&[3; 32]);
    let sealed = seal(
        &mut rng,
        &alice,
        &cert,
        bob_addr,
        bob.public_key(),
        content,
        Some(&key),
    )
    .unwrap();
    g.bench_function("seal_single/256B", |b| {
        b.iter(|| {
            seal(
                &mut rng,
                &alice,
                &cert,
                bob_addr,
                bob.public_key(),
                content,
                Some(&key),
            )
            .unwrap()
        })
    });
    let me = Recipient {
        identity: &bob,
        address: bob_addr,
        trust: &trust,
        now: 0,
    };
    g.bench_function("open_single/256B", |b| {
        b.iter(|| open(&sealed, &me).unwrap())
    });
    let policy = ServerPolicy::default();
    let registry = |account: &[u8]| (account == b"bob-account-00001").then(|| key.clone());
    g.bench_function("validate_single", |b| {
        b.iter(|| black_box(validate(black_box(&sealed), &policy, &registry).unwrap()))
    });

    let identities: Vec<IdentityKeyPair> = (0..100)
        .map(|_| IdentityKeyPair::generate(&mut rng))
        .collect();
    let accounts: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("account-{i:05}").into_bytes())
        .collect();
    for n in [10usize, 100, 1000] {
        let recipients: Vec<MultiRecipient<'_>> = (0..n)
            .map(|i| MultiRecipient {
                address: Address::new(&accounts[i], 1).unwrap(),
                identity_key: identities[i % identities.len()].public_key(),
                payload: &[],
            })
            .collect();
        if n == 1000 {
            g.sample_size(10);
        }
        g.bench_function(format!("seal_multi/{n}"), |b| {
            b.iter(|| seal_multi(&mut rng, &alice, &cert, &recipients, content, None).unwrap())
        });
        let multi = seal_multi(&mut rng, &alice, &cert, &recipients, content, None).unwrap();
        if n == 10 {
            // The same fan-out to the devices of one account: the two DHs of
            // an account are made once, whatever its number of devices.
            let one_account: Vec<MultiRecipient<'_>> = (1..=4)
                .map(|d| MultiRecipient {
                    address: Address::new(&accounts[0], d).unwrap(),
                    identity_key: identities[0].public_key(),
                    payload: &[],
                })
                .collect();
            g.bench_function("seal_multi/1_account_4_devices", |b| {
                b.iter(|| seal_multi(&mut rng, &alice, &cert, &one_account, content, None).unwrap())
            });
        }
        let open_policy = ServerPolicy {
            require_token: false,
            ..ServerPolicy::default()
        };
        let no_keys = |_: &[u8]| None;
        g.bench_function(format!("validate_multi/{n}"), |b| {
            b.iter(|| black_box(validate(black_box(&multi), &open_policy, &no_keys).unwrap()))
        });
        let mut buffer = vec![0u8; multi.len()];
        g.bench_function(format!("split_multi/{n}"), |b| {
            b.iter(|| {
                let ValidatedEnvelope::Multi(v) = validate(&multi, &open_policy, &no_keys).unwrap()
                else {
                    unreachable!()
                };
                for part in v.parts() {
                    black_box(part.write_to(&mut buffer).unwrap());
                }
            })
        });
    }
    g.finish();
}

fn group(c: &mut Criterion) {
    use ratchetbox::group::GroupSession;
    use ratchetbox::sealed::Address;
    let mut rng = ChaCha20Rng::from_seed([11; 32]);
    let mut g = c.benchmark_group("group");
    let alice_addr = Address::new(b"alice", 1).unwrap();
    let mut alice = GroupSession::create(&mut rng, b"bench group").unwrap();
    let mut bob = GroupSession::create(&mut rng, b"bench group").unwrap();
    bob.process_distribution(alice_addr, &alice.distribution())
        .unwrap();
    let plaintext = [0x5a; 256];
    // Made before the encrypt bench moves Alice's chain far ahead.
    let message = alice.encrypt(&mut rng, &plaintext).unwrap();
    let mut wire = vec![0u8; alice.encrypted_len(256)];
    g.bench_function("encrypt/256B", |b| {
        b.iter(|| black_box(alice.encrypt_into(&mut rng, &plaintext, &mut wire).unwrap()))
    });
    let bob_state = bob.encode();
    g.bench_function("decrypt/256B", |b| {
        b.iter_batched(
            || GroupSession::decode(&bob_state).unwrap(),
            |mut bob| black_box(bob.decrypt(alice_addr, &message).unwrap()),
            BatchSize::SmallInput,
        )
    });

    // A backlog of 500 messages from 5 senders, caught up from the same state.
    let mut catcher = GroupSession::create(&mut rng, b"bench group").unwrap();
    let senders: Vec<(Vec<u8>, GroupSession)> = (0..5)
        .map(|i| {
            let s = GroupSession::create(&mut rng, b"bench group").unwrap();
            (format!("sender-{i}").into_bytes(), s)
        })
        .collect();
    let mut senders = senders;
    for (name, s) in &senders {
        catcher
            .process_distribution(Address::new(name, 1).unwrap(), &s.distribution())
            .unwrap();
    }
    let mut backlog: Vec<(usize, Vec<u8>)> = Vec::new();
    for i in 0..500 {
        let k = i % senders.len();
        backlog.push((k, senders[k].1.encrypt(&mut rng, &plaintext).unwrap()));
    }
    let names: Vec<Vec<u8>> = senders.iter().map(|(n, _)| n.clone()).collect();
    let batch: Vec<(Address<'_>, &[u8])> = backlog
        .iter()
        .map(|(k, m)| (Address::new(&names[*k], 1).unwrap(), m.as_slice()))
        .collect();
    let catcher_state = catcher.encode();
    g.sample_size(10);
    g.bench_function("backlog_500/batch", |b| {
        b.iter_batched(
            || GroupSession::decode(&catcher_state).unwrap(),
            |mut session| {
                let results = session.decrypt_batch(&batch);
                assert!(results.iter().all(Result::is_ok));
                session
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("backlog_500/one_at_a_time", |b| {
        b.iter_batched(
            || GroupSession::decode(&catcher_state).unwrap(),
            |mut session| {
                for (sender, bytes) in &batch {
                    session.decrypt(*sender, bytes).unwrap();
                }
                session
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn manager(rng: &mut ChaCha20Rng, name: &[u8], device: u32, identity: IdentityKeyPair) -> Manager {
    let prekeys = PreKeyStore::generate(rng, &identity, device);
    let local = LocalDevice {
        account: AccountId::new(name).unwrap(),
        device_id: device,
        identity,
    };
    SessionManager::new(local, MemoryStore::new(prekeys))
}

type Manager = SessionManager<MemoryStore>;

fn bundle_of(m: &Manager) -> PreKeyBundle {
    PreKeyBundle::from_store(m.local().identity.public_key(), m.store().prekeys(), None)
}

fn devices(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([11; 32]);
    let mut g = c.benchmark_group("devices");
    let plaintext = [0x5a; 256];

    // Alice's phone and desktop, Bob's phone and tablet; sessions established.
    let alice_seed = [0xA1; 32];
    let bob_seed = [0xB1; 32];
    let mut phone = manager(
        &mut rng,
        b"alice",
        1,
        IdentityKeyPair::from_seed(&alice_seed),
    );
    let mut desktop = manager(
        &mut rng,
        b"alice",
        2,
        IdentityKeyPair::from_seed(&alice_seed),
    );
    let mut bob1 = manager(&mut rng, b"bob", 1, IdentityKeyPair::from_seed(&bob_seed));
    let bob2 = manager(&mut rng, b"bob", 2, IdentityKeyPair::from_seed(&bob_seed));
    let (alice, bob) = (phone.local().account, bob1.local().account);
    for b in [&bob1, &bob2] {
        phone.process_bundle(&mut rng, &bob, bundle_of(b)).unwrap();
    }
    phone
        .process_bundle(&mut rng, &alice, bundle_of(&desktop))
        .unwrap();
    bob1.process_bundle(&mut rng, &alice, bundle_of(&phone))
        .unwrap();
    // One message each way so both sides are past the prekey stage.
    let first = phone
        .encrypt(&mut rng, &bob, b"hi", &[1, 2], &[1, 2])
        .unwrap();
    let to_bob1 = first
        .iter()
        .find(|o| o.address == bob1.local().address())
        .unwrap();
    bob1.decrypt(&phone.local().address(), &to_bob1.message)
        .unwrap();
    let reply = bob1.encrypt(&mut rng, &alice, b"hey", &[1], &[1]).unwrap();
    phone
        .decrypt(&bob1.local().address(), &reply[0].message)
        .unwrap();
    let to_desktop = first
        .iter()
        .find(|o| o.address == desktop.local().address())
        .unwrap();
    desktop
        .decrypt(&phone.local().address(), &to_desktop.message)
        .unwrap();

    g.bench_function("fanout_encrypt_3_devices/256B", |b| {
        b.iter(|| {
            black_box(
                phone
                    .encrypt(&mut rng, &bob, &plaintext, &[1, 2], &[1, 2])
                    .unwrap(),
            )
        })
    });
    let from = bob1.local().address();
    g.bench_function("manager_decrypt/256B", |b| {
        b.iter_custom(|iters| {
            let messages: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    bob1.encrypt(&mut rng, &alice, &plaintext, &[1], &[1])
                        .unwrap()
                        .remove(0)
                        .message
                })
                .collect();
            let start = Instant::now();
            for m in &messages {
                black_box(phone.decrypt(&from, m).unwrap());
            }
            start.elapsed()
        })
    });

    let (a, b_) = (
        IdentityKeyPair::from_seed(&alice_seed),
        IdentityKeyPair::from_seed(&bob_seed),
    );
    g.bench_function("safety_number", |b| {
        b.iter(|| {
            black_box(SafetyNumber::new(
                &alice,
                a.public_key(),
                &bob,
                b_.public_key(),
            ))
        })
    });

    let key = StorageKey::from_bytes([0x33; 32]);
    let record = phone
        .store()
        .session_record(&bob1.local().address())
        .unwrap()
        .unwrap();
    let slot = b"\x03bob\x00\x00\x00\x01";
    let sealed = at_rest::seal(&mut rng, &key, slot, &record);
    g.bench_function("seal_session_record", |b| {
        b.iter(|| black_box(at_rest::seal(&mut rng, &key, slot, &record)))
    });
    g.bench_function("open_session_record", |b| {
        b.iter(|| black_box(at_rest::open::<SessionRecord>(&key, slot, &sealed).unwrap()))
    });

    g.bench_function("link/provision_and_accept", |b| {
        b.iter(|| {
            let mut request = LinkRequest::new(&mut rng);
            let (payload, _) = provision(&mut rng, &a, &alice, &[1], &*request.code()).unwrap();
            black_box(request.accept(&payload).unwrap())
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = floor, ratchet, handshake, state, envelope, group, devices
}

#[path = "protocol/paired.rs"]
mod paired;

fn main() {
    benches();
    // Then the paired ratios (about a minute): with no filter, or with the
    // filter `paired` (which matches no criterion bench), so
    // `cargo bench --bench protocol -- paired` runs only them.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let listing = std::env::args().any(|a| a == "--list" || a == "--test");
    if !listing && (filters.is_empty() || filters == ["paired"]) {
        paired::run();
    }
    Criterion::default().configure_from_args().final_summary();
}
