//! Regression tests for the defects an independent review of protocol version 1
//! found (SPEC.md §15), one section per finding. Each test fails on version 1:
//!
//! 1. a prekey message with bit 255 of its base key flipped was a new session
//!    (its first message delivered twice, the active session replaced);
//! 2. multi-recipient entries for devices of one account shared (key, nonce);
//! 3. a stale copy of a session re-encrypted under a used (key, nonce);
//! 4. a relay that saw the link key could provision the new device;
//! 5. torsion components, 96-bit nonces at rest, plaintext in `Debug`,
//!    `Copy` access keys, unrecognised repeats, unbound sender addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::at_rest::{self, StorageError, StorageKey};
use ratchetbox::devices::{DeviceError, SessionManager, SessionUse};
use ratchetbox::group::GroupSession;
use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::sealed::{
    self, Address, ContentHint, DeliveryAccessKey, InnerKind, MultiRecipient, Recipient,
    SealedContent, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot, TrustStore,
    ValidatedEnvelope,
};
use ratchetbox::store::MemoryStore;
use ratchetbox::{
    AccountId, BUNDLE_LEN_WITH_ONE_TIME, DecodeError, DeviceAddress, Error, HEADER_LEN,
    IdentityKey, IdentityKeyPair, KEM_CIPHERTEXT_LEN, LocalDevice, Message, NONCE_LEN,
    PREKEY_PREFIX_LEN, PreKeyBundle, PreKeyMessage, PreKeyStore, RatchetMessage, Responder,
    Session, hazmat,
};

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn account(name: &str) -> AccountId {
    AccountId::new(name.as_bytes()).unwrap()
}

fn address(name: &str, device: u32) -> DeviceAddress {
    DeviceAddress::new(account(name), device)
}

fn device(name: &str, device_id: u32, seed: u8) -> LocalDevice {
    LocalDevice {
        account: account(name),
        device_id,
        identity: IdentityKeyPair::from_seed(&[seed; 32]),
    }
}

/// Sets bit 255 of the 32-byte key starting at `at`: X25519 ignores it, so
/// without the canonical rule the altered key means the same point.
fn with_bit_255(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    assert_eq!(out[at + 31] & 0x80, 0, "an honest key has bit 255 clear");
    out[at + 31] |= 0x80;
    out
}

fn is_non_canonical(e: &Error) -> bool {
    matches!(e, Error::Decode(DecodeError::NonCanonicalKey { .. }))
}

/// Bob (device 1 of "bob") with prekeys, and Alice's fresh session to him.
struct Raw {
    rng: ChaCha20Rng,
    alice: LocalDevice,
    bob: LocalDevice,
    prekeys: PreKeyStore,
    session: Session,
}

fn raw(seed: u8, with_one_time: bool) -> Raw {
    let mut rng = rng(seed);
    let alice = device("alice", 1, seed.wrapping_add(1));
    let bob = device("bob", 1, seed.wrapping_add(2));
    let mut prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    let ids = prekeys.generate_one_time_prekeys(&mut rng, 2).unwrap();
    let one_time = with_one_time.then_some(ids[0].0);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &prekeys, one_time)
        .verify()
        .unwrap();
    let session = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    Raw {
        rng,
        alice,
        bob,
        prekeys,
        session,
    }
}

// ---------------------------------------------------------------------------
// 1. Canonical keys, the bound prefix, and replays of first messages
// ---------------------------------------------------------------------------

