//! FIPS 203 ML-KEM-768 known answers run through `libcrux-ml-kem`, the crate
//! behind the protocol's `KEM_KeyGen`, `KEM_Encaps` and `KEM_Decaps`
//! (SPEC.md §2, §2.4). `tests/interop/kem_check.py` runs the same values
//! through kyber-py, the ML-KEM of the independent Python implementation, so
//! both sides are held to the same public values, which
//! `tests/vectors/ml_kem_768_fips203.txt` cites:
//!
//! - NIST ACVP ML-KEM-768 keyGen (25 cases: `d`, `z` → `ek`, `dk`),
//!   encapsulation (3 cases: `ek`, `m` → `c`, `K`) and decapsulation (4 cases,
//!   two of them implicit rejections, whose `K` must also equal
//!   `J(z ‖ c) = SHAKE256(z ‖ c, 32)`);
//! - the Go standard library's FIPS 140 self-test (`d`, `z`, `m` → `K`);
//! - Go's accumulated test (SHAKE-128 streams, 100 and 10 000 iterations);
//! - the §2.4 modulus check: `validate_public_key` refuses a key with a
//!   coefficient ≥ 3329 and accepts every ACVP key.
//!
//! Each check runs on the run-time-dispatched API that ratchetbox calls and on
//! the portable implementation, and on the AVX2 one where the CPU has AVX2.
//! The harness's SHAKE (the accumulated streams, `J`) is libcrux-sha3's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use libcrux_ml_kem::mlkem768::{
    self, MlKem768Ciphertext, MlKem768KeyPair, MlKem768PrivateKey, MlKem768PublicKey,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- vectors

type Section = (String, Vec<(String, Vec<u8>)>);

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `[section]` headers, then `name = hex` lines; `#` starts a comment line.
fn sections() -> Vec<Section> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ml_kem_768_fips203.txt"
    );
    let text = std::fs::read_to_string(path).expect("vector file");
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            out.push((name.trim_end_matches(']').to_owned(), Vec::new()));
            continue;
        }
        let (k, v) = line.split_once('=').expect("name = hex");
        let cur = out.last_mut().expect("a value before any section");
        cur.1.push((k.trim().to_owned(), unhex(v.trim())));
    }
    out
}

fn field<'a>(sec: &'a Section, name: &str) -> &'a [u8] {
    &sec.1
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("[{}] has no {name}", sec.0))
        .1
}

fn with_prefix<'a>(all: &'a [Section], prefix: &str) -> Vec<&'a Section> {
    all.iter().filter(|s| s.0.starts_with(prefix)).collect()
}

fn named<'a>(all: &'a [Section], name: &str) -> &'a Section {
    all.iter()
        .find(|s| s.0 == name)
        .unwrap_or_else(|| panic!("no [{name}]"))
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into().expect("length")
}

fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

// ---------------------------------------------------------------- SHAKE

/// `SHAKE256(data, 32)`: the implicit-rejection value `J(z ‖ c)`.
fn shake256(data: &[u8]) -> [u8; 32] {
    libcrux_sha3::shake256::<32>(data)
}

// ---------------------------------------------------------------- the implementations

struct Backend {
    name: &'static str,
    keygen: fn([u8; 64]) -> MlKem768KeyPair,
    encaps: fn(&MlKem768PublicKey, [u8; 32]) -> (MlKem768Ciphertext, [u8; 32]),
    decaps: fn(&MlKem768PrivateKey, &MlKem768Ciphertext) -> [u8; 32],
    validate: fn(&MlKem768PublicKey) -> bool,
}

fn backends() -> Vec<Backend> {
    let mut v = vec![
        Backend {
            name: "dispatched (the API ratchetbox calls)",
            keygen: mlkem768::generate_key_pair,
            encaps: mlkem768::encapsulate,
            decaps: mlkem768::decapsulate,
            validate: mlkem768::validate_public_key,
        },
        Backend {
            name: "portable",
            keygen: mlkem768::portable::generate_key_pair,
            encaps: mlkem768::portable::encapsulate,
            decaps: mlkem768::portable::decapsulate,
            validate: mlkem768::portable::validate_public_key,
        },
    ];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        v.push(Backend {
            name: "avx2",
            keygen: mlkem768::avx2::generate_key_pair,
            encaps: mlkem768::avx2::encapsulate,
            decaps: mlkem768::avx2::decapsulate,
            validate: mlkem768::avx2::validate_public_key,
        });
    }
    v
}

