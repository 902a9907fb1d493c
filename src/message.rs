//! Wire formats of session messages: the ratchet message and the prekey message
//! that wraps the first ones (SPEC.md §4.2–4.4).
//!
//! Parsing borrows the input and allocates nothing; it checks structure only.
//! Holds no keys.

use crate::codec::Reader;
use crate::crypto::kem::KEM_CIPHERTEXT_LEN;
use crate::crypto::{KEY_LEN, NONCE_LEN, PublicKey, TAG_LEN};
use crate::error::DecodeError;
use crate::identity::IdentityKey;
use crate::prekey::PreKeyId;

/// Format tag of a ratchet message, protocol version 2. It is also the first
/// byte of the encoded header, so the version is authenticated.
pub(crate) const RATCHET_MESSAGE_TAG: u8 = 0x04;
/// Format tag of a prekey message, protocol version 2.
pub(crate) const PREKEY_MESSAGE_TAG: u8 = 0x05;

/// Length of an encoded header: tag, ratchet key, PN, N, nonce.
pub const HEADER_LEN: usize = 1 + KEY_LEN + 4 + 4 + NONCE_LEN;
/// Bytes a ratchet message adds to its plaintext: header plus AEAD tag.
pub const RATCHET_MESSAGE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Length of the prekey message fields in front of the embedded ratchet message
/// (tag, identity key, base key, signed prekey id, KEM prekey id, the 1088-byte
/// ML-KEM ciphertext, one-time prekey flag and id).
pub const PREKEY_PREFIX_LEN: usize = 1 + KEY_LEN + KEY_LEN + 4 + 4 + KEM_CIPHERTEXT_LEN + 1 + 4;
/// Bytes a prekey message adds to its plaintext.
pub const PREKEY_MESSAGE_OVERHEAD: usize = PREKEY_PREFIX_LEN + RATCHET_MESSAGE_OVERHEAD;

/// A Double Ratchet message header. It travels in the clear (a relay can read
/// it), and the receiver checks it against the session's bounds before trying
/// any key. Read it from a parsed [`RatchetMessage`]:
///
/// ```
/// # use ratchetbox::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// # };
/// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
/// # let bundle = bundle.verify()?;
/// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
/// # let first_message = PreKeyMessage::parse(&first)?;
/// # let responder = Responder::new(&bob, &mut bob_prekeys);
/// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
/// let one = bob_session.encrypt(&mut rng, b"one")?;
/// let two = bob_session.encrypt(&mut rng, b"two")?;
/// let h1 = *RatchetMessage::parse(&one)?.header();
/// let h2 = *RatchetMessage::parse(&two)?.header();
/// // One sending chain: the same ratchet key, consecutive numbers, fresh nonces.
/// assert_eq!(h1.ratchet_key, h2.ratchet_key);
/// assert_eq!((h1.message_number, h2.message_number), (0, 1));
/// assert_ne!(h1.nonce, h2.nonce);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub ratchet_key: PublicKey,
    /// Number of messages in the sender's previous sending chain (PN).
    pub previous_chain_length: u32,
    /// This message's number in the current sending chain (N).
    pub message_number: u32,
    /// The AEAD nonce, drawn at random for every message, so that two copies
    /// of one session state never encrypt under the same key and nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = RATCHET_MESSAGE_TAG;
        out[1..33].copy_from_slice(self.ratchet_key.as_bytes());
        out[33..37].copy_from_slice(&self.previous_chain_length.to_be_bytes());
        out[37..41].copy_from_slice(&self.message_number.to_be_bytes());
        out[41..].copy_from_slice(&self.nonce);
        out
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.tag(RATCHET_MESSAGE_TAG)?;
        Ok(Self {
            ratchet_key: r.public_key("ratchet key")?,
            previous_chain_length: r.u32("previous chain length")?,
            message_number: r.u32("message number")?,
            nonce: r.array("nonce")?,
        })
    }
}

/// A parsed, borrowed ratchet message: header, ciphertext and tag. Every message
/// after the handshake is one. Parse it to decrypt into a buffer of your own
/// ([`Session::decrypt_into`](crate::Session::decrypt_into)) or to read its
/// header; [`Message::parse`] takes either message kind.
///
/// ```
/// # use ratchetbox::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// # };
/// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
/// # let bundle = bundle.verify()?;
/// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
/// # let first_message = PreKeyMessage::parse(&first)?;
/// # let responder = Responder::new(&bob, &mut bob_prekeys);
/// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
/// let wire = bob_session.encrypt(&mut rng, b"hello Alice")?;
/// let message = RatchetMessage::parse(&wire)?;
/// let mut out = vec![0u8; message.plaintext_len()];
/// let n = alice_session.decrypt_into(&message, &mut out)?;
/// assert_eq!(&out[..n], b"hello Alice");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RatchetMessage<'a> {
    header_bytes: &'a [u8],
    header: Header,
    ciphertext: &'a [u8],
    tag: [u8; TAG_LEN],
}

