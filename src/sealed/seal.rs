//! Sealing: the sender's side of single- and multi-recipient envelopes
//! (SPEC.md §9.4–9.5).

use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{self, DhKeyPair, KEY_LEN};
use crate::error::EnvelopeError;
use crate::error::Error;
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::sealed::address::Address;
use crate::sealed::certificate::SenderCertificate;
use crate::sealed::content::{self, MAX_INNER_LEN, SealedContent};
use crate::sealed::keys::{
    multi_auth_key, multi_auth_tag, multi_content_keys, multi_wrap_key, single_ephemeral_keys,
    single_static_key,
};
use crate::sealed::padding;
use crate::sealed::token::DeliveryAccessKey;
use crate::sealed::wire::{MULTI_TAG, SINGLE_TAG};

/// Largest per-recipient payload in a multi-recipient envelope (its padded form
/// must fit the entry's 16-bit length).
pub const MAX_PAYLOAD_LEN: usize = 57_000;
/// Most recipients one multi-recipient envelope can list.
pub const MAX_RECIPIENTS: usize = u16::MAX as usize;

/// Appends `AEAD(key, aad, plaintext)` (ciphertext then tag) to `out`.
pub(crate) fn seal_append(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    out.resize(start + plaintext.len(), 0);
    let tag = crypto::aead_seal(key, aad, plaintext, &mut out[start..])?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Appends the token flag and, if present, the token.
fn push_token(out: &mut Vec<u8>, token: Option<&DeliveryAccessKey>) {
    match token {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_bytes());
        }
        None => out.push(0),
    }
}

fn check_content(content: &SealedContent<'_>) -> Result<(), Error> {
    if content.message.len() > MAX_INNER_LEN {
        return Err(Error::MessageTooLarge);
    }
    Ok(())
}

/// Seals one inner message for one recipient device.
///
/// The server learns the recipient address (to route) and the padded length;
/// only the recipient learns who sent it, by decrypting the sender's identity
/// and certificate.
///
/// ```
/// use ratchetbox::sealed::{ContentHint, InnerKind, SealedContent, seal};
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
/// # let ratchet_message = b"from the alice/1 - bob/1 session".to_vec();
/// let content = SealedContent {
///     kind: InnerKind::Ratchet,
///     hint: ContentHint::Resendable,
///     message: &ratchet_message,
/// };
/// let envelope =
///     seal(&mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key))?;
/// assert_eq!(open(&envelope, &me)?.message, ratchet_message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// - [`Error::MessageTooLarge`] for a message above [`MAX_INNER_LEN`]. Far
///   smaller envelopes already exceed a server's
///   [`max_size`](super::ServerPolicy::max_size): send large content as an
///   encrypted attachment and seal a reference to it.
/// - [`Error::NonContributoryDh`] for a degenerate recipient key. An
///   [`IdentityKey`] that decoded has large order, so this is not expected: do
///   not send, and report a bug.
#[allow(clippy::too_many_arguments)]
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    sender: &IdentityKeyPair,
    certificate: &SenderCertificate,
    recipient: Address<'_>,
    recipient_identity: &IdentityKey,
    content: SealedContent<'_>,
    token: Option<&DeliveryAccessKey>,
) -> Result<Vec<u8>, Error> {
    check_content(&content)?;
    let padded = Zeroizing::new(content::encode(&certificate.encode(), &content));
    let ephemeral = DhKeyPair::generate(rng);
    let e_pub = *ephemeral.public().as_bytes();

    let mut out = Vec::with_capacity(2 + 64 + 17 + 32 + 48 + padded.len() + 16);
    out.push(SINGLE_TAG);
    recipient.encode_into(&mut out);
    push_token(&mut out, token);
    out.extend_from_slice(&e_pub);

    // The whole header (tag, address, token, E) is associated data of both layers.
    let header = out.clone();
    let eph_dh = ephemeral.dh(recipient_identity.dh_public())?;
    drop(ephemeral);
    let (chain, k1) = single_ephemeral_keys(recipient_identity, &e_pub, &eph_dh);
    let sender_block_start = out.len();
    seal_append(&k1, &header, &sender.public_key().to_bytes(), &mut out)?;
    let sender_block = out[sender_block_start..].to_vec();

    let static_dh = sender.dh_key_pair().dh(recipient_identity.dh_public())?;
    let k2 = single_static_key(&chain, &sender_block, &static_dh);
    let aad2 = [&header[..], &sender_block[..]].concat();
    seal_append(&k2, &aad2, &padded, &mut out)?;
    Ok(out)
}

/// One recipient device of a multi-recipient envelope.
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
/// # let carol = IdentityKeyPair::generate(&mut rng);
/// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// let recipients = [
///     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
///     MultiRecipient {
///         address: Address::new(b"carol", 1)?,
///         identity_key: carol.public_key(),
///         payload: b"for carol/1 only",
///     },
/// ];
/// let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
/// let envelope = seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
/// # let me = Recipient { identity: &carol, address: recipients[1].address, trust: &trust, now };
/// assert_eq!(open(&envelope, &me)?.payload, b"for carol/1 only");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MultiRecipient<'a> {
    /// Its address.
    pub address: Address<'a>,
    /// Its account's identity key.
    pub identity_key: &'a IdentityKey,
    /// Bytes for this device only (for example its 1:1 ratchet message);
    /// encrypted to it alone. May be empty. A non-empty payload is padded
    /// (Padmé, like the content), so the server learns only whether it is empty
    /// and its padded length.
    pub payload: &'a [u8],
}

/// The per-account secrets of a multi-recipient envelope: both depend only on
/// the account's identity, so the devices of one account (adjacent once
/// sorted) share them and cost no further DH.
struct AccountSecrets {
    identity: IdentityKey,
    wrap_dh: crypto::DhOutput,
    auth_key: Zeroizing<[u8; KEY_LEN]>,
}

