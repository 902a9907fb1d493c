//! The responder's side of session setup: accepting a prekey message.

use alloc::vec;
use alloc::vec::Vec;

use super::{Session, SessionConfig};
use crate::account::DeviceAddress;
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::local::LocalDevice;
use crate::message::PreKeyMessage;
use crate::prekey::PreKeyStore;
use crate::x3dh::{self, ResponderPreKeys};

/// Accepts a [`PreKeyMessage`] and creates the responder's [`Session`].
///
/// The one-time prekey the message names is looked up by reference and deleted
/// only after the embedded message decrypts: a forged prekey message cannot burn
/// a one-time prekey, and on any error the prekey store is untouched. The store
/// then remembers the message's base key, so the same prekey message again —
/// the initiator repeats it until it sees a reply, and a relay can replay it —
/// is recognised as [`Error::RepeatedPreKeyMessage`] instead of creating a
/// second session.
///
/// ```
/// use ratchetbox::{AccountId, Error, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyMessage};
/// use ratchetbox::{PreKeyStore, Responder, Session};
/// let mut rng = ratchetbox::os_rng();
/// let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, ratchetbox::DecodeError> {
///     let identity = IdentityKeyPair::generate(rng);
///     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
/// };
/// let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
/// let ids = bob_prekeys.generate_one_time_prekeys(&mut rng, 1)?;
///
/// let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, Some(ids[0].0));
/// let bundle = bundle.verify()?;
/// let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
/// let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
///
/// let message = PreKeyMessage::parse(&wire)?;
/// let (mut bob_session, plaintext) =
///     Responder::new(&bob, &mut bob_prekeys).accept(&alice.address(), &message)?;
/// assert_eq!(plaintext, b"hi Bob");
/// assert_eq!(bob_prekeys.one_time_prekey_count(), 0);
///
/// // The same message again names the session it created.
/// let again = Responder::new(&bob, &mut bob_prekeys).accept(&alice.address(), &message);
/// let base_key = *bob_session.base_key();
/// assert_eq!(again.err(), Some(Error::RepeatedPreKeyMessage { base_key }));
/// assert_eq!(bob_session.decrypt(&wire), Err(Error::DuplicateMessage));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Responder<'a> {
    local: &'a LocalDevice,
    prekeys: &'a mut PreKeyStore,
    config: SessionConfig,
    expected_initiator: Option<IdentityKey>,
}

