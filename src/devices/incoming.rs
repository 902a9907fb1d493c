//! Incoming messages: which session decrypts, and when a new one is created
//! (SPEC.md §12.4).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{Decrypted, DeviceError, SessionManager, SessionRecord, SessionUse};
use crate::account::DeviceAddress;
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::message::{Message, PreKeyMessage, RatchetMessage};
use crate::plaintext::Plaintext;
use crate::sealed;
use crate::session::{Role, Session, accept_with_keys};
use crate::store::Slot;
use crate::store::{Change, ChangeSet, ProtocolStore};
use crate::trust::{IdentityChange, TrustState};
use crate::x3dh::ResponderPreKeys;

impl<S: ProtocolStore> SessionManager<S> {
    /// Decrypts a message from device `from`: on its active session, else on
    /// an archived one (which is then promoted), else — for a prekey message —
    /// on a new session, after the identity-change policy.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::{Error, devices::{DeviceError, SessionUse}};
    /// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let outgoing = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
    /// let received = bob.decrypt(&alice_addr, &outgoing[0].message)?;
    /// assert_eq!(received.plaintext, b"hi Bob");
    /// assert_eq!(received.session, SessionUse::Created);
    ///
    /// // The server delivered it twice: drop the copy.
    /// let again = bob.decrypt(&alice_addr, &outgoing[0].message);
    /// assert!(matches!(again, Err(DeviceError::Protocol(Error::DuplicateMessage))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Unless it says otherwise, the message is lost: acknowledge it to the
    /// server and drop it.
    /// - [`DeviceError::NoSession`] / [`DeviceError::SessionDesync`]: fetch the
    ///   sender's bundle and start a fresh session
    ///   ([`DeviceError::needs_fresh_session`]), so its next messages decrypt;
    ///   rate-limit this per device, as a forged message looks the same;
    /// - [`DeviceError::UntrustedIdentity`] for a new session under a changed
    ///   key of a verified contact: keep the message, show a red lock, and
    ///   decrypt again after the user accepts the key (nothing was spent);
    /// - [`Error::RepeatedPreKeyMessage`] for a prekey message that created a
    ///   session this device no longer holds (a late repeat or a replay);
    /// - [`Error::DuplicateMessage`]: already read, a repeat delivery;
    /// - [`Error::UnknownOneTimePreKey`], [`Error::UnknownSignedPreKey`],
    ///   [`Error::UnknownKemPreKey`]: the prekey is spent or expired; the sender
    ///   must start again from a fresh bundle;
    /// - the other session errors as [`DeviceError::Protocol`] (malformed or
    ///   forged bytes);
    /// - [`DeviceError::TooManyDevices`]: remove the account's stale devices,
    ///   then decrypt again (nothing was spent);
    /// - [`DeviceError::Store`]: do not acknowledge the message; retry later
    ///   (nothing was spent).
    pub fn decrypt(
        &mut self,
        from: &DeviceAddress,
        message: &[u8],
    ) -> Result<Decrypted, DeviceError> {
        self.decrypt_checked(from, message, None)
    }

