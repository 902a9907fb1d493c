//! Entry points for the cargo-fuzz targets in `fuzz/` and for the corpus replay
//! test (feature `hazmat`, with `std`). Each takes arbitrary bytes and asserts the
//! invariants that must hold for every input: no panic, a typed error or a
//! canonical value, and no state change on rejection.
//!
//! Not a stable API.

mod devices;

use alloc::vec::Vec;
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{
    AccountId, DeviceAddress, IdentityKeyPair, LocalDevice, Message, PreKeyBundle, PreKeyMessage,
    PreKeyStore, RatchetMessage, Responder, Session,
};

/// A fixture device: account `name`, device 1, identity from a fixed seed.
fn device(seed: u8, name: &[u8]) -> Option<LocalDevice> {
    Some(LocalDevice {
        account: AccountId::new(name).ok()?,
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&[seed; 32]),
    })
}

/// The address of a fixture device.
fn address(name: &[u8]) -> Option<DeviceAddress> {
    Some(DeviceAddress::new(AccountId::new(name).ok()?, 1))
}

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

/// Bob's identity and prekeys (unused one-time prekeys of both kinds and the
/// last-resort KEM prekey), and prekey messages for them.
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
            let alice = device(0xA1, b"alice")?;
            let identity_seed = [0xB0; 32];
            let bob = IdentityKeyPair::from_seed(&identity_seed);
            let bob_account = AccountId::new(b"bob").ok()?;
            let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
            let ids = store.generate_one_time_prekeys(&mut rng, 2).ok()?;
            let kem_ids = store
                .generate_one_time_kem_prekeys(&mut rng, &bob, 1)
                .ok()?;
            let plaintexts: Vec<Vec<u8>> = [&b"first"[..], b"", b"third message"]
                .iter()
                .map(|p| p.to_vec())
                .collect();
            let mut messages = Vec::new();
            // A one-time KEM prekey, then the last-resort one twice.
            let keys = [
                (Some(ids[0].0), Some(kem_ids[0])),
                (None, None),
                (Some(ids[1].0), None),
            ];
            for ((one_time, kem), plaintext) in keys.iter().zip(&plaintexts) {
                let bundle =
                    PreKeyBundle::from_store_with_kem(bob.public_key(), &store, *one_time, *kem)
                        .verify()
                        .ok()?;
                let mut session =
                    Session::initiate(&mut rng, &alice, &bob_account, &bundle).ok()?;
                messages.push(session.encrypt(&mut rng, plaintext).ok()?);
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
            let alice = device(0xA2, b"alice")?;
            let bob = device(0xB2, b"bob")?;
            let mut store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
            let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
                .verify()
                .ok()?;
            let mut a = Session::initiate(&mut rng, &alice, &bob.account, &bundle).ok()?;
            let plaintexts: Vec<Vec<u8>> = (0..6u8)
                .map(|i| alloc::vec![i; 3 + usize::from(i)])
                .collect();
            let sent: Vec<Vec<u8>> = plaintexts[..3]
                .iter()
                .map(|p| a.encrypt(&mut rng, p))
                .collect::<Result<_, _>>()
                .ok()?;
            let first = PreKeyMessage::parse(&sent[0]).ok()?;
            let (mut b, _) = Responder::new(&bob, &mut store)
                .accept(&alice.address(), &first)
                .ok()?;
            b.decrypt(&sent[2]).ok()?; // message 1 stays skipped
            let reply = b.encrypt(&mut rng, b"reply").ok()?;
            a.decrypt(&reply).ok()?;
            let mut later: Vec<Vec<u8>> = plaintexts[3..]
                .iter()
                .map(|p| a.encrypt(&mut rng, p))
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
    match session.decrypt(data) {
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

/// The fixture responder: Bob's device and his prekey store, decoded afresh.
fn fixture_responder(fixture: &ResponderFixture) -> Option<(LocalDevice, PreKeyStore)> {
    let bob = LocalDevice {
        account: AccountId::new(b"bob").ok()?,
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&fixture.identity_seed),
    };
    Some((bob, PreKeyStore::decode(&fixture.store).ok()?))
}

/// Arbitrary bytes handed to a responder as a prekey message: either a known
/// plaintext comes out, exactly the named one-time prekeys are spent (a
/// last-resort KEM prekey stays) and the base key is remembered (so the same
/// message is then a repeat), or the prekey store is unchanged.
pub fn responder_accept(data: &[u8]) {
    let Some(fixture) = responder_fixture() else {
        return;
    };
    let Ok(message) = PreKeyMessage::parse(data) else {
        return;
    };
    let (Some((bob, mut store)), Some(alice)) = (fixture_responder(fixture), address(b"alice"))
    else {
        return;
    };
    let before = (
        store.one_time_prekey_count(),
        store.one_time_kem_prekey_count(),
    );
    let kind = store
        .find_kem_prekey(message.kem_prekey_id())
        .map(|(_, kind)| kind);
    match Responder::new(&bob, &mut store).accept(&alice, &message) {
        Ok((_, plaintext)) => {
            assert!(fixture.plaintexts.contains(&plaintext));
            let spent = usize::from(message.one_time_prekey_id().is_some());
            let kem_spent = usize::from(kind == Some(crate::KemPreKeyKind::OneTime));
            assert_eq!(
                (
                    store.one_time_prekey_count(),
                    store.one_time_kem_prekey_count()
                ),
                (before.0 - spent, before.1 - kem_spent)
            );
            assert!(store.find_kem_prekey(message.kem_prekey_id()).is_some() == (kem_spent == 0));
            assert!(store.has_accepted_base_key(message.base_key()));
            assert!(matches!(
                Responder::new(&bob, &mut store).accept(&alice, &message),
                Err(crate::Error::RepeatedPreKeyMessage { .. })
            ));
        }
        Err(_) => assert_eq!(&store.encode()[..], &fixture.store[..]),
    }
}

/// A genuine prekey message with its KEM ciphertext replaced by fuzzer bytes
/// (missing bytes keep the original's): it decrypts only with the original
/// ciphertext; anything else is implicit rejection, which surfaces as
/// [`crate::Error::DecryptionFailed`] with the prekey store unchanged.
pub fn responder_kem_ciphertext(data: &[u8]) {
    const AT: usize = 73;
    let Some(fixture) = responder_fixture() else {
        return;
    };
    let (Some((bob, mut store)), Some(alice)) = (fixture_responder(fixture), address(b"alice"))
    else {
        return;
    };
    let (pick, ciphertext) = data.split_first().unwrap_or((&0, &[]));
    let original = &fixture.messages[usize::from(*pick) % fixture.messages.len()];
    let mut wire = original.clone();
    let len = ciphertext.len().min(crate::KEM_CIPHERTEXT_LEN);
    wire[AT..AT + len].copy_from_slice(&ciphertext[..len]);
    let parsed = PreKeyMessage::parse(&wire);
    assert!(parsed.is_ok(), "any 1088 bytes are a ciphertext");
    let Ok(message) = parsed else {
        return;
    };
    match Responder::new(&bob, &mut store).accept(&alice, &message) {
        Ok(_) => assert_eq!(&wire, original, "a substituted ciphertext decrypted"),
        Err(e) => {
            assert_ne!(&wire, original, "the genuine message failed: {e}");
            assert_eq!(e, crate::Error::DecryptionFailed);
            assert_eq!(&store.encode()[..], &fixture.store[..]);
        }
    }
}

/// An established pair of sessions (Bob has replied), as stored blobs.
fn pair_fixture() -> Option<&'static (Vec<u8>, Vec<u8>)> {
    static FIXTURE: OnceLock<Option<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(6);
            let alice = device(0xA6, b"alice")?;
            let bob = device(0xB6, b"bob")?;
            let mut store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
            let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
                .verify()
                .ok()?;
            let config = crate::SessionConfig::new(8, 16).ok()?;
            let mut a =
                Session::initiate_with_config(&mut rng, &alice, &bob.account, &bundle, config)
                    .ok()?;
            let first = a.encrypt(&mut rng, b"hello").ok()?;
            let (mut b, _) = Responder::new(&bob, &mut store)
                .with_config(config)
                .accept(&alice.address(), &PreKeyMessage::parse(&first).ok()?)
                .ok()?;
            let reply = b.encrypt(&mut rng, b"hi").ok()?;
            a.decrypt(&reply).ok()?;
            Some((a.encode().to_vec(), b.encode().to_vec()))
        })
        .as_ref()
}

