//! Sealed envelopes (SPEC.md §9; the code in `src/sealed/` is the reference):
//! scenario and property tests of sealing, server validation and split, and
//! opening.
//!
//! - Tampering: every byte of a single envelope, of every split part and of a
//!   whole multi-recipient envelope, flipped three ways, is opened and the exact
//!   error is asserted. Bytes that move later fields (length and flag bytes) are
//!   judged by a reference parser written here from the format (`model`).
//! - Truncation at every length, through the server's `validate` and the
//!   client's `open`.
//! - Certificates: every defect, through `open` and `SenderCertificate::validate`.
//! - Self-send, other devices of one's own account, identity mismatch, routing of
//!   split parts, impostors.
//! - Server validation: every `EnvelopeError` a server can hit, with hand-crafted
//!   envelopes where `seal_multi` cannot produce the defect.
//! - Delivery tokens: the XOR over distinct accounts.
//! - Independent sealers (`Forged`, `ForgedMulti`, with SHA-2, HMAC and HKDF
//!   written out in `reference`) reproduce `seal` and `seal_multi` byte for
//!   byte, then play a certified but malicious sender (malformed content,
//!   payloads and certificates), an outsider without the sender's key, and a
//!   recipient who learned M.
//! - A property test over random recipient sets.
//!
//! The overhead numbers (single envelope over its inner message, per-recipient
//! bytes of a multi-recipient envelope) are printed by
//! `overhead_of_single_and_multi_envelopes` (`cargo test --test sealed_envelopes
//! overhead -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/scripted_rng.rs"]
mod scripted_rng;
use scripted_rng::{ScriptedRng, hex};

use std::collections::BTreeMap;

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::sealed::{
    Address, CertificateError, ContentHint, DeliveryAccessKey, EnvelopeError, InnerKind,
    MAX_ACCOUNT_ID_LEN, MAX_INNER_LEN, MAX_PAYLOAD_LEN, MAX_RECIPIENTS, MAX_TRUST_ENTRIES,
    MIN_PADDED_LEN, MultiRecipient, Opened, Recipient, SERVER_CERTIFICATE_LEN, SealedContent,
    SenderCertificate, ServerCertificate, ServerPolicy, TOKEN_LEN, TrustRoot, TrustStore,
    ValidatedEnvelope, is_padded_len, open, padded_len, seal, seal_multi, validate,
};
use ratchetbox::{DecodeError, Error, IdentityKey, IdentityKeyPair, KEY_LEN, TAG_LEN, hazmat};

// ---------------------------------------------------------------------------
// Wire constants, restated from src/sealed/wire.rs.

const SINGLE_TAG: u8 = 0x24;
const MULTI_TAG: u8 = 0x25;
const SPLIT_TAG: u8 = 0x26;
/// Encrypted sender identity: a key and its AEAD tag.
const SENDER_BLOCK_LEN: usize = KEY_LEN + TAG_LEN;
/// A recipient entry's sender-authentication tag.
const AUTH_TAG_LEN: usize = 16;
/// Shortest wrapped key: M and its tag.
const MIN_WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
/// Bytes of a recipient entry besides its account id and payload:
/// `len u8 ‖ device u32 ‖ wrapped len u16 ‖ M (32) ‖ wrap tag (16) ‖ auth tag (16)`.
const ENTRY_FIXED: usize = 1 + 4 + 2 + MIN_WRAPPED_LEN + AUTH_TAG_LEN;
/// Sealed content besides the certificate and message:
/// `cert len u16 ‖ kind u8 ‖ hint u8 ‖ message len u32 ‖ 0x80 marker`.
const CONTENT_FRAMING: usize = 2 + 1 + 1 + 4 + 1;

// ---------------------------------------------------------------------------
// Fixture.

const ROOT_ID: u32 = 1;
const SERVER_KEY_ID: u32 = 7;
const EXPIRES: u64 = 2_000_000_000;
const NOW: u64 = 1_700_000_000;
const ALICE_SEED: [u8; 32] = [0xA1; 32];

const ALICE: &[u8] = b"alice";
const BOB: &[u8] = b"bob";
const BOBBY: &[u8] = b"bobby";
const CAROL: &[u8] = b"carol";
const DAVE: &[u8] = b"dave";
/// No account id starting with this is registered with the server.
const NOBODY: &[u8] = b"nobody";

const CONTENT: SealedContent<'static> = SealedContent {
    kind: InnerKind::Ratchet,
    hint: ContentHint::Resendable,
    message: b"inner ratchet message for the sealed layer",
};

struct World {
    root: IdentityKeyPair,
    server: IdentityKeyPair,
    server_cert: ServerCertificate,
    trust: TrustStore,
    alice: IdentityKeyPair,
    /// Alice's device 1.
    alice_cert: SenderCertificate,
    bob: IdentityKeyPair,
    carol: IdentityKeyPair,
    mallory: IdentityKeyPair,
}

fn world() -> World {
    let root = IdentityKeyPair::from_seed(&[0x01; 32]);
    let server = IdentityKeyPair::from_seed(&[0x02; 32]);
    let alice = IdentityKeyPair::from_seed(&ALICE_SEED);
    let server_cert = ServerCertificate::issue(ROOT_ID, &root, SERVER_KEY_ID, server.public_key());
    let alice_cert = certificate(
        &server,
        &server_cert,
        a(ALICE, 1),
        alice.public_key(),
        EXPIRES,
    );
    World {
        trust: TrustStore::new(&[TrustRoot::new(ROOT_ID, *root.public_key())]).unwrap(),
        root,
        server,
        server_cert,
        alice,
        alice_cert,
        bob: IdentityKeyPair::from_seed(&[0xB0; 32]),
        carol: IdentityKeyPair::from_seed(&[0xC0; 32]),
        mallory: IdentityKeyPair::from_seed(&[0xEE; 32]),
    }
}

fn certificate(
    server_key: &IdentityKeyPair,
    server_cert: &ServerCertificate,
    address: Address<'_>,
    identity: &IdentityKey,
    expires: u64,
) -> SenderCertificate {
    SenderCertificate::issue(address, identity, expires, server_key, server_cert.clone()).unwrap()
}

fn a(account: &[u8], device: u32) -> Address<'_> {
    Address::new(account, device).unwrap()
}

/// An address, owned.
type Addr = (Vec<u8>, u32);

fn owned(address: Address<'_>) -> Addr {
    (address.account_id().to_vec(), address.device_id())
}

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// Each account's delivery access key, derived from its id.
fn access_key(account: &[u8]) -> DeliveryAccessKey {
    let mut secret = [0x5a_u8; 32];
    for (i, b) in account.iter().enumerate() {
        secret[i % 32] = secret[i % 32].rotate_left(3) ^ b;
    }
    DeliveryAccessKey::derive(&secret)
}

/// The server's registry: these accounts registered their access keys.
fn registry(account: &[u8]) -> Option<DeliveryAccessKey> {
    [ALICE, BOB, BOBBY, CAROL, DAVE]
        .contains(&account)
        .then(|| access_key(account))
}

fn recipient<'a>(
    identity: &'a IdentityKeyPair,
    address: Address<'a>,
    trust: &'a TrustStore,
) -> Recipient<'a> {
    Recipient {
        identity,
        address,
        trust,
        now: NOW,
    }
}

/// What `open` returned, comparable: the message and payload, or the error.
type Outcome = Result<(Vec<u8>, Vec<u8>), Error>;

fn outcome(opened: Result<Opened, Error>) -> Outcome {
    opened.map(|o| (o.message.to_vec(), o.payload.to_vec()))
}

fn delivered(payload: &[u8]) -> Outcome {
    Ok((CONTENT.message.to_vec(), payload.to_vec()))
}

/// Alice (device 1) seals `CONTENT` for Bob's device 1, with Bob's token.
fn seal_to_bob(w: &World, seed: u8) -> Vec<u8> {
    seal(
        &mut rng(seed),
        &w.alice,
        &w.alice_cert,
        a(BOB, 1),
        w.bob.public_key(),
        CONTENT,
        Some(&access_key(BOB)),
    )
    .unwrap()
}

/// The three devices of the standard multi-recipient envelope, with payloads.
fn three(w: &World) -> [MultiRecipient<'_>; 3] {
    [
        MultiRecipient {
            address: a(CAROL, 1),
            identity_key: w.carol.public_key(),
            payload: b"for carol 1",
        },
        MultiRecipient {
            address: a(BOB, 2),
            identity_key: w.bob.public_key(),
            payload: b"",
        },
        MultiRecipient {
            address: a(BOB, 1),
            identity_key: w.bob.public_key(),
            payload: b"for bob 1",
        },
    ]
}

fn payload_for(address: &Addr) -> &'static [u8] {
    match (address.0.as_slice(), address.1) {
        (b"bob", 1) => b"for bob 1",
        (b"carol", 1) => b"for carol 1",
        _ => b"",
    }
}

/// Alice seals `CONTENT` for bob/1, bob/2 and carol/1 (wire order), with the
/// combined token of Bob's and Carol's accounts.
fn seal_three(w: &World, seed: u8) -> Vec<u8> {
    let token = DeliveryAccessKey::combine([&access_key(BOB), &access_key(CAROL)]);
    seal_multi(
        &mut rng(seed),
        &w.alice,
        &w.alice_cert,
        &three(w),
        CONTENT,
        Some(&token),
    )
    .unwrap()
}

fn identity_of<'w>(w: &'w World, account: &[u8]) -> &'w IdentityKeyPair {
    match account {
        b"alice" => &w.alice,
        b"bob" => &w.bob,
        b"carol" => &w.carol,
        _ => &w.mallory,
    }
}

/// The server's split of a multi-recipient envelope: `(recipient, part)` in order.
fn split(multi: &[u8]) -> Vec<(Addr, Vec<u8>)> {
    let ValidatedEnvelope::Multi(m) = validate(multi, &ServerPolicy::default(), &registry).unwrap()
    else {
        panic!("not a multi-recipient envelope");
    };
    m.parts()
        .map(|part| {
            let mut bytes = vec![0u8; part.len()];
            assert_eq!(part.write_to(&mut bytes), Ok(part.len()));
            assert_eq!(part.pieces().concat(), bytes);
            (owned(part.recipient()), bytes)
        })
        .collect()
}

/// The Padmé length, for lengths that fit.
fn padme(len: usize) -> usize {
    padded_len(len).unwrap()
}

/// Bytes a payload takes in an entry: nothing if empty, else padded like content.
fn padded_payload_len(payload_len: usize) -> usize {
    if payload_len == 0 {
        0
    } else {
        padme(payload_len + 1)
    }
}

// ---------------------------------------------------------------------------
// A reference parser, written from the formats (SPEC.md §9.4–9.6), and the field
// layout of well-formed envelopes.

/// What the reference parser found: the format and its recipients.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Single(Addr),
    Multi(Vec<Addr>),
    Split(Addr),
}

impl Shape {
    fn lists(&self, me: &Addr) -> bool {
        match self {
            Self::Single(a) | Self::Split(a) => a == me,
            Self::Multi(all) => all.contains(me),
        }
    }
}

fn malformed(e: DecodeError) -> EnvelopeError {
    EnvelopeError::Malformed(e)
}

/// Whether 32 bytes are the canonical little-endian encoding of an X25519
/// u-coordinate: bit 255 clear and `u < p = 2^255 - 19`. Since v2 every
/// received ephemeral key must be (v1 accepted any 32 bytes).
fn is_canonical_x25519(key: &[u8; KEY_LEN]) -> bool {
    // p = 2^255 - 19, little-endian: ed ff .. ff 7f.
    let mut p = [0xffu8; KEY_LEN];
    p[0] = 0xed;
    p[31] = 0x7f;
    // Compare as little-endian integers, most significant byte first.
    key.iter().rev().lt(p.iter().rev())
}

/// What a recipient gets for an envelope whose ephemeral key bytes are `key`
/// and which is otherwise authentic but altered: a typed decode error if the
/// key is not canonical, else the AEAD failure.
fn ephemeral_flip_outcome(key: &[u8]) -> Outcome {
    if is_canonical_x25519(key.try_into().unwrap()) {
        Err(Error::DecryptionFailed)
    } else {
        Err(Error::Envelope(malformed(DecodeError::NonCanonicalKey {
            field: "ephemeral key",
        })))
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated { field });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<usize, EnvelopeError> {
        let b = self.take(2, field)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// An X25519 public key: 32 bytes, refused unless canonical (v2).
    fn x25519_key(&mut self, field: &'static str) -> Result<(), EnvelopeError> {
        let key: [u8; KEY_LEN] = self.take(KEY_LEN, field)?.try_into().unwrap();
        if is_canonical_x25519(&key) {
            Ok(())
        } else {
            Err(malformed(DecodeError::NonCanonicalKey { field }))
        }
    }

    /// `len u8 ‖ account id ‖ device u32`; the id is 1 to 64 bytes.
    fn address(&mut self) -> Result<Addr, EnvelopeError> {
        let len = usize::from(self.u8("account id length")?);
        let account = self.take(len, "account id")?;
        if len == 0 {
            return Err(malformed(DecodeError::InvalidValue {
                field: "account id",
            }));
        }
        if len > MAX_ACCOUNT_ID_LEN {
            return Err(malformed(DecodeError::LimitExceeded {
                field: "account id length",
                max: MAX_ACCOUNT_ID_LEN as u64,
                found: len as u64,
            }));
        }
        let device = self.take(4, "device id")?;
        Ok((
            account.to_vec(),
            u32::from_be_bytes(device.try_into().unwrap()),
        ))
    }

    /// `address ‖ wrapped len u16 ‖ wrapped ‖ auth tag (16)`; the wrapped key
    /// is `M ‖ padded payload ‖ tag`.
    fn entry(&mut self) -> Result<Addr, EnvelopeError> {
        let address = self.address()?;
        let wrapped = self.u16("wrapped key length")?;
        if wrapped < MIN_WRAPPED_LEN {
            return Err(malformed(DecodeError::InvalidValue {
                field: "wrapped key length",
            }));
        }
        // The payload is absent or padded.
        let payload = wrapped - MIN_WRAPPED_LEN;
        if payload != 0 && !is_padded_len(payload) {
            return Err(EnvelopeError::InvalidPadding);
        }
        self.take(wrapped, "wrapped key")?;
        self.take(AUTH_TAG_LEN, "authentication tag")?;
        Ok(address)
    }

    /// `0` or `1 ‖ token (16)`.
    fn token(&mut self) -> Result<(), EnvelopeError> {
        match self.u8("token flag")? {
            0 => Ok(()),
            1 => self.take(TOKEN_LEN, "token").map(drop),
            _ => Err(malformed(DecodeError::InvalidFlag {
                field: "token flag",
            })),
        }
    }

    /// `sender block (48) ‖ padded content ‖ tag (16)`, the padded length a Padmé length.
    fn sealed_tail(&self) -> Result<(), EnvelopeError> {
        let rest = self.0.len();
        if rest < SENDER_BLOCK_LEN {
            return Err(EnvelopeError::Truncated {
                field: "sender block",
            });
        }
        let content = rest - SENDER_BLOCK_LEN;
        if content < TAG_LEN {
            return Err(EnvelopeError::Truncated { field: "content" });
        }
        if !is_padded_len(content - TAG_LEN) {
            return Err(EnvelopeError::InvalidPadding);
        }
        Ok(())
    }
}

/// The reference parser: the structural error an envelope must get, or its shape.
fn model(bytes: &[u8], max_recipients: usize) -> Result<Shape, EnvelopeError> {
    let mut c = Cursor(bytes);
    match c.u8("format tag")? {
        SINGLE_TAG => {
            let address = c.address()?;
            c.token()?;
            c.x25519_key("ephemeral key")?;
            c.sealed_tail()?;
            Ok(Shape::Single(address))
        }
        MULTI_TAG => {
            c.x25519_key("ephemeral key")?;
            let count = c.u16("recipient count")?;
            if count == 0 {
                return Err(EnvelopeError::NoRecipients);
            }
            if count > max_recipients {
                return Err(EnvelopeError::TooManyRecipients {
                    count,
                    max: max_recipients,
                });
            }
            let mut all: Vec<Addr> = Vec::with_capacity(count);
            for _ in 0..count {
                let address = c.entry()?;
                if let Some(previous) = all.last() {
                    match previous.cmp(&address) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => return Err(EnvelopeError::DuplicateRecipient),
                        std::cmp::Ordering::Greater => {
                            return Err(EnvelopeError::UnsortedRecipients);
                        }
                    }
                }
                all.push(address);
            }
            c.token()?;
            c.sealed_tail()?;
            Ok(Shape::Multi(all))
        }
        SPLIT_TAG => {
            c.x25519_key("ephemeral key")?;
            let address = c.entry()?;
            c.sealed_tail()?;
            Ok(Shape::Split(address))
        }
        found => Err(EnvelopeError::UnknownVersion { found }),
    }
}