/// Seals one message for many recipient devices: the content is encrypted once
/// under a random key, and each device gets a short entry with that key wrapped
/// to it and a tag proving the sender's identity to it. Recipients are sorted
/// into the order the format requires.
///
/// The token combines ([`DeliveryAccessKey::combine`]) the access keys of the
/// recipient accounts, each account once.
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
/// # let carol = IdentityKeyPair::generate(&mut rng);
/// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
/// let recipients = [
///     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
///     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
///     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"" },
/// ];
/// let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
/// let envelope = seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
/// # let me = Recipient { identity: &bob, address: bob2, trust: &trust, now };
/// assert_eq!(open(&envelope, &me)?.message, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// - [`Error::Envelope`] with [`EnvelopeError::NoRecipients`],
///   [`EnvelopeError::TooManyRecipients`] or [`EnvelopeError::DuplicateRecipient`]:
///   a bug in the app's recipient list. Deduplicate it, and split a list longer
///   than the server's [`max_recipients`](super::ServerPolicy::max_recipients)
///   into several envelopes.
/// - [`Error::MessageTooLarge`] for a message above [`MAX_INNER_LEN`] or a
///   payload above [`MAX_PAYLOAD_LEN`]: send large content as an attachment.
/// - [`Error::NonContributoryDh`] for a degenerate recipient key: not expected
///   with decoded [`IdentityKey`]s; do not send, and report a bug.
pub fn seal_multi<R: CryptoRng + ?Sized>(
    rng: &mut R,
    sender: &IdentityKeyPair,
    certificate: &SenderCertificate,
    recipients: &[MultiRecipient<'_>],
    content: SealedContent<'_>,
    token: Option<&DeliveryAccessKey>,
) -> Result<Vec<u8>, Error> {
    check_content(&content)?;
    if recipients.is_empty() {
        return Err(Error::Envelope(EnvelopeError::NoRecipients));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::Envelope(EnvelopeError::TooManyRecipients {
            count: recipients.len(),
            max: MAX_RECIPIENTS,
        }));
    }
    if recipients.iter().any(|r| r.payload.len() > MAX_PAYLOAD_LEN) {
        return Err(Error::MessageTooLarge);
    }
    let mut order: Vec<&MultiRecipient<'_>> = recipients.iter().collect();
    order.sort_by(|a, b| a.address.cmp(&b.address));
    if order.windows(2).any(|w| w[0].address == w[1].address) {
        return Err(Error::Envelope(EnvelopeError::DuplicateRecipient));
    }

    // Per-message work, done once.
    let mut m = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(m.as_mut());
    let ephemeral = DhKeyPair::generate(rng);
    let e_pub = *ephemeral.public().as_bytes();
    let (content_key, sender_key) = multi_content_keys(&m);
    let padded = Zeroizing::new(content::encode(&certificate.encode(), &content));
    let mut shared = Vec::with_capacity(48 + padded.len() + 16);
    seal_append(
        &sender_key,
        &e_pub,
        &sender.public_key().to_bytes(),
        &mut shared,
    )?;
    let aad = [&e_pub[..], &shared[..]].concat();
    seal_append(&content_key, &aad, &padded, &mut shared)?;
    let shared_hash = crypto::sha256(&[&shared]);

    // Per-recipient work: a wrap and a tag, plus two DHs per distinct account.
    let mut out = Vec::with_capacity(1 + 32 + 2 + order.len() * 160 + 17 + shared.len());
    out.push(MULTI_TAG);
    out.extend_from_slice(&e_pub);
    out.extend_from_slice(&(order.len() as u16).to_be_bytes());
    let mut plaintext = Zeroizing::new(Vec::with_capacity(KEY_LEN + MAX_PAYLOAD_LEN.min(4096)));
    let mut last: Option<AccountSecrets> = None;
    for recipient in order {
        let secrets = match last.take() {
            Some(secrets) if secrets.identity == *recipient.identity_key => secrets,
            _ => {
                let their = recipient.identity_key.dh_public();
                AccountSecrets {
                    identity: *recipient.identity_key,
                    wrap_dh: ephemeral.dh(their)?,
                    auth_key: multi_auth_key(
                        sender.public_key(),
                        recipient.identity_key,
                        &sender.dh_key_pair().dh(their)?,
                    ),
                }
            }
        };
        let address_start = out.len();
        recipient.address.encode_into(&mut out);
        let address = out[address_start..].to_vec();
        let wrap_key = multi_wrap_key(recipient.identity_key, &e_pub, &address, &secrets.wrap_dh);
        plaintext.clear();
        plaintext.extend_from_slice(m.as_ref());
        if !recipient.payload.is_empty() {
            // Non-empty payloads are padded like content, so the server learns
            // only their Padmé length class.
            plaintext.extend_from_slice(recipient.payload);
            let mut tail = plaintext.split_off(KEY_LEN);
            padding::pad(&mut tail);
            plaintext.extend_from_slice(&tail);
            tail.zeroize();
        }
        let wrapped_len = plaintext.len() + crypto::TAG_LEN;
        out.extend_from_slice(&(wrapped_len as u16).to_be_bytes());
        let wrapped_start = out.len();
        seal_append(
            &wrap_key,
            &[&address[..], &e_pub[..]].concat(),
            &plaintext,
            &mut out,
        )?;
        let tag = multi_auth_tag(
            &secrets.auth_key,
            &e_pub,
            &address,
            &out[wrapped_start..],
            &shared_hash,
        );
        out.extend_from_slice(&tag);
        last = Some(secrets);
    }
    push_token(&mut out, token);
    out.extend_from_slice(&shared);
    Ok(out)
}
