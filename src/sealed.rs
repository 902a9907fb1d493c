//! Sealed envelopes: the server sees where a message goes, never who sent it or
//! what it says, yet can validate envelopes and fan multi-recipient ones out
//! without any secret key (SPEC.md §9).
//!
//! - Clients: [`seal`], [`seal_multi`] and [`open`], with [`SenderCertificate`]s
//!   chained to pinned [`TrustRoot`]s.
//! - Servers: [`validate`] against a [`ServerPolicy`] and a [`DeliveryKeys`]
//!   registry, then route a [`ValidatedEnvelope`] or split it into [`SplitPart`]s.
//!   Neither allocates.
//!
//! ```
//! use ratchetbox::IdentityKeyPair;
//! use ratchetbox::sealed::*;
//! let mut rng = ratchetbox::os_rng();
//! let (root, server) = (IdentityKeyPair::generate(&mut rng), IdentityKeyPair::generate(&mut rng));
//! let (alice, bob) = (IdentityKeyPair::generate(&mut rng), IdentityKeyPair::generate(&mut rng));
//! let server_cert = ServerCertificate::issue(1, &root, 1, server.public_key());
//! let alice_cert =
//!     SenderCertificate::issue(Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert)?;
//!
//! // Alice seals a message to Bob's device 1, with Bob's delivery token.
//! let bob_addr = Address::new(b"bob", 1)?;
//! let bob_key = DeliveryAccessKey::derive(&[7; 32]);
//! let content = SealedContent { kind: InnerKind::Opaque, hint: ContentHint::Default, message: b"hi" };
//! let envelope = seal(&mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key))?;
//!
//! // The server validates it without any key.
//! let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
//! let ValidatedEnvelope::Single(routed) = validate(&envelope, &ServerPolicy::default(), &registry)? else {
//!     unreachable!()
//! };
//! assert_eq!(routed.recipient(), bob_addr);
//!
//! // Bob opens it and learns who sent it.
//! let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
//! let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now: 1_700_000_000 };
//! let opened = open(&envelope, &me)?;
//! assert_eq!(opened.sender.account_id, b"alice");
//! assert_eq!(opened.message, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod certificate;
mod content;
mod keys;
mod open;
mod padding;
mod seal;
mod server;
mod token;
mod wire;

pub use crate::error::{CertificateError, EnvelopeError};
pub use address::{Address, MAX_ACCOUNT_ID_LEN};
pub use certificate::{
    MAX_TRUST_ENTRIES, SERVER_CERTIFICATE_LEN, SenderCertificate, ServerCertificate, TrustRoot,
    TrustStore, VerifiedSender,
};
pub use content::{ContentHint, InnerKind, MAX_INNER_LEN, SealedContent};
pub use open::{Opened, Recipient, open};
pub use padding::{MIN_PADDED_LEN, is_padded_len, padded_len};
pub use seal::{MAX_PAYLOAD_LEN, MAX_RECIPIENTS, MultiRecipient, seal, seal_multi};
pub use server::{
    DeliveryKeys, ServerPolicy, SplitPart, ValidatedEnvelope, ValidatedMulti, ValidatedSingle,
    validate,
};
pub use token::{DeliveryAccessKey, TOKEN_LEN};

/// The wrapping key and nonce of every entry of a multi-recipient envelope
/// that `recipient` (an account's identity) can open: the entries of that
/// account's devices. For tests that no two entries share a (key, nonce).
#[cfg(feature = "hazmat")]
pub(crate) fn multi_entry_keys(
    envelope: &[u8],
    recipient: &crate::IdentityKeyPair,
) -> Result<alloc::vec::Vec<crate::hazmat::EntryKey>, crate::Error> {
    let multi = wire::MultiEnvelope::parse(envelope, usize::from(u16::MAX))?;
    let e_pub = multi.ephemeral.as_bytes();
    let dh = recipient.dh_key_pair().dh(&multi.ephemeral)?;
    let mut keys = alloc::vec::Vec::new();
    for entry in multi.entries() {
        let key = keys::multi_wrap_key(recipient.public_key(), e_pub, entry.address_bytes, &dh);
        let (ciphertext, tag) = entry.wrapped.split_at(entry.wrapped.len() - crate::TAG_LEN);
        let mut tag_bytes = [0u8; crate::TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut out = alloc::vec![0u8; ciphertext.len()];
        let aad = [entry.address_bytes, &e_pub[..]].concat();
        if crate::crypto::aead_open(&key, &aad, ciphertext, &tag_bytes, &mut out).is_ok() {
            keys.push((*key, [0u8; crate::crypto::NONCE_LEN]));
        }
    }
    Ok(keys)
}

/// Whether `bytes` parse as a split part (used by the fuzz targets).
#[cfg(all(feature = "hazmat", feature = "std"))]
pub(crate) fn wire_split_is_well_formed(bytes: &[u8]) -> bool {
    wire::SplitEnvelope::parse(bytes).is_ok()
}