#[test]
fn every_wire_x25519_key_with_bit_255_set_is_rejected_and_changes_nothing() {
    let mut r = raw(1, true);
    // Bundle: signed prekey at 41, one-time prekey at 1394 (after the KEM
    // prekey id, key and signature, and the one-time prekey flag and id).
    let bundle = PreKeyBundle::from_store(r.bob.identity.public_key(), &r.prekeys, Some(1));
    let wire = bundle.encode();
    for at in [41, BUNDLE_LEN_WITH_ONE_TIME - 32] {
        assert!(matches!(
            PreKeyBundle::decode(&with_bit_255(&wire, at)),
            Err(DecodeError::NonCanonicalKey { .. })
        ));
    }

    // Prekey message: base key at 33, the embedded ratchet key at 1167. The
    // responder refuses both before anything else; the store is unchanged.
    let first = r.session.encrypt(&mut r.rng, b"hello").unwrap();
    let before = r.prekeys.encode();
    for at in [33, PREKEY_PREFIX_LEN + 1] {
        let altered = with_bit_255(&first, at);
        assert!(matches!(
            PreKeyMessage::parse(&altered),
            Err(DecodeError::NonCanonicalKey { .. })
        ));
        assert!(Message::parse(&altered).is_err());
    }
    assert_eq!(*r.prekeys.encode(), *before);
    let from = r.alice.address();
    let (mut bob_session, _) = Responder::new(&r.bob, &mut r.prekeys)
        .accept(&from, &PreKeyMessage::parse(&first).unwrap())
        .unwrap();

    // Ratchet message: the ratchet key at 1. The session is unchanged.
    let reply = bob_session.encrypt(&mut r.rng, b"hi").unwrap();
    r.session.decrypt(&reply).unwrap();
    let later = r.session.encrypt(&mut r.rng, b"later").unwrap();
    let altered = with_bit_255(&later, 1);
    assert!(matches!(
        RatchetMessage::parse(&altered),
        Err(DecodeError::NonCanonicalKey { .. })
    ));
    let saved = bob_session.encode();
    let err = bob_session.decrypt(&altered).unwrap_err();
    assert!(is_non_canonical(&err), "{err:?}");
    assert_eq!(*bob_session.encode(), *saved);
    assert_eq!(bob_session.decrypt(&later).unwrap(), b"later");

    // Sealed envelopes: E of a single envelope (after tag, "bob/1" and the
    // token flag), of a multi-recipient envelope and of a split part (at 1).
    let s = sealing();
    let bob = IdentityKeyPair::from_seed(&[0x56; 32]);
    let bob1 = Address::new(b"bob", 1).unwrap();
    let content = SealedContent {
        kind: InnerKind::Opaque,
        hint: ContentHint::Default,
        message: b"sealed",
    };
    let single = sealed::seal(
        &mut r.rng,
        &s.alice,
        &s.certificate,
        bob1,
        bob.public_key(),
        content,
        None,
    )
    .unwrap();
    let recipients = [MultiRecipient {
        address: bob1,
        identity_key: bob.public_key(),
        payload: b"",
    }];
    let multi = sealed::seal_multi(
        &mut r.rng,
        &s.alice,
        &s.certificate,
        &recipients,
        content,
        None,
    )
    .unwrap();
    let mut split = vec![0u8; multi.len()];
    let split_len = validated_multi(&multi)
        .parts()
        .next()
        .unwrap()
        .write_to(&mut split)
        .unwrap();
    split.truncate(split_len);
    let me = Recipient {
        identity: &bob,
        address: bob1,
        trust: &s.trust,
        now: 0,
    };
    let malformed = |e: &sealed::EnvelopeError| {
        matches!(
            e,
            sealed::EnvelopeError::Malformed(DecodeError::NonCanonicalKey { .. })
        )
    };
    for (envelope, at) in [(&single, 1 + 8 + 1), (&multi, 1), (&split, 1)] {
        let altered = with_bit_255(envelope, at);
        assert!(sealed::open(envelope, &me).is_ok());
        match sealed::open(&altered, &me) {
            Err(Error::Envelope(e)) => assert!(malformed(&e), "{e:?}"),
            other => panic!("opened an envelope with a non-canonical E: {other:?}"),
        }
        if envelope[0] != 0x26 {
            let e = sealed::validate(&altered, &no_token(), &|_: &[u8]| None).unwrap_err();
            assert!(malformed(&e), "{e:?}");
        }
    }

    // Linking: LK in the request code (at 1), E in the payload (at 33). (LK in
    // the payload is compared with the request's own key first: another key.)
    let mut request = LinkRequest::new(&mut r.rng);
    let code = request.code();
    let primary = IdentityKeyPair::from_seed(&[0x57; 32]);
    assert!(matches!(
        provision(
            &mut r.rng,
            &primary,
            &account("a"),
            &[],
            &with_bit_255(&*code, 1)
        ),
        Err(ProvisioningError::Malformed(
            DecodeError::NonCanonicalKey { .. }
        ))
    ));
    let (payload, _) = provision(&mut r.rng, &primary, &account("a"), &[], &*code).unwrap();
    assert!(matches!(
        request.accept(&with_bit_255(&payload, 33)),
        Err(ProvisioningError::Malformed(
            DecodeError::NonCanonicalKey { .. }
        ))
    ));
    assert_eq!(
        request.accept(&with_bit_255(&payload, 1)).err(),
        Some(ProvisioningError::WrongEphemeralKey)
    );
    assert!(
        request.accept(&payload).is_ok(),
        "the request stayed usable"
    );
}