/// What `open` must return by the reference parser: the structural error,
/// `WrongRecipient` if this device is not listed, and otherwise `if_listed`
/// (what the cryptographic checks decide).
fn expect_open(bytes: &[u8], me: &Addr, if_listed: Outcome) -> Outcome {
    match model(bytes, usize::from(u16::MAX)) {
        Err(e) => Err(Error::Envelope(e)),
        Ok(shape) if !shape.lists(me) => Err(Error::WrongRecipient),
        Ok(_) => if_listed,
    }
}

/// What the server's `validate` must return structurally (default policy);
/// servers never take split parts back.
fn expect_server_structure(bytes: &[u8]) -> Result<(), EnvelopeError> {
    if bytes.first() == Some(&SPLIT_TAG) {
        return Err(EnvelopeError::UnknownVersion { found: SPLIT_TAG });
    }
    model(bytes, ServerPolicy::default().max_recipients).map(drop)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Tag,
    Ephemeral,
    Count,
    AccountLen,
    Account,
    Device,
    WrappedLen,
    Wrapped,
    AuthTag,
    TokenFlag,
    Token,
    SenderBlock,
    Content,
}

/// The field of each byte of a well-formed envelope or part, with the index of
/// the recipient entry it belongs to (wire order).
type Layout = Vec<(Field, Option<usize>)>;

fn push(out: &mut Layout, field: Field, entry: Option<usize>, n: usize) {
    out.extend(std::iter::repeat_n((field, entry), n));
}

fn push_address(bytes: &[u8], out: &mut Layout, entry: Option<usize>) {
    let len = usize::from(bytes[out.len()]);
    push(out, Field::AccountLen, entry, 1);
    push(out, Field::Account, entry, len);
    push(out, Field::Device, entry, 4);
}

fn push_entry(bytes: &[u8], out: &mut Layout, entry: usize) {
    push_address(bytes, out, Some(entry));
    let at = out.len();
    let wrapped = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    push(out, Field::WrappedLen, Some(entry), 2);
    push(out, Field::Wrapped, Some(entry), wrapped);
    push(out, Field::AuthTag, Some(entry), AUTH_TAG_LEN);
}

fn push_token(bytes: &[u8], out: &mut Layout) {
    let present = bytes[out.len()] == 1;
    push(out, Field::TokenFlag, None, 1);
    if present {
        push(out, Field::Token, None, TOKEN_LEN);
    }
}

/// The bytes of `field` (the first run of it) in `bytes`, by its layout.
fn field_bytes<'a>(bytes: &'a [u8], fields: &Layout, field: Field) -> &'a [u8] {
    let start = fields.iter().position(|f| f.0 == field).unwrap();
    let len = fields[start..].iter().take_while(|f| f.0 == field).count();
    &bytes[start..start + len]
}

fn layout(bytes: &[u8]) -> Layout {
    let mut out = Layout::with_capacity(bytes.len());
    push(&mut out, Field::Tag, None, 1);
    match bytes[0] {
        SINGLE_TAG => {
            push_address(bytes, &mut out, None);
            push_token(bytes, &mut out);
            push(&mut out, Field::Ephemeral, None, KEY_LEN);
        }
        MULTI_TAG => {
            push(&mut out, Field::Ephemeral, None, KEY_LEN);
            let at = out.len();
            let count = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
            push(&mut out, Field::Count, None, 2);
            for entry in 0..count {
                push_entry(bytes, &mut out, entry);
            }
            push_token(bytes, &mut out);
        }
        SPLIT_TAG => {
            push(&mut out, Field::Ephemeral, None, KEY_LEN);
            push_entry(bytes, &mut out, 0);
        }
        other => panic!("not an envelope: {other:#04x}"),
    }
    push(&mut out, Field::SenderBlock, None, SENDER_BLOCK_LEN);
    let content = bytes.len() - out.len();
    push(&mut out, Field::Content, None, content);
    out
}

/// A multi-recipient envelope cut at its entries, to hand-craft recipient lists.
struct Decomposed {
    /// Tag and ephemeral key.
    head: Vec<u8>,
    entries: Vec<Vec<u8>>,
    /// Token flag, token, sender block and content.
    tail: Vec<u8>,
}

fn decompose(multi: &[u8]) -> Decomposed {
    let fields = layout(multi);
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut tail = Vec::new();
    for (&byte, &(field, entry)) in multi.iter().zip(&fields) {
        match (field, entry) {
            (_, Some(i)) => {
                if entries.len() == i {
                    entries.push(Vec::new());
                }
                entries[i].push(byte);
            }
            (Field::Tag | Field::Ephemeral | Field::Count, None) => {}
            _ => tail.push(byte),
        }
    }
    Decomposed {
        head: multi[..1 + KEY_LEN].to_vec(),
        entries,
        tail,
    }
}

fn compose(head: &[u8], entries: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    let count = u16::try_from(entries.len()).unwrap().to_be_bytes();
    [head, &count[..], &entries.concat(), tail].concat()
}

#[test]
fn reference_parser_agrees_with_hand_computed_offsets() {
    let w = world();
    // 24 ‖ 03 "bob" ‖ 00000001 ‖ 01 ‖ token (16) ‖ E (32) ‖ sender block (48) ‖ content.
    let single = seal_to_bob(&w, 1);
    let truncated = |field: &'static str| Err(EnvelopeError::Truncated { field });
    for (len, expected) in [
        (0, truncated("format tag")),
        (1, truncated("account id length")),
        (2, truncated("account id")),
        (5, truncated("device id")),
        (9, truncated("token flag")),
        (10, truncated("token")),
        (26, truncated("ephemeral key")),
        (58, truncated("sender block")),
        (106, truncated("content")),
        (106 + TAG_LEN, Err(EnvelopeError::InvalidPadding)),
    ] {
        assert_eq!(model(&single[..len], 1000).map(drop), expected, "{len}");
        let server = validate(&single[..len], &ServerPolicy::default(), &registry);
        assert_eq!(server.map(drop), expected, "validate, {len}");
    }
    assert_eq!(model(&single, 1000), Ok(Shape::Single(owned(a(BOB, 1)))));

    // 25 ‖ E (32) ‖ 0003 ‖ entries (bob/1, bob/2, carol/1) ‖ 01 ‖ token ‖ shared.
    let multi = seal_three(&w, 2);
    for (len, expected) in [
        (1, truncated("ephemeral key")),
        (33, truncated("recipient count")),
        (35, truncated("account id length")),
        (36, truncated("account id")),
        (39, truncated("device id")),
        (43, truncated("wrapped key length")),
        (45, truncated("wrapped key")),
    ] {
        assert_eq!(model(&multi[..len], 1000).map(drop), expected, "{len}");
        let server = validate(&multi[..len], &ServerPolicy::default(), &registry);
        assert_eq!(server.map(drop), expected, "validate, {len}");
    }
    let everyone = vec![owned(a(BOB, 1)), owned(a(BOB, 2)), owned(a(CAROL, 1))];
    assert_eq!(model(&multi, 1000), Ok(Shape::Multi(everyone)));
    let d = decompose(&multi);
    let entries: Vec<&[u8]> = d.entries.iter().map(Vec::as_slice).collect();
    assert_eq!(compose(&d.head, &entries, &d.tail), multi);
    assert_eq!(
        d.entries.iter().map(Vec::len).collect::<Vec<_>>(),
        [
            ENTRY_FIXED + 3 + padme(9 + 1),
            ENTRY_FIXED + 3,
            ENTRY_FIXED + 5 + padme(11 + 1)
        ]
    );
}

// ---------------------------------------------------------------------------
// Tampering.

/// Each flip XORs one byte with one of these.
const MASKS: [u8; 3] = [0x01, 0x80, 0xff];

fn flips(bytes: &[u8]) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
    (0..bytes.len()).flat_map(move |i| {
        MASKS.iter().map(move |&mask| {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= mask;
            (i, mask, flipped)
        })
    })
}

/// Counts outcomes by kind, for the printed summary.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, o: &Outcome) {
        let kind = match o {
            Ok(_) => "accepted",
            Err(Error::DecryptionFailed) => "DecryptionFailed",
            Err(Error::WrongRecipient) => "WrongRecipient",
            Err(Error::Envelope(_)) => "Envelope",
            Err(_) => "other",
        };
        *self.0.entry(kind).or_default() += 1;
    }
}

#[test]
fn every_byte_flip_of_a_single_envelope_is_rejected() {
    let w = world();
    let sealed = seal_to_bob(&w, 1);
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    let me_addr = owned(me.address);
    assert_eq!(outcome(open(&sealed, &me)), delivered(b""));
    let fields = layout(&sealed);
    let policy = ServerPolicy::default();
    let mut tally = Tally::default();
    for (i, mask, bad) in flips(&sealed) {
        let field = fields[i].0;
        let got = outcome(open(&bad, &me));
        let by_model = expect_open(&bad, &me_addr, Err(Error::DecryptionFailed));
        let want = match field {
            // 0x24 ^ 0x01 = 0x25: read as a multi-recipient envelope, which
            // the parser decides; the other masks give unknown tags.
            Field::Tag if bad[0] == MULTI_TAG => by_model.clone(),
            Field::Tag => Err(Error::Envelope(EnvelopeError::UnknownVersion {
                found: bad[0],
            })),
            Field::Account | Field::Device => Err(Error::WrongRecipient),
            // v2: a flip that makes E non-canonical (bit 255 set) is a decode
            // error; otherwise E is in the first layer's salt and associated data.
            Field::Ephemeral => ephemeral_flip_outcome(field_bytes(&bad, &fields, field)),
            // The whole header (token included) is associated data of both
            // layers.
            Field::Token | Field::SenderBlock | Field::Content => Err(Error::DecryptionFailed),
            // These move every later field: the reference parser decides.
            Field::AccountLen | Field::TokenFlag => by_model.clone(),
            other => panic!("no {other:?} in a single envelope"),
        };
        assert_eq!(got, want, "byte {i} ({field:?}) ^ {mask:#04x}");
        assert_eq!(got, by_model, "reference parser, byte {i} ^ {mask:#04x}");
        tally.add(&got);

        // The server sees the routing header only: flips of encrypted bytes
        // (and of the device id) pass validation and are caught by `open`;
        // since v2 it also refuses a non-canonical E.
        let server = validate(&bad, &policy, &registry).map(drop);
        let want_server = match field {
            Field::Tag if bad[0] == MULTI_TAG => model(&bad, policy.max_recipients).map(drop),
            Field::Tag => Err(EnvelopeError::UnknownVersion { found: bad[0] }),
            Field::Account => Err(EnvelopeError::UnknownRecipient),
            Field::Token => Err(EnvelopeError::WrongToken),
            Field::Ephemeral => model(&bad, policy.max_recipients).map(drop),
            Field::Device | Field::SenderBlock | Field::Content => Ok(()),
            _ => match model(&bad, policy.max_recipients) {
                Err(e) => Err(e),
                // Parsed, but no longer with Bob's account and token.
                Ok(_) => {
                    assert!(server.is_err(), "byte {i} ^ {mask:#04x} validated");
                    server
                }
            },
        };
        assert_eq!(server, want_server, "validate, byte {i} ^ {mask:#04x}");
    }
    println!(
        "single envelope ({} bytes), {} flips: {:?}",
        sealed.len(),
        sealed.len() * MASKS.len(),
        tally.0
    );
    assert!(!tally.0.contains_key("accepted"));
}

#[test]
fn every_byte_flip_of_every_split_part_is_rejected() {
    let w = world();
    let multi = seal_three(&w, 2);
    let mut tally = Tally::default();
    for (addr, part) in split(&multi) {
        let me = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        assert_eq!(outcome(open(&part, &me)), delivered(payload_for(&addr)));
        let fields = layout(&part);
        for (i, mask, bad) in flips(&part) {
            let field = fields[i].0;
            let got = outcome(open(&bad, &me));
            let by_model = expect_open(&bad, &addr, Err(Error::DecryptionFailed));
            let want = match field {
                // 0x26 ^ mask is never another known tag for these masks.
                Field::Tag => Err(Error::Envelope(EnvelopeError::UnknownVersion {
                    found: bad[0],
                })),
                Field::Account | Field::Device => Err(Error::WrongRecipient),
                // E: a decode error if no longer canonical (v2), else wrap key
                // salt and associated data.
                Field::Ephemeral => ephemeral_flip_outcome(field_bytes(&bad, &fields, field)),
                // Wrapped key: AEAD. Auth tag: HMAC. Sender block and content:
                // AEAD (and SHA-256(shared) in the auth tag).
                Field::Wrapped | Field::AuthTag | Field::SenderBlock | Field::Content => {
                    Err(Error::DecryptionFailed)
                }
                Field::AccountLen | Field::WrappedLen => by_model.clone(),
                other => panic!("no {other:?} in a split part"),
            };
            assert_eq!(got, want, "{addr:?}: byte {i} ({field:?}) ^ {mask:#04x}");
            assert_eq!(got, by_model, "reference parser, byte {i} ^ {mask:#04x}");
            tally.add(&got);
        }
        // Servers do not accept parts back.
        assert_eq!(
            validate(&part, &ServerPolicy::default(), &registry).map(drop),
            Err(EnvelopeError::UnknownVersion { found: SPLIT_TAG })
        );
    }
    println!("split parts, every byte flipped: {:?}", tally.0);
    assert!(!tally.0.contains_key("accepted"));
}

