//! What a server does with envelopes it cannot read: validate them against a
//! policy and its registry of delivery access keys, and split multi-recipient
//! envelopes into per-device parts by copying bytes. No secret key, no allocation.

use crate::error::EnvelopeError;
use crate::sealed::address::Address;
use crate::sealed::token::{DeliveryAccessKey, TOKEN_LEN};
use crate::sealed::wire::{
    MULTI_TAG, MultiEnvelope, RecipientEntry, SINGLE_TAG, SPLIT_TAG, SingleEnvelope,
};

/// What a server accepts. The default suits most servers; loosen or tighten
/// it field by field.
///
/// ```
/// use ratchetbox::sealed::{EnvelopeError, ServerPolicy, validate};
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
/// # let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
/// # let envelope =
/// #     seal(&mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, None)?;
/// // By default an envelope without a delivery token is refused...
/// let strict = ServerPolicy::default();
/// assert_eq!(validate(&envelope, &strict, &registry).err(), Some(EnvelopeError::MissingToken));
/// // ...a server that lets anyone reach anyone accepts it.
/// let open_policy = ServerPolicy { require_token: false, ..strict };
/// assert!(validate(&envelope, &open_policy, &registry).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Accept single-recipient envelopes (version 1).
    pub allow_single: bool,
    /// Accept multi-recipient envelopes (version 1).
    pub allow_multi: bool,
    /// Largest envelope, in bytes.
    pub max_size: usize,
    /// Most recipient devices in one multi-recipient envelope.
    pub max_recipients: usize,
    /// Reject envelopes without a delivery token.
    pub require_token: bool,
}

impl Default for ServerPolicy {
    /// Both versions, 256 KiB, 1000 recipients, tokens required.
    fn default() -> Self {
        Self {
            allow_single: true,
            allow_multi: true,
            max_size: 256 * 1024,
            max_recipients: 1000,
            require_token: true,
        }
    }
}

/// The server's registry of delivery access keys, by account id. Any
/// `Fn(&[u8]) -> Option<DeliveryAccessKey>` is one.
///
/// ```
/// use std::collections::HashMap;
/// use ratchetbox::sealed::{DeliveryAccessKey, DeliveryKeys};
///
/// struct Registry(HashMap<Vec<u8>, DeliveryAccessKey>);
///
/// impl DeliveryKeys for Registry {
///     fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey> {
///         self.0.get(account_id).cloned()
///     }
/// }
///
/// let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// let registry = Registry(HashMap::from([(b"bob".to_vec(), bob_key.clone())]));
/// assert_eq!(registry.access_key(b"bob"), Some(bob_key));
/// assert_eq!(registry.access_key(b"mallory"), None);
/// ```
pub trait DeliveryKeys {
    /// The access key the account registered, if any.
    ///
    /// ```
    /// use ratchetbox::sealed::{DeliveryAccessKey, DeliveryKeys};
    /// let bob_key = DeliveryAccessKey::derive(&[7; 32]);
    /// let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
    /// assert!(registry.access_key(b"bob").is_some_and(|key| key == bob_key));
    /// assert!(registry.access_key(b"carol").is_none());
    /// ```
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey>;
}

impl<F: Fn(&[u8]) -> Option<DeliveryAccessKey>> DeliveryKeys for F {
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey> {
        self(account_id)
    }
}

/// An envelope that passed [`validate`]: the only way to route or split one.
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
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// match validate(&envelope, &ServerPolicy::default(), &registry)? {
///     ValidatedEnvelope::Single(single) => {
///         // Queue `single.bytes()` in the mailbox of `single.recipient()`.
///         assert_eq!(single.recipient(), bob_addr);
///     }
///     ValidatedEnvelope::Multi(multi) => {
///         // Queue each of `multi.parts()` in its recipient's mailbox.
///         unreachable!("{} recipients", multi.recipient_count());
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub enum ValidatedEnvelope<'a> {
    /// A single-recipient envelope; deliver the bytes as they are.
    Single(ValidatedSingle<'a>),
    /// A multi-recipient envelope; deliver its [`parts`](ValidatedMulti::parts).
    Multi(ValidatedMulti<'a>),
}

/// A validated single-recipient envelope: deliver its bytes, unchanged, to its
/// recipient.
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
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let ValidatedEnvelope::Single(single) =
///     validate(&envelope, &ServerPolicy::default(), &registry)?
/// else {
///     unreachable!()
/// };
/// assert_eq!((single.recipient(), single.bytes()), (bob_addr, &envelope[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValidatedSingle<'a> {
    bytes: &'a [u8],
    recipient: Address<'a>,
}