/// Offsets of the X25519 public keys in a stored session (SPEC.md §6.3).
fn stored_session_key_offsets(blob: &[u8]) -> Vec<usize> {
    let addr_len = |at: usize| 1 + usize::from(blob[at]) + 4;
    let mut at = 2 + 8 + 1 + 64;
    at += addr_len(at);
    at += addr_len(at);
    let mut keys = vec![at]; // base key
    at += 32 + 32; // base key, RK
    let sending = blob[at] == 1;
    at += 1;
    if sending {
        at += 32 + 32 + 4; // DHs (private), CKs, Ns
    }
    at += 4; // PN
    let receiving = blob[at] == 1;
    at += 1;
    if receiving {
        keys.push(at); // DHr
        at += 68;
    }
    let previous = usize::from(blob[at]);
    at += 1;
    for _ in 0..previous {
        keys.push(at);
        at += 32;
    }
    at += 4 + 4 + 1 + 4 + 32 + 32; // handshake prekey ids, KEM key and ciphertext hashes
    let pending = blob[at] == 1;
    at += 1;
    if pending {
        at += KEM_CIPHERTEXT_LEN;
    }
    let skipped = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    at += 4;
    for _ in 0..skipped {
        keys.push(at);
        at += 68;
    }
    assert_eq!(at, blob.len(), "offsets walked the whole blob");
    keys
}

#[test]
fn every_stored_x25519_key_with_bit_255_set_is_rejected() {
    let mut r = raw(2, false);
    let first = r.session.encrypt(&mut r.rng, b"0").unwrap();
    let from = r.alice.address();
    let (mut bob, _) = Responder::new(&r.bob, &mut r.prekeys)
        .accept(&from, &PreKeyMessage::parse(&first).unwrap())
        .unwrap();
    // Two ratchet steps each way, and a skipped key: every key field is present.
    for round in 0..2u8 {
        let reply = bob.encrypt(&mut r.rng, &[round]).unwrap();
        r.session.decrypt(&reply).unwrap();
        let skipped = r.session.encrypt(&mut r.rng, b"skipped").unwrap();
        let next = r.session.encrypt(&mut r.rng, b"next").unwrap();
        bob.decrypt(&next).unwrap();
        drop(skipped);
    }
    // A fresh initiator: no receiving chain, the KEM ciphertext still pending.
    let fresh = raw(2, false).session.encode();
    assert_eq!(fresh.len(), 1402);
    let fresh_offsets = stored_session_key_offsets(&fresh);
    assert_eq!(fresh_offsets.len(), 1, "only the base key");
    for at in fresh_offsets {
        let err = Session::decode(&with_bit_255(&fresh, at)).err().unwrap();
        assert!(is_non_canonical(&err), "offset {at}: {err:?}");
    }

    let blob = bob.encode();
    let offsets = stored_session_key_offsets(&blob);
    assert!(offsets.len() >= 5, "base, DHr, previous and skipped keys");
    for at in offsets {
        let err = Session::decode(&with_bit_255(&blob, at)).err().unwrap();
        assert!(is_non_canonical(&err), "offset {at}: {err:?}");
    }
    assert!(Session::decode(&blob).is_ok());

    // The prekey store's remembered base key is the last 32 bytes.
    let store = r.prekeys.encode();
    assert_eq!(r.prekeys.accepted_base_key_count(), 1);
    assert!(matches!(
        PreKeyStore::decode(&with_bit_255(&store, store.len() - 32)),
        Err(DecodeError::NonCanonicalKey { .. })
    ));
}

/// Two managers, Alice (`alice/1`) and Bob (`bob/1`); Alice holds a session
/// from Bob's bundle without a one-time prekey (a server may leave it out).
fn managers(
    seed: u8,
) -> (
    ChaCha20Rng,
    SessionManager<MemoryStore>,
    SessionManager<MemoryStore>,
) {
    let mut rng = rng(seed);
    let new = |rng: &mut ChaCha20Rng, name: &str, s: u8| {
        let local = device(name, 1, s);
        let prekeys = PreKeyStore::generate(rng, &local.identity, 1);
        SessionManager::new(local, MemoryStore::new(prekeys))
    };
    let mut alice = new(&mut rng, "alice", seed.wrapping_add(10));
    let bob = new(&mut rng, "bob", seed.wrapping_add(11));
    let bundle = PreKeyBundle::from_store(
        bob.local().identity.public_key(),
        bob.store().prekeys(),
        None,
    );
    alice
        .process_bundle(&mut rng, &account("bob"), bundle)
        .unwrap();
    (rng, alice, bob)
}