/// A listed recipient opens the whole multi-recipient envelope (not its part).
///
/// What a recipient authenticates: its wrapped key (AEAD over its own encoded
/// address and E), its auth tag `HMAC(A_i, E ‖ address_i ‖ W_i ‖ SHA-256(shared))`
/// and the shared sender block and content. Not covered: the delivery token
/// (server-facing, checked only by `validate`) and the other recipients'
/// entries. So flips in the token, or in another device's address, wrapped
/// key or auth tag, still open for this recipient, with the right content and
/// payload, as long as the recipient list still parses in strictly increasing
/// order (otherwise `Envelope(UnsortedRecipients | DuplicateRecipient)`).
/// Length, count and flag bytes move later fields; the reference parser decides.
#[test]
fn every_byte_flip_of_a_whole_multi_envelope_is_judged_exactly() {
    let w = world();
    let multi = seal_three(&w, 2);
    let fields = layout(&multi);
    let order = [owned(a(BOB, 1)), owned(a(BOB, 2)), owned(a(CAROL, 1))];
    let policy = ServerPolicy::default();
    let mut tally = Tally::default();
    let mut accepted_by_field: BTreeMap<Field, usize> = BTreeMap::new();
    for (index, addr) in order.iter().enumerate() {
        let me = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        let fine = delivered(payload_for(addr));
        assert_eq!(outcome(open(&multi, &me)), fine);
        for (i, mask, bad) in flips(&multi) {
            let (field, entry) = fields[i];
            let own = entry == Some(index);
            let got = outcome(open(&bad, &me));
            let unauthenticated = field == Field::Token
                || (!own
                    && matches!(
                        field,
                        Field::Account | Field::Device | Field::Wrapped | Field::AuthTag
                    ));
            let if_listed = if unauthenticated {
                fine.clone()
            } else {
                Err(Error::DecryptionFailed)
            };
            let by_model = expect_open(&bad, addr, if_listed);
            let want = match field {
                // v2: a non-canonical E is a decode error.
                Field::Ephemeral => ephemeral_flip_outcome(field_bytes(&bad, &fields, field)),
                Field::SenderBlock | Field::Content => Err(Error::DecryptionFailed),
                Field::Wrapped | Field::AuthTag if own => Err(Error::DecryptionFailed),
                Field::Wrapped | Field::AuthTag | Field::Token => fine.clone(),
                // Own address: no longer listed, or out of order.
                Field::Account | Field::Device if own => {
                    assert!(
                        matches!(
                            by_model,
                            Err(Error::WrongRecipient)
                                | Err(Error::Envelope(
                                    EnvelopeError::UnsortedRecipients
                                        | EnvelopeError::DuplicateRecipient
                                ))
                        ),
                        "byte {i}: {by_model:?}"
                    );
                    by_model.clone()
                }
                // Another device's address: fine, unless out of order.
                Field::Account | Field::Device => {
                    assert!(
                        by_model == fine
                            || matches!(
                                by_model,
                                Err(Error::Envelope(
                                    EnvelopeError::UnsortedRecipients
                                        | EnvelopeError::DuplicateRecipient
                                ))
                            ),
                        "byte {i}: {by_model:?}"
                    );
                    by_model.clone()
                }
                // 0x25 ^ 0x01 = 0x24: read as a single-recipient envelope
                // (E's first byte as the account id length), which the parser
                // decides; the other masks give unknown tags.
                Field::Tag if bad[0] == SINGLE_TAG => {
                    assert!(
                        matches!(by_model, Err(Error::Envelope(_))),
                        "byte {i}: {by_model:?}"
                    );
                    by_model.clone()
                }
                Field::Tag => Err(Error::Envelope(EnvelopeError::UnknownVersion {
                    found: bad[0],
                })),
                Field::Count | Field::AccountLen | Field::WrappedLen | Field::TokenFlag => {
                    by_model.clone()
                }
            };
            assert_eq!(
                got, want,
                "{addr:?}: byte {i} ({field:?}, entry {entry:?}) ^ {mask:#04x}"
            );
            assert_eq!(got, by_model, "reference parser, byte {i} ^ {mask:#04x}");
            if got.is_ok() {
                *accepted_by_field.entry(field).or_default() += 1;
            }
            tally.add(&got);
        }
    }
    // The token bytes are the server's: every flip is a wrong token there.
    for (i, mask, bad) in flips(&multi) {
        if fields[i].0 == Field::Token {
            assert_eq!(
                validate(&bad, &policy, &registry).map(drop),
                Err(EnvelopeError::WrongToken),
                "byte {i} ^ {mask:#04x}"
            );
        }
    }
    println!(
        "whole multi envelope ({} bytes) opened by each of its 3 recipients, every \
         byte flipped: {:?}; accepted flips by field: {accepted_by_field:?}",
        multi.len(),
        tally.0
    );
    assert!(accepted_by_field.contains_key(&Field::Token));
    assert!(accepted_by_field.contains_key(&Field::Wrapped));
    assert!(accepted_by_field.keys().all(|f| matches!(
        f,
        Field::Token | Field::Account | Field::Device | Field::Wrapped | Field::AuthTag
    )));
}

#[test]
fn every_truncation_is_a_typed_error_for_server_and_client() {
    let w = world();
    let multi = seal_three(&w, 2);
    let mut cases: Vec<(String, Vec<u8>, Addr)> = vec![
        ("single".into(), seal_to_bob(&w, 1), owned(a(BOB, 1))),
        ("whole multi".into(), multi.clone(), owned(a(BOB, 2))),
    ];
    for (addr, part) in split(&multi) {
        cases.push((
            format!("part for {}/{}", String::from_utf8_lossy(&addr.0), addr.1),
            part,
            addr,
        ));
    }
    for (name, bytes, addr) in cases {
        let me = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        let mut accepted = Vec::new();
        for len in 0..bytes.len() {
            let t = &bytes[..len];
            let server = validate(t, &ServerPolicy::default(), &registry).map(drop);
            assert_eq!(server, expect_server_structure(t), "{name}: validate {len}");
            if server.is_ok() {
                accepted.push(len);
            }
            let client = outcome(open(t, &me));
            assert_eq!(
                client,
                expect_open(t, &addr, Err(Error::DecryptionFailed)),
                "{name}: open {len}"
            );
            assert!(
                matches!(client, Err(Error::Envelope(_) | Error::DecryptionFailed)),
                "{name}: open {len}: {client:?}"
            );
        }
        if bytes[0] == SPLIT_TAG {
            // Servers never take parts back.
            assert!(accepted.is_empty());
            println!(
                "{name} ({} bytes): every truncation refused by open and by validate",
                bytes.len()
            );
        } else {
            // A cut that lands on a shorter Padmé length is structurally valid:
            // only the recipient's AEAD can tell.
            println!(
                "{name} ({} bytes): every truncation refused by open; validate accepts {} \
                 (content cut to a shorter padded length): {accepted:?}",
                bytes.len(),
                accepted.len()
            );
        }
    }
}

#[test]
fn small_order_ephemeral_keys_are_non_contributory() {
    let w = world();
    let single = seal_to_bob(&w, 1);
    let multi = seal_three(&w, 2);
    let part = split(&multi).remove(0).1;
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    let mut one = [0u8; 32];
    one[0] = 1;
    for small in [[0u8; 32], one] {
        for (bytes, at) in [
            (&single, 1 + 1 + 3 + 4 + 1 + TOKEN_LEN),
            (&multi, 1),
            (&part, 1),
        ] {
            let mut bad = bytes.clone();
            bad[at..at + KEY_LEN].copy_from_slice(&small);
            assert_eq!(open(&bad, &me), Err(Error::NonContributoryDh));
        }
    }
}

// ---------------------------------------------------------------------------
// Certificates.

/// Seals a single envelope and a one-recipient multi envelope from Alice with
/// `cert`, and opens both (the multi through its split part) as Bob.
fn open_both(w: &World, cert: &SenderCertificate, trust: &TrustStore, now: u64) -> [Outcome; 2] {
    let key = access_key(BOB);
    let single = seal(
        &mut rng(3),
        &w.alice,
        cert,
        a(BOB, 1),
        w.bob.public_key(),
        CONTENT,
        Some(&key),
    )
    .unwrap();
    let to_bob = [MultiRecipient {
        address: a(BOB, 1),
        identity_key: w.bob.public_key(),
        payload: b"p",
    }];
    let multi = seal_multi(&mut rng(4), &w.alice, cert, &to_bob, CONTENT, Some(&key)).unwrap();
    let part = split(&multi).remove(0).1;
    let me = Recipient {
        identity: &w.bob,
        address: a(BOB, 1),
        trust,
        now,
    };
    [outcome(open(&single, &me)), outcome(open(&part, &me))]
}

fn assert_certificate_rejected(
    w: &World,
    cert: &SenderCertificate,
    trust: &TrustStore,
    now: u64,
    expected: CertificateError,
) {
    assert_eq!(cert.validate(trust, now), Err(expected));
    let e = Err(Error::Certificate(expected));
    assert_eq!(open_both(w, cert, trust, now), [e.clone(), e]);
}

fn assert_certificate_accepted(w: &World, cert: &SenderCertificate, trust: &TrustStore, now: u64) {
    let sender = cert.validate(trust, now).unwrap();
    assert_eq!(sender.account_id, cert.address().account_id());
    assert_eq!(
        open_both(w, cert, trust, now),
        [delivered(b""), delivered(b"p")]
    );
}

/// Offsets in an encoded sender certificate with an account id of `len` bytes:
/// `13 ‖ len ‖ id ‖ device u32 ‖ identity (32) ‖ expires u64 ‖ server cert (105) ‖ signature (64)`.
struct CertOffsets {
    device: usize,
    expires: usize,
    server: usize,
    signature: usize,
}

fn cert_offsets(account_len: usize) -> CertOffsets {
    let device = 2 + account_len;
    let expires = device + 4 + KEY_LEN;
    let server = expires + 8;
    CertOffsets {
        device,
        expires,
        server,
        signature: server + SERVER_CERTIFICATE_LEN,
    }
}

/// The certificate with one byte of its encoding flipped (decoding checks
/// structure only, so the result is a certificate with a broken chain).
fn tampered(cert: &SenderCertificate, at: usize) -> SenderCertificate {
    let mut bytes = cert.encode();
    bytes[at] ^= 0x01;
    SenderCertificate::decode(&bytes).unwrap()
}

#[test]
fn certificate_from_an_unpinned_root_is_wrong_root() {
    let w = world();
    let other_id = TrustStore::new(&[TrustRoot::new(ROOT_ID + 1, *w.root.public_key())]).unwrap();
    let wrong_root = CertificateError::WrongRoot { root_id: ROOT_ID };
    assert_certificate_rejected(&w, &w.alice_cert, &other_id, NOW, wrong_root);
    let empty = TrustStore::new(&[]).unwrap();
    assert_certificate_rejected(&w, &w.alice_cert, &empty, NOW, wrong_root);
    // A flipped root id names a root that is not pinned.
    let o = cert_offsets(ALICE.len());
    let renamed = tampered(&w.alice_cert, o.server + 4);
    let root_id = ROOT_ID ^ 1;
    assert_certificate_rejected(
        &w,
        &renamed,
        &w.trust,
        NOW,
        CertificateError::WrongRoot { root_id },
    );
    // A second pinned root changes nothing.
    let two = TrustStore::new(&[
        TrustRoot::new(9, *w.mallory.public_key()),
        TrustRoot::new(ROOT_ID, *w.root.public_key()),
    ])
    .unwrap();
    assert_certificate_accepted(&w, &w.alice_cert, &two, NOW);
}

#[test]
fn server_certificate_with_a_bad_signature_is_rejected() {
    let w = world();
    let bad = CertificateError::BadSignature;
    // The pinned root id, with another key.
    let impostor_root =
        TrustStore::new(&[TrustRoot::new(ROOT_ID, *w.mallory.public_key())]).unwrap();
    assert_certificate_rejected(&w, &w.alice_cert, &impostor_root, NOW, bad);
    // A server certificate signed by someone else under the pinned root's id.
    let forged_server =
        ServerCertificate::issue(ROOT_ID, &w.mallory, SERVER_KEY_ID, w.server.public_key());
    let cert = certificate(
        &w.server,
        &forged_server,
        a(ALICE, 1),
        w.alice.public_key(),
        EXPIRES,
    );
    assert_certificate_rejected(&w, &cert, &w.trust, NOW, bad);
    // Every byte of the server certificate's key id, key and signature.
    let o = cert_offsets(ALICE.len());
    let mut checked = 0;
    for at in o.server + 5..o.signature {
        let mut bytes = w.alice_cert.encode();
        bytes[at] ^= 0x01;
        // Some flips of the server key are no longer a valid identity key.
        let Ok(cert) = SenderCertificate::decode(&bytes) else {
            assert!((o.server + 9..o.server + 9 + KEY_LEN).contains(&at));
            continue;
        };
        assert_eq!(cert.validate(&w.trust, NOW), Err(bad), "byte {at}");
        checked += 1;
    }
    assert!(checked >= 68, "{checked}");
    // One of them through `open`.
    let flipped = tampered(&w.alice_cert, o.signature - 1);
    assert_certificate_rejected(&w, &flipped, &w.trust, NOW, bad);
}

#[test]
fn sender_certificate_with_a_bad_signature_is_rejected() {
    let w = world();
    let bad = CertificateError::BadSignature;
    // Signed by a key that is not the certified server key.
    let cert = certificate(
        &w.mallory,
        &w.server_cert,
        a(ALICE, 1),
        w.alice.public_key(),
        EXPIRES,
    );
    assert_certificate_rejected(&w, &cert, &w.trust, NOW, bad);
    // Every byte of the signature, and of the signed address and expiry.
    let o = cert_offsets(ALICE.len());
    let encoded = w.alice_cert.encode();
    let body = (2..o.device + 4).chain(o.expires..o.server);
    for at in body.chain(o.signature..encoded.len()) {
        let cert = tampered(&w.alice_cert, at);
        assert_eq!(cert.validate(&w.trust, NOW), Err(bad), "byte {at}");
    }
    for at in [o.device + 3, o.expires + 7, encoded.len() - 1] {
        assert_certificate_rejected(&w, &tampered(&w.alice_cert, at), &w.trust, NOW, bad);
    }
}