    /// Opens a sealed envelope addressed to this device (a single-recipient
    /// envelope, or a part split from a multi-recipient one) and decrypts the
    /// session message inside. The certified sender identity must be the one
    /// the session layer authenticates.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// # use ratchetbox::devices::Sealing;
    /// # use ratchetbox::sealed::{self, DeliveryAccessKey, SenderCertificate, ServerCertificate};
    /// # use ratchetbox::sealed::{ServerPolicy, TrustRoot, TrustStore, ValidatedEnvelope};
    /// # const NOW: u64 = 1_767_225_600;
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server_key = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server_key.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_identity = alice.local().identity.public_key();
    /// # let certificate = SenderCertificate::issue(
    /// #     alice_addr.as_address(), alice_identity, NOW + 86_400, &server_key, server_cert)?;
    /// # let key_of = |_: &AccountId| Some(DeliveryAccessKey::derive(&[7; 32]));
    /// # let server_keys = |_: &[u8]| Some(DeliveryAccessKey::derive(&[7; 32]));
    /// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// # let sealing = Sealing { certificate: &certificate, access_keys: &key_of };
    /// # let envelope = alice.encrypt_sealed(&mut rng, &bob_id, b"hi Bob", &[1], &[1], &sealing)?;
    /// # let policy = ServerPolicy::default();
    /// # let validated = sealed::validate(&envelope, &policy, &server_keys)?;
    /// # let ValidatedEnvelope::Multi(multi) = validated else {
    /// #     unreachable!()
    /// # };
    /// # let part = multi.parts().next().ok_or("no part")?;
    /// # let mut bytes = vec![0; part.len()];
    /// # part.write_to(&mut bytes)?;
    /// // `bytes` is Bob's part of Alice's envelope, as the server delivered it.
    /// let (from, received) = bob.open_sealed(&bytes, &trust, NOW)?;
    /// assert_eq!(from, alice_addr); // the certified sender
    /// assert_eq!(received.plaintext, b"hi Bob");
    /// // Once the sender certificate has expired, the envelope is refused.
    /// assert!(bob.open_sealed(&bytes, &trust, NOW + 2 * 86_400).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`sealed::open`] and [`decrypt`](Self::decrypt);
    /// [`Error::SenderIdentityMismatch`] if the session's identity is not the
    /// certificate's; [`Error::Decode`] if the envelope holds both a payload and
    /// content, or content that is not a prekey or ratchet message. An envelope
    /// that does not open (a bad certificate, an expired one, altered bytes) or
    /// does not match is dropped; the session errors call for what
    /// [`decrypt`](Self::decrypt) says.
    pub fn open_sealed(
        &mut self,
        envelope: &[u8],
        trust: &sealed::TrustStore,
        now: u64,
    ) -> Result<(DeviceAddress, Decrypted), DeviceError> {
        let me = self.local.address();
        let recipient = sealed::Recipient {
            identity: &self.local.identity,
            address: me.as_address(),
            trust,
            now,
        };
        let opened = sealed::open(envelope, &recipient)?;
        let from = DeviceAddress::from_address(&opened.sender.address());
        let identity = opened.sender.identity_key;
        // A fan-out carries the session message as this device's payload with
        // empty content; a single envelope carries it as a prekey or ratchet
        // content. Anything else is not for the session layer.
        let message = match (opened.payload.is_empty(), opened.kind) {
            (false, _) if opened.message.is_empty() => &opened.payload,
            (true, sealed::InnerKind::PreKey | sealed::InnerKind::Ratchet) => &opened.message,
            _ => {
                return Err(Error::Decode(crate::error::DecodeError::InvalidValue {
                    field: "sealed content for a session message",
                })
                .into());
            }
        };
        let decrypted = self.decrypt_checked(&from, message, Some(&identity))?;
        Ok((from, decrypted))
    }

    fn decrypt_checked(
        &mut self,
        from: &DeviceAddress,
        bytes: &[u8],
        certified: Option<&IdentityKey>,
    ) -> Result<Decrypted, DeviceError> {
        if *from == self.local.address() {
            return Err(Error::SelfSend.into());
        }
        let message = Message::parse(bytes)?;
        let record = self.store.session_record(from)?;
        let allowed = self.receivable(from.account())?;
        match message {
            Message::Ratchet(message) => {
                self.decrypt_ratchet(from, record, &message, certified, &allowed)
            }
            Message::PreKey(message) => {
                if certified.is_some_and(|c| c != message.identity_key()) {
                    return Err(Error::SenderIdentityMismatch.into());
                }
                self.decrypt_prekey(from, record, &message, &allowed)
            }
        }
    }