#[test]
fn a_first_message_is_delivered_exactly_once() {
    let (mut rng, mut alice, mut bob) = managers(3);
    let from = address("alice", 1);
    let first = alice
        .encrypt(&mut rng, &account("bob"), b"exactly once", &[1], &[])
        .unwrap()
        .remove(0)
        .message;
    let got = bob.decrypt(&from, &first).unwrap();
    assert_eq!(got.plaintext, b"exactly once");
    assert_eq!(got.session, SessionUse::Created);
    let snapshot = bob.store().encode();

    // The copy with bit 255 of the base key set: a typed error, nothing changes.
    let altered = with_bit_255(&first, 33);
    let err = bob.decrypt(&from, &altered).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Protocol(Error::Decode(DecodeError::NonCanonicalKey { .. }))
        ),
        "{err:?}"
    );
    assert_eq!(*bob.store().encode(), *snapshot);

    // The same bytes again: the session that owns them says duplicate.
    assert_eq!(
        bob.decrypt(&from, &first).unwrap_err(),
        DeviceError::Protocol(Error::DuplicateMessage)
    );
    assert_eq!(*bob.store().encode(), *snapshot);

    // Even with its session gone, the message never starts a session again.
    bob.remove_device(&from).unwrap();
    let without_session = bob.store().encode();
    assert!(matches!(
        bob.decrypt(&from, &first).unwrap_err(),
        DeviceError::Protocol(Error::RepeatedPreKeyMessage { .. })
    ));
    assert_eq!(*bob.store().encode(), *without_session);
}

#[test]
fn the_raw_responder_recognises_repeats_with_and_without_a_one_time_prekey() {
    for with_one_time in [false, true] {
        let mut r = raw(4, with_one_time);
        let first = r.session.encrypt(&mut r.rng, b"first").unwrap();
        let second = r.session.encrypt(&mut r.rng, b"second").unwrap();
        let from = r.alice.address();
        let (mut session, plaintext) = Responder::new(&r.bob, &mut r.prekeys)
            .accept(&from, &PreKeyMessage::parse(&first).unwrap())
            .unwrap();
        assert_eq!(plaintext, b"first");
        let before = r.prekeys.encode();
        for repeat in [&first, &second] {
            let err = Responder::new(&r.bob, &mut r.prekeys)
                .accept(&from, &PreKeyMessage::parse(repeat).unwrap())
                .unwrap_err();
            // The error names the session, which decrypts what it has not read.
            assert_eq!(
                err,
                Error::RepeatedPreKeyMessage {
                    base_key: *session.base_key()
                }
            );
            assert_eq!(*r.prekeys.encode(), *before);
        }
        assert_eq!(session.decrypt(&second).unwrap(), b"second");
        assert_eq!(session.decrypt(&first), Err(Error::DuplicateMessage));
    }
}