#[test]
fn certificate_expiry_boundary() {
    let w = world();
    assert_certificate_accepted(&w, &w.alice_cert, &w.trust, EXPIRES - 1);
    assert_certificate_accepted(&w, &w.alice_cert, &w.trust, 0);
    for now in [EXPIRES, EXPIRES + 1, u64::MAX] {
        let expired = CertificateError::Expired {
            expires: EXPIRES,
            now,
        };
        assert_certificate_rejected(&w, &w.alice_cert, &w.trust, now, expired);
    }
    let never_valid = certificate(
        &w.server,
        &w.server_cert,
        a(ALICE, 1),
        w.alice.public_key(),
        0,
    );
    let expired = CertificateError::Expired { expires: 0, now: 0 };
    assert_certificate_rejected(&w, &never_valid, &w.trust, 0, expired);
    let forever = certificate(
        &w.server,
        &w.server_cert,
        a(ALICE, 1),
        w.alice.public_key(),
        u64::MAX,
    );
    assert_certificate_accepted(&w, &forever, &w.trust, u64::MAX - 1);
}

#[test]
fn certificate_from_a_revoked_server_key_is_rejected() {
    let w = world();
    let mut trust = w.trust.clone();
    trust.revoke(SERVER_KEY_ID + 1).unwrap();
    assert_certificate_accepted(&w, &w.alice_cert, &trust, NOW);
    trust.revoke(SERVER_KEY_ID).unwrap();
    trust.revoke(SERVER_KEY_ID).unwrap(); // idempotent
    let revoked = CertificateError::Revoked {
        key_id: SERVER_KEY_ID,
    };
    assert_certificate_rejected(&w, &w.alice_cert, &trust, NOW, revoked);
    // A new server key, certified by the same root, works again.
    let server2 = IdentityKeyPair::from_seed(&[0x03; 32]);
    let server2_cert =
        ServerCertificate::issue(ROOT_ID, &w.root, SERVER_KEY_ID + 2, server2.public_key());
    let cert = certificate(
        &server2,
        &server2_cert,
        a(ALICE, 1),
        w.alice.public_key(),
        EXPIRES,
    );
    assert_certificate_accepted(&w, &cert, &trust, NOW);

    // Limits of the trust store.
    for id in 100..100 + (MAX_TRUST_ENTRIES as u32 - 2) {
        trust.revoke(id).unwrap();
    }
    assert!(matches!(
        trust.revoke(1000),
        Err(DecodeError::LimitExceeded { .. })
    ));
    trust.revoke(100).unwrap(); // already revoked: no new entry
    let roots: Vec<TrustRoot> = (0..=MAX_TRUST_ENTRIES as u32)
        .map(|id| TrustRoot::new(id, *w.root.public_key()))
        .collect();
    assert!(TrustStore::new(&roots[..MAX_TRUST_ENTRIES]).is_ok());
    assert!(matches!(
        TrustStore::new(&roots),
        Err(DecodeError::LimitExceeded { .. })
    ));
    // Two roots with one id would make the root a certificate names ambiguous.
    let twice = [
        TrustRoot::new(ROOT_ID, *w.root.public_key()),
        TrustRoot::new(ROOT_ID, *w.mallory.public_key()),
    ];
    assert_eq!(
        TrustStore::new(&twice).err(),
        Some(DecodeError::InvalidValue {
            field: "duplicate trust root id"
        })
    );
}

#[test]
fn the_first_certificate_defect_is_reported() {
    let w = world();
    let mut revoked = w.trust.clone();
    revoked.revoke(SERVER_KEY_ID).unwrap();
    let o = cert_offsets(ALICE.len());
    let bad_sender_signature = tampered(&w.alice_cert, o.signature);
    let bad_server_signature = tampered(&w.alice_cert, o.signature - 1);
    let other_root = TrustStore::new(&[TrustRoot::new(5, *w.root.public_key())]).unwrap();
    // Order: root, server signature, revocation, sender signature, expiry.
    for (cert, trust, now, expected) in [
        (
            &bad_server_signature,
            &other_root,
            EXPIRES,
            CertificateError::WrongRoot { root_id: ROOT_ID },
        ),
        (
            &bad_server_signature,
            &revoked,
            EXPIRES,
            CertificateError::BadSignature,
        ),
        (
            &bad_sender_signature,
            &revoked,
            EXPIRES,
            CertificateError::Revoked {
                key_id: SERVER_KEY_ID,
            },
        ),
        (
            &bad_sender_signature,
            &w.trust,
            EXPIRES,
            CertificateError::BadSignature,
        ),
    ] {
        assert_certificate_rejected(&w, cert, trust, now, expected);
    }
}

#[test]
fn malformed_certificates_are_decode_errors() {
    let w = world();
    let encoded = w.alice_cert.encode();
    assert_eq!(encoded.len(), 1 + 1 + ALICE.len() + 4 + 32 + 8 + 105 + 64);
    assert_eq!(SenderCertificate::decode(&encoded).unwrap(), w.alice_cert);
    for len in 0..encoded.len() {
        let e = SenderCertificate::decode(&encoded[..len]).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{len}: {e:?}");
        assert_eq!(CertificateError::from(e), CertificateError::Malformed(e));
    }
    let o = cert_offsets(ALICE.len());
    let with = |at: usize, byte: u8| {
        let mut b = encoded.clone();
        b[at] = byte;
        SenderCertificate::decode(&b)
    };
    // v2 tags: server certificate 0x12, sender certificate 0x13. Each in the
    // other's place, and the v1 tags (0x10, 0x11), are unknown formats.
    for (at, found, expected) in [
        (0, 0x12, 0x13),
        (0, 0x11, 0x13),
        (o.server, 0x13, 0x12),
        (o.server, 0x10, 0x12),
    ] {
        assert_eq!(
            with(at, found),
            Err(DecodeError::UnknownFormat { expected, found }),
            "byte {at} = {found:#04x}"
        );
    }
    let mut empty_account = vec![0x13, 0];
    empty_account.extend_from_slice(&encoded[o.device..]);
    assert_eq!(
        SenderCertificate::decode(&empty_account),
        Err(DecodeError::InvalidValue {
            field: "account id"
        })
    );
    let mut long_account = vec![0x13, 65];
    long_account.extend_from_slice(&[b'x'; 65]);
    long_account.extend_from_slice(&encoded[o.device..]);
    assert!(matches!(
        SenderCertificate::decode(&long_account),
        Err(DecodeError::LimitExceeded { found: 65, .. })
    ));
    let mut identity = encoded.clone();
    identity[o.device + 4..o.expires].copy_from_slice(&{
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    });
    assert_eq!(
        SenderCertificate::decode(&identity),
        Err(DecodeError::InvalidIdentityKey)
    );
    let mut trailing = encoded.clone();
    trailing.push(0);
    assert_eq!(
        SenderCertificate::decode(&trailing),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    let server = w.server_cert.encode();
    assert_eq!(server.len(), SERVER_CERTIFICATE_LEN);
    assert_eq!(ServerCertificate::decode(&server).unwrap(), w.server_cert);
    assert_eq!(&encoded[o.server..o.signature], &server[..]);
}

// ---------------------------------------------------------------------------
// Senders and recipients.

#[test]
fn self_send_is_refused_and_other_own_devices_are_fine() {
    let w = world();
    let key = access_key(ALICE);
    let to_self = seal(
        &mut rng(5),
        &w.alice,
        &w.alice_cert,
        a(ALICE, 1),
        w.alice.public_key(),
        CONTENT,
        Some(&key),
    )
    .unwrap();
    let alice1 = recipient(&w.alice, a(ALICE, 1), &w.trust);
    assert_eq!(open(&to_self, &alice1), Err(Error::SelfSend));

    // Device 2 of the same account: same identity key, another address.
    let to_other = seal(
        &mut rng(6),
        &w.alice,
        &w.alice_cert,
        a(ALICE, 2),
        w.alice.public_key(),
        CONTENT,
        Some(&key),
    )
    .unwrap();
    let alice2 = recipient(&w.alice, a(ALICE, 2), &w.trust);
    let opened = open(&to_other, &alice2).unwrap();
    assert_eq!(opened.message, CONTENT.message);
    assert_eq!(opened.sender.account_id, ALICE);
    assert_eq!(opened.sender.device_id, 1);
    assert_eq!(&opened.sender.identity_key, w.alice.public_key());

    // A multi-recipient envelope to Bob and to all of Alice's devices.
    let recipients = [
        MultiRecipient {
            address: a(ALICE, 1),
            identity_key: w.alice.public_key(),
            payload: b"self",
        },
        MultiRecipient {
            address: a(ALICE, 2),
            identity_key: w.alice.public_key(),
            payload: b"sync",
        },
        MultiRecipient {
            address: a(BOB, 1),
            identity_key: w.bob.public_key(),
            payload: b"bob",
        },
    ];
    let token = DeliveryAccessKey::combine([&key, &access_key(BOB)]);
    let multi = seal_multi(
        &mut rng(7),
        &w.alice,
        &w.alice_cert,
        &recipients,
        CONTENT,
        Some(&token),
    )
    .unwrap();
    for (addr, part) in split(&multi) {
        let me = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        let expected = match (addr.0.as_slice(), addr.1) {
            (b"alice", 1) => Err(Error::SelfSend),
            (b"alice", 2) => delivered(b"sync"),
            _ => delivered(b"bob"),
        };
        assert_eq!(outcome(open(&part, &me)), expected, "{addr:?}");
        assert_eq!(outcome(open(&multi, &me)), expected, "whole, {addr:?}");
    }
}

#[test]
fn sealing_with_another_identitys_certificate_is_a_mismatch() {
    let w = world();
    // Carol seals with Alice's certificate: the key she proves is hers.
    let single = seal(
        &mut rng(8),
        &w.carol,
        &w.alice_cert,
        a(BOB, 1),
        w.bob.public_key(),
        CONTENT,
        Some(&access_key(BOB)),
    )
    .unwrap();
    let multi = seal_multi(
        &mut rng(9),
        &w.carol,
        &w.alice_cert,
        &three(&w),
        CONTENT,
        Some(&DeliveryAccessKey::combine([
            &access_key(BOB),
            &access_key(CAROL),
        ])),
    )
    .unwrap();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    assert_eq!(open(&single, &me), Err(Error::SenderIdentityMismatch));
    assert_eq!(open(&multi, &me), Err(Error::SenderIdentityMismatch));
    for (addr, part) in split(&multi) {
        let them = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        assert_eq!(open(&part, &them), Err(Error::SenderIdentityMismatch));
    }
    // The mismatch is found before the certificate is validated.
    let late = Recipient { now: EXPIRES, ..me };
    assert_eq!(open(&single, &late), Err(Error::SenderIdentityMismatch));
    let untrusting = TrustStore::new(&[]).unwrap();
    let lost = Recipient {
        trust: &untrusting,
        ..me
    };
    assert_eq!(open(&single, &lost), Err(Error::SenderIdentityMismatch));
}

#[test]
fn parts_open_only_for_their_own_device() {
    let w = world();
    let multi = seal_three(&w, 2);
    let parts = split(&multi);
    let listed: Vec<Addr> = parts.iter().map(|(addr, _)| addr.clone()).collect();
    let unlisted = [
        owned(a(BOB, 3)),
        owned(a(BOBBY, 1)),
        owned(a(CAROL, 2)),
        owned(a(ALICE, 1)),
        owned(a(DAVE, 1)),
    ];
    for (addr, part) in &parts {
        let me = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        let opened = open(part, &me).unwrap();
        assert_eq!(opened.payload, payload_for(addr));
        assert_eq!(opened.message, CONTENT.message);
        assert_eq!(opened.kind, CONTENT.kind);
        assert_eq!(opened.hint, CONTENT.hint);
        assert_eq!(opened.sender.account_id, ALICE);
        for other in listed.iter().chain(&unlisted).filter(|o| *o != addr) {
            let them = recipient(identity_of(&w, &other.0), a(&other.0, other.1), &w.trust);
            assert_eq!(open(part, &them), Err(Error::WrongRecipient), "{other:?}");
        }
        // An impostor holding the address, without the account's identity key.
        let impostor = Recipient {
            identity: &w.mallory,
            ..me
        };
        assert_eq!(open(part, &impostor), Err(Error::DecryptionFailed));
        assert_eq!(open(&multi, &impostor), Err(Error::DecryptionFailed));
    }
    for other in &unlisted {
        let them = recipient(identity_of(&w, &other.0), a(&other.0, other.1), &w.trust);
        assert_eq!(open(&multi, &them), Err(Error::WrongRecipient), "{other:?}");
    }
    let single = seal_to_bob(&w, 1);
    let impostor = recipient(&w.mallory, a(BOB, 1), &w.trust);
    assert_eq!(open(&single, &impostor), Err(Error::DecryptionFailed));
    let bob2 = recipient(&w.bob, a(BOB, 2), &w.trust);
    assert_eq!(open(&single, &bob2), Err(Error::WrongRecipient));
}

// ---------------------------------------------------------------------------
// Server validation.

#[test]
fn server_rejects_unknown_and_disallowed_versions() {
    let w = world();
    let single = seal_to_bob(&w, 1);
    let multi = seal_three(&w, 2);
    let part = split(&multi).remove(0).1;
    let policy = ServerPolicy::default();
    // The v1 tags (0x21 to 0x23) are unknown since v2.
    for tag in [0x00, 0x20, 0x21, 0x22, 0x23, SPLIT_TAG, 0x27, 0x7f, 0xff] {
        let mut bytes = single.clone();
        bytes[0] = tag;
        assert_eq!(
            validate(&bytes, &policy, &registry).err(),
            Some(EnvelopeError::UnknownVersion { found: tag })
        );
        assert_eq!(
            validate(&[tag], &policy, &registry).err(),
            Some(EnvelopeError::UnknownVersion { found: tag })
        );
    }
    assert_eq!(
        validate(&part, &policy, &registry).err(),
        Some(EnvelopeError::UnknownVersion { found: SPLIT_TAG })
    );
    assert_eq!(
        validate(&[], &policy, &registry).err(),
        Some(EnvelopeError::Truncated {
            field: "format tag"
        })
    );
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    assert_eq!(
        open(&[0x7f], &me),
        Err(Error::Envelope(EnvelopeError::UnknownVersion {
            found: 0x7f
        }))
    );
    assert_eq!(
        open(&[], &me),
        Err(Error::Envelope(EnvelopeError::Truncated {
            field: "format tag"
        }))
    );

    let no_single = ServerPolicy {
        allow_single: false,
        ..policy
    };
    assert_eq!(
        validate(&single, &no_single, &registry).err(),
        Some(EnvelopeError::VersionNotAllowed { found: SINGLE_TAG })
    );
    assert!(validate(&multi, &no_single, &registry).is_ok());
    let no_multi = ServerPolicy {
        allow_multi: false,
        ..policy
    };
    assert_eq!(
        validate(&multi, &no_multi, &registry).err(),
        Some(EnvelopeError::VersionNotAllowed { found: MULTI_TAG })
    );
    assert!(validate(&single, &no_multi, &registry).is_ok());
    // The policy is checked before the structure.
    assert_eq!(
        validate(&[SINGLE_TAG], &no_single, &registry).err(),
        Some(EnvelopeError::VersionNotAllowed { found: SINGLE_TAG })
    );
}

#[test]
fn server_enforces_size_and_recipient_limits() {
    let w = world();
    let single = seal_to_bob(&w, 1);
    let multi = seal_three(&w, 2);
    for bytes in [&single, &multi] {
        let exact = ServerPolicy {
            max_size: bytes.len(),
            ..ServerPolicy::default()
        };
        assert!(validate(bytes, &exact, &registry).is_ok());
        let small = ServerPolicy {
            max_size: bytes.len() - 1,
            ..exact
        };
        assert_eq!(
            validate(bytes, &small, &registry).err(),
            Some(EnvelopeError::Oversize {
                size: bytes.len(),
                max: bytes.len() - 1
            })
        );
        // Size first, even before the version.
        let strict = ServerPolicy {
            allow_single: false,
            allow_multi: false,
            ..small
        };
        assert!(matches!(
            validate(bytes, &strict, &registry),
            Err(EnvelopeError::Oversize { .. })
        ));
    }
    let three_max = ServerPolicy {
        max_recipients: 3,
        ..ServerPolicy::default()
    };
    assert!(validate(&multi, &three_max, &registry).is_ok());
    let two_max = ServerPolicy {
        max_recipients: 2,
        ..three_max
    };
    assert_eq!(
        validate(&multi, &two_max, &registry).err(),
        Some(EnvelopeError::TooManyRecipients { count: 3, max: 2 })
    );
    // The count is checked before the entries are walked.
    let mut huge = multi[..1 + KEY_LEN].to_vec();
    huge.extend_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        validate(&huge, &ServerPolicy::default(), &registry).err(),
        Some(EnvelopeError::TooManyRecipients {
            count: usize::from(u16::MAX),
            max: 1000
        })
    );
}

