//! Double Ratchet sessions between two devices.
//!
//! A [`Session`] is created by the initiator from a [`VerifiedBundle`]
//! ([`Session::initiate`]) or by the responder from the first
//! [`PreKeyMessage`] ([`Responder::accept`]). It is explicit state: every
//! operation is a synchronous method, and [`Session::encode`] persists it.
//!
//! Decryption is transactional. All work happens on staged values and is
//! committed only after the AEAD tag verifies, so a forged, replayed, truncated
//! or out-of-bounds message leaves the session exactly as it was.

mod config;
#[cfg(feature = "hazmat")]
pub(crate) mod hazmat;
mod responder;
mod state;

use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

pub use config::SessionConfig;
pub use responder::Responder;
pub(crate) use responder::accept_with_keys;

use crate::account::{AccountId, DeviceAddress};
use crate::bundle::VerifiedBundle;
use crate::crypto::kem::KemCiphertext;
use crate::crypto::{self, DhKeyPair, PublicKey};
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::local::LocalDevice;
use crate::message::{
    HEADER_LEN, Header, Message, PREKEY_PREFIX_LEN, PreKeyMessage, PreKeyPrefix,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage,
};
use crate::prekey::PreKeyId;
use crate::ratchet::keys::{ChainKey, MessageKey, RootKey};
use crate::ratchet::skipped::{SkippedKey, SkippedKeys};
use crate::x3dh::{self, AD_LEN, EphemeralKeyPair};

/// Most previous remote ratchet keys remembered, so that a replayed message from
/// an old chain is reported as a duplicate instead of costing a DH attempt.
pub const MAX_PREVIOUS_RATCHET_KEYS: usize = 4;

/// `AD ‖ header` (SPEC.md §5.3).
const AAD_LEN: usize = AD_LEN + HEADER_LEN;

/// Which side of the X3DH handshake this session was.
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
/// assert_eq!(alice_session.role(), Role::Initiator);
/// assert_eq!(bob_session.role(), Role::Responder);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Fetched a bundle and sent the prekey message (Alice).
    Initiator,
    /// Accepted a prekey message (Bob).
    Responder,
}

struct SendingChain {
    ratchet: DhKeyPair,
    chain: ChainKey,
    next_number: u32,
}

/// The sending side of the ratchet. After a message under a new remote
/// ratchet key, the receiving half of the DH ratchet step is done at once and
/// the sending half (a fresh ratchet key, one DH, one KDF_RK) at the next
/// send (SPEC.md §5.6): receiving stays cheap, and a device that never
/// replies never pays for it. The step is against the current `DHr`.
enum Sending {
    Ready(SendingChain),
    Due,
}

struct ReceivingChain {
    ratchet_key: PublicKey,
    chain: ChainKey,
    next_number: u32,
}

/// The prekeys the handshake used, and digests of its KEM key and ciphertext.
/// The initiator repeats the prekey fields in front of every message until the
/// responder replies; the responder keeps them so that a repeated prekey
/// message must match exactly. With the addresses, identities and base key
/// they give the session's AD (SPEC.md §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HandshakePreKeys {
    signed_prekey_id: PreKeyId,
    kem_prekey_id: PreKeyId,
    one_time_prekey_id: Option<PreKeyId>,
    kem_public_digest: [u8; 32],
    kem_ciphertext_digest: [u8; 32],
}

/// A Double Ratchet session with one remote device. The initiator creates it
/// from a bundle ([`Session::initiate`]), the responder from the first message
/// ([`Responder::accept`]). Save it with [`encode`](Self::encode) after every
/// encrypt and decrypt: the state moves forward with each message, and an older
/// copy can fail on newer messages and accept old ones again.
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
/// let wire = alice_session.encrypt(&mut rng, b"how are you?")?;
/// assert_eq!(bob_session.decrypt(&wire)?, b"how are you?");
///
/// let saved = bob_session.encode(); // store it encrypted
/// let mut bob_session = Session::decode(&saved)?;
/// let reply = bob_session.encrypt(&mut rng, b"fine")?;
/// assert_eq!(alice_session.decrypt(&reply)?, b"fine");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session {
    config: SessionConfig,
    role: Role,
    local_identity: IdentityKey,
    remote_identity: IdentityKey,
    local_address: DeviceAddress,
    remote_address: DeviceAddress,
    base_key: PublicKey,
    /// The hashed associated data (SPEC.md §5.1), fixed for the session.
    associated_data: [u8; AD_LEN],
    root: RootKey,
    sending: Sending,
    previous_chain_length: u32,
    receiving: Option<ReceivingChain>,
    previous_ratchet_keys: Vec<PublicKey>,
    handshake_prekeys: HandshakePreKeys,
    /// While the initiator awaits a reply: the KEM ciphertext its prekey
    /// messages repeat. `None` for a responder, and once a reply decrypted.
    pending_prekey: Option<KemCiphertext>,
    skipped: SkippedKeys,
}