#[test]
fn every_bit_of_the_prekey_prefix_is_authenticated() {
    let mut r = raw(5, true);
    let first = r.session.encrypt(&mut r.rng, b"bound").unwrap();
    let before = r.prekeys.encode();
    let from = r.alice.address();
    // The KEM ciphertext (bytes 73..1161, 8704 of the 9328 prefix bits) is
    // bound as a whole, through its SHA-256 in AD and through the KEM secret,
    // and any 1088 bytes parse: a flip there is always `DecryptionFailed`.
    // Each try is a full responder handshake, so of the ciphertext every bit
    // of its first and last 8 bytes and one bit of every other byte; every
    // bit of the rest of the prefix.
    let kem_ciphertext = 73..73 + KEM_CIPHERTEXT_LEN;
    assert_eq!(
        first[kem_ciphertext.clone()],
        *PreKeyMessage::parse(&first).unwrap().kem_ciphertext()
    );
    let bits = (0..PREKEY_PREFIX_LEN * 8).filter(|bit| {
        let byte = bit / 8;
        !kem_ciphertext.contains(&byte)
            || byte < kem_ciphertext.start + 8
            || byte >= kem_ciphertext.end - 8
            || bit % 8 == byte % 8
    });
    let mut tried = 0;
    for bit in bits {
        let mut altered = first.clone();
        altered[bit / 8] ^= 1 << (bit % 8);
        let result = PreKeyMessage::parse(&altered)
            .map_err(Error::from)
            .and_then(|m| Responder::new(&r.bob, &mut r.prekeys).accept(&from, &m));
        if kem_ciphertext.contains(&(bit / 8)) {
            assert_eq!(result.err(), Some(Error::DecryptionFailed), "bit {bit}");
        } else {
            assert!(result.is_err(), "bit {bit} of the prefix was not bound");
        }
        assert_eq!(*r.prekeys.encode(), *before, "bit {bit}");
        tried += 1;
    }
    assert_eq!(
        tried,
        (PREKEY_PREFIX_LEN - KEM_CIPHERTEXT_LEN) * 8 + 16 * 8 + 1072
    );
    // -A has the same Montgomery form as A, so every DH is unchanged: only the
    // identity in AD catches the altered sign bit (byte 32, bit 7).
    let mut negated = first.clone();
    negated[32] ^= 0x80;
    let message = PreKeyMessage::parse(&negated).unwrap();
    assert_eq!(
        message.identity_key().dh_public(),
        r.alice.identity.public_key().dh_public()
    );
    assert_eq!(
        Responder::new(&r.bob, &mut r.prekeys)
            .accept(&from, &message)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

// ---------------------------------------------------------------------------
// 2. One key per multi-recipient entry
// ---------------------------------------------------------------------------

/// A server policy that does not require delivery tokens.
fn no_token() -> ServerPolicy {
    ServerPolicy {
        require_token: false,
        ..ServerPolicy::default()
    }
}

/// The server's view of a multi-recipient envelope, to split it.
fn validated_multi(envelope: &[u8]) -> sealed::ValidatedMulti<'_> {
    match sealed::validate(envelope, &no_token(), &|_: &[u8]| None).unwrap() {
        ValidatedEnvelope::Multi(multi) => multi,
        ValidatedEnvelope::Single(_) => panic!("a multi-recipient envelope"),
    }
}

struct Sealing {
    trust: TrustStore,
    alice: IdentityKeyPair,
    certificate: SenderCertificate,
}

fn sealing() -> Sealing {
    let root = IdentityKeyPair::from_seed(&[0x51; 32]);
    let server = IdentityKeyPair::from_seed(&[0x52; 32]);
    let alice = IdentityKeyPair::from_seed(&[0x53; 32]);
    let certificate = SenderCertificate::issue(
        Address::new(b"alice", 1).unwrap(),
        alice.public_key(),
        u64::MAX,
        &server,
        ServerCertificate::issue(1, &root, 1, server.public_key()),
    )
    .unwrap();
    Sealing {
        trust: TrustStore::new(&[TrustRoot::new(1, *root.public_key())]).unwrap(),
        alice,
        certificate,
    }
}

#[test]
fn entries_for_devices_of_one_account_never_share_a_key_and_nonce() {
    let s = sealing();
    let mut rng = rng(6);
    let bob = IdentityKeyPair::from_seed(&[0x54; 32]);
    let carol = IdentityKeyPair::from_seed(&[0x55; 32]);
    let payloads: [&[u8]; 3] = [b"bob one", b"bob two", b"bob three"];
    let mut recipients: Vec<MultiRecipient<'_>> = (1..=3)
        .map(|d| MultiRecipient {
            address: Address::new(b"bob", d).unwrap(),
            identity_key: bob.public_key(),
            payload: payloads[d as usize - 1],
        })
        .collect();
    recipients.push(MultiRecipient {
        address: Address::new(b"carol", 1).unwrap(),
        identity_key: carol.public_key(),
        payload: b"carol",
    });
    let content = SealedContent {
        kind: InnerKind::Opaque,
        hint: ContentHint::Default,
        message: b"",
    };
    let envelope = sealed::seal_multi(
        &mut rng,
        &s.alice,
        &s.certificate,
        &recipients,
        content,
        None,
    )
    .unwrap();
    let keys = hazmat::sealed_multi_entry_keys(&envelope, &bob).unwrap();
    assert_eq!(keys.len(), 3, "one entry per device of bob");
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b, "two entries share (key, nonce)");
            assert_ne!(a.0, b.0, "two entries share a key");
        }
    }
    // Each device still opens its own part, and only its own.
    let multi = validated_multi(&envelope);
    let mut buffer = vec![0u8; envelope.len()];
    for part in multi
        .parts()
        .filter(|p| p.recipient().account_id() == b"bob")
    {
        let len = part.write_to(&mut buffer).unwrap();
        let me = Recipient {
            identity: &bob,
            address: part.recipient(),
            trust: &s.trust,
            now: 0,
        };
        let opened = sealed::open(&buffer[..len], &me).unwrap();
        let device = part.recipient().device_id() as usize;
        assert_eq!(opened.payload, payloads[device - 1]);
    }
}

// ---------------------------------------------------------------------------
// 3. Stale copies of a sender's state
// ---------------------------------------------------------------------------