#[test]
fn server_rejects_hand_crafted_recipient_lists() {
    let w = world();
    let multi = seal_three(&w, 2);
    let d = decompose(&multi);
    let [bob1, bob2, carol1] = [&d.entries[0][..], &d.entries[1][..], &d.entries[2][..]];
    let policy = ServerPolicy::default();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    for (entries, expected) in [
        (vec![], EnvelopeError::NoRecipients),
        (
            vec![bob1, bob1, bob2, carol1],
            EnvelopeError::DuplicateRecipient,
        ),
        (
            vec![bob1, bob2, carol1, carol1],
            EnvelopeError::DuplicateRecipient,
        ),
        (vec![bob2, bob1, carol1], EnvelopeError::UnsortedRecipients),
        (vec![bob1, carol1, bob2], EnvelopeError::UnsortedRecipients),
        (vec![carol1, bob1, bob2], EnvelopeError::UnsortedRecipients),
    ] {
        let crafted = compose(&d.head, &entries, &d.tail);
        assert_eq!(
            validate(&crafted, &policy, &registry).err(),
            Some(expected),
            "{} entries",
            entries.len()
        );
        assert_eq!(open(&crafted, &me), Err(Error::Envelope(expected)));
    }
    // `seal_multi` refuses the same lists.
    assert_eq!(
        seal_multi(&mut rng(1), &w.alice, &w.alice_cert, &[], CONTENT, None),
        Err(Error::Envelope(EnvelopeError::NoRecipients))
    );
    let mut doubled = three(&w).to_vec();
    doubled.push(MultiRecipient {
        payload: b"again",
        ..doubled[1]
    });
    assert_eq!(
        seal_multi(
            &mut rng(1),
            &w.alice,
            &w.alice_cert,
            &doubled,
            CONTENT,
            None
        ),
        Err(Error::Envelope(EnvelopeError::DuplicateRecipient))
    );

    // Entries are not bound to each other: dropping one leaves an envelope the
    // server accepts (the token still covers both accounts) and the others open.
    let without_bob2 = compose(&d.head, &[bob1, carol1], &d.tail);
    assert!(validate(&without_bob2, &policy, &registry).is_ok());
    assert_eq!(outcome(open(&without_bob2, &me)), delivered(b"for bob 1"));
    // Dropping all of Bob's devices changes the accounts: the token no longer matches.
    let carol_only = compose(&d.head, &[carol1], &d.tail);
    assert_eq!(
        validate(&carol_only, &policy, &registry).err(),
        Some(EnvelopeError::WrongToken)
    );
}

#[test]
fn server_checks_the_padded_content_length() {
    let w = world();
    let single = seal_to_bob(&w, 1);
    let multi = seal_three(&w, 2);
    let policy = ServerPolicy::default();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    for bytes in [&single, &multi] {
        let padded = bytes.len()
            - layout(bytes)
                .iter()
                .filter(|f| f.0 != Field::Content)
                .count()
            - TAG_LEN;
        assert!(is_padded_len(padded), "{padded}");
        let mut longer = bytes.clone();
        longer.push(0);
        let shorter = &bytes[..bytes.len() - 1];
        for bad in [&longer[..], shorter] {
            assert_eq!(
                validate(bad, &policy, &registry).err(),
                Some(EnvelopeError::InvalidPadding)
            );
            assert_eq!(
                open(bad, &me),
                Err(Error::Envelope(EnvelopeError::InvalidPadding))
            );
        }
        // Grown to the next Padmé length: structurally fine, so the server
        // accepts it; the recipient's AEAD does not.
        let step = (1..).find(|k| is_padded_len(padded + k)).unwrap();
        let mut grown = bytes.clone();
        grown.extend(std::iter::repeat_n(0, step));
        assert!(validate(&grown, &policy, &registry).is_ok());
        assert_eq!(open(&grown, &me), Err(Error::DecryptionFailed));
    }
}

#[test]
fn server_checks_delivery_tokens() {
    let w = world();
    let policy = ServerPolicy::default();
    let optional = ServerPolicy {
        require_token: false,
        ..policy
    };
    let to = |token: Option<&DeliveryAccessKey>, account: &'static [u8]| {
        seal(
            &mut rng(10),
            &w.alice,
            &w.alice_cert,
            a(account, 1),
            w.bob.public_key(),
            CONTENT,
            token,
        )
        .unwrap()
    };
    let none = to(None, BOB);
    assert_eq!(
        validate(&none, &policy, &registry).err(),
        Some(EnvelopeError::MissingToken)
    );
    assert!(validate(&none, &optional, &registry).is_ok());
    let wrong = to(Some(&access_key(CAROL)), BOB);
    for p in [policy, optional] {
        assert_eq!(
            validate(&wrong, &p, &registry).err(),
            Some(EnvelopeError::WrongToken)
        );
    }
    let unknown = to(Some(&access_key(NOBODY)), NOBODY);
    assert_eq!(
        validate(&unknown, &policy, &registry).err(),
        Some(EnvelopeError::UnknownRecipient)
    );
    // Without a token, an unregistered recipient is the policy's business.
    let unknown_without = to(None, NOBODY);
    assert!(validate(&unknown_without, &optional, &registry).is_ok());

    let recipients = three(&w);
    let seal_with = |token: Option<&DeliveryAccessKey>| {
        seal_multi(
            &mut rng(11),
            &w.alice,
            &w.alice_cert,
            &recipients,
            CONTENT,
            token,
        )
        .unwrap()
    };
    let none = seal_with(None);
    assert_eq!(
        validate(&none, &policy, &registry).err(),
        Some(EnvelopeError::MissingToken)
    );
    assert!(validate(&none, &optional, &registry).is_ok());
    let bob_only = seal_with(Some(&access_key(BOB)));
    assert_eq!(
        validate(&bob_only, &policy, &registry).err(),
        Some(EnvelopeError::WrongToken)
    );
    let registry_without_carol = |account: &[u8]| (account != CAROL).then(|| access_key(account));
    let good = seal_three(&w, 2);
    assert_eq!(
        validate(&good, &policy, &registry_without_carol).err(),
        Some(EnvelopeError::UnknownRecipient)
    );
}

#[test]
fn split_part_write_to_needs_a_large_enough_buffer() {
    let w = world();
    let multi = seal_three(&w, 2);
    let ValidatedEnvelope::Multi(m) =
        validate(&multi, &ServerPolicy::default(), &registry).unwrap()
    else {
        panic!("multi");
    };
    assert_eq!(m.recipient_count(), 3);
    for part in m.parts() {
        let needed = part.len();
        assert!(!part.is_empty());
        assert_eq!(part.pieces().iter().map(|p| p.len()).sum::<usize>(), needed);
        for short in [0, 1, needed - 1] {
            let mut buffer = vec![0xAA; short];
            assert_eq!(
                part.write_to(&mut buffer),
                Err(EnvelopeError::BufferTooSmall { needed })
            );
            assert!(buffer.iter().all(|&b| b == 0xAA), "nothing written");
        }
        let mut buffer = vec![0u8; needed + 10];
        assert_eq!(part.write_to(&mut buffer), Ok(needed));
        assert_eq!(buffer[..needed], part.pieces().concat());
        assert_eq!(buffer[0], SPLIT_TAG);
        assert_eq!(&buffer[1..1 + KEY_LEN], &multi[1..1 + KEY_LEN]);
        assert!(buffer[needed..].iter().all(|&b| b == 0));
    }
    let single = seal_to_bob(&w, 1);
    let ValidatedEnvelope::Single(s) =
        validate(&single, &ServerPolicy::default(), &registry).unwrap()
    else {
        panic!("single");
    };
    assert_eq!(s.recipient(), a(BOB, 1));
    assert_eq!(s.bytes(), single);
}

// ---------------------------------------------------------------------------
// Delivery tokens.