struct InFlight {
    to_bob: bool,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    decrypted: bool,
}

/// A fuzzer-chosen schedule between two parties: each input byte picks an
/// operation (send either way, deliver, drop, duplicate, tamper), and the next
/// bytes pick its arguments. Invariants: a message decrypts at most once and only
/// to what was sent; a tampered copy never decrypts; a rejected message leaves
/// the receiver's stored form unchanged. Limits are small (`max_skip` 8,
/// 16 stored keys) so that the bounds are reached.
pub fn session_interaction(data: &[u8]) {
    let Some((alice_blob, bob_blob)) = pair_fixture() else {
        return;
    };
    let (Ok(mut alice), Ok(mut bob)) = (Session::decode(alice_blob), Session::decode(bob_blob))
    else {
        return;
    };
    let mut rng = rng(7);
    let mut flight: Vec<InFlight> = Vec::new();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = usize::from(bytes.next().unwrap_or(0));
        match op % 6 {
            0 | 1 => {
                if flight.len() >= 256 {
                    continue;
                }
                let to_bob = op % 6 == 0;
                let mut plaintext = (flight.len() as u32).to_be_bytes().to_vec();
                plaintext.resize(4 + arg % 64, op);
                let sender = if to_bob { &mut alice } else { &mut bob };
                let Ok(wire) = sender.encrypt(&mut rng, &plaintext) else {
                    continue;
                };
                flight.push(InFlight {
                    to_bob,
                    wire,
                    plaintext,
                    decrypted: false,
                });
            }
            2 | 3 | 5 if !flight.is_empty() => {
                let index = arg % flight.len();
                let mut wire = flight[index].wire.clone();
                let tampered = op % 6 == 5;
                if tampered {
                    let bit = usize::from(bytes.next().unwrap_or(0)) * 256
                        + usize::from(bytes.next().unwrap_or(0));
                    let bit = bit % (wire.len() * 8);
                    wire[bit / 8] ^= 1 << (bit % 8);
                }
                let receiver = if flight[index].to_bob {
                    &mut bob
                } else {
                    &mut alice
                };
                let before = receiver.encode();
                match receiver.decrypt(&wire) {
                    Ok(plaintext) => {
                        assert!(!tampered, "a tampered message decrypted");
                        assert!(!flight[index].decrypted, "a message decrypted twice");
                        assert_eq!(plaintext, flight[index].plaintext, "wrong plaintext");
                        flight[index].decrypted = true;
                    }
                    Err(_) => assert_eq!(
                        &receiver.encode()[..],
                        &before[..],
                        "a rejected message changed the session"
                    ),
                }
            }
            4 if !flight.is_empty() => {
                // Drop: the message is never delivered.
                let index = arg % flight.len();
                flight[index].decrypted = true;
                flight[index].wire.clear();
                flight[index].wire.push(0xff);
            }
            _ => {}
        }
    }
}