impl<'a> ValidatedSingle<'a> {
    /// Where it goes: the mailbox to queue it in.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
    /// # let envelope = seal(
    /// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
    /// # )?;
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Single(single) = validated else { unreachable!() };
    /// assert_eq!(single.recipient(), Address::new(b"bob", 1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recipient(&self) -> Address<'a> {
        self.recipient
    }

    /// The bytes to deliver: the whole envelope, as received.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
    /// # let envelope = seal(
    /// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
    /// # )?;
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Single(single) = validated else { unreachable!() };
    /// # let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
    /// let delivered = single.bytes().to_vec();
    /// assert_eq!(open(&delivered, &me)?.message, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A validated multi-recipient envelope: deliver each of its
/// [`parts`](Self::parts) to the device it names.
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
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let carol = IdentityKeyPair::generate(&mut rng);
/// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
/// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
/// # let recipients = [
/// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
/// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
/// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
/// # ];
/// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
/// # let envelope =
/// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
/// # let registry = |account: &[u8]| match account {
/// #     b"bob" => Some(bob_key.clone()),
/// #     b"carol" => Some(carol_key.clone()),
/// #     _ => None,
/// # };
/// let ValidatedEnvelope::Multi(multi) =
///     validate(&envelope, &ServerPolicy::default(), &registry)?
/// else {
///     unreachable!()
/// };
/// let devices: Vec<_> = multi.parts().map(|part| part.recipient()).collect();
/// assert_eq!(devices, [bob_addr, bob2, carol1]); // sorted by address
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValidatedMulti<'a> {
    envelope: MultiEnvelope<'a>,
}

impl<'a> ValidatedMulti<'a> {
    /// Number of recipient devices.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// assert_eq!(multi.recipient_count(), 3);
    /// assert_eq!(multi.parts().count(), multi.recipient_count());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recipient_count(&self) -> usize {
        self.envelope.count
    }

    /// One part per recipient device, borrowing from the envelope, in address
    /// order.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// let mut buf = [0u8; 1024];
    /// for part in multi.parts() {
    ///     let len = part.write_to(&mut buf)?;
    ///     // Queue `buf[..len]` for `part.recipient()`.
    /// #   if part.recipient() == bob2 {
    /// #       let me = Recipient { identity: &bob, address: bob2, trust: &trust, now };
    /// #       assert_eq!(open(&buf[..len], &me)?.payload, b"2");
    /// #   }
    ///     assert_eq!(len, part.len());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parts(&self) -> impl Iterator<Item = SplitPart<'a>> + 'a {
        let ephemeral = self.envelope.ephemeral_bytes;
        let shared = self.envelope.shared;
        self.envelope.entries().map(move |entry| SplitPart {
            entry,
            ephemeral,
            shared,
        })
    }
}

/// One recipient's part of a multi-recipient envelope: four borrowed pieces
/// whose concatenation is the envelope that device receives (SPEC.md §9.6).
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
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let carol = IdentityKeyPair::generate(&mut rng);
/// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
/// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
/// # let recipients = [
/// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
/// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
/// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
/// # ];
/// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
/// # let envelope =
/// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
/// # let registry = |account: &[u8]| match account {
/// #     b"bob" => Some(bob_key.clone()),
/// #     b"carol" => Some(carol_key.clone()),
/// #     _ => None,
/// # };
/// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
/// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
/// let part = multi.parts().find(|part| part.recipient() == bob2).unwrap();
/// let delivered: Vec<u8> = part.pieces().concat();
/// let me = Recipient { identity: &bob, address: bob2, trust: &trust, now };
/// let opened = open(&delivered, &me)?;
/// assert_eq!((&opened.message[..], &opened.payload[..]), (&b"hi"[..], &b"2"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SplitPart<'a> {
    entry: RecipientEntry<'a>,
    ephemeral: &'a [u8],
    shared: &'a [u8],
}