impl<'a> RatchetMessage<'a> {
    /// Parses a ratchet message without copying it.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    /// let wire = bob_session.encrypt(&mut rng, b"hi")?;
    /// assert_eq!(RatchetMessage::parse(&wire)?.plaintext_len(), 2);
    ///
    /// let cut = RatchetMessage::parse(&wire[..10]);
    /// assert_eq!(cut.err(), Some(DecodeError::Truncated { field: "ratchet message" }));
    /// // A prekey message is the other kind, for `Message::parse`.
    /// let prekey = RatchetMessage::parse(&first);
    /// assert!(matches!(prekey, Err(DecodeError::UnknownFormat { found: 0x05, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] for a wrong tag, a message shorter than
    /// [`RATCHET_MESSAGE_OVERHEAD`], or a non-canonical ratchet key. Such bytes can
    /// never decrypt: drop the message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < RATCHET_MESSAGE_OVERHEAD {
            // Report the tag first, so a wrong message type is named as such.
            if let Some(&found) = bytes.first()
                && found != RATCHET_MESSAGE_TAG
            {
                return Err(DecodeError::UnknownFormat {
                    expected: RATCHET_MESSAGE_TAG,
                    found,
                });
            }
            return Err(DecodeError::Truncated {
                field: "ratchet message",
            });
        }
        let (header_bytes, rest) = bytes.split_at(HEADER_LEN);
        let header = Header::parse(&mut Reader::new(header_bytes))?;
        let (ciphertext, tag_bytes) = rest.split_at(rest.len() - TAG_LEN);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        Ok(Self {
            header_bytes,
            header,
            ciphertext,
            tag,
        })
    }

    /// The header, as sent in the clear.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    /// # bob_session.encrypt(&mut rng, b"one")?;
    /// let wire = bob_session.encrypt(&mut rng, b"two")?;
    /// let message = RatchetMessage::parse(&wire)?;
    /// assert_eq!(message.header().message_number, 1);
    /// assert_eq!(message.header().previous_chain_length, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Length of the plaintext this message decrypts to: the buffer size
    /// [`Session::decrypt_into`](crate::Session::decrypt_into) needs.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    /// let wire = bob_session.encrypt(&mut rng, b"twelve bytes")?;
    /// let message = RatchetMessage::parse(&wire)?;
    /// assert_eq!(message.plaintext_len(), 12);
    /// assert_eq!(wire.len(), RATCHET_MESSAGE_OVERHEAD + 12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len()
    }

    pub(crate) fn header_bytes(&self) -> &'a [u8] {
        self.header_bytes
    }

    pub(crate) fn ciphertext(&self) -> &'a [u8] {
        self.ciphertext
    }

    pub(crate) fn tag(&self) -> &[u8; TAG_LEN] {
        &self.tag
    }
}

/// A parsed, borrowed prekey message: the hybrid handshake's fields and the
/// first ratchet message. Until the responder replies, every message the
/// initiator sends is one. The responder hands the first to
/// [`Responder::accept`](crate::Responder::accept), which creates its session;
/// a repeat goes to that session ([`Session::decrypt`](crate::Session::decrypt)).
///
/// ```
/// # use ratchetbox::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// # };
/// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
/// # let bundle = bundle.verify()?;
/// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
/// let message = PreKeyMessage::parse(&wire)?;
/// let responder = Responder::new(&bob, &mut bob_prekeys);
/// let (bob_session, plaintext) = responder.accept(&alice.address(), &message)?;
/// assert_eq!(plaintext, b"hi Bob");
/// assert_eq!(bob_session.remote_identity(), message.identity_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct PreKeyMessage<'a> {
    identity_key: IdentityKey,
    base_key: PublicKey,
    signed_prekey_id: PreKeyId,
    kem_prekey_id: PreKeyId,
    kem_ciphertext: &'a [u8; KEM_CIPHERTEXT_LEN],
    one_time_prekey_id: Option<PreKeyId>,
    message: RatchetMessage<'a>,
}