/// Sender certificates: a decoded certificate re-encodes to the same bytes, and
/// validation never panics.
pub fn sender_certificate(data: &[u8]) {
    if let Ok(cert) = crate::sealed::SenderCertificate::decode(data) {
        assert_eq!(cert.encode(), data, "certificate encoding is not canonical");
        if let Some(f) = sealed_fixture() {
            let _ = cert.validate(&f.trust, 0);
        }
    }
}

/// Server validation and split: any accepted envelope splits into parts that
/// are themselves well-formed and addressed to the listed devices, in order.
pub fn envelope_validate(data: &[u8]) {
    use crate::sealed::{DeliveryAccessKey, ServerPolicy, ValidatedEnvelope, validate};
    let policy = ServerPolicy {
        require_token: false,
        ..ServerPolicy::default()
    };
    let keys = |account: &[u8]| Some(DeliveryAccessKey::derive(&[account.len() as u8; 32]));
    let Ok(validated) = validate(data, &policy, &keys) else {
        return;
    };
    if let ValidatedEnvelope::Multi(multi) = validated {
        let mut previous = None;
        let mut buffer = alloc::vec![0u8; data.len() + 64];
        let mut count = 0;
        for part in multi.parts() {
            assert!(previous < Some(part.recipient()), "parts out of order");
            previous = Some(part.recipient());
            let len = part.write_to(&mut buffer).unwrap_or(0);
            assert_eq!(len, part.len());
            assert!(crate::sealed::wire_split_is_well_formed(&buffer[..len]));
            count += 1;
        }
        assert_eq!(count, multi.recipient_count());
    }
}

struct SealedFixture {
    trust: crate::sealed::TrustStore,
    bob_seed: [u8; 32],
    envelopes: Vec<Vec<u8>>,
    messages: Vec<Vec<u8>>,
}