const SPLIT_TAG_BYTES: [u8; 1] = [SPLIT_TAG];

impl<'a> SplitPart<'a> {
    /// The device this part is for.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// # let part = multi.parts().next().unwrap();
    /// assert_eq!(part.recipient(), Address::new(b"bob", 1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recipient(&self) -> Address<'a> {
        self.entry.address
    }

    /// The pieces to send, in order (for vectored writes).
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// # let part = multi.parts().next().unwrap();
    /// use std::io::{IoSlice, Write};
    /// let pieces = part.pieces();
    /// let mut socket = Vec::new(); // a real socket may take less: write the rest
    /// let written = socket.write_vectored(&pieces.map(IoSlice::new))?;
    /// assert_eq!((written, &socket[..]), (part.len(), &pieces.concat()[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pieces(&self) -> [&'a [u8]; 4] {
        [
            &SPLIT_TAG_BYTES,
            self.ephemeral,
            self.entry.bytes,
            self.shared,
        ]
    }

    /// Total length of the part: the buffer [`write_to`](Self::write_to) needs.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// # let part = multi.parts().next().unwrap();
    /// let mut buf = vec![0u8; part.len()];
    /// assert_eq!(part.write_to(&mut buf)?, part.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }

    /// Always false: a part has at least its tag.
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
    /// # let content = SealedContent {
    /// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
    /// # };
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// # let part = multi.parts().next().unwrap();
    /// assert!(!part.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies the part into `out`, returning its length. A server can reuse
    /// one buffer for every part.
    ///
    /// ```
    /// use ratchetbox::sealed::EnvelopeError;
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
    /// # let carol = IdentityKeyPair::generate(&mut rng);
    /// # let carol_key = DeliveryAccessKey::derive(&[8; 32]);
    /// # let (bob2, carol1) = (Address::new(b"bob", 2)?, Address::new(b"carol", 1)?);
    /// # let recipients = [
    /// #     MultiRecipient { address: bob_addr, identity_key: bob.public_key(), payload: b"" },
    /// #     MultiRecipient { address: bob2, identity_key: bob.public_key(), payload: b"2" },
    /// #     MultiRecipient { address: carol1, identity_key: carol.public_key(), payload: b"" },
    /// # ];
    /// # let token = DeliveryAccessKey::combine([&bob_key, &carol_key]);
    /// # let envelope =
    /// #     seal_multi(&mut rng, &alice, &alice_cert, &recipients, content, Some(&token))?;
    /// # let registry = |account: &[u8]| match account {
    /// #     b"bob" => Some(bob_key.clone()),
    /// #     b"carol" => Some(carol_key.clone()),
    /// #     _ => None,
    /// # };
    /// # let validated = validate(&envelope, &ServerPolicy::default(), &registry)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else { unreachable!() };
    /// # let part = multi.parts().next().unwrap();
    /// let mut buf = [0u8; 1024];
    /// let len = part.write_to(&mut buf)?;
    /// assert_eq!(&buf[..len], part.pieces().concat());
    /// let needed = part.len();
    /// assert_eq!(part.write_to(&mut buf[..10]), Err(EnvelopeError::BufferTooSmall { needed }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EnvelopeError::BufferTooSmall`] if `out` is too short: grow the buffer to
    /// `needed` bytes (or to [`len`](Self::len) beforehand) and write again.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, EnvelopeError> {
        let needed = self.len();
        if out.len() < needed {
            return Err(EnvelopeError::BufferTooSmall { needed });
        }
        let mut at = 0;
        for piece in self.pieces() {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        Ok(at)
    }
}