    fn decrypt_ratchet(
        &mut self,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &RatchetMessage<'_>,
        certified: Option<&IdentityKey>,
        allowed: &Receivable,
    ) -> Result<Decrypted, DeviceError> {
        let Some(mut record) = record else {
            return Err(DeviceError::NoSession { address: *from });
        };
        let mut out = Zeroizing::new(vec![0u8; message.plaintext_len()]);
        // The most telling failure across sessions: a message belongs to one
        // session, so "duplicate" from one outranks "cannot decrypt" from others.
        let mut best: Option<Error> = None;
        let mut tried = false;
        let mut untrusted: Option<IdentityKey> = None;
        let slots =
            core::iter::once(Slot::Active).chain((0..record.archived().len()).map(Slot::Archived));
        for slot in slots {
            let session = record.session_mut(slot);
            if certified.is_some_and(|c| c != session.remote_identity()) {
                continue;
            }
            // A session under a key the trust record does not hold (any more)
            // never speaks for the contact.
            if !allowed.admits(session.remote_identity()) {
                untrusted = Some(*session.remote_identity());
                continue;
            }
            tried = true;
            match session.decrypt_into(message, &mut out) {
                Ok(len) => {
                    let used = match slot {
                        Slot::Active => SessionUse::Active,
                        Slot::Archived(i) => {
                            record.promote(i);
                            SessionUse::Promoted
                        }
                    };
                    out.truncate(len);
                    return self.commit(ChangeSet::new(), from, record, used, None, out);
                }
                Err(e) => {
                    if rank(&e) > best.as_ref().map_or(0, rank) {
                        best = Some(e);
                    }
                }
            }
        }
        match (best, untrusted) {
            (Some(e), _) => Err(e.into()),
            (None, Some(offered)) if !tried => Err(allowed.refuse(&offered)),
            // The envelope's certified sender has no session here at all: the
            // sessions we hold are with another identity, not out of sync.
            (None, None) if !tried => Err(Error::SenderIdentityMismatch.into()),
            _ => Err(DeviceError::SessionDesync { address: *from }),
        }
    }

    fn decrypt_prekey(
        &mut self,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &PreKeyMessage<'_>,
        allowed: &Receivable,
    ) -> Result<Decrypted, DeviceError> {
        let mut out = Zeroizing::new(vec![0u8; message.message().plaintext_len()]);
        // A repeat of the message that created a session we hold.
        if let Some(mut record) = record {
            if let Some(slot) = record.position(|s| s.owns_prekey_message(message)) {
                if !allowed.admits(message.identity_key()) {
                    return Err(allowed.refuse(message.identity_key()));
                }
                let len = record
                    .session_mut(slot)
                    .decrypt_into(message.message(), &mut out)?;
                let used = match slot {
                    Slot::Active => SessionUse::Active,
                    // A repeat on the session that lost a simultaneous-initiation
                    // tie-break: the peer has not seen our prekey message yet and
                    // will switch when it does, so ours stays active.
                    Slot::Archived(i)
                        if keeps_own_session(record.active(), &record.archived()[i]) =>
                    {
                        SessionUse::Archived
                    }
                    Slot::Archived(i) => {
                        record.promote(i);
                        SessionUse::Promoted
                    }
                };
                out.truncate(len);
                return self.commit(ChangeSet::new(), from, record, used, None, out);
            }
            return self.accept_new_session(from, Some(record), message, out);
        }
        self.accept_new_session(from, None, message, out)
    }

    /// A prekey message no session owns: refused if it was accepted before
    /// (its session is gone: pruned, or dropped from the archive), so a replay
    /// can never create a second session; otherwise a new session.
    fn check_not_accepted(&self, message: &PreKeyMessage<'_>) -> Result<(), DeviceError> {
        if self.store.has_accepted_base_key(message.base_key())? {
            return Err(Error::RepeatedPreKeyMessage {
                base_key: *message.base_key(),
            }
            .into());
        }
        Ok(())
    }