fn sealed_fixture() -> Option<&'static SealedFixture> {
    use crate::sealed::{
        Address, ContentHint, InnerKind, MultiRecipient, SealedContent, SenderCertificate,
        ServerCertificate, ServerPolicy, TrustRoot, TrustStore, ValidatedEnvelope, seal,
        seal_multi, validate,
    };
    static FIXTURE: OnceLock<Option<SealedFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(8);
            let root = IdentityKeyPair::from_seed(&[0xE0; 32]);
            let server = IdentityKeyPair::from_seed(&[0xE1; 32]);
            let alice = IdentityKeyPair::from_seed(&[0xE2; 32]);
            let bob_seed = [0xE3; 32];
            let bob = IdentityKeyPair::from_seed(&bob_seed);
            let carol = IdentityKeyPair::from_seed(&[0xE4; 32]);
            let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())]).ok()?;
            let server_cert = ServerCertificate::issue(1, &root, 2, server.public_key());
            let cert = SenderCertificate::issue(
                Address::new(b"alice", 1).ok()?,
                alice.public_key(),
                u64::MAX,
                &server,
                server_cert,
            )
            .ok()?;
            let bob1 = Address::new(b"bob", 1).ok()?;
            let messages = alloc::vec![b"sealed hello".to_vec(), b"group hello".to_vec()];
            let single = seal(
                &mut rng,
                &alice,
                &cert,
                bob1,
                bob.public_key(),
                SealedContent {
                    kind: InnerKind::Ratchet,
                    hint: ContentHint::Default,
                    message: &messages[0],
                },
                None,
            )
            .ok()?;
            let recipients = [
                MultiRecipient {
                    address: bob1,
                    identity_key: bob.public_key(),
                    payload: b"for bob",
                },
                MultiRecipient {
                    address: Address::new(b"carol", 1).ok()?,
                    identity_key: carol.public_key(),
                    payload: b"",
                },
            ];
            let multi = seal_multi(
                &mut rng,
                &alice,
                &cert,
                &recipients,
                SealedContent {
                    kind: InnerKind::Opaque,
                    hint: ContentHint::Implicit,
                    message: &messages[1],
                },
                None,
            )
            .ok()?;
            let policy = ServerPolicy {
                require_token: false,
                ..ServerPolicy::default()
            };
            let no_keys = |_: &[u8]| None;
            let mut envelopes = alloc::vec![cert.encode(), single, multi.clone()];
            if let Ok(ValidatedEnvelope::Multi(m)) = validate(&multi, &policy, &no_keys) {
                for part in m.parts() {
                    let mut buffer = alloc::vec![0u8; part.len()];
                    part.write_to(&mut buffer).ok()?;
                    envelopes.push(buffer);
                }
            }
            Some(SealedFixture {
                trust,
                bob_seed,
                envelopes,
                messages,
            })
        })
        .as_ref()
}

/// Arbitrary bytes opened by a recipient holding real keys: either one of the
/// sealed messages comes out, from the certified sender, or an error.
pub fn envelope_open(data: &[u8]) {
    use crate::sealed::{Address, Recipient, open};
    let Some(f) = sealed_fixture() else {
        return;
    };
    let bob = IdentityKeyPair::from_seed(&f.bob_seed);
    let Ok(address) = Address::new(b"bob", 1) else {
        return;
    };
    let me = Recipient {
        identity: &bob,
        address,
        trust: &f.trust,
        now: 0,
    };
    if let Ok(opened) = open(data, &me) {
        assert!(
            f.messages.iter().any(|m| opened.message == *m),
            "opened a message never sealed"
        );
        assert_eq!(opened.sender.account_id, b"alice");
    }
}

/// A member's group session holding Alice's chain with a skipped key, the
/// messages it can still decrypt, and Alice's plaintexts.
struct GroupFixture {
    session: Vec<u8>,
    messages: Vec<Vec<u8>>,
    plaintexts: Vec<Vec<u8>>,
    distribution: Vec<u8>,
}

fn group_fixture() -> Option<&'static GroupFixture> {
    use crate::group::{GroupConfig, GroupSession};
    use crate::sealed::Address;
    static FIXTURE: OnceLock<Option<GroupFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(9);
            let mut alice = GroupSession::create(&mut rng, b"fuzz group").ok()?;
            let config = GroupConfig::new(8, 8, 2).ok()?;
            let mut bob = GroupSession::create_with_config(&mut rng, b"fuzz group", config).ok()?;
            let distribution = alice.distribution().to_vec();
            bob.process_distribution(Address::new(b"alice", 1).ok()?, &distribution)
                .ok()?;
            let plaintexts: Vec<Vec<u8>> = (0..4u8).map(|i| alloc::vec![i; 5]).collect();
            let sent: Vec<Vec<u8>> = plaintexts
                .iter()
                .map(|p| alice.encrypt(&mut rng, p))
                .collect::<Result<_, _>>()
                .ok()?;
            bob.decrypt(Address::new(b"alice", 1).ok()?, &sent[1])
                .ok()?;
            Some(GroupFixture {
                session: bob.encode().to_vec(),
                messages: alloc::vec![sent[0].clone(), sent[2].clone(), sent[3].clone()],
                plaintexts,
                distribution,
            })
        })
        .as_ref()
}

