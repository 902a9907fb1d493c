//! The responder's side of session setup: accepting a prekey message.

use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{Session, SessionConfig};
use crate::error::Error;
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::message::PreKeyMessage;
use crate::prekey::{OneTimePreKey, PreKeyStore, SignedPreKey};
use crate::x3dh;

/// Accepts a [`PreKeyMessage`] and creates the responder's [`Session`].
///
/// The one-time prekey the message names is looked up by reference and deleted
/// only after the embedded message decrypts: a forged prekey message cannot burn
/// a one-time prekey, and on any error the prekey store is untouched.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyMessage, PreKeyStore, Responder, Session};
/// let mut rng = ratchetbox::os_rng();
/// let alice = IdentityKeyPair::generate(&mut rng);
/// let bob = IdentityKeyPair::generate(&mut rng);
/// let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob, 1);
/// let ids = bob_prekeys.generate_one_time_prekeys(&mut rng, 1)?;
///
/// let bundle = PreKeyBundle::from_store(bob.public_key(), &bob_prekeys, Some(ids[0].0)).verify()?;
/// let mut alice_session = Session::initiate(&mut rng, &alice, &bundle)?;
/// let wire = alice_session.encrypt(b"hi Bob")?;
///
/// let message = PreKeyMessage::parse(&wire)?;
/// let (bob_session, plaintext) = Responder::new(&bob, &mut bob_prekeys).accept(&mut rng, &message)?;
/// assert_eq!(plaintext, b"hi Bob");
/// assert_eq!(bob_prekeys.one_time_prekey_count(), 0);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
pub struct Responder<'a> {
    identity: &'a IdentityKeyPair,
    prekeys: &'a mut PreKeyStore,
    config: SessionConfig,
    expected_initiator: Option<IdentityKey>,
}

impl<'a> Responder<'a> {
    /// A responder for this device's identity and prekeys, with default limits.
    pub fn new(identity: &'a IdentityKeyPair, prekeys: &'a mut PreKeyStore) -> Self {
        Self {
            identity,
            prekeys,
            config: SessionConfig::default(),
            expected_initiator: None,
        }
    }

    /// Sets the new session's limits.
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Requires the initiator to have this identity key (for example the one
    /// recorded for the contact); any other is rejected with
    /// [`Error::IdentityMismatch`].
    pub fn expect_initiator(mut self, identity: &IdentityKey) -> Self {
        self.expected_initiator = Some(*identity);
        self
    }

    /// Accepts `message`, decrypting its embedded message into `out`. Returns the
    /// session and the plaintext length.
    ///
    /// # Errors
    /// - [`Error::IdentityMismatch`] if an expected initiator was set and differs;
    /// - [`Error::UnknownSignedPreKey`] / [`Error::UnknownOneTimePreKey`] for ids
    ///   this store does not hold (a one-time prekey already used included);
    /// - [`Error::NonContributoryDh`] for a small-order key;
    /// - otherwise as [`Session::decrypt_into`].
    pub fn accept_into<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        message: &PreKeyMessage<'_>,
        out: &mut [u8],
    ) -> Result<(Session, usize), Error> {
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
        let one_time_prekey = match message.one_time_prekey_id() {
            Some(id) => Some(
                self.prekeys
                    .find_one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey { id })?,
            ),
            None => None,
        };
        let accepted = accept_with_keys(
            rng,
            self.config,
            self.identity,
            signed_prekey,
            one_time_prekey,
            message,
            out,
        )?;
        // Only now, with the first message authenticated, is the one-time prekey spent.
        if let Some(id) = message.one_time_prekey_id() {
            self.prekeys.remove_one_time_prekey(id);
        }
        Ok(accepted)
    }

    /// [`accept_into`](Self::accept_into) returning the plaintext as a `Vec`.
    ///
    /// # Errors
    /// As [`accept_into`](Self::accept_into).
    pub fn accept<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        message: &PreKeyMessage<'_>,
    ) -> Result<(Session, Vec<u8>), Error> {
        let mut out = vec![0u8; message.message().plaintext_len()];
        let (session, len) = self.accept_into(rng, message, &mut out)?;
        out.truncate(len);
        Ok((session, out))
    }
}

/// X3DH as the responder plus the first decrypt, with the prekeys the message
/// names already looked up. Touches no store: the caller deletes the one-time
/// prekey when it commits the new session.
pub(crate) fn accept_with_keys<R: CryptoRng + ?Sized>(
    rng: &mut R,
    config: SessionConfig,
    identity: &IdentityKeyPair,
    signed_prekey: &SignedPreKey,
    one_time_prekey: Option<&OneTimePreKey>,
    message: &PreKeyMessage<'_>,
    out: &mut [u8],
) -> Result<(Session, usize), Error> {
    let (secret, associated_data) = x3dh::respond(
        identity,
        signed_prekey,
        one_time_prekey,
        message.identity_key(),
        message.base_key(),
    )?;
    Session::respond_and_decrypt(
        rng,
        config,
        identity,
        signed_prekey.key_pair(),
        secret,
        &associated_data,
        message,
        out,
    )
}