/// `KEM_KeyGen(seed)` of SPEC.md §2: `d = seed[0..32]`, `z = seed[32..64]`.
fn keygen(be: &Backend, d: &[u8], z: &[u8]) -> MlKem768KeyPair {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(d);
    seed[32..].copy_from_slice(z);
    (be.keygen)(seed)
}

// ---------------------------------------------------------------- the checks

#[test]
fn acvp_keygen() {
    let all = sections();
    let cases = with_prefix(&all, "acvp keygen ");
    assert_eq!(cases.len(), 25);
    for be in backends() {
        for case in &cases {
            let kp = keygen(&be, field(case, "d"), field(case, "z"));
            assert_eq!(
                sha256(kp.pk()),
                field(case, "ek_sha256"),
                "{} [{}] ek",
                be.name,
                case.0
            );
            assert_eq!(
                sha256(kp.sk()),
                field(case, "dk_sha256"),
                "{} [{}] dk",
                be.name,
                case.0
            );
            assert!((be.validate)(kp.public_key()), "{} [{}]", be.name, case.0);
        }
        println!("{}: {} ACVP keyGen cases", be.name, cases.len());
    }
}

#[test]
fn acvp_encapsulation() {
    let all = sections();
    let cases = with_prefix(&all, "acvp encap ");
    assert_eq!(cases.len(), 3);
    for be in backends() {
        for case in &cases {
            let ek = MlKem768PublicKey::from(arr::<1184>(field(case, "ek")));
            assert!((be.validate)(&ek), "{} [{}] modulus check", be.name, case.0);
            let (c, k) = (be.encaps)(&ek, arr(field(case, "m")));
            assert_eq!(
                sha256(c.as_ref()),
                field(case, "c_sha256"),
                "{} [{}] c",
                be.name,
                case.0
            );
            assert_eq!(k.to_vec(), field(case, "k"), "{} [{}] K", be.name, case.0);
        }
        println!("{}: {} ACVP encapsulation cases", be.name, cases.len());
    }
}

#[test]
fn acvp_decapsulation_including_implicit_rejection() {
    let all = sections();
    let dk_bytes = field(named(&all, "acvp decap key"), "dk");
    let dk = MlKem768PrivateKey::from(arr::<2400>(dk_bytes));
    let z = &dk_bytes[2400 - 32..];
    let cases: Vec<_> = with_prefix(&all, "acvp decap ")
        .into_iter()
        .filter(|s| s.0 != "acvp decap key")
        .collect();
    assert_eq!(cases.len(), 4);
    for be in backends() {
        let mut rejected = 0;
        for case in &cases {
            let c_bytes = field(case, "c");
            let c = MlKem768Ciphertext::from(arr::<1088>(c_bytes));
            let k = (be.decaps)(&dk, &c);
            assert_eq!(k.to_vec(), field(case, "k"), "{} [{}]", be.name, case.0);
            if field(case, "modified") == [1] {
                let j = shake256(&[z, c_bytes].concat());
                assert_eq!(k, j, "{} [{}] K = J(z ‖ c)", be.name, case.0);
                rejected += 1;
            }
        }
        assert_eq!(rejected, 2);
        println!("{}: {} ACVP decapsulation cases", be.name, cases.len());
    }
}

#[test]
fn go_fips_140_self_test() {
    let all = sections();
    let case = named(&all, "go cast");
    for be in backends() {
        let kp = keygen(&be, field(case, "d"), field(case, "z"));
        let (c, k) = (be.encaps)(kp.public_key(), arr(field(case, "m")));
        assert_eq!(k.to_vec(), field(case, "k"), "{}", be.name);
        assert_eq!((be.decaps)(kp.private_key(), &c), k, "{}", be.name);
    }
}