#[test]
fn multi_token_is_the_xor_over_distinct_accounts() {
    let w = world();
    let (bob, bobby, carol) = (access_key(BOB), access_key(BOBBY), access_key(CAROL));
    let xor: Vec<u8> = bob
        .to_bytes()
        .iter()
        .zip(carol.to_bytes())
        .map(|(x, y)| x ^ y)
        .collect();
    assert_eq!(
        DeliveryAccessKey::combine([&bob, &carol])
            .to_bytes()
            .to_vec(),
        xor
    );
    assert_eq!(
        DeliveryAccessKey::combine([&bob, &bob]).to_bytes(),
        [0; TOKEN_LEN]
    );
    assert_eq!(DeliveryAccessKey::combine([&bob]), bob);
    assert_eq!(format!("{bob:?}"), "DeliveryAccessKey([redacted])");

    let policy = ServerPolicy::default();
    let to = |devices: &[(&'static [u8], u32)], token: DeliveryAccessKey| {
        let recipients: Vec<MultiRecipient<'_>> = devices
            .iter()
            .map(|&(account, device)| MultiRecipient {
                address: a(account, device),
                identity_key: identity_of(&w, account).public_key(),
                payload: b"",
            })
            .collect();
        let sealed = seal_multi(
            &mut rng(12),
            &w.alice,
            &w.alice_cert,
            &recipients,
            CONTENT,
            Some(&token),
        )
        .unwrap();
        validate(&sealed, &policy, &registry).map(drop)
    };
    let bob_and_carol = [(BOB, 1), (CAROL, 1), (BOB, 2)];
    let wrong = Err(EnvelopeError::WrongToken);
    // Two devices of one account count once.
    assert_eq!(
        to(&bob_and_carol, DeliveryAccessKey::combine([&bob, &carol])),
        Ok(())
    );
    assert_eq!(
        to(
            &bob_and_carol,
            DeliveryAccessKey::combine([&bob, &bob, &carol])
        ),
        wrong
    );
    assert_eq!(to(&bob_and_carol, bob.clone()), wrong);
    assert_eq!(to(&bob_and_carol, carol.clone()), wrong);
    let bob_three = [(BOB, 7), (BOB, 1), (BOB, 2)];
    assert_eq!(to(&bob_three, bob.clone()), Ok(()));
    assert_eq!(
        to(&bob_three, DeliveryAccessKey::combine([&bob, &bob, &bob])),
        Ok(())
    );
    assert_eq!(
        to(&bob_three, DeliveryAccessKey::combine([&bob, &bob])),
        wrong
    );
    // "bob" and "bobby" are distinct accounts, adjacent in wire order.
    let prefixed = [(BOBBY, 1), (BOB, 1), (BOB, 2), (BOBBY, 2)];
    assert_eq!(
        to(&prefixed, DeliveryAccessKey::combine([&bob, &bobby])),
        Ok(())
    );
    assert_eq!(to(&prefixed, bob.clone()), wrong);
    let with_unknown = [(BOB, 1), (NOBODY, 1)];
    assert_eq!(
        to(&with_unknown, bob.clone()),
        Err(EnvelopeError::UnknownRecipient)
    );
}

// ---------------------------------------------------------------------------
// Limits at sealing.

#[test]
fn sealing_limits() {
    let w = world();
    let big = vec![0u8; MAX_INNER_LEN + 1];
    let too_big = SealedContent {
        message: &big,
        ..CONTENT
    };
    assert_eq!(
        seal(
            &mut rng(1),
            &w.alice,
            &w.alice_cert,
            a(BOB, 1),
            w.bob.public_key(),
            too_big,
            None
        ),
        Err(Error::MessageTooLarge)
    );
    assert_eq!(
        seal_multi(
            &mut rng(1),
            &w.alice,
            &w.alice_cert,
            &three(&w),
            too_big,
            None
        ),
        Err(Error::MessageTooLarge)
    );

    // The largest payload, padded, fits the entry's u16 length.
    let payload = vec![0x5a; MAX_PAYLOAD_LEN];
    assert!(MIN_WRAPPED_LEN + padme(MAX_PAYLOAD_LEN + 1) <= usize::from(u16::MAX));
    let mut to_bob = [MultiRecipient {
        address: a(BOB, 1),
        identity_key: w.bob.public_key(),
        payload: &payload,
    }];
    let sealed = seal_multi(
        &mut rng(1),
        &w.alice,
        &w.alice_cert,
        &to_bob,
        CONTENT,
        Some(&access_key(BOB)),
    )
    .unwrap();
    let part = split(&sealed).remove(0).1;
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    assert_eq!(outcome(open(&part, &me)), delivered(&payload));
    let longer = vec![0x5a; MAX_PAYLOAD_LEN + 1];
    to_bob[0].payload = &longer;
    assert_eq!(
        seal_multi(&mut rng(1), &w.alice, &w.alice_cert, &to_bob, CONTENT, None),
        Err(Error::MessageTooLarge)
    );

    let crowd = vec![
        MultiRecipient {
            address: a(BOB, 1),
            identity_key: w.bob.public_key(),
            payload: b"",
        };
        MAX_RECIPIENTS + 1
    ];
    assert_eq!(
        seal_multi(&mut rng(1), &w.alice, &w.alice_cert, &crowd, CONTENT, None),
        Err(Error::Envelope(EnvelopeError::TooManyRecipients {
            count: MAX_RECIPIENTS + 1,
            max: MAX_RECIPIENTS
        }))
    );
    // Account ids: 1 to 64 bytes.
    assert!(Address::new(&[b'x'; MAX_ACCOUNT_ID_LEN], 0).is_ok());
    assert_eq!(
        Address::new(b"", 0),
        Err(DecodeError::InvalidValue {
            field: "account id"
        })
    );
    assert!(matches!(
        Address::new(&[b'x'; MAX_ACCOUNT_ID_LEN + 1], 0),
        Err(DecodeError::LimitExceeded { .. })
    ));
}

// ---------------------------------------------------------------------------
// Overhead.

#[test]
fn overhead_of_single_and_multi_envelopes() {
    let w = world();
    let cert_len = w.alice_cert.encode().len();
    // 13 ‖ len ‖ "alice" ‖ device ‖ identity ‖ expires ‖ server cert ‖ signature.
    assert_eq!(
        cert_len,
        1 + 1 + ALICE.len() + 4 + KEY_LEN + 8 + SERVER_CERTIFICATE_LEN + 64
    );
    assert_eq!(cert_len, 220);
    let address_len = 1 + BOB.len() + 4;
    // Tag, address, token flag and token, E, sender block, content tag.
    let fixed_with_token = 1 + address_len + 1 + TOKEN_LEN + KEY_LEN + SENDER_BLOCK_LEN + TAG_LEN;
    println!(
        "single envelope to {:?} with a {cert_len}-byte certificate: {} bytes + certificate + \
         {CONTENT_FRAMING} framing = {} bytes over the message before padding ({} without a \
         token); content pads to a Padmé length (at least {MIN_PADDED_LEN})",
        std::str::from_utf8(BOB).unwrap(),
        fixed_with_token,
        fixed_with_token + cert_len + CONTENT_FRAMING,
        fixed_with_token - TOKEN_LEN + cert_len + CONTENT_FRAMING,
    );
    assert_eq!(fixed_with_token + cert_len + CONTENT_FRAMING, 351);
    for message_len in [0usize, 1, 100, 1000, 10_000, 100_000] {
        let message = vec![7u8; message_len];
        let content = SealedContent {
            message: &message,
            ..CONTENT
        };
        for token in [Some(access_key(BOB)), None] {
            let sealed = seal(
                &mut rng(13),
                &w.alice,
                &w.alice_cert,
                a(BOB, 1),
                w.bob.public_key(),
                content,
                token.as_ref(),
            )
            .unwrap();
            let padded = padme(cert_len + CONTENT_FRAMING + message_len);
            let fixed = fixed_with_token - if token.is_some() { 0 } else { TOKEN_LEN };
            assert_eq!(sealed.len(), fixed + padded);
            if token.is_some() {
                println!(
                    "  message {message_len:>6} bytes -> envelope {:>6} bytes, overhead {} \
                     ({} of it padding)",
                    sealed.len(),
                    sealed.len() - message_len,
                    padded - (cert_len + CONTENT_FRAMING + message_len)
                );
            }
        }
    }

    // Per recipient: the entry, `ENTRY_FIXED + L` bytes plus the padded payload.
    assert_eq!(ENTRY_FIXED, 71);
    let mut per_recipient = Vec::new();
    for len in [1usize, 3, 5, 16, 36, MAX_ACCOUNT_ID_LEN] {
        let account = vec![b'q'; len];
        let sizes: Vec<usize> = [1usize, 2, 3]
            .iter()
            .map(|&n| {
                let recipients: Vec<MultiRecipient<'_>> = (0..n as u32)
                    .map(|device| MultiRecipient {
                        address: a(&account, device),
                        identity_key: w.bob.public_key(),
                        payload: b"",
                    })
                    .collect();
                seal_multi(
                    &mut rng(14),
                    &w.alice,
                    &w.alice_cert,
                    &recipients,
                    CONTENT,
                    Some(&access_key(&account)),
                )
                .unwrap()
                .len()
            })
            .collect();
        assert_eq!(sizes[1] - sizes[0], ENTRY_FIXED + len);
        assert_eq!(sizes[2] - sizes[1], ENTRY_FIXED + len);
        // Fixed part: tag, E, count, token flag and token, sender block, content.
        let padded = padme(cert_len + CONTENT_FRAMING + CONTENT.message.len());
        assert_eq!(
            sizes[0],
            1 + KEY_LEN
                + 2
                + (ENTRY_FIXED + len)
                + 1
                + TOKEN_LEN
                + SENDER_BLOCK_LEN
                + padded
                + TAG_LEN
        );
        per_recipient.push((len, ENTRY_FIXED + len));
    }
    // A payload adds its padded length (Padmé, like the content).
    let with_payload = seal_multi(
        &mut rng(14),
        &w.alice,
        &w.alice_cert,
        &[MultiRecipient {
            address: a(BOB, 1),
            identity_key: w.bob.public_key(),
            payload: &[1; 100],
        }],
        CONTENT,
        None,
    )
    .unwrap();
    let without = seal_multi(
        &mut rng(14),
        &w.alice,
        &w.alice_cert,
        &[MultiRecipient {
            address: a(BOB, 1),
            identity_key: w.bob.public_key(),
            payload: b"",
        }],
        CONTENT,
        None,
    )
    .unwrap();
    assert_eq!(with_payload.len() - without.len(), padme(100 + 1));
    println!(
        "multi envelope: {ENTRY_FIXED} + L bytes per recipient device (account id of L \
         bytes) + its padded payload if any (a 100-byte payload adds {}); with an empty \
         payload, (L, bytes): {per_recipient:?}; fixed part {} bytes + certificate + \
         framing + padding",
        padme(101),
        1 + KEY_LEN + 2 + 1 + TOKEN_LEN + SENDER_BLOCK_LEN + TAG_LEN
    );
}

// ---------------------------------------------------------------------------
// A certified but malicious sender, through an independent sealer.

const BASEPOINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 9;
    b
};
const ZERO_NONCE: [u8; 12] = [0; 12];

/// A single-recipient envelope sealed from the format description (SPEC.md
/// §9.4) with the test's own SHA-2/HMAC/HKDF and the crate's bare primitives
/// (`hazmat`): any padded content and any claimed sender key can go in.
struct Forged<'a> {
    ephemeral_secret: [u8; 32],
    sender_seed: [u8; 32],
    /// The identity key the sender block names (normally the sender's own).
    claimed_sender: [u8; 32],
    recipient: Address<'a>,
    recipient_key: &'a IdentityKey,
    token: Option<[u8; TOKEN_LEN]>,
    padded_content: Vec<u8>,
}

impl Forged<'_> {
    fn seal(&self) -> Vec<u8> {
        use reference::{hkdf_sha256, sha512};
        let e_pub = hazmat::x25519(self.ephemeral_secret, BASEPOINT).unwrap();
        let account = self.recipient.account_id();
        let mut header = vec![SINGLE_TAG, u8::try_from(account.len()).unwrap()];
        header.extend_from_slice(account);
        header.extend_from_slice(&self.recipient.device_id().to_be_bytes());
        match self.token {
            Some(t) => {
                header.push(1);
                header.extend_from_slice(&t);
            }
            None => header.push(0),
        }
        header.extend_from_slice(&e_pub);
        let their = *self.recipient_key.dh_public().as_bytes();
        let eph_dh = hazmat::x25519(self.ephemeral_secret, their).unwrap();
        let salt = [&self.recipient_key.to_bytes()[..], &e_pub[..]].concat();
        let okm = hkdf_sha256(&salt, &eph_dh, b"ratchetbox v2 sealed ephemeral", 64);
        let (chain, k1) = okm.split_at(32);
        let sender_block = hazmat::aead_seal(
            k1.try_into().unwrap(),
            &ZERO_NONCE,
            &header,
            &self.claimed_sender,
        )
        .unwrap();
        // The X25519 scalar of an Ed25519 identity: clamp(SHA-512(seed)[..32]);
        // `hazmat::x25519` clamps.
        let scalar: [u8; 32] = sha512(&self.sender_seed)[..32].try_into().unwrap();
        let static_dh = hazmat::x25519(scalar, their).unwrap();
        let salt = [chain, &sender_block[..]].concat();
        let k2 = hkdf_sha256(&salt, &static_dh, b"ratchetbox v2 sealed static", 32);
        let aad = [&header[..], &sender_block[..]].concat();
        let content = hazmat::aead_seal(
            k2[..].try_into().unwrap(),
            &ZERO_NONCE,
            &aad,
            &self.padded_content,
        )
        .unwrap();
        [header, sender_block, content].concat()
    }
}

/// Sealed content before padding:
/// `cert len u16 ‖ cert ‖ kind u8 ‖ hint u8 ‖ message len u32 ‖ message`.
fn inner(cert: &[u8], kind: u8, hint: u8, message_len: u32, message: &[u8]) -> Vec<u8> {
    let cert_len = u16::try_from(cert.len()).unwrap().to_be_bytes();
    [
        &cert_len[..],
        cert,
        &[kind, hint],
        &message_len.to_be_bytes(),
        message,
    ]
    .concat()
}

fn content_of(cert: &[u8], message: &[u8]) -> Vec<u8> {
    inner(cert, 2, 1, u32::try_from(message.len()).unwrap(), message)
}

/// Padmé padding: `0x80` then zeros up to the padded length.
fn pad(mut content: Vec<u8>) -> Vec<u8> {
    let target = padme(content.len() + 1);
    content.push(0x80);
    content.resize(target, 0);
    content
}

fn forged_by_alice<'a>(w: &'a World, padded_content: Vec<u8>) -> Forged<'a> {
    Forged {
        ephemeral_secret: [0x77; 32],
        sender_seed: ALICE_SEED,
        claimed_sender: w.alice.public_key().to_bytes(),
        recipient: a(BOB, 1),
        recipient_key: w.bob.public_key(),
        token: Some(access_key(BOB).to_bytes()),
        padded_content,
    }
}

#[test]
fn reference_primitives_match_known_answers() {
    use reference::{hkdf_sha256, hmac_sha256, sha256, sha512};
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(&[b'a'; 1000])),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
    assert_eq!(
        hex(&sha512(b"abc")),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
    // RFC 4231 test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // RFC 5869 test case 1.
    let okm = hkdf_sha256(
        &(0..=12).collect::<Vec<u8>>(),
        &[0x0b; 22],
        &(0xf0..=0xf9).collect::<Vec<u8>>(),
        42,
    );
    assert_eq!(
        hex(&okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // The crate's delivery key derivation is HKDF-SHA256 as documented.
    let secret = [0x42; 32];
    let derived = hkdf_sha256(&[0; 32], &secret, b"ratchetbox v2 delivery access key", 16);
    assert_eq!(
        DeliveryAccessKey::derive(&secret).to_bytes()[..],
        derived[..]
    );
    // The X25519 form of an identity: clamp(SHA-512(seed)[..32]) times the base point.
    let scalar: [u8; 32] = sha512(&ALICE_SEED)[..32].try_into().unwrap();
    let w = world();
    assert_eq!(
        &hazmat::x25519(scalar, BASEPOINT).unwrap(),
        w.alice.public_key().dh_public().as_bytes()
    );
}

#[test]
fn an_independent_sealer_reproduces_seal_byte_for_byte() {
    let w = world();
    for token in [Some(access_key(BOB)), None] {
        let mut script = ScriptedRng {
            bytes: vec![0x77; 32],
        };
        let sealed = seal(
            &mut script,
            &w.alice,
            &w.alice_cert,
            a(BOB, 1),
            w.bob.public_key(),
            CONTENT,
            token.as_ref(),
        )
        .unwrap();
        assert!(
            script.bytes.is_empty(),
            "seal draws exactly the ephemeral secret"
        );
        let forged = Forged {
            token: token.map(|t| t.to_bytes()),
            ..forged_by_alice(&w, pad(content_of(&w.alice_cert.encode(), CONTENT.message)))
        };
        assert_eq!(hex(&forged.seal()), hex(&sealed));
    }
}

/// One entry of a forged multi-recipient envelope.
struct ForgedEntry<'a> {
    address: Address<'a>,
    key: &'a IdentityKey,
    /// `P_i` exactly as it goes after M in the wrapped key (padded or not).
    p: Vec<u8>,
}

/// A multi-recipient envelope sealed from SPEC.md §9.6 with the test's own
/// primitives: any M, payload bytes, content and claimed sender can go in.
struct ForgedMulti<'a> {
    m: [u8; 32],
    ephemeral_secret: [u8; 32],
    /// Whose X25519 key makes the authentication tags.
    sender_seed: [u8; 32],
    /// The identity key `C_sender` names (normally the sender's own).
    claimed_sender: [u8; 32],
    /// In wire order.
    entries: Vec<ForgedEntry<'a>>,
    token: Option<[u8; TOKEN_LEN]>,
    padded_content: Vec<u8>,
}

/// `u8(len) ‖ account ‖ u32(device)`.
fn encoded_address(address: Address<'_>) -> Vec<u8> {
    let account = address.account_id();
    [
        &[u8::try_from(account.len()).unwrap()][..],
        account,
        &address.device_id().to_be_bytes(),
    ]
    .concat()
}

