//! Paired ratios: each protocol operation against its floor, timed back to back
//! in many short rounds, in rotating order, so that the machine's drift (it can
//! change speed by a third within seconds) hits both sides of each ratio alike.
//! The median of the per-round ratios is what `benches/report.py` quotes as the
//! paired ratio; criterion's separate medians stay in the table for scale.
//!
//! The floors execute the same primitive calls the operation cannot avoid
//! (SPEC.md §5), on the primitive crates directly.

use super::*;

/// Rounds, and runs of each side per round.
const ROUNDS: usize = 400;
const RUNS: usize = 4;

/// One side of a pair: prepares untimed state for `RUNS` runs, then runs them.
type Side<'a> = Box<dyn FnMut() -> Box<dyn FnMut() + 'a> + 'a>;

struct Measured<'a> {
    name: &'static str,
    op: Side<'a>,
    floor: Side<'a>,
}

/// Times one side: untimed preparation, then `RUNS` timed runs.
fn time(side: &mut Side<'_>) -> f64 {
    let mut runs: Vec<_> = (0..RUNS).map(|_| side()).collect();
    let start = Instant::now();
    for run in &mut runs {
        run();
    }
    start.elapsed().as_secs_f64() / RUNS as f64
}

/// The primitive work of the handshake sides, on the primitive crates.
struct Floors {
    secret: StaticSecret,
    public: PublicKey,
    kem: mlkem768::MlKem768KeyPair,
    kem_ciphertext: mlkem768::MlKem768Ciphertext,
    verifying: ed25519_dalek::VerifyingKey,
    /// Signatures over a signed prekey's and a KEM prekey's encodings.
    signatures: [ed25519_dalek::Signature; 2],
    encoded_identity: [u8; 32],
    nonces: std::cell::RefCell<ChaCha20Rng>,
    /// A 256-byte message sealed under the message key of `[1; 32]`.
    sealed: ([u8; 256], [u8; 16]),
}

impl Floors {
    fn new() -> Self {
        let signing = SigningKey::from_bytes(&[4u8; 32]);
        let kem = mlkem768::generate_key_pair([0x21; 64]);
        let (kem_ciphertext, _) = mlkem768::encapsulate(kem.public_key(), [0x22; 32]);
        let (mk, _) = kdf_ck(&[1u8; 32]);
        let mut ciphertext = [0u8; 256];
        let tag = seal(&mk, &[7u8; 85], &[0x5a; 256], &mut ciphertext);
        Self {
            secret: StaticSecret::from([9u8; 32]),
            public: PublicKey::from(&StaticSecret::from([11u8; 32])),
            kem,
            kem_ciphertext,
            verifying: signing.verifying_key(),
            signatures: [signing.sign(&[0x05; 33]), signing.sign(&[0x0a; 1185])],
            encoded_identity: signing.verifying_key().to_bytes(),
            nonces: std::cell::RefCell::new(ChaCha20Rng::from_seed([6; 32])),
            sealed: (ciphertext, tag),
        }
    }

    fn keygen(&self) {
        black_box(PublicKey::from(black_box(&self.secret)));
    }

    fn dh(&self) {
        black_box(self.secret.diffie_hellman(black_box(&self.public)));
    }

    fn hkdf(&self, len: usize) {
        let mut out = [0u8; 64];
        Hkdf::<Sha256>::new(Some(&[0u8; 32]), black_box(&[5u8; 32]))
            .expand(b"info", &mut out[..len])
            .unwrap();
        black_box(out);
    }

    fn sha256(&self, len: usize) {
        black_box(Sha256::digest(black_box(&[9u8; 1185][..len])));
    }

    /// Strict verification of the signed prekey's (33 bytes) or the KEM
    /// prekey's (1185 bytes) signature.
    fn verify(&self, kem: bool) {
        let message: &[u8] = if kem { &[0x0a; 1185] } else { &[0x05; 33] };
        self.verifying
            .verify_strict(black_box(message), &self.signatures[usize::from(kem)])
            .unwrap();
    }