/// The ciphertext (after the header) of a ratchet message or a prekey message.
fn ciphertext(wire: &[u8], plaintext_len: usize) -> &[u8] {
    let start = wire.len() - 16 - plaintext_len;
    &wire[start..start + plaintext_len]
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[test]
fn two_copies_of_one_session_never_produce_the_same_keystream() {
    let mut r = raw(7, false);
    let first = r.session.encrypt(&mut r.rng, b"first").unwrap();
    let from = r.alice.address();
    let (mut bob, _) = Responder::new(&r.bob, &mut r.prekeys)
        .accept(&from, &PreKeyMessage::parse(&first).unwrap())
        .unwrap();
    let reply = bob.encrypt(&mut r.rng, b"reply").unwrap();
    r.session.decrypt(&reply).unwrap();
    // Deferred sending ratchet step: the next encrypt draws a new ratchet key.
    // One message on it (read by Bob) puts Alice on a sending chain, so a copy
    // of her state taken now draws only the nonce.
    assert_eq!(hazmat::sending_chain_key(&r.session), None);
    let again = r.session.encrypt(&mut r.rng, b"again").unwrap();
    assert_eq!(bob.decrypt(&again).unwrap(), b"again");
    assert!(hazmat::sending_chain_key(&r.session).is_some());

    // Both while awaiting a reply (a prekey message) and on a sending chain
    // after it.
    for stage in 0..2 {
        let blob = if stage == 0 {
            let fresh = raw(8, false);
            fresh.session.encode()
        } else {
            r.session.encode()
        };
        let (mut one, mut two) = (
            Session::decode(&blob).unwrap(),
            Session::decode(&blob).unwrap(),
        );
        let (p1, p2) = (
            b"attack at dawn, the eastern gate".as_slice(),
            b"retreat at dusk via the west way".as_slice(),
        );
        assert_eq!(p1.len(), p2.len());
        let (w1, w2) = (
            one.encrypt(&mut rng(20), p1).unwrap(),
            two.encrypt(&mut rng(21), p2).unwrap(),
        );
        let header = |w: &[u8]| {
            let start = w.len() - 16 - p1.len() - HEADER_LEN;
            w[start..start + HEADER_LEN].to_vec()
        };
        // Same position, same message key: only the nonce differs.
        let (h1, h2) = (header(&w1), header(&w2));
        assert_eq!(h1[..HEADER_LEN - NONCE_LEN], h2[..HEADER_LEN - NONCE_LEN]);
        assert_ne!(h1[HEADER_LEN - NONCE_LEN..], h2[HEADER_LEN - NONCE_LEN..]);
        assert_ne!(
            xor(ciphertext(&w1, p1.len()), ciphertext(&w2, p2.len())),
            xor(p1, p2),
            "the two copies used the same keystream"
        );
        if stage == 1 {
            // The receiver takes the first for that position; the second is a duplicate.
            assert_eq!(bob.decrypt(&w1).unwrap(), p1);
            assert_eq!(bob.decrypt(&w2), Err(Error::DuplicateMessage));
        }
    }

    // Copies taken while the sending step is due (Alice has just read Bob's
    // reply): each copy draws its own ratchet key, so they share no chain at
    // all, let alone a (key, nonce).
    let reply = bob.encrypt(&mut r.rng, b"second reply").unwrap();
    r.session.decrypt(&reply).unwrap();
    assert_eq!(hazmat::sending_chain_key(&r.session), None);
    let blob = r.session.encode();
    let (mut one, mut two) = (
        Session::decode(&blob).unwrap(),
        Session::decode(&blob).unwrap(),
    );
    let (w1, w2) = (
        one.encrypt(&mut rng(22), b"same length one").unwrap(),
        two.encrypt(&mut rng(23), b"same length two").unwrap(),
    );
    assert_ne!(w1[1..33], w2[1..33], "each copy has its own ratchet key");
    assert_ne!(
        hazmat::sending_chain_key(&one),
        hazmat::sending_chain_key(&two)
    );
    assert_ne!(
        xor(ciphertext(&w1, 15), ciphertext(&w2, 15)),
        xor(b"same length one", b"same length two")
    );
    // The receiver follows the first; the second copy's chain hangs off the
    // old root key, so its message is lost (never read under a reused key).
    assert_eq!(bob.decrypt(&w1).unwrap(), b"same length one");
    let saved = bob.encode();
    assert_eq!(bob.decrypt(&w2), Err(Error::DecryptionFailed));
    assert_eq!(*bob.encode(), *saved);
}

#[test]
fn two_copies_of_one_group_state_never_produce_the_same_keystream() {
    let mut rng = rng(9);
    let sender = GroupSession::create(&mut rng, b"group").unwrap();
    let mut member = GroupSession::create(&mut rng, b"group").unwrap();
    let from = Address::new(b"alice", 1).unwrap();
    member
        .process_distribution(from, &sender.distribution())
        .unwrap();
    let blob = sender.encode();
    let (mut one, mut two) = (
        GroupSession::decode(&blob).unwrap(),
        GroupSession::decode(&blob).unwrap(),
    );
    let (p1, p2) = (b"same length one".as_slice(), b"same length two".as_slice());
    let (w1, w2) = (
        one.encrypt(&mut rng, p1).unwrap(),
        two.encrypt(&mut rng, p2).unwrap(),
    );
    let body = |w: &[u8]| {
        let start = w.len() - 64 - 16 - p1.len();
        w[start..start + p1.len()].to_vec()
    };
    assert_ne!(xor(&body(&w1), &body(&w2)), xor(p1, p2));
    assert_eq!(member.decrypt(from, &w1).unwrap(), p1);
    assert_eq!(member.decrypt(from, &w2), Err(Error::DuplicateMessage));
}

// ---------------------------------------------------------------------------
// 4. Linking needs the secret in the QR code
// ---------------------------------------------------------------------------

#[test]
fn a_relay_that_sees_the_link_key_cannot_link_the_new_device() {
    let mut rng = rng(10);
    let mut new_device = LinkRequest::new(&mut rng);
    let shown = new_device.code();
    let primary = IdentityKeyPair::from_seed(&[0x61; 32]);
    let (genuine, _) = provision(&mut rng, &primary, &account("alice"), &[1], &*shown).unwrap();

    // The relay learns LK from the genuine payload's header and builds its own
    // payload (its identity, its account) for every guess of the secret it has.
    let link_key = &genuine[1..33];
    let relay = IdentityKeyPair::from_seed(&[0x62; 32]);
    for guess in [[0u8; 32], [0xff; 32], [0x62; 32]] {
        let mut code = vec![0x62];
        code.extend_from_slice(link_key);
        code.extend_from_slice(&guess);
        let (forged, _) = provision(&mut rng, &relay, &account("mallory"), &[], &code).unwrap();
        assert_eq!(
            new_device.accept(&forged).unwrap_err(),
            ProvisioningError::Tampered
        );
    }
    let linked = new_device.accept(&genuine).unwrap();
    assert_eq!(linked.identity_key(), primary.public_key());
    assert_eq!(linked.account(), &account("alice"));
}

// ---------------------------------------------------------------------------
// 5. Hygiene
// ---------------------------------------------------------------------------

/// A point of order 8 on edwards25519.
const EIGHT_TORSION: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
    0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];