    /// Saves `changes` plus the record whose session decrypted a message, then
    /// hands out the plaintext (moved out of its buffer, not copied).
    fn commit(
        &mut self,
        mut changes: ChangeSet,
        from: &DeviceAddress,
        record: SessionRecord,
        used: SessionUse,
        identity_change: Option<IdentityChange>,
        mut plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<Decrypted, DeviceError> {
        changes.push(Change::SaveSessions {
            address: *from,
            record: Box::new(record),
        });
        self.store.apply(changes)?;
        Ok(Decrypted {
            plaintext: Plaintext::from(core::mem::take(&mut *plaintext)),
            session: used,
            identity_change,
        })
    }

    fn accept_new_session(
        &mut self,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &PreKeyMessage<'_>,
        mut out: Zeroizing<Vec<u8>>,
    ) -> Result<Decrypted, DeviceError> {
        self.check_not_accepted(message)?;
        let signed_id = message.signed_prekey_id();
        let signed = self
            .store
            .signed_prekey(signed_id)?
            .ok_or(Error::UnknownSignedPreKey { id: signed_id })?;
        let kem_id = message.kem_prekey_id();
        let kem = self
            .store
            .kem_prekey(kem_id)?
            .ok_or(Error::UnknownKemPreKey { id: kem_id })?;
        let one_time = match message.one_time_prekey_id() {
            Some(id) => Some(
                self.store
                    .one_time_prekey(id)?
                    .ok_or(Error::UnknownOneTimePreKey { id })?,
            ),
            None => None,
        };
        // Authenticate first: only a sender holding the identity key gets to
        // change what the trust record says.
        let prekeys = ResponderPreKeys {
            signed: &signed,
            kem: &kem,
            one_time: one_time.as_ref(),
        };
        let (session, len) = accept_with_keys(
            self.session_config,
            &self.local,
            from,
            &prekeys,
            message,
            &mut out,
        )?;
        if record.is_none() {
            self.check_device_room(from)?;
        }
        let mut changes = ChangeSet::new();
        let identity_change = self.check_identity(from, message.identity_key(), &mut changes)?;
        changes.push(Change::AcceptPreKeyMessage {
            signed_prekey_id: signed_id,
            kem_prekey_id: kem_id,
            one_time_prekey_id: message.one_time_prekey_id(),
            base_key: *message.base_key(),
        });
        let (record, used) = match record {
            None => (SessionRecord::new(session), SessionUse::Created),
            Some(mut record) => {
                if record.active().is_awaiting_reply()
                    && keeps_own_session(record.active(), &session)
                {
                    record.archive(session, self.max_archived);
                    (record, SessionUse::CreatedArchived)
                } else {
                    record.install(session, self.max_archived);
                    record.drop_foreign_archived();
                    (record, SessionUse::Created)
                }
            }
        };
        out.truncate(len);
        self.commit(changes, from, record, used, identity_change, out)
    }
}

/// Which remote identity may speak for an account on the receiving side.
pub(super) struct Receivable {
    account: crate::account::AccountId,
    /// `None`: no key was ever recorded for this contact.
    key: Option<IdentityKey>,
    own: bool,
    verified: bool,
}

impl<S: ProtocolStore> SessionManager<S> {
    /// This account's own key; for a contact, its recorded key or, while a
    /// change is blocked, the last verified key (so existing sessions with the
    /// verified key keep working, and nothing under the new key does).
    fn receivable(&self, account: &crate::account::AccountId) -> Result<Receivable, DeviceError> {
        if *account == self.local.account {
            return Ok(Receivable {
                account: *account,
                key: Some(*self.local.identity.public_key()),
                own: true,
                verified: true,
            });
        }
        let record = self.store.trust_record(account)?;
        let (key, verified) = match record.as_ref().map(|r| (r.identity(), r.state())) {
            None => (None, false),
            Some((
                _,
                TrustState::Changed {
                    previous,
                    was_verified: true,
                },
            )) => (Some(*previous), true),
            Some((identity, state)) => (Some(*identity), *state == TrustState::Verified),
        };
        Ok(Receivable {
            account: *account,
            key,
            own: false,
            verified,
        })
    }
}

impl Receivable {
    fn admits(&self, identity: &IdentityKey) -> bool {
        self.key.as_ref() == Some(identity)
    }

    /// The error for a message under `offered`, a key this account's record
    /// does not admit.
    fn refuse(&self, offered: &IdentityKey) -> DeviceError {
        match (&self.key, self.own) {
            (Some(key), false) => DeviceError::UntrustedIdentity {
                change: Box::new(IdentityChange {
                    account: self.account,
                    previous: *key,
                    new: *offered,
                    was_verified: self.verified,
                }),
            },
            (None, false) => DeviceError::UnknownContact {
                account: self.account,
            },
            (_, true) => Error::IdentityMismatch.into(),
        }
    }
}

/// Ranks decrypt failures across sessions; 0 is "this session cannot decrypt it".
fn rank(e: &Error) -> u8 {
    match e {
        Error::DecryptionFailed => 0,
        Error::DuplicateMessage => 3,
        Error::TooManySkippedMessages { .. } => 1,
        _ => 2,
    }
}

/// Simultaneous initiation: both devices started a session and each received
/// the other's prekey message. Both keep the session whose base key is smaller,
/// so they converge on one session without any further message. Otherwise
/// the newer session wins.
fn keeps_own_session(active: &Session, incoming: &Session) -> bool {
    active.role() == Role::Initiator
        && incoming.role() == Role::Responder
        && active.remote_identity() == incoming.remote_identity()
        && active.base_key().as_bytes() < incoming.base_key().as_bytes()
}