/// Distribution messages: accepted or rejected, the group session stays
/// decodable and a rejection changes nothing.
pub fn group_distribution(data: &[u8]) {
    use crate::group::GroupSession;
    use crate::sealed::Address;
    let Some(f) = group_fixture() else {
        return;
    };
    let (Ok(mut session), Ok(sender)) =
        (GroupSession::decode(&f.session), Address::new(b"carol", 1))
    else {
        return;
    };
    match session.process_distribution(sender, data) {
        Ok(()) => assert!(GroupSession::decode(&session.encode()).is_ok()),
        Err(_) => assert_eq!(&session.encode()[..], &f.session[..]),
    }
}

/// Group messages from a known member: either one of its plaintexts comes out
/// (once), or the session is unchanged.
pub fn group_decrypt(data: &[u8]) {
    use crate::group::GroupSession;
    use crate::sealed::Address;
    let Some(f) = group_fixture() else {
        return;
    };
    let (Ok(mut session), Ok(sender)) =
        (GroupSession::decode(&f.session), Address::new(b"alice", 1))
    else {
        return;
    };
    match session.decrypt(sender, data) {
        Ok(plaintext) => {
            assert!(
                f.plaintexts.contains(&plaintext),
                "decrypted something never sent"
            );
            assert!(session.decrypt(sender, data).is_err(), "decrypted twice");
        }
        Err(_) => assert_eq!(&session.encode()[..], &f.session[..]),
    }
}

/// Stored group sessions: decoding then encoding is the identity.
pub fn group_state(data: &[u8]) {
    if let Ok(session) = crate::group::GroupSession::decode(data) {
        assert_eq!(
            &session.encode()[..],
            data,
            "group state encoding is not canonical"
        );
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
        for (i, m) in f.messages.iter().enumerate() {
            seeds.push(("prekey_message", m.clone()));
            seeds.push(("responder_accept", m.clone()));
            let mut genuine = alloc::vec![i as u8];
            genuine.extend_from_slice(&m[73..73 + crate::KEM_CIPHERTEXT_LEN]);
            seeds.push(("responder_kem_ciphertext", genuine));
        }
        seeds.push(("responder_kem_ciphertext", alloc::vec![0, 1, 2, 3]));
    }
    if let Some(f) = session_fixture() {
        seeds.push(("session_state", f.session.clone()));
        for m in &f.messages {
            seeds.push(("ratchet_message", m.clone()));
            seeds.push(("session_decrypt", m.clone()));
        }
    }
    if let Some(f) = sealed_fixture() {
        seeds.push(("sender_certificate", f.envelopes[0].clone()));
        for envelope in &f.envelopes[1..] {
            seeds.push(("envelope_validate", envelope.clone()));
            seeds.push(("envelope_open", envelope.clone()));
        }
    }
    if let Some(f) = group_fixture() {
        seeds.push(("group_distribution", f.distribution.clone()));
        seeds.push(("group_state", f.session.clone()));
        for m in &f.messages {
            seeds.push(("group_decrypt", m.clone()));
        }
    }
    // Interaction schedules: sends both ways, in-order and reordered deliveries,
    // a duplicate, a tamper and a drop.
    seeds.push((
        "session_interaction",
        alloc::vec![0, 5, 0, 9, 2, 1, 2, 0, 1, 3, 3, 2, 5, 2, 0, 7],
    ));
    seeds.push((
        "session_interaction",
        alloc::vec![0, 1, 0, 2, 0, 3, 2, 2, 2, 0, 2, 1, 1, 1, 3, 3, 4, 0],
    ));
    devices::seeds(&mut seeds);
    seeds
}

pub use devices::{
    device_store, kem_prekey_row, link_accept, link_request, manager_decrypt, prekey_row,
    safety_scannable, sealed_state, session_record, trust_record,
};

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
        "responder_kem_ciphertext" => responder_kem_ciphertext,
        "kem_prekey_row" => kem_prekey_row,
        "session_interaction" => session_interaction,
        "sender_certificate" => sender_certificate,
        "envelope_validate" => envelope_validate,
        "envelope_open" => envelope_open,
        "group_distribution" => group_distribution,
        "group_decrypt" => group_decrypt,
        "group_state" => group_state,
        "trust_record" => trust_record,
        "session_record" => session_record,
        "device_store" => device_store,
        "prekey_row" => prekey_row,
        "sealed_state" => sealed_state,
        "link_accept" => link_accept,
        "link_request" => link_request,
        "safety_scannable" => safety_scannable,
        "manager_decrypt" => manager_decrypt,
        _ => return false,
    };
    f(data);
    true
}