#[test]
fn identity_keys_with_a_torsion_component_are_rejected_everywhere() {
    let honest = IdentityKeyPair::from_seed(&[0x71; 32]);
    let a = ed25519_dalek::VerifyingKey::from_bytes(&honest.public_key().to_bytes())
        .unwrap()
        .to_edwards();
    let t = ed25519_dalek::VerifyingKey::from_bytes(&EIGHT_TORSION)
        .unwrap()
        .to_edwards();
    let mixed = (a + t).compress().to_bytes();
    assert_eq!(
        IdentityKey::from_bytes(&mixed),
        Err(DecodeError::InvalidIdentityKey)
    );
    // In a bundle and in a prekey message, where it would be someone's identity.
    let mut r = raw(11, false);
    let bundle = PreKeyBundle::from_store(r.bob.identity.public_key(), &r.prekeys, None);
    let mut wire = bundle.encode();
    wire[1..33].copy_from_slice(&mixed);
    assert_eq!(
        PreKeyBundle::decode(&wire),
        Err(DecodeError::InvalidIdentityKey)
    );
    let mut first = r.session.encrypt(&mut r.rng, b"x").unwrap();
    first[1..33].copy_from_slice(&mixed);
    assert_eq!(
        PreKeyMessage::parse(&first).err(),
        Some(DecodeError::InvalidIdentityKey)
    );
}

#[test]
fn state_at_rest_has_192_bit_nonces_and_is_bound_to_its_slot() {
    let mut rng = rng(12);
    let key = StorageKey::generate(&mut rng);
    let identity = IdentityKeyPair::from_seed(&[0x72; 32]);
    let one = at_rest::seal(&mut rng, &key, b"identity", &identity);
    let two = at_rest::seal(&mut rng, &key, b"identity", &identity);
    assert_eq!(one.len(), identity.encode().len() + 3 + 24 + 16);
    assert_ne!(one[3..27], two[3..27], "fresh 24-byte nonces");
    assert_eq!(
        at_rest::open::<IdentityKeyPair>(&key, b"elsewhere", &one).err(),
        Some(StorageError::WrongKeyOrCorrupted)
    );
    let back: IdentityKeyPair = at_rest::open(&key, b"identity", &one).unwrap();
    assert_eq!(back.public_key(), identity.public_key());
}

