//! Entry points for the cargo-fuzz targets in `fuzz/` and for the corpus replay
//! test (feature `hazmat`, with `std`). Each takes arbitrary bytes and asserts the
//! invariants that must hold for every input: no panic, a typed error or a
//! canonical value, and no state change on rejection.
//!
//! Not a stable API.

use alloc::vec::Vec;
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{
    IdentityKeyPair, Message, PreKeyBundle, PreKeyMessage, PreKeyStore, RatchetMessage, Responder,
    Session,
};

/// Bundles: a decoded bundle re-encodes to the same bytes; verification never panics.
pub fn bundle(data: &[u8]) {
    if let Ok(bundle) = PreKeyBundle::decode(data) {
        assert_eq!(bundle.encode(), data, "bundle encoding is not canonical");
        let _ = bundle.verify();
    }
}

/// Prekey messages: a parsed message accounts for every byte.
pub fn prekey_message(data: &[u8]) {
    if let Ok(message) = PreKeyMessage::parse(data) {
        assert_eq!(
            message.message().plaintext_len() + crate::PREKEY_MESSAGE_OVERHEAD,
            data.len()
        );
    }
}

/// Ratchet messages (and the `Message` dispatcher).
pub fn ratchet_message(data: &[u8]) {
    if let Ok(message) = RatchetMessage::parse(data) {
        assert_eq!(
            message.plaintext_len() + crate::RATCHET_MESSAGE_OVERHEAD,
            data.len()
        );
    }
    let _ = Message::parse(data);
}

/// Stored sessions: decoding then encoding is the identity.
pub fn session_state(data: &[u8]) {
    if let Ok(session) = Session::decode(data) {
        assert_eq!(
            &session.encode()[..],
            data,
            "session encoding is not canonical"
        );
    }
}

/// Stored identities: decoding then encoding is the identity.
pub fn identity_state(data: &[u8]) {
    if let Ok(identity) = IdentityKeyPair::decode(data) {
        assert_eq!(&identity.encode()[..], data);
    }
}

/// Stored prekey stores: decoding then encoding is the identity.
pub fn prekey_state(data: &[u8]) {
    if let Ok(store) = PreKeyStore::decode(data) {
        assert_eq!(&store.encode()[..], data);
    }
}

/// A responder session holding skipped keys, the messages it can still decrypt,
/// and every plaintext that was ever sent.
struct SessionFixture {
    session: Vec<u8>,
    messages: Vec<Vec<u8>>,
    plaintexts: Vec<Vec<u8>>,
}

/// Bob's identity and prekeys with one unused one-time prekey, and prekey
/// messages for it.
struct ResponderFixture {
    identity_seed: [u8; 32],
    store: Vec<u8>,
    messages: Vec<Vec<u8>>,
    plaintexts: Vec<Vec<u8>>,
}

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn responder_fixture() -> Option<&'static ResponderFixture> {
    static FIXTURE: OnceLock<Option<ResponderFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(1);
            let alice = IdentityKeyPair::from_seed(&[0xA1; 32]);
            let identity_seed = [0xB0; 32];
            let bob = IdentityKeyPair::from_seed(&identity_seed);
            let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
            let ids = store.generate_one_time_prekeys(&mut rng, 2).ok()?;
            let plaintexts: Vec<Vec<u8>> = [&b"first"[..], b"", b"third message"]
                .iter()
                .map(|p| p.to_vec())
                .collect();
            let mut messages = Vec::new();
            for (one_time, plaintext) in [Some(ids[0].0), None, Some(ids[1].0)]
                .iter()
                .zip(&plaintexts)
            {
                let bundle = PreKeyBundle::from_store(bob.public_key(), &store, *one_time)
                    .verify()
                    .ok()?;
                let mut session = Session::initiate(&mut rng, &alice, &bundle).ok()?;
                messages.push(session.encrypt(plaintext).ok()?);
            }
            Some(ResponderFixture {
                identity_seed,
                store: store.encode().to_vec(),
                messages,
                plaintexts,
            })
        })
        .as_ref()
}

