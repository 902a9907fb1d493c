//! Opening: the recipient's side (SPEC.md §9.7). Every check happens before
//! anything is returned; a tampered byte anywhere is [`Error::DecryptionFailed`].

use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, PublicKey, TAG_LEN};
use crate::error::{CertificateError, EnvelopeError};
use crate::error::{DecodeError, Error};
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::plaintext::Plaintext;
use crate::sealed::address::Address;
use crate::sealed::certificate::{SenderCertificate, TrustStore, VerifiedSender};
use crate::sealed::content::{self, ContentHint, InnerKind};
use crate::sealed::keys::{
    multi_auth_key, multi_auth_tag, multi_content_keys, multi_wrap_key, single_ephemeral_keys,
    single_static_key,
};
use crate::sealed::padding;
use crate::sealed::wire::{
    MULTI_TAG, MultiEnvelope, RecipientEntry, SENDER_BLOCK_LEN, SINGLE_TAG, SPLIT_TAG,
    SingleEnvelope, SplitEnvelope,
};

/// An opened envelope: the authenticated sender and the inner message. The
/// decrypted bytes are [`Plaintext`]: zeroized on drop, never printed.
///
/// ```
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_cert = SenderCertificate::issue(
/// #     Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert,
/// # )?;
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// # let now = 1_700_000_000;
/// # let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let opened = open(&envelope, &me)?;
/// assert_eq!(opened.sender.address(), Address::new(b"alice", 1)?);
/// assert_eq!((opened.kind, opened.hint), (InnerKind::Ratchet, ContentHint::Resendable));
/// assert_eq!(opened.message, b"hi");
/// assert!(opened.payload.is_empty()); // payloads come only in multi-recipient envelopes
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// Who sent it, as certified and checked.
    pub sender: VerifiedSender,
    /// What the inner message is.
    pub kind: InnerKind,
    /// What to do if it cannot be processed.
    pub hint: ContentHint,
    /// The inner message, ready for the session (or group) layer.
    pub message: Plaintext,
    /// This device's own payload from a multi-recipient envelope (empty otherwise).
    pub payload: Plaintext,
}

/// Who is opening, and what they trust. `now` is the caller's clock, in the
/// epoch of the certificates' expiry times.
///
/// ```
/// use ratchetbox::Error;
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_cert = SenderCertificate::issue(
/// #     Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert,
/// # )?;
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// # let now = 1_700_000_000;
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
/// assert_eq!(open(&envelope, &me)?.message, b"hi");
/// // Bob's other device shares his identity key, yet cannot open it.
/// let other = Recipient { address: Address::new(b"bob", 2)?, ..me };
/// assert_eq!(open(&envelope, &other), Err(Error::WrongRecipient));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Recipient<'a> {
    /// The recipient's identity key pair.
    pub identity: &'a IdentityKeyPair,
    /// The recipient device's own address.
    pub address: Address<'a>,
    /// Pinned roots and revocations.
    pub trust: &'a TrustStore,
    /// The current time, in the epoch certificates use.
    pub now: u64,
}

fn open_aead(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let body = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(Error::DecryptionFailed)?;
    let (ciphertext, tag_bytes) = sealed.split_at(body);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_bytes);
    let mut out = Zeroizing::new(alloc::vec![0u8; body]);
    crypto::aead_open(key, aad, ciphertext, &tag, &mut out)?;
    Ok(out)
}

/// The sender identity from a decrypted sender block. That layer is keyed by the
/// ephemeral key alone, so anyone can forge it: an invalid key is reported as a
/// decryption failure, like any other forgery, not as a decode error.
fn sender_identity(bytes: &[u8]) -> Result<IdentityKey, Error> {
    let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::DecryptionFailed)?;
    IdentityKey::from_bytes(&array).map_err(|_| Error::DecryptionFailed)
}