/// Go's TestAccumulated (the vector file's header describes it): one SHAKE-128
/// stream (of the empty input) supplies every seed, `m` and random ciphertext
/// in turn; a second SHAKE-128 absorbs every `ek`, `c`, `K` and rejection
/// value, and its first 32 bytes are the answer. Both are one-shot here: the
/// stream is squeezed at once and the absorbed bytes collected.
fn accumulated(be: &Backend, iterations: usize) -> Vec<u8> {
    const PER_ITERATION: usize = 64 + 32 + 1088;
    let mut stream = vec![0u8; PER_ITERATION * iterations];
    libcrux_sha3::shake128_ema(&mut stream, b"");
    let mut absorbed = Vec::with_capacity(iterations * (1184 + 1088 + 32 + 32));
    for chunk in stream.chunks_exact(PER_ITERATION) {
        let (seed, rest) = chunk.split_at(64);
        let (m, c1) = rest.split_at(32);
        let kp = (be.keygen)(arr(seed));
        absorbed.extend_from_slice(kp.pk());
        let (c, k) = (be.encaps)(kp.public_key(), arr(m));
        absorbed.extend_from_slice(c.as_ref());
        absorbed.extend_from_slice(&k);
        assert_eq!((be.decaps)(kp.private_key(), &c), k, "{}", be.name);
        let rejected = (be.decaps)(kp.private_key(), &MlKem768Ciphertext::from(arr::<1088>(c1)));
        absorbed.extend_from_slice(&rejected);
    }
    libcrux_sha3::shake128::<32>(&absorbed).to_vec()
}

#[test]
fn go_accumulated_100_iterations() {
    let all = sections();
    let want = field(named(&all, "go accumulated"), "iterations_100");
    for be in backends() {
        assert_eq!(accumulated(&be, 100), want, "{}", be.name);
    }
}

#[test]
fn go_accumulated_10000_iterations() {
    let all = sections();
    let want = field(named(&all, "go accumulated"), "iterations_10000");
    let be = &backends()[0];
    let start = std::time::Instant::now();
    assert_eq!(accumulated(be, 10_000), want, "{}", be.name);
    println!("{}: 10 000 iterations in {:?}", be.name, start.elapsed());
}

/// SPEC.md §2.4: `ByteDecode_12(ek[0..1152])`, every one of the 768 integers
/// below q = 3329; the last 32 bytes (ρ) unrestricted.
#[test]
fn modulus_check_refuses_a_coefficient_of_q_or_more() {
    let all = sections();
    let good = arr::<1184>(field(with_prefix(&all, "acvp encap ")[0], "ek"));
    // coefficient i is bits 12i .. 12i+11, least significant first
    let set = |ek: &mut [u8; 1184], i: usize, v: u16| {
        for bit in 0..12 {
            let pos = 12 * i + bit;
            let mask = 1u8 << (pos % 8);
            if v >> bit & 1 == 1 {
                ek[pos / 8] |= mask;
            } else {
                ek[pos / 8] &= !mask;
            }
        }
    };
    for be in backends() {
        assert!((be.validate)(&MlKem768PublicKey::from(good)), "{}", be.name);
        for (i, v) in [(0, 3329), (0, 4095), (383, 3329), (767, 3329), (767, 4095)] {
            let mut bad = good;
            set(&mut bad, i, v);
            assert!(
                !(be.validate)(&MlKem768PublicKey::from(bad)),
                "{}: coefficient {i} = {v} accepted",
                be.name
            );
            let mut edge = good;
            set(&mut edge, i, 3328);
            assert!(
                (be.validate)(&MlKem768PublicKey::from(edge)),
                "{}: coefficient {i} = 3328 refused",
                be.name
            );
        }
        let mut rho = good;
        rho[1152..].fill(0xFF);
        assert!(
            (be.validate)(&MlKem768PublicKey::from(rho)),
            "{}: ρ",
            be.name
        );
    }
}