impl ForgedMulti<'_> {
    /// The v2 per-recipient wrap key `K_i = HKDF-SHA256(salt = Encode(IK_i) ‖ E,
    /// ikm = DH(E, IK_i), info = "ratchetbox v2 sealed multi wrap" ‖ address_i,
    /// L = 32)`: the address gives the devices of one account (one `IK_i`)
    /// distinct keys.
    fn wrap_key(&self, entry: &ForgedEntry<'_>) -> [u8; 32] {
        use reference::hkdf_sha256;
        let e = self.ephemeral_secret;
        let e_pub = hazmat::x25519(e, BASEPOINT).unwrap();
        let salt = [&entry.key.to_bytes()[..], &e_pub].concat();
        let wrap_dh = hazmat::x25519(e, *entry.key.dh_public().as_bytes()).unwrap();
        let info = [
            &b"ratchetbox v2 sealed multi wrap"[..],
            &encoded_address(entry.address),
        ]
        .concat();
        hkdf_sha256(&salt, &wrap_dh, &info, 32).try_into().unwrap()
    }

    fn seal(&self) -> Vec<u8> {
        use reference::{hkdf_sha256, hmac_sha256, sha256, sha512};
        let e = self.ephemeral_secret;
        let e_pub = hazmat::x25519(e, BASEPOINT).unwrap();
        let okm = hkdf_sha256(&[0; 32], &self.m, b"ratchetbox v2 sealed multi content", 64);
        let (kc, ks) = okm.split_at(32);
        let c_sender = hazmat::aead_seal(
            ks.try_into().unwrap(),
            &ZERO_NONCE,
            &e_pub,
            &self.claimed_sender,
        )
        .unwrap();
        let aad = [&e_pub[..], &c_sender].concat();
        let c_content = hazmat::aead_seal(
            kc.try_into().unwrap(),
            &ZERO_NONCE,
            &aad,
            &self.padded_content,
        )
        .unwrap();
        let shared = [c_sender, c_content].concat();
        let shared_hash = sha256(&shared);
        let scalar: [u8; 32] = sha512(&self.sender_seed)[..32].try_into().unwrap();

        let count = u16::try_from(self.entries.len()).unwrap();
        let mut out = [&[MULTI_TAG][..], &e_pub, &count.to_be_bytes()].concat();
        for entry in &self.entries {
            let address = encoded_address(entry.address);
            let their = *entry.key.dh_public().as_bytes();
            let k = self.wrap_key(entry);
            let w_i = hazmat::aead_seal(
                &k,
                &ZERO_NONCE,
                &[&address[..], &e_pub].concat(),
                &[&self.m[..], &entry.p].concat(),
            )
            .unwrap();
            let salt = [&self.claimed_sender[..], &entry.key.to_bytes()].concat();
            let auth_dh = hazmat::x25519(scalar, their).unwrap();
            let a_i = hkdf_sha256(&salt, &auth_dh, b"ratchetbox v2 sealed multi auth", 32);
            let t_i = hmac_sha256(&a_i, &[&e_pub[..], &address, &w_i, &shared_hash].concat());
            out.extend_from_slice(&address);
            out.extend_from_slice(&u16::try_from(w_i.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&w_i);
            out.extend_from_slice(&t_i[..AUTH_TAG_LEN]);
        }
        match self.token {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&shared);
        out
    }
}

/// `P_i` for a payload: empty, or padded like content.
fn padded_payload(payload: &[u8]) -> Vec<u8> {
    if payload.is_empty() {
        Vec::new()
    } else {
        pad(payload.to_vec())
    }
}

/// Alice's honest multi-recipient envelope to bob/1, bob/2, carol/1, forged.
fn forged_multi_by_alice(w: &World) -> ForgedMulti<'_> {
    let entries = [(BOB, 1), (BOB, 2), (CAROL, 1)]
        .into_iter()
        .map(|(account, device)| ForgedEntry {
            address: a(account, device),
            key: identity_of(w, account).public_key(),
            p: padded_payload(payload_for(&(account.to_vec(), device))),
        })
        .collect();
    ForgedMulti {
        m: [0x4d; 32],
        ephemeral_secret: [0x45; 32],
        sender_seed: ALICE_SEED,
        claimed_sender: w.alice.public_key().to_bytes(),
        entries,
        token: Some(DeliveryAccessKey::combine([&access_key(BOB), &access_key(CAROL)]).to_bytes()),
        padded_content: pad(content_of(&w.alice_cert.encode(), CONTENT.message)),
    }
}

#[test]
fn an_independent_sealer_reproduces_seal_multi_byte_for_byte() {
    let w = world();
    let honest = forged_multi_by_alice(&w);
    // seal_multi draws M, then the ephemeral secret.
    let mut script = ScriptedRng {
        bytes: [honest.m, honest.ephemeral_secret].concat(),
    };
    let token = DeliveryAccessKey::combine([&access_key(BOB), &access_key(CAROL)]);
    let sealed = seal_multi(
        &mut script,
        &w.alice,
        &w.alice_cert,
        &three(&w),
        CONTENT,
        Some(&token),
    )
    .unwrap();
    assert!(script.bytes.is_empty(), "seal_multi draws exactly M and E");
    assert_eq!(hex(&honest.seal()), hex(&sealed));
    // The wrap keys the crate uses are the reference's, and Bob's two devices
    // (one identity key) get distinct keys under the shared zero nonce.
    let bob_keys = hazmat::sealed_multi_entry_keys(&sealed, &w.bob).unwrap();
    assert_eq!(
        bob_keys,
        [
            (honest.wrap_key(&honest.entries[0]), ZERO_NONCE),
            (honest.wrap_key(&honest.entries[1]), ZERO_NONCE),
        ]
    );
    assert_ne!(bob_keys[0].0, bob_keys[1].0);
    let carol_keys = hazmat::sealed_multi_entry_keys(&sealed, &w.carol).unwrap();
    assert_eq!(
        carol_keys,
        [(honest.wrap_key(&honest.entries[2]), ZERO_NONCE)]
    );
}

/// A sender holding a valid certificate can put anything in the content; `open`
/// must reject it with a typed error, never panic or accept.
///
/// Observed: malformed *inner* content (padding, kind, hint, lengths) comes out
/// as `Error::Decode(..)`, as SPEC.md §9.9 says ("malformed → decode error"),
/// though `open`'s documentation does not list `Error::Decode`.
#[test]
fn a_certified_sender_cannot_smuggle_malformed_content_past_open() {
    let w = world();
    let cert = w.alice_cert.encode();
    let msg = CONTENT.message;
    let msg_len = u32::try_from(msg.len()).unwrap();
    let mut no_marker = content_of(&cert, msg);
    no_marker.resize(padme(no_marker.len() + 1), 0);
    let decode = |e: DecodeError| Err(Error::Decode(e));
    let invalid = |field: &'static str| decode(DecodeError::InvalidValue { field });
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "padding without its 0x80 marker",
            no_marker,
            invalid("padding"),
        ),
        (
            "all-zero content",
            vec![0; MIN_PADDED_LEN],
            invalid("padding"),
        ),
        (
            "inner kind 0",
            pad(inner(&cert, 0, 1, msg_len, msg)),
            invalid("inner kind"),
        ),
        (
            "inner kind 4",
            pad(inner(&cert, 4, 1, msg_len, msg)),
            invalid("inner kind"),
        ),
        (
            "content hint 3",
            pad(inner(&cert, 2, 3, msg_len, msg)),
            invalid("content hint"),
        ),
        (
            "message length beyond the content",
            pad(inner(&cert, 2, 1, msg_len + 1, msg)),
            decode(DecodeError::Truncated {
                field: "inner message",
            }),
        ),
        (
            "bytes after the message",
            pad(inner(&cert, 2, 1, msg_len - 2, msg)),
            decode(DecodeError::TrailingBytes { extra: 2 }),
        ),
        (
            "message length above MAX_INNER_LEN",
            pad(inner(&cert, 2, 1, u32::MAX, msg)),
            decode(DecodeError::LimitExceeded {
                field: "inner message length",
                max: MAX_INNER_LEN as u64,
                found: u64::from(u32::MAX),
            }),
        ),
        (
            "certificate length beyond the content",
            pad([&[0xff, 0xff][..], &cert].concat()),
            decode(DecodeError::Truncated {
                field: "sender certificate",
            }),
        ),
        (
            // More padding than needed, still a Padmé length: accepted.
            "padded to a larger Padmé length",
            {
                let mut p = pad(content_of(&cert, msg));
                p.resize(padme(p.len() * 3), 0);
                p
            },
            delivered(b""),
        ),
    ];
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    for (name, padded_content, expected) in cases {
        assert!(is_padded_len(padded_content.len()), "{name}");
        let single = forged_by_alice(&w, padded_content.clone()).seal();
        // Structurally valid: the server cannot tell.
        assert!(
            validate(&single, &ServerPolicy::default(), &registry).is_ok(),
            "{name}"
        );
        assert_eq!(outcome(open(&single, &me)), expected, "single: {name}");
        let multi = ForgedMulti {
            padded_content,
            ..forged_multi_by_alice(&w)
        }
        .seal();
        let expected = expected.map(|(m, _)| (m, b"for bob 1".to_vec()));
        assert_eq!(outcome(open(&multi, &me)), expected, "multi: {name}");
        let part = split(&multi).remove(0).1;
        assert_eq!(outcome(open(&part, &me)), expected, "part: {name}");
    }

    // Payloads: a non-empty one must be padded. The server checks its length
    // class; `open` checks the marker.
    let mut raw = forged_multi_by_alice(&w);
    raw.entries[0].p = b"unpadded".to_vec();
    let raw = raw.seal();
    assert_eq!(
        validate(&raw, &ServerPolicy::default(), &registry).err(),
        Some(EnvelopeError::InvalidPadding)
    );
    assert_eq!(
        open(&raw, &me),
        Err(Error::Envelope(EnvelopeError::InvalidPadding))
    );
    let mut unmarked = forged_multi_by_alice(&w);
    unmarked.entries[0].p = vec![0; MIN_PADDED_LEN];
    let unmarked = unmarked.seal();
    assert!(validate(&unmarked, &ServerPolicy::default(), &registry).is_ok());
    assert_eq!(
        open(&unmarked, &me),
        Err(Error::Decode(DecodeError::InvalidValue {
            field: "payload padding"
        }))
    );
    // A padded empty payload is an empty payload.
    let mut padded_empty = forged_multi_by_alice(&w);
    padded_empty.entries[0].p = pad(Vec::new());
    assert_eq!(outcome(open(&padded_empty.seal(), &me)), delivered(b""));

    // Malformed certificates are refused, carrying the decode error.
    for (bytes, e) in malformed_certificates(&cert) {
        let forged = forged_by_alice(&w, pad(content_of(&bytes, msg))).seal();
        let got = open(&forged, &me);
        assert_eq!(
            got,
            Err(Error::Certificate(CertificateError::Malformed(e))),
            "{e:?}"
        );
    }
}

/// Someone without the sender's identity key (Mallory, or a recipient who
/// learned M) cannot pass as the sender: the static layer of a single envelope
/// and the per-recipient tag `T_i` of a multi-recipient one both need
/// `DH(IK_S, IK_R)`, and `T_i` covers `SHA-256(shared)`.
#[test]
fn only_the_holder_of_the_sender_key_can_seal_as_the_sender() {
    let w = world();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    // Single: Mallory names Alice in the first layer.
    let single = Forged {
        sender_seed: [0xEE; 32],
        ..forged_by_alice(&w, pad(content_of(&w.alice_cert.encode(), CONTENT.message)))
    }
    .seal();
    assert_eq!(open(&single, &me), Err(Error::DecryptionFailed));
    // Single: Alice names Carol in the first layer.
    let single = Forged {
        claimed_sender: w.carol.public_key().to_bytes(),
        ..forged_by_alice(&w, pad(content_of(&w.alice_cert.encode(), CONTENT.message)))
    }
    .seal();
    assert_eq!(open(&single, &me), Err(Error::DecryptionFailed));
    // Multi: Mallory names Alice and makes the tags with her own key.
    let multi = ForgedMulti {
        sender_seed: [0xEE; 32],
        ..forged_multi_by_alice(&w)
    }
    .seal();
    assert!(validate(&multi, &ServerPolicy::default(), &registry).is_ok());
    for (addr, part) in split(&multi) {
        let them = recipient(identity_of(&w, &addr.0), a(&addr.0, addr.1), &w.trust);
        assert_eq!(open(&part, &them), Err(Error::DecryptionFailed), "{addr:?}");
    }
    // Multi: Carol, a recipient, learns M from her own entry. She re-encrypts
    // other content under it (same M and E, so Bob's wrapped key is unchanged)
    // and keeps Bob's tag, which she cannot recompute.
    let honest = forged_multi_by_alice(&w).seal();
    let mut swapped = forged_multi_by_alice(&w);
    swapped.padded_content = pad(content_of(&w.alice_cert.encode(), b"not what Alice said"));
    let swapped = swapped.seal();
    let (h, s) = (decompose(&honest), decompose(&swapped));
    assert_eq!(
        h.entries[0][..ENTRY_FIXED + 3 - AUTH_TAG_LEN],
        s.entries[0][..ENTRY_FIXED + 3 - AUTH_TAG_LEN]
    );
    let spliced = compose(
        &s.head,
        &[&h.entries[0], &s.entries[1], &s.entries[2]],
        &s.tail,
    );
    assert_eq!(open(&spliced, &me), Err(Error::DecryptionFailed));
    // Bob's part of the untouched swapped envelope opens: the forger is Alice.
    assert_eq!(
        outcome(open(&swapped, &me)).map(|(m, _)| m),
        Ok(b"not what Alice said".to_vec())
    );
}

/// Malformed sender certificates and the decode error each gives.
fn malformed_certificates(cert: &[u8]) -> Vec<(Vec<u8>, DecodeError)> {
    // The v1 sender certificate tag.
    let mut wrong_tag = cert.to_vec();
    wrong_tag[0] = 0x11;
    vec![
        (
            Vec::new(),
            DecodeError::Truncated {
                field: "format tag",
            },
        ),
        (
            cert[..100].to_vec(),
            DecodeError::Truncated {
                field: "server certificate signature",
            },
        ),
        (
            [cert, &[0]].concat(),
            DecodeError::TrailingBytes { extra: 1 },
        ),
        (
            wrong_tag,
            DecodeError::UnknownFormat {
                expected: 0x13,
                found: 0x11,
            },
        ),
    ]
}