impl core::fmt::Debug for PreKeyMessage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyMessage")
            .field("identity_key", &self.identity_key)
            .field("base_key", &self.base_key)
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("kem_prekey_id", &self.kem_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl<'a> PreKeyMessage<'a> {
    /// Parses a prekey message without copying it.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let message = PreKeyMessage::parse(&wire)?;
    /// assert_eq!(message.message().plaintext_len(), 6);
    ///
    /// let cut = PreKeyMessage::parse(&wire[..100]);
    /// assert_eq!(cut.err(), Some(DecodeError::Truncated { field: "KEM ciphertext" }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] for a wrong tag, invalid identity key, non-canonical base
    /// key, bad flag, or a malformed embedded ratchet message. Such bytes can never
    /// start a session: drop the message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(PREKEY_MESSAGE_TAG)?;
        let identity_key = IdentityKey::from_bytes(&r.array("initiator identity key")?)?;
        let base_key = r.public_key("base key")?;
        let signed_prekey_id = r.u32("signed prekey id")?;
        let kem_prekey_id = r.u32("KEM prekey id")?;
        let kem_ciphertext = r
            .take(KEM_CIPHERTEXT_LEN, "KEM ciphertext")?
            .try_into()
            .map_err(|_| DecodeError::Truncated {
                field: "KEM ciphertext",
            })?;
        let has_one_time = r.flag("one-time prekey flag")?;
        let id = r.u32("one-time prekey id")?;
        let one_time_prekey_id = match (has_one_time, id) {
            (true, id) => Some(id),
            (false, 0) => None,
            // An absent id must be zero, so each message has one encoding.
            (false, _) => {
                return Err(DecodeError::InvalidFlag {
                    field: "one-time prekey id",
                });
            }
        };
        let message = RatchetMessage::parse(r.remaining())?;
        Ok(Self {
            identity_key,
            base_key,
            signed_prekey_id,
            kem_prekey_id,
            kem_ciphertext,
            one_time_prekey_id,
            message,
        })
    }

    /// The initiator's identity key, as claimed. It is authenticated only once the
    /// embedded message decrypts; to require a known key, use
    /// [`Responder::expect_initiator`](crate::Responder::expect_initiator).
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let message = PreKeyMessage::parse(&wire)?;
    /// assert_eq!(message.identity_key(), alice.identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }

    /// The initiator's X3DH ephemeral key; it identifies the session (both sides'
    /// [`Session::base_key`](crate::Session::base_key) is this key).
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let message = PreKeyMessage::parse(&wire)?;
    /// assert_eq!(message.base_key(), alice_session.base_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The signed prekey the initiator used.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let message = PreKeyMessage::parse(&wire)?;
    /// assert_eq!(message.signed_prekey_id(), bob_prekeys.signed_prekey().id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signed_prekey_id(&self) -> PreKeyId {
        self.signed_prekey_id
    }

    /// The one-time prekey the initiator used, if any (the bundle had one left).
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let ids = bob_prekeys.generate_one_time_prekeys(&mut rng, 1)?;
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &bob_prekeys, Some(ids[0].0));
    /// let bob_account = AccountId::new(b"bob")?;
    /// let mut session = Session::initiate(&mut rng, &alice, &bob_account, &bundle.verify()?)?;
    /// let wire = session.encrypt(&mut rng, b"hi Bob")?;
    /// assert_eq!(PreKeyMessage::parse(&wire)?.one_time_prekey_id(), Some(ids[0].0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn one_time_prekey_id(&self) -> Option<PreKeyId> {
        self.one_time_prekey_id
    }

    /// The KEM prekey the initiator encapsulated to: a one-time KEM prekey if the
    /// bundle had one, else the last-resort one.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let message = PreKeyMessage::parse(&wire)?;
    /// assert_eq!(message.kem_prekey_id(), bob_prekeys.last_resort_kem_prekey().id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kem_prekey_id(&self) -> PreKeyId {
        self.kem_prekey_id
    }

    /// The ML-KEM-768 ciphertext (any 1088 bytes parse: one not made for the named
    /// KEM prekey makes the first message fail to decrypt). Every prekey message of
    /// a session repeats the same one.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let one = alice_session.encrypt(&mut rng, b"one")?;
    /// let two = alice_session.encrypt(&mut rng, b"two")?;
    /// let (one, two) = (PreKeyMessage::parse(&one)?, PreKeyMessage::parse(&two)?);
    /// assert_eq!(one.kem_ciphertext().len(), KEM_CIPHERTEXT_LEN);
    /// assert_eq!(one.kem_ciphertext(), two.kem_ciphertext());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kem_ciphertext(&self) -> &'a [u8; KEM_CIPHERTEXT_LEN] {
        self.kem_ciphertext
    }

    /// The embedded ratchet message.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let inner = *PreKeyMessage::parse(&wire)?.message();
    /// assert_eq!(inner.header().message_number, 0);
    /// assert_eq!(wire.len(), PREKEY_MESSAGE_OVERHEAD + inner.plaintext_len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message(&self) -> &RatchetMessage<'a> {
        &self.message
    }
}