/// Validates an envelope against `policy` and the registry of access keys,
/// without keys and without allocating.
///
/// ```
/// use ratchetbox::sealed::{validate, ServerPolicy, EnvelopeError};
/// let policy = ServerPolicy::default();
/// let no_keys = |_: &[u8]| None;
/// let refused = validate(&[0x7f], &policy, &no_keys).err();
/// assert_eq!(refused, Some(EnvelopeError::UnknownVersion { found: 0x7f }));
/// ```
///
/// # Errors
/// The [`EnvelopeError`] for the first defect found. Refuse the envelope and
/// tell the sending client why, so that it can act:
/// - [`Oversize`](EnvelopeError::Oversize),
///   [`TooManyRecipients`](EnvelopeError::TooManyRecipients): the client splits
///   the recipients over several envelopes, or sends the content as an attachment;
/// - [`MissingToken`](EnvelopeError::MissingToken),
///   [`WrongToken`](EnvelopeError::WrongToken): the client lacks a recipient's
///   current access key (the recipient sends it inside their 1:1 session) and
///   cannot reach that recipient anonymously until it has it;
/// - [`UnknownRecipient`](EnvelopeError::UnknownRecipient): a recipient account
///   does not exist (or registered no key): drop it from the recipient list;
/// - [`VersionNotAllowed`](EnvelopeError::VersionNotAllowed): the client uses
///   the other kind (for example one single-recipient envelope per device);
/// - any other variant: a malformed envelope, a client bug; do not retry.
pub fn validate<'a>(
    bytes: &'a [u8],
    policy: &ServerPolicy,
    keys: &impl DeliveryKeys,
) -> Result<ValidatedEnvelope<'a>, EnvelopeError> {
    if bytes.len() > policy.max_size {
        return Err(EnvelopeError::Oversize {
            size: bytes.len(),
            max: policy.max_size,
        });
    }
    match bytes.first() {
        Some(&SINGLE_TAG) => {
            if !policy.allow_single {
                return Err(EnvelopeError::VersionNotAllowed { found: SINGLE_TAG });
            }
            let envelope = SingleEnvelope::parse(bytes)?;
            check_token(policy, envelope.token, || {
                keys.access_key(envelope.recipient.account_id())
            })?;
            Ok(ValidatedEnvelope::Single(ValidatedSingle {
                bytes,
                recipient: envelope.recipient,
            }))
        }
        Some(&MULTI_TAG) => {
            if !policy.allow_multi {
                return Err(EnvelopeError::VersionNotAllowed { found: MULTI_TAG });
            }
            let envelope = MultiEnvelope::parse(bytes, policy.max_recipients)?;
            check_token(policy, envelope.token, || combined_key(&envelope, keys))?;
            Ok(ValidatedEnvelope::Multi(ValidatedMulti { envelope }))
        }
        Some(&found) => Err(EnvelopeError::UnknownVersion { found }),
        None => Err(EnvelopeError::Truncated {
            field: "format tag",
        }),
    }
}

/// XOR of the access keys of the distinct accounts (entries are sorted, so an
/// account's devices are adjacent and its key is counted once).
fn combined_key(
    envelope: &MultiEnvelope<'_>,
    keys: &impl DeliveryKeys,
) -> Option<DeliveryAccessKey> {
    let mut combined = [0u8; TOKEN_LEN];
    let mut previous: Option<&[u8]> = None;
    for entry in envelope.entries() {
        let account = entry.address.account_id();
        if previous == Some(account) {
            continue;
        }
        previous = Some(account);
        let key = keys.access_key(account)?.to_bytes();
        for (c, k) in combined.iter_mut().zip(key) {
            *c ^= k;
        }
    }
    Some(DeliveryAccessKey::from_bytes(combined))
}

fn check_token(
    policy: &ServerPolicy,
    token: Option<[u8; TOKEN_LEN]>,
    expected: impl FnOnce() -> Option<DeliveryAccessKey>,
) -> Result<(), EnvelopeError> {
    match token {
        None if policy.require_token => Err(EnvelopeError::MissingToken),
        None => Ok(()),
        Some(token) => {
            let expected = expected().ok_or(EnvelopeError::UnknownRecipient)?;
            if expected.matches(&token) {
                Ok(())
            } else {
                Err(EnvelopeError::WrongToken)
            }
        }
    }
}