#[test]
fn a_malformed_certificate_is_a_certificate_error_through_open() {
    let w = world();
    let cert = w.alice_cert.encode();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    let mut wrong = Vec::new();
    for (bytes, e) in malformed_certificates(&cert) {
        assert_eq!(SenderCertificate::decode(&bytes), Err(e));
        let forged = forged_by_alice(&w, pad(content_of(&bytes, CONTENT.message))).seal();
        let got = open(&forged, &me);
        if got != Err(Error::Certificate(CertificateError::Malformed(e))) {
            wrong.push(format!("{e:?}: {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected Certificate(Malformed(..)): {wrong:#?}"
    );
}

/// Bytes anyone can produce for Bob (no sender key needed): the first layer of
/// a single envelope (keyed by `DH(E, IK_R)` only), and the wrapped key and
/// `C_sender` of a multi-recipient entry (keyed by `DH(E, IK_i)` and M), here
/// made by Mallory. `open` decodes them before the sender is authenticated;
/// each comes with the decode error it gives today.
fn unauthenticated_forgeries(w: &World) -> Vec<(&'static str, Vec<u8>, DecodeError)> {
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    let mallory = [0xEE; 32];
    let content = pad(content_of(&w.alice_cert.encode(), CONTENT.message));
    let single = Forged {
        sender_seed: mallory,
        claimed_sender: small_order,
        ..forged_by_alice(w, content)
    }
    .seal();
    let bad_identity = ForgedMulti {
        sender_seed: mallory,
        claimed_sender: small_order,
        ..forged_multi_by_alice(w)
    }
    .seal();
    let mut bad_payload = ForgedMulti {
        sender_seed: mallory,
        ..forged_multi_by_alice(w)
    };
    bad_payload.entries[0].p = vec![0; MIN_PADDED_LEN];
    let bad_payload = bad_payload.seal();
    let invalid_key = DecodeError::InvalidIdentityKey;
    let payload_padding = DecodeError::InvalidValue {
        field: "payload padding",
    };
    vec![
        ("single, invalid identity in C1", single, invalid_key),
        (
            "part, invalid identity in C_sender",
            split(&bad_identity).remove(0).1,
            invalid_key,
        ),
        (
            "multi, invalid identity in C_sender",
            bad_identity,
            invalid_key,
        ),
        (
            "part, unmarked payload padding",
            split(&bad_payload).remove(0).1,
            payload_padding,
        ),
        (
            "multi, unmarked payload padding",
            bad_payload,
            payload_padding,
        ),
    ]
}

#[test]
fn unauthenticated_forgeries_are_decryption_failures() {
    let w = world();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    let wrong: Vec<String> = unauthenticated_forgeries(&w)
        .into_iter()
        .map(|(name, bytes, _)| (name, open(&bytes, &me)))
        .filter(|(_, got)| *got != Err(Error::DecryptionFailed))
        .map(|(name, got)| format!("{name}: {got:?}"))
        .collect();
    assert!(wrong.is_empty(), "expected DecryptionFailed: {wrong:#?}");
}

/// The forgeries above are refused either way (today with `Error::Decode`), so
/// a change in either direction is noticed and none is ever accepted.
#[test]
fn unauthenticated_forgeries_are_refused() {
    let w = world();
    let me = recipient(&w.bob, a(BOB, 1), &w.trust);
    for (name, bytes, today) in unauthenticated_forgeries(&w) {
        let got = open(&bytes, &me);
        assert!(
            got == Err(Error::Decode(today)) || got == Err(Error::DecryptionFailed),
            "{name}: {got:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Property: random recipient sets.

#[derive(Clone, Debug)]
struct Case {
    /// Account id lengths, one per account (1 to 5 accounts).
    account_lens: Vec<usize>,
    /// (account index, device id, payload), 1 to 12 entries before deduplication.
    devices: Vec<(usize, u32, Vec<u8>)>,
    content_len: usize,
    kind: u8,
    seed: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..=MAX_ACCOUNT_ID_LEN, 1..=5),
        prop::collection::vec(
            (
                0usize..5,
                0u32..6,
                prop::collection::vec(any::<u8>(), 0..48),
            ),
            1..=12,
        ),
        0usize..2000,
        0u8..3,
        any::<u8>(),
    )
        .prop_map(|(account_lens, devices, content_len, kind, seed)| Case {
            account_lens,
            devices,
            content_len,
            kind,
            seed,
        })
}

fn run_case(case: &Case) {
    let w = world();
    let accounts: Vec<Vec<u8>> = case
        .account_lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut id = vec![b'.'; len];
            id[0] = b'A' + u8::try_from(i).unwrap();
            id
        })
        .collect();
    let identities: Vec<IdentityKeyPair> = (0..accounts.len())
        .map(|i| IdentityKeyPair::from_seed(&[0x40 + u8::try_from(i).unwrap(); 32]))
        .collect();
    let mut devices: Vec<(usize, u32, &[u8])> = Vec::new();
    for (account, device, payload) in &case.devices {
        let account = account % accounts.len();
        if !devices.iter().any(|d| (d.0, d.1) == (account, *device)) {
            devices.push((account, *device, payload));
        }
    }
    let recipients: Vec<MultiRecipient<'_>> = devices
        .iter()
        .map(|&(account, device, payload)| MultiRecipient {
            address: a(&accounts[account], device),
            identity_key: identities[account].public_key(),
            payload,
        })
        .collect();
    let message: Vec<u8> = (0..case.content_len)
        .map(|i| (i as u8).wrapping_mul(31) ^ case.seed)
        .collect();
    let kind = [InnerKind::PreKey, InnerKind::Ratchet, InnerKind::Opaque][usize::from(case.kind)];
    let content = SealedContent {
        kind,
        hint: ContentHint::Default,
        message: &message,
    };
    let mut used: Vec<usize> = devices.iter().map(|d| d.0).collect();
    used.sort_unstable();
    used.dedup();
    let keys: Vec<DeliveryAccessKey> = accounts.iter().map(|id| access_key(id)).collect();
    let token = DeliveryAccessKey::combine(used.iter().map(|&i| &keys[i]));
    let case_registry = |id: &[u8]| {
        accounts
            .iter()
            .position(|x| x == id)
            .map(|i| keys[i].clone())
    };

    let sealed = seal_multi(
        &mut rng(case.seed),
        &w.alice,
        &w.alice_cert,
        &recipients,
        content,
        Some(&token),
    )
    .unwrap();

    // Sizes: every entry is ENTRY_FIXED + L + padded payload; the content is padded.
    let cert_len = w.alice_cert.encode().len();
    let padded = padme(cert_len + CONTENT_FRAMING + message.len());
    assert!(is_padded_len(padded));
    let entry_len = |&(account, _, payload): &(usize, u32, &[u8])| {
        ENTRY_FIXED + accounts[account].len() + padded_payload_len(payload.len())
    };
    let entries: usize = devices.iter().map(entry_len).sum();
    let shared = SENDER_BLOCK_LEN + padded + TAG_LEN;
    assert_eq!(
        sealed.len(),
        1 + KEY_LEN + 2 + entries + 1 + TOKEN_LEN + shared
    );

    let ValidatedEnvelope::Multi(multi) =
        validate(&sealed, &ServerPolicy::default(), &case_registry).unwrap()
    else {
        panic!("multi");
    };
    assert_eq!(multi.recipient_count(), devices.len());
    let mut expected_order: Vec<&(usize, u32, &[u8])> = devices.iter().collect();
    expected_order.sort_by(|x, y| (&accounts[x.0], x.1).cmp(&(&accounts[y.0], y.1)));
    let parts: Vec<_> = multi.parts().collect();
    assert_eq!(parts.len(), devices.len());
    let listed: Vec<Addr> = parts.iter().map(|p| owned(p.recipient())).collect();
    let mut buffer = vec![0u8; sealed.len()];
    for (part, &&device) in parts.iter().zip(&expected_order) {
        let (account, device_id, payload) = device;
        assert_eq!(part.recipient(), a(&accounts[account], device_id));
        assert_eq!(part.len(), 1 + KEY_LEN + entry_len(&device) + shared);
        let padded_on_wire =
            part.len() - 1 - KEY_LEN - entry_len(&device) - SENDER_BLOCK_LEN - TAG_LEN;
        assert!(is_padded_len(padded_on_wire));
        let len = part.write_to(&mut buffer).unwrap();
        let bytes = &buffer[..len];
        assert_eq!(bytes, part.pieces().concat());

        let me = recipient(&identities[account], part.recipient(), &w.trust);
        let opened = open(bytes, &me).unwrap();
        assert_eq!(opened.message, message);
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.kind, kind);
        assert_eq!(opened.sender.account_id, ALICE);
        assert_eq!(&opened.sender.identity_key, w.alice.public_key());
        for other in listed.iter().filter(|o| **o != owned(part.recipient())) {
            let index = accounts.iter().position(|x| *x == other.0).unwrap();
            let them = recipient(&identities[index], a(&other.0, other.1), &w.trust);
            assert_eq!(open(bytes, &them), Err(Error::WrongRecipient));
        }
    }
    // The whole envelope opens for its first recipient too.
    let first = expected_order[0];
    let me = recipient(
        &identities[first.0],
        a(&accounts[first.0], first.1),
        &w.trust,
    );
    assert_eq!(outcome(open(&sealed, &me)), Ok((message, first.2.to_vec())));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_recipient_sets_seal_validate_split_and_open(case in case()) {
        run_case(&case);
    }
}

// ---------------------------------------------------------------------------
// SHA-256, SHA-512, HMAC-SHA256 and HKDF-SHA256 (FIPS 180-4, RFC 2104,
// RFC 5869), written out so the forging sealer shares no code with the crate.

mod reference {
    const H256: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    const K256: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    const H512: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];

    const K512: [u64; 80] = [
        0x428a2f98d728ae22,
        0x7137449123ef65cd,
        0xb5c0fbcfec4d3b2f,
        0xe9b5dba58189dbbc,
        0x3956c25bf348b538,
        0x59f111f1b605d019,
        0x923f82a4af194f9b,
        0xab1c5ed5da6d8118,
        0xd807aa98a3030242,
        0x12835b0145706fbe,
        0x243185be4ee4b28c,
        0x550c7dc3d5ffb4e2,
        0x72be5d74f27b896f,
        0x80deb1fe3b1696b1,
        0x9bdc06a725c71235,
        0xc19bf174cf692694,
        0xe49b69c19ef14ad2,
        0xefbe4786384f25e3,
        0x0fc19dc68b8cd5b5,
        0x240ca1cc77ac9c65,
        0x2de92c6f592b0275,
        0x4a7484aa6ea6e483,
        0x5cb0a9dcbd41fbd4,
        0x76f988da831153b5,
        0x983e5152ee66dfab,
        0xa831c66d2db43210,
        0xb00327c898fb213f,
        0xbf597fc7beef0ee4,
        0xc6e00bf33da88fc2,
        0xd5a79147930aa725,
        0x06ca6351e003826f,
        0x142929670a0e6e70,
        0x27b70a8546d22ffc,
        0x2e1b21385c26c926,
        0x4d2c6dfc5ac42aed,
        0x53380d139d95b3df,
        0x650a73548baf63de,
        0x766a0abb3c77b2a8,
        0x81c2c92e47edaee6,
        0x92722c851482353b,
        0xa2bfe8a14cf10364,
        0xa81a664bbc423001,
        0xc24b8b70d0f89791,
        0xc76c51a30654be30,
        0xd192e819d6ef5218,
        0xd69906245565a910,
        0xf40e35855771202a,
        0x106aa07032bbd1b8,
        0x19a4c116b8d2d0c8,
        0x1e376c085141ab53,
        0x2748774cdf8eeb99,
        0x34b0bcb5e19b48a8,
        0x391c0cb3c5c95a63,
        0x4ed8aa4ae3418acb,
        0x5b9cca4f7763e373,
        0x682e6ff3d6b2b8a3,
        0x748f82ee5defb2fc,
        0x78a5636f43172f60,
        0x84c87814a1f0ab72,
        0x8cc702081a6439ec,
        0x90befffa23631e28,
        0xa4506cebde82bde9,
        0xbef9a3f7b2c67915,
        0xc67178f2e372532b,
        0xca273eceea26619c,
        0xd186b8c721c0c207,
        0xeada7dd6cde0eb1e,
        0xf57d4f7fee6ed178,
        0x06f067aa72176fba,
        0x0a637dc5a2c898a6,
        0x113f9804bef90dae,
        0x1b710b35131c471b,
        0x28db77f523047d84,
        0x32caab7b40c72493,
        0x3c9ebe0a15c9bebc,
        0x431d67c49c100d4c,
        0x4cc5d4becb3e42b6,
        0x597f299cfc657e2a,
        0x5fcb6fab3ad6faec,
        0x6c44198c4a475817,
    ];

    /// Merkle–Damgård padding: 0x80, zeros, then the bit length in
    /// `block / 8` big-endian bytes.
    fn md_pad(data: &[u8], block: usize) -> Vec<u8> {
        let length_bytes = block / 8;
        let mut m = data.to_vec();
        m.push(0x80);
        while m.len() % block != block - length_bytes {
            m.push(0);
        }
        let bits = (data.len() as u128) * 8;
        m.extend_from_slice(&bits.to_be_bytes()[16 - length_bytes..]);
        m
    }

    pub fn sha256(data: &[u8]) -> [u8; 32] {
        let mut h = H256;
        for block in md_pad(data, 64).chunks_exact(64) {
            let mut w = [0u32; 64];
            for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_be_bytes(bytes.try_into().unwrap());
            }
            for i in 16..64 {
                let (x, y) = (w[i - 15], w[i - 2]);
                let s0 = x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3);
                let s1 = y.rotate_right(17) ^ y.rotate_right(19) ^ (y >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for (k, wi) in K256.iter().zip(w) {
                let [a, b, c, d, e, f, g, hh] = v;
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(*k)
                    .wrapping_add(wi);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
            }
            for (x, y) in h.iter_mut().zip(v) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(h) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub fn sha512(data: &[u8]) -> [u8; 64] {
        let mut h = H512;
        for block in md_pad(data, 128).chunks_exact(128) {
            let mut w = [0u64; 80];
            for (word, bytes) in w.iter_mut().zip(block.chunks_exact(8)) {
                *word = u64::from_be_bytes(bytes.try_into().unwrap());
            }
            for i in 16..80 {
                let (x, y) = (w[i - 15], w[i - 2]);
                let s0 = x.rotate_right(1) ^ x.rotate_right(8) ^ (x >> 7);
                let s1 = y.rotate_right(19) ^ y.rotate_right(61) ^ (y >> 6);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for (k, wi) in K512.iter().zip(w) {
                let [a, b, c, d, e, f, g, hh] = v;
                let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(*k)
                    .wrapping_add(wi);
                let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
            }
            for (x, y) in h.iter_mut().zip(v) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 64];
        for (bytes, word) in out.chunks_exact_mut(8).zip(h) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = block
            .iter()
            .map(|b| b ^ 0x36)
            .chain(data.iter().copied())
            .collect();
        let outer: Vec<u8> = block
            .iter()
            .map(|b| b ^ 0x5c)
            .chain(sha256(&inner))
            .collect();
        sha256(&outer)
    }

    pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let prk = hmac_sha256(salt, ikm);
        let mut out = Vec::with_capacity(len + 32);
        let mut t: Vec<u8> = Vec::new();
        let mut counter = 1u8;
        while out.len() < len {
            t = hmac_sha256(&prk, &[&t[..], info, &[counter]].concat()).to_vec();
            out.extend_from_slice(&t);
            counter += 1;
        }
        out.truncate(len);
        out
    }
}