/// The prekey message fields in front of an embedded ratchet message.
pub(crate) struct PreKeyPrefix<'a> {
    pub(crate) identity_key: &'a IdentityKey,
    pub(crate) base_key: &'a PublicKey,
    pub(crate) signed_prekey_id: PreKeyId,
    pub(crate) kem_prekey_id: PreKeyId,
    pub(crate) kem_ciphertext: &'a [u8; KEM_CIPHERTEXT_LEN],
    pub(crate) one_time_prekey_id: Option<PreKeyId>,
}

impl PreKeyPrefix<'_> {
    /// Writes the prefix into the first [`PREKEY_PREFIX_LEN`] bytes of `out`
    /// (which the caller sized).
    pub(crate) fn encode_into(&self, out: &mut [u8]) {
        const KEM_AT: usize = 73;
        const ONE_TIME_AT: usize = KEM_AT + KEM_CIPHERTEXT_LEN;
        out[0] = PREKEY_MESSAGE_TAG;
        out[1..33].copy_from_slice(&self.identity_key.to_bytes());
        out[33..65].copy_from_slice(self.base_key.as_bytes());
        out[65..69].copy_from_slice(&self.signed_prekey_id.to_be_bytes());
        out[69..KEM_AT].copy_from_slice(&self.kem_prekey_id.to_be_bytes());
        out[KEM_AT..ONE_TIME_AT].copy_from_slice(self.kem_ciphertext);
        out[ONE_TIME_AT] = u8::from(self.one_time_prekey_id.is_some());
        out[ONE_TIME_AT + 1..PREKEY_PREFIX_LEN]
            .copy_from_slice(&self.one_time_prekey_id.unwrap_or(0).to_be_bytes());
    }
}

/// Either kind of incoming session message, told apart by its first byte. A
/// receiver routes on it: a prekey message without a session that
/// [owns it](crate::Session::owns_prekey_message) starts a new one, everything
/// else goes to the peer's session.
///
/// ```
/// # use ratchetbox::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// # };
/// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
/// # let bundle = bundle.verify()?;
/// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
/// let mut bob_session = match Message::parse(&wire)? {
///     Message::PreKey(first) => {
///         let responder = Responder::new(&bob, &mut bob_prekeys);
///         let (session, plaintext) = responder.accept(&alice.address(), &first)?;
///         assert_eq!(plaintext, b"hi Bob");
///         session
///     }
///     Message::Ratchet(_) => unreachable!("no session with Alice yet"),
/// };
/// let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
/// assert!(matches!(Message::parse(&reply)?, Message::Ratchet(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// A short-lived view on the stack; boxing the larger variant would put an
// allocation on the parse path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// A prekey message (starts a session, or repeats until the peer replies).
    PreKey(PreKeyMessage<'a>),
    /// An ordinary ratchet message.
    Ratchet(RatchetMessage<'a>),
}

impl<'a> Message<'a> {
    /// Parses either message kind.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// assert!(matches!(Message::parse(&wire)?, Message::PreKey(_)));
    ///
    /// assert_eq!(Message::parse(&[]).err(), Some(DecodeError::Truncated { field: "format tag" }));
    /// let junk = Message::parse(&[9; 80]);
    /// assert_eq!(junk.err(), Some(DecodeError::UnknownFormat { expected: 0x04, found: 9 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] if the bytes are neither a valid prekey message nor a valid
    /// ratchet message. Such bytes can never decrypt: drop the message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&PREKEY_MESSAGE_TAG) => PreKeyMessage::parse(bytes).map(Self::PreKey),
            Some(_) => RatchetMessage::parse(bytes).map(Self::Ratchet),
            None => Err(DecodeError::Truncated {
                field: "format tag",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            ratchet_key: PublicKey::from_bytes([7; 32]).expect("canonical"),
            previous_chain_length: 3,
            message_number: 0x0102_0304,
            nonce: [9; NONCE_LEN],
        };
        let bytes = h.encode();
        assert_eq!(&bytes[37..41], &[1, 2, 3, 4]);
        assert_eq!(&bytes[41..], &[9; NONCE_LEN]);
        assert_eq!(Header::parse(&mut Reader::new(&bytes)), Ok(h));
    }

    #[test]
    fn short_messages_are_typed_errors() {
        assert_eq!(
            RatchetMessage::parse(&[RATCHET_MESSAGE_TAG; RATCHET_MESSAGE_OVERHEAD - 1]).err(),
            Some(DecodeError::Truncated {
                field: "ratchet message"
            })
        );
        assert_eq!(
            RatchetMessage::parse(&[9; 80]).err(),
            Some(DecodeError::UnknownFormat {
                expected: RATCHET_MESSAGE_TAG,
                found: 9
            })
        );
        assert!(Message::parse(&[]).is_err());
        assert!(PreKeyMessage::parse(&[2; 10]).is_err());
    }
}