#[test]
fn decrypted_bytes_never_print() {
    let s = sealing();
    let mut rng = rng(13);
    let bob = IdentityKeyPair::from_seed(&[0x73; 32]);
    let bob_address = Address::new(b"bob", 1).unwrap();
    let secret = b"the launch code is 0000";
    let envelope = sealed::seal(
        &mut rng,
        &s.alice,
        &s.certificate,
        bob_address,
        bob.public_key(),
        SealedContent {
            kind: InnerKind::Opaque,
            hint: ContentHint::Default,
            message: secret,
        },
        None,
    )
    .unwrap();
    let me = Recipient {
        identity: &bob,
        address: bob_address,
        trust: &s.trust,
        now: 0,
    };
    let opened = sealed::open(&envelope, &me).unwrap();
    assert_eq!(opened.message, secret);
    let printed = format!("{opened:?} {opened:#?}");
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = format!("{:?}", secret.to_vec());
    for needle in ["launch code", &hex, &decimal[1..20]] {
        assert!(!printed.contains(needle), "Debug shows the plaintext");
    }

    let (mut rng, mut alice, mut bob) = managers(14);
    let wire = alice
        .encrypt(&mut rng, &account("bob"), secret, &[1], &[])
        .unwrap()
        .remove(0)
        .message;
    let got = bob.decrypt(&address("alice", 1), &wire).unwrap();
    let printed = format!("{got:?}");
    assert!(!printed.contains("launch code") && !printed.contains(&hex));
    assert!(printed.contains("23 bytes"), "{printed}");
}

/// Fails to compile if `$ty` is `Copy` (two candidate impls make `_` ambiguous).
macro_rules! assert_not_copy {
    ($ty:ty) => {
        const _: fn() = || {
            trait AmbiguousIfCopy<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfCopy<()> for T {}
            impl<T: ?Sized + Copy> AmbiguousIfCopy<u8> for T {}
            let _ = <$ty as AmbiguousIfCopy<_>>::some_item;
        };
    };
}

assert_not_copy!(DeliveryAccessKey);
assert_not_copy!(ratchetbox::Plaintext);

#[test]
fn delivery_access_keys_are_handled_as_secrets() {
    let key = DeliveryAccessKey::derive(&[0x74; 32]);
    let same = DeliveryAccessKey::from_bytes(key.to_bytes());
    let other = DeliveryAccessKey::derive(&[0x75; 32]);
    assert_eq!(key, same);
    assert_ne!(key, other);
    let printed = format!("{key:?}");
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!printed.contains(&hex[..8]), "{printed}");
}

#[test]
fn a_prekey_message_relabelled_to_another_sender_is_refused() {
    // Raw API: Bob told that the message came from mallory/1.
    let mut r = raw(15, true);
    let first = r.session.encrypt(&mut r.rng, b"from alice").unwrap();
    let before = r.prekeys.encode();
    let message = PreKeyMessage::parse(&first).unwrap();
    assert_eq!(
        Responder::new(&r.bob, &mut r.prekeys)
            .accept(&address("mallory", 1), &message)
            .err(),
        Some(Error::DecryptionFailed)
    );
    // Another device of the real sender is another address, too.
    assert_eq!(
        Responder::new(&r.bob, &mut r.prekeys)
            .accept(&address("alice", 2), &message)
            .err(),
        Some(Error::DecryptionFailed)
    );
    assert_eq!(*r.prekeys.encode(), *before, "no one-time prekey spent");

    // Manager: nothing is recorded for the account the relay named.
    let (mut rng, mut alice, mut bob) = managers(16);
    let wire = alice
        .encrypt(&mut rng, &account("bob"), b"hi", &[1], &[])
        .unwrap()
        .remove(0)
        .message;
    let snapshot = bob.store().encode();
    let err = bob.decrypt(&address("mallory", 1), &wire).unwrap_err();
    assert_eq!(err, DeviceError::Protocol(Error::DecryptionFailed));
    assert_eq!(*bob.store().encode(), *snapshot);
    assert_eq!(bob.trust_record(&account("mallory")).unwrap(), None);
    // Delivered under the true sender address, it decrypts.
    let got = bob.decrypt(&address("alice", 1), &wire).unwrap();
    assert_eq!(got.plaintext, b"hi");
}