/// Derives keys `from..to` of a chain as staged skipped keys and returns the
/// key for position `to` with the chain key after it.
fn advance_chain(
    chain: &ChainKey,
    ratchet_key: &PublicKey,
    from: u32,
    to: u32,
    skipped: &mut SkippedKeys,
) -> (MessageKey, ChainKey) {
    let (mut message_key, mut next) = chain.step();
    for number in from..to {
        skipped.push_staged(SkippedKey::new(*ratchet_key, number, message_key));
        (message_key, next) = next.step();
    }
    (message_key, next)
}

impl Session {
    /// An independent deep copy (both copies zeroize on drop). Deliberately not
    /// `Clone`: only a store that hands out owned sessions needs it, and a copy
    /// must never be used to send, or message keys would repeat.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            config: self.config,
            role: self.role,
            local_identity: self.local_identity,
            remote_identity: self.remote_identity,
            local_address: self.local_address,
            remote_address: self.remote_address,
            base_key: self.base_key,
            associated_data: self.associated_data,
            root: self.root.duplicate(),
            sending: match &self.sending {
                Sending::Ready(s) => Sending::Ready(SendingChain {
                    ratchet: s.ratchet.duplicate(),
                    chain: s.chain.duplicate(),
                    next_number: s.next_number,
                }),
                Sending::Due => Sending::Due,
            },
            previous_chain_length: self.previous_chain_length,
            receiving: self.receiving.as_ref().map(|r| ReceivingChain {
                ratchet_key: r.ratchet_key,
                chain: r.chain.duplicate(),
                next_number: r.next_number,
            }),
            previous_ratchet_keys: self.previous_ratchet_keys.clone(),
            handshake_prekeys: self.handshake_prekeys,
            pending_prekey: self.pending_prekey.clone(),
            skipped: self.skipped.duplicate(),
        }
    }

    /// Starts a session as the initiator from a verified bundle of a device of
    /// account `peer`. Messages from this session are prekey messages until
    /// the responder replies.
    ///
    /// The session is bound to both devices' addresses (this device's and
    /// `peer` with the bundle's device id): the responder must name the same
    /// two addresses, so a relay cannot present the messages as another
    /// account's.
    ///
    /// ```
    /// use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyStore};
    /// use ratchetbox::Session;
    /// let mut rng = ratchetbox::os_rng();
    /// let identity = IdentityKeyPair::generate(&mut rng);
    /// let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// let bob = IdentityKeyPair::generate(&mut rng);
    /// let bob_prekeys = PreKeyStore::generate(&mut rng, &bob, 1);
    ///
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &bob_prekeys, None).verify()?;
    /// let bob_account = AccountId::new(b"bob")?;
    /// let mut session = Session::initiate(&mut rng, &alice, &bob_account, &bundle)?;
    /// let first = session.encrypt(&mut rng, b"hi Bob")?;
    /// assert!(session.is_awaiting_reply());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NonContributoryDh`] if a key in the bundle has small order
    /// (the bundle is unusable: fetch another one).
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        local: &LocalDevice,
        peer: &AccountId,
        bundle: &VerifiedBundle,
    ) -> Result<Self, Error> {
        Self::initiate_with_config(rng, local, peer, bundle, SessionConfig::default())
    }

    /// [`initiate`](Self::initiate) with explicit limits.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let bob_prekeys = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &bob_prekeys, None).verify()?;
    /// let strict = SessionConfig::new(100, 200)?;
    /// # let bob = AccountId::new(b"bob")?;
    /// let session = Session::initiate_with_config(&mut rng, &alice, &bob, &bundle, strict)?;
    /// assert_eq!(session.config().max_skip(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`initiate`](Self::initiate).
    pub fn initiate_with_config<R: CryptoRng + ?Sized>(
        rng: &mut R,
        local: &LocalDevice,
        peer: &AccountId,
        bundle: &VerifiedBundle,
        config: SessionConfig,
    ) -> Result<Self, Error> {
        let peer = DeviceAddress::new(*peer, bundle.device_id());
        let ephemeral = EphemeralKeyPair::generate(rng);
        let handshake = x3dh::initiate(rng, local, &peer, bundle, ephemeral)?;
        Self::from_handshake(rng, local, peer, bundle, config, handshake)
    }

    /// The initiator's session from a completed X3DH.
    pub(crate) fn from_handshake<R: CryptoRng + ?Sized>(
        rng: &mut R,
        local: &LocalDevice,
        peer: DeviceAddress,
        bundle: &VerifiedBundle,
        config: SessionConfig,
        handshake: x3dh::InitiatorOutput,
    ) -> Result<Self, Error> {
        let (_, responder_ratchet_key) = bundle.signed_prekey();
        // Alice ratchets once at the start, against Bob's signed prekey.
        let ratchet = DhKeyPair::generate(rng);
        let dh = ratchet.dh(responder_ratchet_key)?;
        let (root, chain) = RootKey::new(handshake.secret.into_bytes()).step(&dh);
        Ok(Self {
            config,
            role: Role::Initiator,
            local_identity: *local.identity.public_key(),
            remote_identity: *bundle.identity_key(),
            local_address: local.address(),
            remote_address: peer,
            base_key: handshake.base_key,
            associated_data: handshake.associated_data,
            root,
            sending: Sending::Ready(SendingChain {
                ratchet,
                chain,
                next_number: 0,
            }),
            previous_chain_length: 0,
            receiving: None,
            previous_ratchet_keys: Vec::new(),
            handshake_prekeys: HandshakePreKeys {
                signed_prekey_id: handshake.signed_prekey_id,
                kem_prekey_id: handshake.kem_prekey_id,
                one_time_prekey_id: handshake.one_time_prekey_id,
                kem_public_digest: handshake.kem_public_digest,
                kem_ciphertext_digest: handshake.kem_ciphertext_digest,
            },
            pending_prekey: Some(handshake.kem_ciphertext),
            skipped: SkippedKeys::default(),
        })
    }

    /// Builds the responder's session from the X3DH secret and decrypts the first
    /// message in one step; nothing exists unless that message authenticates.
    pub(crate) fn respond_and_decrypt(
        config: SessionConfig,
        local: &LocalDevice,
        from: &DeviceAddress,
        prekeys: &x3dh::ResponderPreKeys<'_>,
        handshake: x3dh::ResponderOutput,
        message: &PreKeyMessage<'_>,
        out: &mut [u8],
    ) -> Result<(Self, usize), Error> {
        let x3dh::ResponderOutput {
            secret,
            associated_data,
            kem_ciphertext_digest,
        } = handshake;
        let associated_data = &associated_data;
        let inner = message.message();
        let len = check_output(inner, out)?;
        let header = inner.header();
        let aad = build_aad(associated_data, inner.header_bytes());
        let requested = u64::from(header.message_number);
        check_skip(requested, &config, header.message_number)?;

        // Bob's first ratchet key is his signed prekey.
        let dh = prekeys.signed.key_pair().dh(&header.ratchet_key)?;
        let (root, receiving_chain) = RootKey::new(secret.into_bytes()).step(&dh);
        // A fresh store: on failure it is simply dropped (zeroizing its keys).
        let mut skipped = SkippedKeys::default();
        let mark = skipped.stage(header.message_number as usize);
        let (message_key, chain_after) = advance_chain(
            &receiving_chain,
            &header.ratchet_key,
            0,
            header.message_number,
            &mut skipped,
        );
        message_key.open(
            &header.nonce,
            &aad,
            inner.ciphertext(),
            inner.tag(),
            &mut out[..len],
        )?;

        // The sending half of this first DH ratchet step waits for Bob's first send.
        skipped.commit(mark, config.max_skipped_keys() as usize);
        let session = Self {
            config,
            role: Role::Responder,
            local_identity: *local.identity.public_key(),
            remote_identity: *message.identity_key(),
            local_address: local.address(),
            remote_address: *from,
            base_key: *message.base_key(),
            associated_data: *associated_data,
            root,
            sending: Sending::Due,
            previous_chain_length: 0,
            receiving: Some(ReceivingChain {
                ratchet_key: header.ratchet_key,
                chain: chain_after,
                next_number: header.message_number + 1,
            }),
            previous_ratchet_keys: Vec::new(),
            handshake_prekeys: HandshakePreKeys {
                signed_prekey_id: message.signed_prekey_id(),
                kem_prekey_id: message.kem_prekey_id(),
                one_time_prekey_id: message.one_time_prekey_id(),
                kem_public_digest: *prekeys.kem.key_pair().public_digest(),
                kem_ciphertext_digest,
            },
            pending_prekey: None,
            skipped,
        };
        Ok((session, len))
    }

    /// Bytes [`encrypt_into`](Self::encrypt_into) writes for a plaintext of
    /// `plaintext_len` bytes: more while [`is_awaiting_reply`](Self::is_awaiting_reply),
    /// as prekey messages carry the handshake.
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
    /// assert_eq!(alice_session.encrypted_len(5), PREKEY_MESSAGE_OVERHEAD + 5);
    ///
    /// let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
    /// alice_session.decrypt(&reply)?;
    /// assert_eq!(alice_session.encrypted_len(5), RATCHET_MESSAGE_OVERHEAD + 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encrypted_len(&self, plaintext_len: usize) -> usize {
        let prefix = if self.pending_prekey.is_some() {
            PREKEY_PREFIX_LEN
        } else {
            0
        };
        prefix + RATCHET_MESSAGE_OVERHEAD + plaintext_len
    }

    /// Encrypts `plaintext` into `out` without allocating and returns the number
    /// of bytes written: a prekey message while
    /// [`is_awaiting_reply`](Self::is_awaiting_reply), a ratchet message after.
    ///
    /// `rng` supplies the message's 12-byte nonce. The nonce is what keeps two
    /// copies of one session (a restored backup, a blob decoded twice) from
    /// encrypting under the same key and nonce; the receiver still accepts
    /// only the first message for each position.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None).verify()?;
    /// # let bob_account = AccountId::new(b"bob")?;
    /// let mut session = Session::initiate(&mut rng, &alice, &bob_account, &bundle)?;
    /// // A prekey message (the session awaits a reply) carries the 1088-byte KEM
    /// // ciphertext: 1240 bytes for 5 bytes of plaintext.
    /// let mut buffer = [0u8; 2048];
    /// let written = session.encrypt_into(&mut rng, b"hello", &mut buffer)?;
    /// assert_eq!(written, session.encrypted_len(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::BufferTooSmall`] if `out` is shorter than
    ///   [`encrypted_len`](Self::encrypted_len): retry with a larger buffer;
    /// - [`Error::CounterExhausted`] after 2^32 − 1 messages in one chain: start a
    ///   new session with a fresh bundle;
    /// - [`Error::MessageTooLarge`] for a plaintext beyond what the AEAD can
    ///   encrypt (about 256 GiB): split it.
    pub fn encrypt_into<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let needed = self.encrypted_len(plaintext.len());
        crate::error::check_buffer(needed, out)?;
        if let Sending::Ready(sending) = &self.sending
            && sending.next_number == u32::MAX
        {
            return Err(Error::CounterExhausted);
        }
        let mut offset = 0;
        if let Some(kem_ciphertext) = &self.pending_prekey {
            let handshake = &self.handshake_prekeys;
            PreKeyPrefix {
                identity_key: &self.local_identity,
                base_key: &self.base_key,
                signed_prekey_id: handshake.signed_prekey_id,
                kem_prekey_id: handshake.kem_prekey_id,
                kem_ciphertext: kem_ciphertext.as_bytes(),
                one_time_prekey_id: handshake.one_time_prekey_id,
            }
            .encode_into(out);
            offset = PREKEY_PREFIX_LEN;
        }
        // The sending half of a pending DH ratchet step (SPEC.md §5.6) is
        // staged and kept only once the message is sealed, so an error leaves
        // the session unchanged.
        let staged = match &self.sending {
            Sending::Ready(_) => None,
            Sending::Due => {
                let remote = self
                    .receiving
                    .as_ref()
                    .map(|r| r.ratchet_key)
                    .ok_or(Error::DecryptionFailed)?;
                Some(ratchet_sending(rng, &self.root, &remote)?)
            }
        };
        let sending = match (&staged, &self.sending) {
            (Some((_, chain)), _) | (None, Sending::Ready(chain)) => chain,
            (None, Sending::Due) => return Err(Error::DecryptionFailed),
        };
        let number = sending.next_number;
        let nonce = crypto::random_nonce(rng);
        let header = Header {
            ratchet_key: *sending.ratchet.public(),
            previous_chain_length: self.previous_chain_length,
            message_number: number,
            nonce,
        }
        .encode();
        let (header_out, body) = out[offset..needed].split_at_mut(HEADER_LEN);
        header_out.copy_from_slice(&header);
        let (ciphertext, tag_out) = body.split_at_mut(plaintext.len());
        let aad = build_aad(&self.associated_data, &header);
        let (message_key, next) = sending.chain.step();
        let tag = message_key.seal(&nonce, &aad, plaintext, ciphertext)?;
        tag_out.copy_from_slice(&tag);
        if let Some((root, chain)) = staged {
            self.root = root;
            self.sending = Sending::Ready(chain);
        }
        if let Sending::Ready(sending) = &mut self.sending {
            sending.chain = next;
            sending.next_number = number + 1;
        }
        Ok(needed)
    }

    /// Encrypts `plaintext` into a new `Vec`.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None).verify()?;
    /// # let bob_account = AccountId::new(b"bob")?;
    /// let mut session = Session::initiate(&mut rng, &alice, &bob_account, &bundle)?;
    /// let wire = session.encrypt(&mut rng, b"hello")?;
    /// assert_eq!(wire.len(), session.encrypted_len(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`encrypt_into`](Self::encrypt_into).
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; self.encrypted_len(plaintext.len())];
        let written = self.encrypt_into(rng, plaintext, &mut out)?;
        out.truncate(written);
        Ok(out)
    }

    /// Decrypts a ratchet message into `out` and returns the plaintext length.
    /// Allocates nothing for an in-order message, and draws no randomness: a
    /// message under a new ratchet key does the receiving half of the DH
    /// ratchet step, and the sending half waits for the next
    /// [`encrypt_into`](Self::encrypt_into).
    ///
    /// On any error the session is unchanged (its encoding is byte-for-byte the
    /// same) and `out` holds no plaintext.
    ///
    /// The header (sender ratchet key, PN, N) travels in the clear, as in the
    /// Double Ratchet spec without header encryption: a relay can read it, and it
    /// is checked against the session's bounds before any key is tried.
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
    /// let mut wire = [0u8; 128];
    /// let len = bob_session.encrypt_into(&mut rng, b"reply", &mut wire)?;
    ///
    /// let message = RatchetMessage::parse(&wire[..len])?;
    /// let mut plaintext = [0u8; 64];
    /// let n = alice_session.decrypt_into(&message, &mut plaintext)?;
    /// assert_eq!(&plaintext[..n], b"reply");
    ///
    /// // The same message again is a replay.
    /// assert_eq!(
    ///     alice_session.decrypt_into(&message, &mut plaintext),
    ///     Err(ratchetbox::Error::DuplicateMessage)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// On any error the session is unchanged, so after logging it an app can
    /// always go on with the next message.
    /// - [`Error::BufferTooSmall`] if `out` is shorter than the plaintext: retry
    ///   with [`plaintext_len`](RatchetMessage::plaintext_len) bytes;
    /// - [`Error::DuplicateMessage`] for a message already decrypted (or whose
    ///   skipped key was evicted): a redelivery, drop it silently;
    /// - [`Error::TooManySkippedMessages`] beyond [`SessionConfig::max_skip`]:
    ///   drop the message;
    /// - [`Error::NonContributoryDh`] for a small-order ratchet key (a forgery):
    ///   drop the message;
    /// - [`Error::CounterExhausted`] for message number 2^32 − 1: drop it;
    /// - [`Error::DecryptionFailed`] for anything that does not authenticate
    ///   (forged, corrupted, or for another session): drop it. If every message
    ///   from the peer fails, the two sides have lost sync (for example one
    ///   restored an old backup): start a new session with a fresh bundle.
    pub fn decrypt_into(
        &mut self,
        message: &RatchetMessage<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = check_output(message, out)?;
        let out = &mut out[..len];
        let header = message.header();
        // SPEC.md §5.7 step 1: before any classification.
        if header.message_number == u32::MAX {
            return Err(Error::CounterExhausted);
        }
        let aad = build_aad(&self.associated_data, message.header_bytes());

        let on_current_chain = self
            .receiving
            .as_ref()
            .is_some_and(|r| r.ratchet_key == header.ratchet_key);
        if on_current_chain {
            return self.decrypt_current_chain(header, &aad, message, out);
        }
        if self
            .skipped
            .find(&header.ratchet_key, header.message_number)
            .is_some()
            || self.previous_ratchet_keys.contains(&header.ratchet_key)
        {
            return self.decrypt_skipped(header, &aad, message, out);
        }
        self.decrypt_new_ratchet(header, &aad, message, out)
    }

    /// A message on the current receiving chain: the steady-state path. In order,
    /// it is one KDF_CK and one AEAD open, with no allocation.
    fn decrypt_current_chain(
        &mut self,
        header: &Header,
        aad: &[u8],
        message: &RatchetMessage<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let Some(receiving) = &mut self.receiving else {
            return Err(Error::DecryptionFailed);
        };
        if header.message_number < receiving.next_number {
            return self.decrypt_skipped(header, aad, message, out);
        }
        let from = receiving.next_number;
        let to = header.message_number;
        check_skip(u64::from(to - from), &self.config, to)?;
        // In order (`to == from`) nothing is staged and nothing allocates.
        let mark = self.skipped.stage((to - from) as usize);
        let (message_key, chain_after) = advance_chain(
            &receiving.chain,
            &header.ratchet_key,
            from,
            to,
            &mut self.skipped,
        );
        if let Err(e) =
            message_key.open(&header.nonce, aad, message.ciphertext(), message.tag(), out)
        {
            self.skipped.rollback(mark);
            return Err(e);
        }
        receiving.chain = chain_after;
        receiving.next_number = to + 1;
        self.skipped
            .commit(mark, self.config.max_skipped_keys() as usize);
        self.pending_prekey = None;
        Ok(out.len())
    }

    /// A message whose key was derived earlier: use the stored key, or report a
    /// duplicate if there is none.
    fn decrypt_skipped(
        &mut self,
        header: &Header,
        aad: &[u8],
        message: &RatchetMessage<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let index = self
            .skipped
            .find(&header.ratchet_key, header.message_number)
            .ok_or(Error::DuplicateMessage)?;
        let key = self
            .skipped
            .message_key(index)
            .ok_or(Error::DuplicateMessage)?;
        key.open(&header.nonce, aad, message.ciphertext(), message.tag(), out)?;
        self.skipped.remove(index);
        self.pending_prekey = None;
        Ok(out.len())
    }

    /// A message under a new remote ratchet key: finish the old receiving chain
    /// into skipped keys, step the root twice, and commit only if it decrypts.
    fn decrypt_new_ratchet(
        &mut self,
        header: &Header,
        aad: &[u8],
        message: &RatchetMessage<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let old_gap = self.receiving.as_ref().map_or(0, |r| {
            header.previous_chain_length.saturating_sub(r.next_number)
        });
        let requested = u64::from(old_gap) + u64::from(header.message_number);
        check_skip(requested, &self.config, header.message_number)?;

        let mark = self.skipped.stage(requested as usize);
        match self.stage_new_ratchet(header, old_gap, aad, message, out) {
            Ok((root, chain_after)) => {
                if let Some(old) = self.receiving.take() {
                    if self.previous_ratchet_keys.len() == MAX_PREVIOUS_RATCHET_KEYS {
                        self.previous_ratchet_keys.remove(0);
                    }
                    self.previous_ratchet_keys.push(old.ratchet_key);
                }
                self.receiving = Some(ReceivingChain {
                    ratchet_key: header.ratchet_key,
                    chain: chain_after,
                    next_number: header.message_number + 1,
                });
                if let Sending::Ready(sending) = &self.sending {
                    self.previous_chain_length = sending.next_number;
                }
                // The sending half of this step waits for the next send.
                self.sending = Sending::Due;
                self.root = root;
                self.skipped
                    .commit(mark, self.config.max_skipped_keys() as usize);
                self.pending_prekey = None;
                Ok(out.len())
            }
            Err(e) => {
                self.skipped.rollback(mark);
                Err(e)
            }
        }
    }

    /// Everything fallible of a new ratchet step. Changes nothing but the staged
    /// skipped keys, which the caller commits or rolls back.
    fn stage_new_ratchet(
        &mut self,
        header: &Header,
        old_gap: u32,
        aad: &[u8],
        message: &RatchetMessage<'_>,
        out: &mut [u8],
    ) -> Result<(RootKey, ChainKey), Error> {
        // Only a key the peer has seen answers a new ratchet key. While the
        // sending half of the last step is due, this device has sent nothing
        // under a new key, so an honest peer cannot have moved on yet.
        let Sending::Ready(own) = &self.sending else {
            return Err(Error::DecryptionFailed);
        };
        if let Some(old) = self.receiving.as_ref().filter(|_| old_gap > 0) {
            // Keys old.next_number ..= PN − 1: the rest of the peer's previous chain.
            let last = header.previous_chain_length - 1;
            let (key, _) = advance_chain(
                &old.chain,
                &old.ratchet_key,
                old.next_number,
                last,
                &mut self.skipped,
            );
            self.skipped
                .push_staged(SkippedKey::new(old.ratchet_key, last, key));
        }
        let dh = own.ratchet.dh(&header.ratchet_key)?;
        let (root, receiving_chain) = self.root.step(&dh);
        let (message_key, chain_after) = advance_chain(
            &receiving_chain,
            &header.ratchet_key,
            0,
            header.message_number,
            &mut self.skipped,
        );
        message_key.open(&header.nonce, aad, message.ciphertext(), message.tag(), out)?;
        Ok((root, chain_after))
    }

    /// Parses and decrypts either message kind into a new `Vec`.
    ///
    /// A prekey message is accepted only if it belongs to this session (same
    /// initiator identity and base key): that happens while the initiator has not
    /// yet seen a reply. A prekey message for a new session goes to
    /// [`Responder::accept`] instead.
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
    /// // Until Bob replies, Alice's messages repeat the handshake; his session reads them.
    /// let second = alice_session.encrypt(&mut rng, b"still there?")?;
    /// assert_eq!(bob_session.decrypt(&second)?, b"still there?");
    /// assert_eq!(bob_session.decrypt(&second), Err(Error::DuplicateMessage));
    ///
    /// // A prekey message of a new session is for `Responder::accept`.
    /// let mut other = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let new_session = other.encrypt(&mut rng, b"hello again")?;
    /// assert_eq!(bob_session.decrypt(&new_session), Err(Error::WrongSession));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] for malformed bytes (drop the message);
    /// [`Error::WrongSession`] for a prekey message of another session (give it to
    /// [`Responder::accept`]); otherwise as [`decrypt_into`](Self::decrypt_into).
    /// On any error the session is unchanged.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let message = match Message::parse(bytes)? {
            Message::Ratchet(m) => m,
            Message::PreKey(p) => {
                if !self.owns_prekey_message(&p) {
                    return Err(Error::WrongSession);
                }
                *p.message()
            }
        };
        let mut out = vec![0u8; message.plaintext_len()];
        let len = self.decrypt_into(&message, &mut out)?;
        out.truncate(len);
        Ok(out)
    }

    /// Whether `message` is a repeat of the prekey message that created this
    /// (responder) session: same initiator identity, base key, prekey ids and KEM
    /// ciphertext. Always false for an initiator.
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
    /// let repeat = alice_session.encrypt(&mut rng, b"again")?;
    /// assert!(bob_session.owns_prekey_message(&PreKeyMessage::parse(&repeat)?));
    ///
    /// let mut other = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let new_session = other.encrypt(&mut rng, b"hello again")?;
    /// assert!(!bob_session.owns_prekey_message(&PreKeyMessage::parse(&new_session)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owns_prekey_message(&self, message: &PreKeyMessage<'_>) -> bool {
        let handshake = &self.handshake_prekeys;
        self.role == Role::Responder
            && self.base_key == *message.base_key()
            && self.remote_identity == *message.identity_key()
            && handshake.signed_prekey_id == message.signed_prekey_id()
            && handshake.kem_prekey_id == message.kem_prekey_id()
            && handshake.one_time_prekey_id == message.one_time_prekey_id()
            && crypto::ct_eq(
                &handshake.kem_ciphertext_digest,
                &crypto::sha256(&[message.kem_ciphertext()]),
            )
    }

    /// True while this initiator session has not yet decrypted a reply, so its
    /// messages are still prekey messages.
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
    /// assert!(alice_session.is_awaiting_reply());
    /// assert!(!bob_session.is_awaiting_reply()); // a responder never is
    ///
    /// let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
    /// alice_session.decrypt(&reply)?;
    /// assert!(!alice_session.is_awaiting_reply());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_awaiting_reply(&self) -> bool {
        self.pending_prekey.is_some()
    }

    /// This device's identity key.
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
    /// assert_eq!(alice_session.local_identity(), alice.identity.public_key());
    /// assert_eq!(bob_session.local_identity(), bob.identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_identity(&self) -> &IdentityKey {
        &self.local_identity
    }

    /// The remote device's identity key: compare it with the contact's trust
    /// record, or show the [`SafetyNumber`](crate::SafetyNumber) computed from it.
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
    /// assert_eq!(bob_session.remote_identity(), alice.identity.public_key());
    /// assert_eq!(alice_session.remote_identity(), bob.identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_identity(&self) -> &IdentityKey {
        &self.remote_identity
    }

    /// This device's address, as bound into the session.
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
    /// assert_eq!(*alice_session.local_address(), alice.address());
    /// assert_eq!(*bob_session.local_address(), bob.address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_address(&self) -> &DeviceAddress {
        &self.local_address
    }

    /// The remote device's address, as bound into the session.
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
    /// assert_eq!(*alice_session.remote_address(), bob.address());
    /// assert_eq!(*bob_session.remote_address(), alice.address());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_address(&self) -> &DeviceAddress {
        &self.remote_address
    }

    /// The initiator's X3DH ephemeral key, which names the session: both sides
    /// have the same one, and [`Error::RepeatedPreKeyMessage`] names a session by it.
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
    /// assert_eq!(alice_session.base_key(), bob_session.base_key());
    ///
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let repeat = responder.accept(&alice.address(), &first_message);
    /// let base_key = *bob_session.base_key();
    /// assert_eq!(repeat.err(), Some(Error::RepeatedPreKeyMessage { base_key }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// Which side of the handshake this session was.
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
    /// assert_eq!(alice_session.role(), Role::Initiator);
    /// assert_eq!(bob_session.role(), Role::Responder);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session's limits, fixed when it was created and stored with it.
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
    /// assert_eq!(*bob_session.config(), SessionConfig::default());
    /// assert_eq!(alice_session.config().max_skip(), SessionConfig::DEFAULT_MAX_SKIP);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// How many skipped message keys are stored: keys of messages that have not
    /// arrived yet although later ones have (bounded by
    /// [`SessionConfig::max_skipped_keys`]).
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
    /// alice_session.decrypt(&two)?; // arrives first: the key for `one` is kept
    /// assert_eq!(alice_session.skipped_key_count(), 1);
    /// alice_session.decrypt(&one)?;
    /// assert_eq!(alice_session.skipped_key_count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }
}