/// Opens a sealed envelope addressed to `recipient`: a single-recipient envelope,
/// a part split from a multi-recipient one, or a whole multi-recipient envelope
/// (its entry for this device is found by address).
///
/// All devices of an account share its identity key, so what keeps one device
/// from reading another's part is the authenticated address in the envelope,
/// which `open` compares with `recipient.address`.
///
/// The opened message then goes to the layer its [`kind`](Opened::kind) names,
/// from the certified [`sender`](Opened::sender).
///
/// ```
/// use ratchetbox::Error;
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_cert = SenderCertificate::issue(
/// #     Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert,
/// # )?;
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// # let now = 1_700_000_000;
/// # let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let opened = open(&envelope, &me)?;
/// assert_eq!(opened.sender.account_id, b"alice");
/// assert_eq!(opened.message, b"hi");
/// let mut tampered = envelope.clone();
/// *tampered.last_mut().unwrap() ^= 1;
/// assert_eq!(open(&tampered, &me), Err(Error::DecryptionFailed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The sender of a refused envelope is unknown, so there is nobody to answer:
/// drop the envelope, and use the error for logs and the cases below.
/// - [`Error::Envelope`] for malformed bytes (the server should have refused it);
/// - [`Error::WrongRecipient`] if the envelope is not addressed to this device
///   (misrouted by the server);
/// - [`Error::DecryptionFailed`] for any tampered or foreign byte, or an envelope
///   sealed to an identity key this device no longer has;
/// - [`Error::SenderIdentityMismatch`] if the certificate's identity differs from
///   the key the sender proved: someone used another's certificate;
/// - [`Error::Certificate`] if the certificate chain or expiry fails; if
///   [`Expired`](CertificateError::Expired) is frequent, check the device clock,
///   and if [`WrongRoot`](CertificateError::WrongRoot) is, the app's pinned roots
///   may be out of date;
/// - [`Error::SelfSend`] if the sender is this very device (an echo; ignore it);
/// - [`Error::Decode`] if an authenticated sender's content is malformed
///   (padding, kind, hint or lengths): a bug on the sender's side.
pub fn open(bytes: &[u8], recipient: &Recipient<'_>) -> Result<Opened, Error> {
    match bytes.first() {
        Some(&SINGLE_TAG) => open_single(&SingleEnvelope::parse(bytes)?, recipient),
        Some(&SPLIT_TAG) => {
            let split = SplitEnvelope::parse(bytes)?;
            open_entry(&split.ephemeral, &split.entry, split.shared, recipient)
        }
        Some(&MULTI_TAG) => {
            let multi = MultiEnvelope::parse(bytes, usize::from(u16::MAX))?;
            let entry = multi
                .entries()
                .find(|e| e.address == recipient.address)
                .ok_or(Error::WrongRecipient)?;
            open_entry(&multi.ephemeral, &entry, multi.shared, recipient)
        }
        Some(&found) => Err(Error::Envelope(EnvelopeError::UnknownVersion { found })),
        None => Err(Error::Envelope(EnvelopeError::Truncated {
            field: "format tag",
        })),
    }
}

fn open_single(envelope: &SingleEnvelope<'_>, recipient: &Recipient<'_>) -> Result<Opened, Error> {
    if envelope.recipient != recipient.address {
        return Err(Error::WrongRecipient);
    }
    let own = recipient.identity;
    let e_pub = envelope.ephemeral.as_bytes();
    let eph_dh = own.dh_key_pair().dh(&envelope.ephemeral)?;
    let (chain, k1) = single_ephemeral_keys(own.public_key(), e_pub, &eph_dh);
    let sender_key = open_aead(&k1, envelope.header, envelope.sender_block)?;
    let sender = sender_identity(&sender_key)?;
    let static_dh = own.dh_key_pair().dh(sender.dh_public())?;
    let k2 = single_static_key(&chain, envelope.sender_block, &static_dh);
    let aad2 = [envelope.header, envelope.sender_block].concat();
    let padded = open_aead(&k2, &aad2, envelope.content)?;
    finish(&padded, &sender, Vec::new(), recipient)
}

fn open_entry(
    ephemeral: &PublicKey,
    entry: &RecipientEntry<'_>,
    shared: &[u8],
    recipient: &Recipient<'_>,
) -> Result<Opened, Error> {
    if entry.address != recipient.address {
        return Err(Error::WrongRecipient);
    }
    let own = recipient.identity;
    let e_pub = ephemeral.as_bytes();
    let wrap_dh = own.dh_key_pair().dh(ephemeral)?;
    let wrap_key = multi_wrap_key(own.public_key(), e_pub, entry.address_bytes, &wrap_dh);
    let unwrapped = open_aead(
        &wrap_key,
        &[entry.address_bytes, &e_pub[..]].concat(),
        entry.wrapped,
    )?;
    let mut m = Zeroizing::new([0u8; KEY_LEN]);
    m.copy_from_slice(&unwrapped[..KEY_LEN]);

    let (content_key, sender_key) = multi_content_keys(&m);
    let (sender_block, content) = shared.split_at(SENDER_BLOCK_LEN);
    let sender = sender_identity(&open_aead(&sender_key, e_pub, sender_block)?)?;
    // The sender proves its identity to this recipient, over this content.
    let auth_dh = own.dh_key_pair().dh(sender.dh_public())?;
    let expected = multi_auth_tag(
        &multi_auth_key(&sender, own.public_key(), &auth_dh),
        e_pub,
        entry.address_bytes,
        entry.wrapped,
        &crypto::sha256(&[shared]),
    );
    if !crypto::ct_eq(&expected, entry.auth_tag) {
        return Err(Error::DecryptionFailed);
    }
    // Only now is the entry known to come from the sender: unpad its payload.
    let payload = match &unwrapped[KEY_LEN..] {
        [] => Vec::new(),
        padded => padding::unpad(padded)
            .ok_or(DecodeError::InvalidValue {
                field: "payload padding",
            })?
            .to_vec(),
    };
    let padded = open_aead(&content_key, &[&e_pub[..], sender_block].concat(), content)?;
    finish(&padded, &sender, payload, recipient)
}

/// Checks the certificate against the proven sender key, the trust store and
/// the clock, and refuses messages from this very device.
fn finish(
    padded: &[u8],
    sender: &IdentityKey,
    payload: Vec<u8>,
    recipient: &Recipient<'_>,
) -> Result<Opened, Error> {
    let decoded = content::decode(padded)?;
    let certificate = SenderCertificate::decode(decoded.certificate)
        .map_err(|e| Error::Certificate(CertificateError::Malformed(e)))?;
    if certificate.identity_key() != sender {
        return Err(Error::SenderIdentityMismatch);
    }
    let verified = certificate
        .validate(recipient.trust, recipient.now)
        .map_err(Error::Certificate)?;
    if certificate.address() == recipient.address {
        return Err(Error::SelfSend);
    }
    Ok(Opened {
        sender: verified,
        kind: decoded.kind,
        hint: decoded.hint,
        message: Plaintext::from(decoded.message.to_vec()),
        payload: Plaintext::from(payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::{
        DeliveryAccessKey, MultiRecipient, SealedContent, ServerCertificate, ServerPolicy,
        TrustRoot, ValidatedEnvelope, seal, seal_multi, validate,
    };
    use crate::test_rng;

    struct World {
        trust: TrustStore,
        alice: IdentityKeyPair,
        alice_cert: SenderCertificate,
        bob: IdentityKeyPair,
        carol: IdentityKeyPair,
    }

    fn world() -> World {
        let root = IdentityKeyPair::from_seed(&[1; 32]);
        let server = IdentityKeyPair::from_seed(&[2; 32]);
        let alice = IdentityKeyPair::from_seed(&[3; 32]);
        let server_cert = ServerCertificate::issue(1, &root, 9, server.public_key());
        let alice_cert = SenderCertificate::issue(
            Address::new(b"alice", 1).expect("valid"),
            alice.public_key(),
            1000,
            &server,
            server_cert,
        )
        .expect("valid");
        World {
            trust: TrustStore::new(&[TrustRoot::new(1, *root.public_key())]).expect("fits"),
            alice,
            alice_cert,
            bob: IdentityKeyPair::from_seed(&[4; 32]),
            carol: IdentityKeyPair::from_seed(&[5; 32]),
        }
    }

    const CONTENT: SealedContent<'static> = SealedContent {
        kind: InnerKind::Ratchet,
        hint: ContentHint::Resendable,
        message: b"inner ratchet message",
    };

    #[test]
    fn single_envelope_round_trip() {
        let w = world();
        let mut rng = test_rng(1);
        let bob_addr = Address::new(b"bob", 2).expect("valid");
        let key = DeliveryAccessKey::derive(&[9; 32]);
        let sealed = seal(
            &mut rng,
            &w.alice,
            &w.alice_cert,
            bob_addr,
            w.bob.public_key(),
            CONTENT,
            Some(&key),
        )
        .expect("seals");
        let lookup = |account: &[u8]| (account == b"bob").then(|| key.clone());
        let validated = validate(&sealed, &ServerPolicy::default(), &lookup).expect("valid");
        assert!(matches!(validated, ValidatedEnvelope::Single(s) if s.recipient() == bob_addr));
        let me = Recipient {
            identity: &w.bob,
            address: bob_addr,
            trust: &w.trust,
            now: 10,
        };
        let opened = open(&sealed, &me).expect("opens");
        assert_eq!(opened.message, CONTENT.message);
        assert_eq!(opened.sender.account_id, b"alice");
        assert_eq!(opened.hint, ContentHint::Resendable);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, &me).is_err(), "flip at {i} accepted");
        }
        let carol = Recipient {
            identity: &w.carol,
            ..me
        };
        assert_eq!(open(&sealed, &carol), Err(Error::DecryptionFailed));
        let late = Recipient { now: 1000, ..me };
        assert!(matches!(open(&sealed, &late), Err(Error::Certificate(_))));
    }

    #[test]
    fn multi_envelope_split_and_open() {
        let w = world();
        let mut rng = test_rng(2);
        let bob1 = Address::new(b"bob", 1).expect("valid");
        let bob2 = Address::new(b"bob", 2).expect("valid");
        let carol1 = Address::new(b"carol", 1).expect("valid");
        let recipients = [
            MultiRecipient {
                address: carol1,
                identity_key: w.carol.public_key(),
                payload: b"c1",
            },
            MultiRecipient {
                address: bob2,
                identity_key: w.bob.public_key(),
                payload: b"b2",
            },
            MultiRecipient {
                address: bob1,
                identity_key: w.bob.public_key(),
                payload: b"",
            },
        ];
        let bob_key = DeliveryAccessKey::derive(&[7; 32]);
        let carol_key = DeliveryAccessKey::derive(&[8; 32]);
        let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
        let sealed = seal_multi(
            &mut rng,
            &w.alice,
            &w.alice_cert,
            &recipients,
            CONTENT,
            Some(&token),
        )
        .expect("seals");
        let lookup = |a: &[u8]| match a {
            b"bob" => Some(bob_key.clone()),
            b"carol" => Some(carol_key.clone()),
            _ => None,
        };
        let ValidatedEnvelope::Multi(multi) =
            validate(&sealed, &ServerPolicy::default(), &lookup).expect("valid")
        else {
            panic!("multi");
        };
        assert_eq!(multi.recipient_count(), 3);
        let mut buf = [0u8; 1024];
        for part in multi.parts() {
            let len = part.write_to(&mut buf).expect("fits");
            let (identity, payload): (&IdentityKeyPair, &[u8]) = match part.recipient() {
                a if a == bob1 => (&w.bob, b""),
                a if a == bob2 => (&w.bob, b"b2"),
                _ => (&w.carol, b"c1"),
            };
            let me = Recipient {
                identity,
                address: part.recipient(),
                trust: &w.trust,
                now: 0,
            };
            let opened = open(&buf[..len], &me).expect("opens");
            assert_eq!(opened.payload, payload);
            assert_eq!(opened.message, CONTENT.message);
            // The part does not open for another device of the same account.
            let other = Recipient {
                address: if part.recipient() == bob1 { bob2 } else { bob1 },
                ..me
            };
            assert_eq!(open(&buf[..len], &other), Err(Error::WrongRecipient));
        }
        let wrong = |_: &[u8]| Some(bob_key.clone());
        assert_eq!(
            validate(&sealed, &ServerPolicy::default(), &wrong).err(),
            Some(EnvelopeError::WrongToken)
        );
    }

    #[test]
    fn self_send_and_identity_mismatch_are_refused() {
        let w = world();
        let mut rng = test_rng(3);
        let alice1 = Address::new(b"alice", 1).expect("valid");
        let sealed = seal(
            &mut rng,
            &w.alice,
            &w.alice_cert,
            alice1,
            w.alice.public_key(),
            CONTENT,
            None,
        )
        .expect("seals");
        let me = Recipient {
            identity: &w.alice,
            address: alice1,
            trust: &w.trust,
            now: 0,
        };
        assert_eq!(open(&sealed, &me), Err(Error::SelfSend));
        // Carol seals with Alice's certificate: the proven key is Carol's.
        let bob = Address::new(b"bob", 1).expect("valid");
        let forged = seal(
            &mut rng,
            &w.carol,
            &w.alice_cert,
            bob,
            w.bob.public_key(),
            CONTENT,
            None,
        )
        .expect("seals");
        let me = Recipient {
            identity: &w.bob,
            address: bob,
            trust: &w.trust,
            now: 0,
        };
        assert_eq!(open(&forged, &me), Err(Error::SenderIdentityMismatch));
    }
}