fn session_fixture() -> Option<&'static SessionFixture> {
    static FIXTURE: OnceLock<Option<SessionFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(2);
            let alice = IdentityKeyPair::from_seed(&[0xA2; 32]);
            let bob = IdentityKeyPair::from_seed(&[0xB2; 32]);
            let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
            let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None)
                .verify()
                .ok()?;
            let mut a = Session::initiate(&mut rng, &alice, &bundle).ok()?;
            let plaintexts: Vec<Vec<u8>> = (0..6u8)
                .map(|i| alloc::vec![i; 3 + usize::from(i)])
                .collect();
            let sent: Vec<Vec<u8>> = plaintexts[..3]
                .iter()
                .map(|p| a.encrypt(p))
                .collect::<Result<_, _>>()
                .ok()?;
            let first = PreKeyMessage::parse(&sent[0]).ok()?;
            let (mut b, _) = Responder::new(&bob, &mut store)
                .accept(&mut rng, &first)
                .ok()?;
            b.decrypt(&mut rng, &sent[2]).ok()?; // message 1 stays skipped
            let reply = b.encrypt(b"reply").ok()?;
            a.decrypt(&mut rng, &reply).ok()?;
            let mut later: Vec<Vec<u8>> = plaintexts[3..]
                .iter()
                .map(|p| a.encrypt(p))
                .collect::<Result<_, _>>()
                .ok()?;
            let mut messages = alloc::vec![sent[1].clone()];
            messages.append(&mut later);
            Some(SessionFixture {
                session: b.encode().to_vec(),
                messages,
                plaintexts,
            })
        })
        .as_ref()
}

/// Arbitrary bytes handed to a responder session that holds real keys: either a
/// known plaintext comes out, or the session is unchanged.
pub fn session_decrypt(data: &[u8]) {
    let Some(fixture) = session_fixture() else {
        return;
    };
    let Ok(mut session) = Session::decode(&fixture.session) else {
        return;
    };
    let mut rng = rng(3);
    match session.decrypt(&mut rng, data) {
        Ok(plaintext) => assert!(
            fixture.plaintexts.contains(&plaintext),
            "decrypted something that was never sent"
        ),
        Err(_) => assert_eq!(
            &session.encode()[..],
            &fixture.session[..],
            "a rejected message changed the session"
        ),
    }
}

/// Arbitrary bytes handed to a responder as a prekey message: either a known
/// plaintext comes out and exactly the named one-time prekey is spent, or the
/// prekey store is unchanged.
pub fn responder_accept(data: &[u8]) {
    let Some(fixture) = responder_fixture() else {
        return;
    };
    let Ok(message) = PreKeyMessage::parse(data) else {
        return;
    };
    let bob = IdentityKeyPair::from_seed(&fixture.identity_seed);
    let Ok(mut store) = PreKeyStore::decode(&fixture.store) else {
        return;
    };
    let before = store.one_time_prekey_count();
    let mut rng = rng(4);
    match Responder::new(&bob, &mut store).accept(&mut rng, &message) {
        Ok((_, plaintext)) => {
            assert!(fixture.plaintexts.contains(&plaintext));
            let spent = usize::from(message.one_time_prekey_id().is_some());
            assert_eq!(store.one_time_prekey_count(), before - spent);
        }
        Err(_) => assert_eq!(&store.encode()[..], &fixture.store[..]),
    }
}

/// Valid inputs for each target, to seed its corpus: `(target, input)`.
pub fn seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut rng = rng(5);
    let identity = IdentityKeyPair::from_seed(&[0xC0; 32]);
    seeds.push(("identity_state", identity.encode().to_vec()));
    let mut store = PreKeyStore::generate(&mut rng, &identity, 9);
    if store.generate_one_time_prekeys(&mut rng, 3).is_ok() {
        seeds.push(("prekey_state", store.encode().to_vec()));
    }
    for one_time in [None, Some(1)] {
        let bundle = PreKeyBundle::from_store(identity.public_key(), &store, one_time);
        seeds.push(("bundle", bundle.encode()));
    }
    if let Some(f) = responder_fixture() {
        for m in &f.messages {
            seeds.push(("prekey_message", m.clone()));
            seeds.push(("responder_accept", m.clone()));
        }
    }
    if let Some(f) = session_fixture() {
        seeds.push(("session_state", f.session.clone()));
        for m in &f.messages {
            seeds.push(("ratchet_message", m.clone()));
            seeds.push(("session_decrypt", m.clone()));
        }
    }
    seeds
}

/// Runs the named target on `data`; `false` if there is no such target.
pub fn run(target: &str, data: &[u8]) -> bool {
    let f: fn(&[u8]) = match target {
        "bundle" => bundle,
        "prekey_message" => prekey_message,
        "ratchet_message" => ratchet_message,
        "session_state" => session_state,
        "identity_state" => identity_state,
        "prekey_state" => prekey_state,
        "session_decrypt" => session_decrypt,
        "responder_accept" => responder_accept,
        _ => return false,
    };
    f(data);
    true
}