    /// Accepting a received Ed25519 identity key (§3.1).
    fn identity_key(&self) {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(black_box(&self.encoded_identity)).unwrap();
        let canonical =
            !key.is_weak() && key.to_edwards().compress().to_bytes() == self.encoded_identity;
        black_box((
            canonical,
            key.to_edwards().is_torsion_free(),
            key.to_montgomery(),
        ));
    }

    /// KDF_CK, the nonce draw and sealing 256 bytes.
    fn seal_message(&self) {
        let (mk, _) = kdf_ck(black_box(&[1u8; 32]));
        let mut nonce = [0u8; 12];
        self.nonces.borrow_mut().fill_bytes(&mut nonce);
        let mut output = [0u8; 256];
        black_box(seal(&mk, &[7u8; 85], &[0x5a; 256], &mut output));
    }

    /// KDF_CK and opening 256 bytes.
    fn open_message(&self) {
        let (mk, _) = kdf_ck(black_box(&[1u8; 32]));
        let mut output = [0u8; 256];
        let cipher = ChaCha20Poly1305::new(&mk.into());
        let buf = InOutBuf::new(&self.sealed.0, &mut output).unwrap();
        cipher
            .decrypt_inout_detached(&Default::default(), &[7u8; 85], buf, &self.sealed.1.into())
            .unwrap();
        black_box(output);
    }

    /// 2 keygen + 5 DH + HKDF (SK) + KDF_RK + AD hash + encaps + SHA-256(CT).
    fn initiator(&self) {
        (0..2).for_each(|_| self.keygen());
        (0..5).for_each(|_| self.dh());
        self.hkdf(32);
        self.hkdf(64);
        self.sha256(212);
        black_box(mlkem768::encapsulate(self.kem.public_key(), [0x22; 32]));
        self.sha256(1088);
    }

    /// 5 DH + HKDF + KDF_RK + AD hash + identity key + KDF_CK and open + decaps
    /// + SHA-256(CT).
    fn responder(&self) {
        (0..5).for_each(|_| self.dh());
        self.hkdf(32);
        self.hkdf(64);
        self.sha256(212);
        self.identity_key();
        self.open_message();
        black_box(mlkem768::decapsulate(
            self.kem.private_key(),
            &self.kem_ciphertext,
        ));
        self.sha256(1088);
    }

    /// 2 verify + SHA-256(EncodeKEM(ek)).
    fn bundle(&self) {
        self.verify(false);
        self.verify(true);
        self.sha256(1185);
    }