fn check_output(message: &RatchetMessage<'_>, out: &[u8]) -> Result<usize, Error> {
    let len = message.plaintext_len();
    if out.len() < len {
        return Err(Error::BufferTooSmall {
            needed: len,
            available: out.len(),
        });
    }
    Ok(len)
}

fn check_skip(requested: u64, config: &SessionConfig, number: u32) -> Result<(), Error> {
    if number == u32::MAX {
        return Err(Error::CounterExhausted);
    }
    if requested > u64::from(config.max_skip()) {
        return Err(Error::TooManySkippedMessages {
            requested,
            max: config.max_skip(),
        });
    }
    Ok(())
}

/// The sending half of a DH ratchet step: a fresh ratchet key pair and the
/// root/chain keys from `DH(new, remote)`.
fn ratchet_sending<R: CryptoRng + ?Sized>(
    rng: &mut R,
    root: &RootKey,
    remote: &PublicKey,
) -> Result<(RootKey, SendingChain), Error> {
    let ratchet = DhKeyPair::generate(rng);
    let dh = ratchet.dh(remote)?;
    let (root, chain) = root.step(&dh);
    Ok((
        root,
        SendingChain {
            ratchet,
            chain,
            next_number: 0,
        },
    ))
}

fn build_aad(associated_data: &[u8; AD_LEN], header: &[u8]) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..AD_LEN].copy_from_slice(associated_data);
    aad[AD_LEN..].copy_from_slice(header);
    aad
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("local_identity", &self.local_identity)
            .field("remote_identity", &self.remote_identity)
            .field("remote_address", &self.remote_address)
            .field(
                "sending_ratchet_key",
                &match &self.sending {
                    Sending::Ready(s) => Some(*s.ratchet.public()),
                    Sending::Due => None,
                },
            )
            .field("skipped_keys", &self.skipped.len())
            .field("awaiting_reply", &self.pending_prekey.is_some())
            .finish_non_exhaustive()
    }
}