impl<'a> Responder<'a> {
    /// A responder for this device and its prekeys, with default limits. It is
    /// consumed by one [`accept`](Self::accept): build one per incoming prekey
    /// message.
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
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let (bob_session, plaintext) = responder.accept(&alice.address(), &first_message)?;
    /// assert_eq!(plaintext, b"hi Bob");
    /// assert_eq!(bob_session.role(), Role::Responder);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(local: &'a LocalDevice, prekeys: &'a mut PreKeyStore) -> Self {
        Self {
            local,
            prekeys,
            config: SessionConfig::default(),
            expected_initiator: None,
        }
    }

    /// Sets the new session's limits.
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
    /// let strict = SessionConfig::new(100, 200)?;
    /// let responder = Responder::new(&bob, &mut bob_prekeys).with_config(strict);
    /// let (bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    /// assert_eq!(*bob_session.config(), strict);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Requires the initiator to have this identity key (for example the one
    /// recorded for the contact); any other is rejected with
    /// [`Error::IdentityMismatch`] before anything is spent.
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
    /// let recorded = IdentityKeyPair::generate(&mut rng); // Alice's key before a reinstall
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let responder = responder.expect_initiator(recorded.public_key());
    /// let refused = responder.accept(&alice.address(), &first_message);
    /// assert_eq!(refused.err(), Some(Error::IdentityMismatch));
    ///
    /// // Once the user has accepted Alice's new key, the same message is accepted.
    /// let key = alice.identity.public_key();
    /// let responder = Responder::new(&bob, &mut bob_prekeys).expect_initiator(key);
    /// assert!(responder.accept(&alice.address(), &first_message).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expect_initiator(mut self, identity: &IdentityKey) -> Self {
        self.expected_initiator = Some(*identity);
        self
    }

    /// Accepts `message`, which the transport says came from device `from`,
    /// decrypting its embedded message into `out`. Returns the session and the
    /// plaintext length.
    ///
    /// The session is bound to `from` and this device's address: a message
    /// relabelled as coming from another device does not decrypt.
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
    /// let mut out = [0u8; 64];
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let (bob_session, n) = responder.accept_into(&alice.address(), &first_message, &mut out)?;
    /// assert_eq!(&out[..n], b"hi Bob");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// On any error no session exists and the prekey store is untouched.
    /// - [`Error::InvalidConfig`] if the prekey store's device id is not the
    ///   local device's (a setup mistake: the session would never decrypt);
    /// - [`Error::RepeatedPreKeyMessage`] if this store already accepted the
    ///   message (decrypt it with the session that has its base key, or drop it);
    /// - [`Error::IdentityMismatch`] if an expected initiator was set and differs
    ///   (the contact's key changed: show it as unverified and ask the user to
    ///   compare safety numbers; accept again once the new key is accepted);
    /// - [`Error::UnknownSignedPreKey`] / [`Error::UnknownKemPreKey`] /
    ///   [`Error::UnknownOneTimePreKey`] for ids this store does not hold (the
    ///   initiator used an old bundle: the message is lost, and the sender must
    ///   fetch a new bundle);
    /// - [`Error::NonContributoryDh`] for a small-order key (a forgery): drop it;
    /// - [`Error::BufferTooSmall`] if `out` is shorter than the plaintext: retry
    ///   with [`plaintext_len`](crate::RatchetMessage::plaintext_len) bytes of the
    ///   embedded [`message`](PreKeyMessage::message);
    /// - otherwise as [`Session::decrypt_into`] ([`Error::DecryptionFailed`]
    ///   for a forged or relabelled message: drop it).
    pub fn accept_into(
        self,
        from: &DeviceAddress,
        message: &PreKeyMessage<'_>,
        out: &mut [u8],
    ) -> Result<(Session, usize), Error> {
        if self.prekeys.device_id() != self.local.device_id {
            return Err(Error::InvalidConfig {
                reason: "the prekey store belongs to another device id than the local device",
            });
        }
        // First: the one-time prekey named by a repeat is already gone.
        if self.prekeys.has_accepted_base_key(message.base_key()) {
            return Err(Error::RepeatedPreKeyMessage {
                base_key: *message.base_key(),
            });
        }
        if let Some(expected) = &self.expected_initiator
            && expected != message.identity_key()
        {
            return Err(Error::IdentityMismatch);
        }
        let signed_id = message.signed_prekey_id();
        let signed_prekey = self
            .prekeys
            .find_signed_prekey(signed_id)
            .ok_or(Error::UnknownSignedPreKey { id: signed_id })?;
        let kem_id = message.kem_prekey_id();
        let (kem_prekey, _) = self
            .prekeys
            .find_kem_prekey(kem_id)
            .ok_or(Error::UnknownKemPreKey { id: kem_id })?;
        let one_time_prekey = match message.one_time_prekey_id() {
            Some(id) => Some(
                self.prekeys
                    .find_one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey { id })?,
            ),
            None => None,
        };
        let prekeys = ResponderPreKeys {
            signed: signed_prekey,
            kem: kem_prekey,
            one_time: one_time_prekey,
        };
        let accepted = accept_with_keys(self.config, self.local, from, &prekeys, message, out)?;
        // Only now, with the first message authenticated, are the one-time
        // prekeys spent (and the base key remembered).
        self.prekeys.record_accepted(
            signed_id,
            kem_id,
            message.one_time_prekey_id(),
            message.base_key(),
        );
        Ok(accepted)
    }

    /// [`accept_into`](Self::accept_into) returning the plaintext as a `Vec`.
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
    /// # let carol = device(&mut rng, b"carol")?;
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let (_, plaintext) = responder.accept(&alice.address(), &first_message)?;
    /// assert_eq!(plaintext, b"hi Bob");
    ///
    /// // Relabelled as coming from another device, a prekey message does not decrypt.
    /// let mut other = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// let wire = other.encrypt(&mut rng, b"from Carol?")?;
    /// let forged = PreKeyMessage::parse(&wire)?;
    /// let responder = Responder::new(&bob, &mut bob_prekeys);
    /// let refused = responder.accept(&carol.address(), &forged);
    /// assert_eq!(refused.err(), Some(Error::DecryptionFailed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`accept_into`](Self::accept_into).
    pub fn accept(
        self,
        from: &DeviceAddress,
        message: &PreKeyMessage<'_>,
    ) -> Result<(Session, Vec<u8>), Error> {
        let mut out = vec![0u8; message.message().plaintext_len()];
        let (session, len) = self.accept_into(from, message, &mut out)?;
        out.truncate(len);
        Ok((session, out))
    }
}

/// The hybrid handshake as the responder plus the first decrypt, with the
/// prekeys the message names already looked up. Touches no store: the caller
/// spends the one-time prekeys and records the base key when it commits the
/// new session.
pub(crate) fn accept_with_keys(
    config: SessionConfig,
    local: &LocalDevice,
    from: &DeviceAddress,
    prekeys: &ResponderPreKeys<'_>,
    message: &PreKeyMessage<'_>,
    out: &mut [u8],
) -> Result<(Session, usize), Error> {
    let handshake = x3dh::respond(local, from, prekeys, message)?;
    Session::respond_and_decrypt(config, local, from, prekeys, handshake, message, out)
}