    /// keygen + DH + KDF_RK, then the message.
    fn first_reply(&self) {
        self.keygen();
        self.dh();
        self.hkdf(64);
        self.seal_message();
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every pair and writes `target/paired-ratios.json`:
/// `{"name": [median ratio, median op seconds, median floor seconds], ...}`.
pub fn run() {
    let mut rng = ChaCha20Rng::from_seed([18; 32]);
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
    let floors = &Floors::new();
    let pair = &std::cell::RefCell::new(session_pair(&mut rng, SessionConfig::default()));
    let rng = &std::cell::RefCell::new(rng);
    let (alice, bob, bundle, verified) = (&alice, &bob, &bundle, &verified);
    let (store_blob, bob_blob, first, from) = (&store_blob, &bob_blob, &first, &from);

    let mut pairs: Vec<Measured<'_>> = vec![
        Measured {
            name: "bundle verification",
            op: Box::new(move || {
                let b = bundle.clone();
                let mut b = Some(b);
                Box::new(move || {
                    black_box(b.take().unwrap().verify().unwrap());
                })
            }),
            floor: Box::new(move || Box::new(move || floors.bundle())),
        },
        Measured {
            name: "PQXDH initiator",
            op: Box::new(move || {
                Box::new(move || {
                    let mut rng = rng.borrow_mut();
                    black_box(Session::initiate(&mut *rng, alice, &bob.account, verified).unwrap());
                })
            }),
            floor: Box::new(move || Box::new(move || floors.initiator())),
        },
        Measured {
            name: "PQXDH responder + first decrypt",
            op: Box::new(move || {
                let mut store = PreKeyStore::decode(store_blob).unwrap();
                Box::new(move || {
                    let message = PreKeyMessage::parse(first).unwrap();
                    black_box(
                        Responder::new(bob, &mut store)
                            .accept(from, &message)
                            .unwrap(),
                    );
                })
            }),
            floor: Box::new(move || Box::new(move || floors.responder())),
        },
        Measured {
            name: "responder's first reply",
            op: Box::new(move || {
                let mut session = Session::decode(bob_blob).unwrap();
                Box::new(move || {
                    let mut rng = rng.borrow_mut();
                    black_box(session.encrypt(&mut *rng, &[0x5a; 256]).unwrap());
                })
            }),
            floor: Box::new(move || Box::new(move || floors.first_reply())),
        },
        Measured {
            name: "full PQ establishment",
            op: Box::new(move || {
                let mut store = PreKeyStore::decode(store_blob).unwrap();
                let mut b = Some(bundle.clone());
                Box::new(move || {
                    let mut rng = rng.borrow_mut();
                    let verified = b.take().unwrap().verify().unwrap();
                    let mut a =
                        Session::initiate(&mut *rng, alice, &bob.account, &verified).unwrap();
                    let first = a.encrypt(&mut *rng, &[0x5a; 256]).unwrap();
                    let message = PreKeyMessage::parse(&first).unwrap();
                    black_box(
                        Responder::new(bob, &mut store)
                            .accept(from, &message)
                            .unwrap(),
                    );
                })
            }),
            floor: Box::new(move || {
                Box::new(move || {
                    floors.bundle();
                    floors.initiator();
                    floors.seal_message();
                    floors.responder();
                })
            }),
        },
        Measured {
            name: "encrypt+decrypt 256B",
            op: Box::new(move || {
                Box::new(move || {
                    let mut rng = rng.borrow_mut();
                    let pair = &mut *pair.borrow_mut();
                    let mut wire = [0u8; 256 + RATCHET_MESSAGE_OVERHEAD];
                    let mut out = [0u8; 256];
                    let n = pair
                        .alice
                        .encrypt_into(&mut *rng, &[0x5a; 256], &mut wire)
                        .unwrap();
                    let message = RatchetMessage::parse(&wire[..n]).unwrap();
                    black_box(pair.bob.decrypt_into(&message, &mut out).unwrap());
                })
            }),
            floor: Box::new(move || {
                Box::new(move || {
                    floors.seal_message();
                    floors.open_message();
                })
            }),
        },
    ];

    let mut samples: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        pairs.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS {
        for (i, pair) in pairs.iter_mut().enumerate() {
            let (op, floor) = if (round + i) % 2 == 0 {
                let op = time(&mut pair.op);
                (op, time(&mut pair.floor))
            } else {
                let floor = time(&mut pair.floor);
                (time(&mut pair.op), floor)
            };
            samples[i].0.push(op / floor);
            samples[i].1.push(op);
            samples[i].2.push(floor);
        }
    }
    let entries: Vec<String> = pairs
        .iter()
        .zip(samples)
        .map(|(pair, (ratios, ops, floors))| {
            format!(
                "\"{}\": [{:.4}, {:.9}, {:.9}]",
                pair.name,
                median(ratios),
                median(ops),
                median(floors)
            )
        })
        .collect();
    let json = format!("{{{}}}\n", entries.join(", "));
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::write(format!("{dir}/paired-ratios.json"), &json).unwrap();
    eprintln!("paired ratios: {json}");
}
