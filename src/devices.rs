//! Sessions with every device of every contact: the [`SessionManager`].
//!
//! Sessions are addressed by [`DeviceAddress`] (account id, device id). Each
//! address has one active session and a bounded archive
//! ([`DEFAULT_MAX_ARCHIVED_SESSIONS`]). Encrypting to an account produces one
//! message per device of the recipient plus one per other device of the sender,
//! so the sender's own devices stay in sync; [`SessionManager::encrypt_sealed`]
//! puts them all in one multi-recipient sealed envelope.
//!
//! Every operation reads through the [store traits](crate::store) and writes
//! through one [`ChangeSet`] applied atomically; the identity-change policy of
//! [`crate::TrustRecord`] is enforced at both points where a new key arrives:
//! bundles and prekey messages.

mod local;
mod outcome;
mod record;

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

pub use local::LocalDevice;
pub use outcome::{Decrypted, DeviceError, OutgoingMessage, SessionStarted, SessionUse};
pub use record::{DEFAULT_MAX_ARCHIVED_SESSIONS, MAX_ARCHIVED_SESSIONS, SessionRecord};

use crate::account::{AccountId, DeviceAddress};
use crate::bundle::PreKeyBundle;
use crate::error::Error;
use crate::group::GroupSession;
use crate::identity::{DeviceId, IdentityKey};
use crate::message::{Message, PreKeyMessage, RatchetMessage};
use crate::safety::SafetyNumber;
use crate::sealed::{self, DeliveryAccessKey, SenderCertificate};
use crate::session::{Role, Session, SessionConfig, accept_with_keys};
use crate::store::{Change, ChangeSet, ProtocolStore};
use crate::trust::{IdentityChange, TrustRecord};
use record::Slot;

/// Manages one device's sessions with all devices of all contacts, over a
/// [`ProtocolStore`].
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
/// use ratchetbox::devices::{LocalDevice, SessionManager};
/// use ratchetbox::store::MemoryStore;
/// let mut rng = ratchetbox::os_rng();
/// let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
///     let identity = IdentityKeyPair::generate(rng);
///     let prekeys = PreKeyStore::generate(rng, &identity, 1);
///     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
///     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
/// };
/// let mut alice = device(&mut rng, b"alice")?;
/// let mut bob = device(&mut rng, b"bob")?;
///
/// // Alice fetches Bob's bundle, then writes to all of Bob's devices (one).
/// let bob_id = bob.local().account;
/// let bundle = PreKeyBundle::from_store(bob.local().identity.public_key(), bob.store().prekeys(), None);
/// alice.process_bundle(&mut rng, &bob_id, bundle)?;
/// let outgoing = alice.encrypt(&bob_id, b"hi Bob", &[1], &[1])?;
///
/// let received = bob.decrypt(&mut rng, &alice.local().address(), &outgoing[0].message)?;
/// assert_eq!(received.plaintext, b"hi Bob");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionManager<S: ProtocolStore> {
    local: LocalDevice,
    store: S,
    session_config: SessionConfig,
    max_archived: usize,
}

impl<S: ProtocolStore> SessionManager<S> {
    /// A manager for `local` over `store`, with default limits.
    pub fn new(local: LocalDevice, store: S) -> Self {
        Self {
            local,
            store,
            session_config: SessionConfig::default(),
            max_archived: DEFAULT_MAX_ARCHIVED_SESSIONS,
        }
    }

    /// Sets how many archived sessions each address keeps.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] above [`MAX_ARCHIVED_SESSIONS`].
    pub fn with_max_archived_sessions(mut self, max: usize) -> Result<Self, Error> {
        if max > MAX_ARCHIVED_SESSIONS {
            return Err(Error::InvalidConfig {
                reason: "max archived sessions exceeds MAX_ARCHIVED_SESSIONS",
            });
        }
        self.max_archived = max;
        Ok(self)
    }

    /// Sets the limits of sessions created from now on.
    pub fn with_session_config(mut self, config: SessionConfig) -> Self {
        self.session_config = config;
        self
    }

    /// This device.
    pub fn local(&self) -> &LocalDevice {
        &self.local
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for the app's own maintenance (prekey replenishment).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The device and store back.
    pub fn into_parts(self) -> (LocalDevice, S) {
        (self.local, self.store)
    }

    fn is_own_account(&self, account: &AccountId) -> bool {
        *account == self.local.account
    }

    /// Starts a session with the device a bundle describes, replacing (and
    /// archiving) any active session with it. Checks the bundle's signature
    /// and applies the identity-change policy.
    ///
    /// # Errors
    /// - [`Error::InvalidSignature`] for a bad prekey signature;
    /// - [`Error::SelfSend`] for this device's own bundle;
    /// - [`Error::IdentityMismatch`] for a bundle of this account with a foreign identity;
    /// - [`DeviceError::UntrustedIdentity`] if the key changed away from a
    ///   verified one (the change is recorded; nothing else is);
    /// - [`DeviceError::Store`] if the store fails.
    pub fn process_bundle<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        account: &AccountId,
        bundle: impl Borrow<PreKeyBundle>,
    ) -> Result<SessionStarted, DeviceError> {
        // Borrowed or owned: a bundle refused for an untrusted identity can be
        // processed again after the app accepts the key.
        let bundle = bundle.borrow().clone().verify()?;
        let address = DeviceAddress::new(*account, bundle.device_id());
        if address == self.local.address() {
            return Err(Error::SelfSend.into());
        }
        let mut changes = ChangeSet::new();
        let identity_change = self.check_identity(account, bundle.identity_key(), &mut changes)?;
        let session =
            Session::initiate_with_config(rng, &self.local.identity, &bundle, self.session_config)?;
        let record = match self.store.session_record(&address)? {
            Some(mut record) => {
                record.install(session, self.max_archived);
                record.drop_foreign_archived();
                record
            }
            None => SessionRecord::new(session),
        };
        changes.push(Change::SaveSessions {
            address,
            record: Box::new(record),
        });
        self.store.apply(changes)?;
        Ok(SessionStarted {
            address,
            identity_change,
        })
    }

    /// Applies the policy to a key offered for `account`. Records what must be
    /// recorded in `changes`; if the change blocks, records it right away and
    /// fails.
    fn check_identity(
        &mut self,
        account: &AccountId,
        offered: &IdentityKey,
        changes: &mut ChangeSet,
    ) -> Result<Option<IdentityChange>, DeviceError> {
        if self.is_own_account(account) {
            // Own devices share this identity; anything else is an impostor.
            return if offered == self.local.identity.public_key() {
                Ok(None)
            } else {
                Err(Error::IdentityMismatch.into())
            };
        }
        let Some(mut record) = self.store.trust_record(account)? else {
            changes.push(Change::SaveTrust {
                account: *account,
                record: Box::new(TrustRecord::first_seen(*offered)),
            });
            return Ok(None);
        };
        let before = record;
        let seen = record.observe(offered);
        let change = seen.changed.then(|| IdentityChange {
            account: *account,
            previous: *before.identity(),
            new: *offered,
            was_verified: record.state().is_blocking(),
        });
        if record != before {
            if seen.blocked {
                // The red lock must show even though nothing else happens.
                let mut only_trust = ChangeSet::new();
                only_trust.push(Change::SaveTrust {
                    account: *account,
                    record: Box::new(record),
                });
                self.store.apply(only_trust)?;
            } else {
                changes.push(Change::SaveTrust {
                    account: *account,
                    record: Box::new(record),
                });
            }
        }
        if seen.blocked {
            return Err(DeviceError::UntrustedIdentity { account: *account });
        }
        Ok(change)
    }

    /// Encrypts `plaintext` for every device of `to` and every other device of
    /// this account. `to_devices` and `own_devices` are the device lists the
    /// app last got from the server; they must match the sessions held.
    ///
    /// To write only to this account's other devices (a note to self), pass
    /// this account as `to`; `own_devices` is then ignored.
    ///
    /// # Errors
    /// - [`DeviceError::UntrustedIdentity`] if the contact's key change blocks;
    /// - [`DeviceError::DeviceListMismatch`] naming missing and stale devices;
    /// - [`DeviceError::Protocol`] from the sessions (for example
    ///   [`Error::CounterExhausted`]), [`DeviceError::Store`].
    pub fn encrypt(
        &mut self,
        to: &AccountId,
        plaintext: &[u8],
        to_devices: &[DeviceId],
        own_devices: &[DeviceId],
    ) -> Result<Vec<OutgoingMessage>, DeviceError> {
        // A contact never seen has no sessions: every listed device is missing.
        let expected_identity = if self.is_own_account(to) {
            Some(*self.local.identity.public_key())
        } else {
            match self.store.trust_record(to)? {
                Some(record) if record.state().is_blocking() => {
                    return Err(DeviceError::UntrustedIdentity { account: *to });
                }
                Some(record) => Some(*record.identity()),
                None => None,
            }
        };
        let mut records = Vec::new();
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        self.collect_targets(
            to,
            to_devices,
            expected_identity.as_ref(),
            &mut records,
            &mut missing,
            &mut stale,
        )?;
        if !self.is_own_account(to) {
            let own = self.local.account;
            let own_identity = *self.local.identity.public_key();
            self.collect_targets(
                &own,
                own_devices,
                Some(&own_identity),
                &mut records,
                &mut missing,
                &mut stale,
            )?;
        }
        if !missing.is_empty() || !stale.is_empty() {
            return Err(DeviceError::DeviceListMismatch { missing, stale });
        }

        let mut outgoing = Vec::with_capacity(records.len());
        let mut changes = ChangeSet::new();
        for (address, mut record) in records {
            let session = record.active_mut();
            let message = session.encrypt(plaintext)?;
            outgoing.push(OutgoingMessage {
                address,
                identity_key: *session.remote_identity(),
                message,
            });
            changes.push(Change::SaveSessions {
                address,
                record: Box::new(record),
            });
        }
        self.store.apply(changes)?;
        Ok(outgoing)
    }

    /// Loads the records of `account`'s listed devices (this device excluded),
    /// noting listed devices without a usable session and sessions not listed.
    #[allow(clippy::too_many_arguments)]
    fn collect_targets(
        &self,
        account: &AccountId,
        listed: &[DeviceId],
        identity: Option<&IdentityKey>,
        records: &mut Vec<(DeviceAddress, SessionRecord)>,
        missing: &mut Vec<DeviceAddress>,
        stale: &mut Vec<DeviceAddress>,
    ) -> Result<(), DeviceError> {
        let me = self.local.address();
        let listed: BTreeSet<DeviceId> = listed.iter().copied().collect();
        for &device in &listed {
            let address = DeviceAddress::new(*account, device);
            if address == me {
                continue;
            }
            match self.store.session_record(&address)? {
                // A session with an identity the account no longer has is as
                // good as none: the device must be fetched again.
                Some(record) if Some(record.active().remote_identity()) == identity => {
                    records.push((address, record));
                }
                _ => missing.push(address),
            }
        }
        for device in self.store.session_devices(account)? {
            let address = DeviceAddress::new(*account, device);
            if address != me && !listed.contains(&device) {
                stale.push(address);
            }
        }
        Ok(())
    }

    /// [`encrypt`](Self::encrypt), with every device's message placed in one
    /// multi-recipient sealed envelope (each as that device's payload; the
    /// shared content is empty). The server splits it per device.
    ///
    /// `token` is the combined delivery token of the recipient accounts
    /// ([`DeliveryAccessKey::combine`]), if the server requires one.
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt), plus [`Error::MessageTooLarge`] when a
    /// device's message exceeds [`sealed::MAX_PAYLOAD_LEN`].
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt_sealed<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        to: &AccountId,
        plaintext: &[u8],
        to_devices: &[DeviceId],
        own_devices: &[DeviceId],
        certificate: &SenderCertificate,
        token: Option<&DeliveryAccessKey>,
    ) -> Result<Vec<u8>, DeviceError> {
        // Check sizes first so no session advances for a message that cannot be sent.
        let session_overhead = crate::message::PREKEY_MESSAGE_OVERHEAD;
        if plaintext.len().saturating_add(session_overhead) > sealed::MAX_PAYLOAD_LEN {
            return Err(Error::MessageTooLarge.into());
        }
        let outgoing = self.encrypt(to, plaintext, to_devices, own_devices)?;
        let recipients: Vec<sealed::MultiRecipient<'_>> = outgoing
            .iter()
            .map(|o| sealed::MultiRecipient {
                address: o.address.as_address(),
                identity_key: &o.identity_key,
                payload: &o.message,
            })
            .collect();
        let content = sealed::SealedContent {
            kind: sealed::InnerKind::Opaque,
            hint: sealed::ContentHint::Default,
            message: &[],
        };
        Ok(sealed::seal_multi(
            rng,
            &self.local.identity,
            certificate,
            &recipients,
            content,
            token,
        )?)
    }

    /// Decrypts a message from device `from`: on its active session, else on
    /// an archived one (which is then promoted), else — for a prekey message —
    /// on a new session, after the identity-change policy.
    ///
    /// # Errors
    /// - [`DeviceError::NoSession`] / [`DeviceError::SessionDesync`]: start a
    ///   fresh session ([`DeviceError::needs_fresh_session`]);
    /// - [`DeviceError::UntrustedIdentity`] for a new session under a changed
    ///   key of a verified contact (nothing is spent; decrypt again after
    ///   accepting the key);
    /// - [`Error::DuplicateMessage`], [`Error::UnknownOneTimePreKey`] and the
    ///   other session errors as [`DeviceError::Protocol`];
    /// - [`DeviceError::Store`].
    pub fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        from: &DeviceAddress,
        message: &[u8],
    ) -> Result<Decrypted, DeviceError> {
        self.decrypt_checked(rng, from, message, None)
    }

    /// Opens a sealed envelope addressed to this device (a single-recipient
    /// envelope, or a part split from a multi-recipient one) and decrypts the
    /// session message inside. The certified sender identity must be the one
    /// the session layer authenticates.
    ///
    /// # Errors
    /// As [`sealed::open`] and [`decrypt`](Self::decrypt);
    /// [`Error::SenderIdentityMismatch`] if the session's identity is not the
    /// certificate's.
    pub fn open_sealed<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
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
        let message = if opened.payload.is_empty() {
            &opened.message
        } else {
            &opened.payload
        };
        let decrypted = self.decrypt_checked(rng, &from, message, Some(&identity))?;
        Ok((from, decrypted))
    }

    fn decrypt_checked<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        from: &DeviceAddress,
        bytes: &[u8],
        certified: Option<&IdentityKey>,
    ) -> Result<Decrypted, DeviceError> {
        if *from == self.local.address() {
            return Err(Error::SelfSend.into());
        }
        let record = self.store.session_record(from)?;
        match Message::parse(bytes)? {
            Message::Ratchet(message) => {
                self.decrypt_ratchet(rng, from, record, &message, certified)
            }
            Message::PreKey(message) => {
                if certified.is_some_and(|c| c != message.identity_key()) {
                    return Err(Error::SenderIdentityMismatch.into());
                }
                self.decrypt_prekey(rng, from, record, &message)
            }
        }
    }

    fn decrypt_ratchet<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &RatchetMessage<'_>,
        certified: Option<&IdentityKey>,
    ) -> Result<Decrypted, DeviceError> {
        let Some(mut record) = record else {
            return Err(DeviceError::NoSession { address: *from });
        };
        let mut out = Zeroizing::new(vec![0u8; message.plaintext_len()]);
        // The most telling failure across sessions: a message belongs to one
        // session, so "duplicate" from one outranks "cannot decrypt" from others.
        let mut best: Option<Error> = None;
        let slots =
            core::iter::once(Slot::Active).chain((0..record.archived().len()).map(Slot::Archived));
        for slot in slots {
            let session = match slot {
                Slot::Active => record.active_mut(),
                Slot::Archived(i) => &mut record.archived_mut()[i],
            };
            if certified.is_some_and(|c| c != session.remote_identity()) {
                continue;
            }
            match session.decrypt_into(rng, message, &mut out) {
                Ok(len) => {
                    let used = match slot {
                        Slot::Active => SessionUse::Active,
                        Slot::Archived(i) => {
                            record.promote(i);
                            SessionUse::Promoted
                        }
                    };
                    let mut changes = ChangeSet::new();
                    changes.push(Change::SaveSessions {
                        address: *from,
                        record: Box::new(record),
                    });
                    self.store.apply(changes)?;
                    return Ok(Decrypted {
                        plaintext: out[..len].to_vec(),
                        session: used,
                        identity_change: None,
                    });
                }
                Err(e) => {
                    if rank(&e) > best.as_ref().map_or(0, rank) {
                        best = Some(e);
                    }
                }
            }
        }
        match best {
            Some(e) => Err(e.into()),
            None => Err(DeviceError::SessionDesync { address: *from }),
        }
    }

    fn decrypt_prekey<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &PreKeyMessage<'_>,
    ) -> Result<Decrypted, DeviceError> {
        let mut out = Zeroizing::new(vec![0u8; message.message().plaintext_len()]);
        // A repeat of the message that created a session we hold.
        if let Some(mut record) = record {
            if let Some(slot) = record.position(|s| s.owns_prekey_message(message)) {
                let session = match slot {
                    Slot::Active => record.active_mut(),
                    Slot::Archived(i) => &mut record.archived_mut()[i],
                };
                let len = session.decrypt_into(rng, message.message(), &mut out)?;
                let used = match slot {
                    Slot::Active => SessionUse::Active,
                    Slot::Archived(i) => {
                        record.promote(i);
                        SessionUse::Promoted
                    }
                };
                let mut changes = ChangeSet::new();
                changes.push(Change::SaveSessions {
                    address: *from,
                    record: Box::new(record),
                });
                self.store.apply(changes)?;
                return Ok(Decrypted {
                    plaintext: out[..len].to_vec(),
                    session: used,
                    identity_change: None,
                });
            }
            return self.accept_new_session(rng, from, Some(record), message, out);
        }
        self.accept_new_session(rng, from, None, message, out)
    }

    fn accept_new_session<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        from: &DeviceAddress,
        record: Option<SessionRecord>,
        message: &PreKeyMessage<'_>,
        mut out: Zeroizing<Vec<u8>>,
    ) -> Result<Decrypted, DeviceError> {
        let signed_id = message.signed_prekey_id();
        let signed = self
            .store
            .signed_prekey(signed_id)?
            .ok_or(Error::UnknownSignedPreKey { id: signed_id })?;
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
        let (session, len) = accept_with_keys(
            rng,
            self.session_config,
            &self.local.identity,
            &signed,
            one_time.as_ref(),
            message,
            &mut out,
        )?;
        let mut changes = ChangeSet::new();
        let identity_change =
            self.check_identity(from.account(), message.identity_key(), &mut changes)?;
        if let Some(id) = message.one_time_prekey_id() {
            changes.push(Change::RemoveOneTimePreKey { id });
        }
        let (record, used) = match record {
            None => (SessionRecord::new(session), SessionUse::Created),
            Some(mut record) => {
                if keeps_own_session(record.active(), &session) {
                    record.archive(session, self.max_archived);
                    (record, SessionUse::CreatedArchived)
                } else {
                    record.install(session, self.max_archived);
                    record.drop_foreign_archived();
                    (record, SessionUse::Created)
                }
            }
        };
        changes.push(Change::SaveSessions {
            address: *from,
            record: Box::new(record),
        });
        self.store.apply(changes)?;
        Ok(Decrypted {
            plaintext: out[..len].to_vec(),
            session: used,
            identity_change,
        })
    }

    /// Deletes the sessions with a device the account no longer has.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn remove_device(&mut self, address: &DeviceAddress) -> Result<(), DeviceError> {
        let mut changes = ChangeSet::new();
        changes.push(Change::DeleteSessions { address: *address });
        Ok(self.store.apply(changes)?)
    }

    /// The devices of `account` this device has sessions with.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn session_devices(&self, account: &AccountId) -> Result<Vec<DeviceId>, DeviceError> {
        Ok(self.store.session_devices(account)?)
    }

    /// The trust record of a contact.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn trust_record(&self, account: &AccountId) -> Result<Option<TrustRecord>, DeviceError> {
        Ok(self.store.trust_record(account)?)
    }

    /// The safety number with a contact, for its most recently seen key.
    ///
    /// # Errors
    /// [`DeviceError::UnknownContact`] if no key was recorded; [`DeviceError::Store`].
    pub fn safety_number(&self, account: &AccountId) -> Result<SafetyNumber, DeviceError> {
        let record = self
            .store
            .trust_record(account)?
            .ok_or(DeviceError::UnknownContact { account: *account })?;
        Ok(SafetyNumber::new(
            &self.local.account,
            self.local.identity.public_key(),
            account,
            record.identity(),
        ))
    }

    /// The user compared safety numbers for `identity`: mark it verified.
    ///
    /// # Errors
    /// [`Error::IdentityMismatch`] if `identity` is not the recorded key;
    /// [`DeviceError::UnknownContact`]; [`DeviceError::Store`].
    pub fn mark_verified(
        &mut self,
        account: &AccountId,
        identity: &IdentityKey,
    ) -> Result<(), DeviceError> {
        self.update_trust(account, |record| record.mark_verified(identity))
    }

    /// The user accepted a changed key: it stops blocking and becomes unverified.
    ///
    /// # Errors
    /// As [`mark_verified`](Self::mark_verified).
    pub fn accept_identity(
        &mut self,
        account: &AccountId,
        identity: &IdentityKey,
    ) -> Result<(), DeviceError> {
        self.update_trust(account, |record| record.accept(identity))
    }

    fn update_trust(
        &mut self,
        account: &AccountId,
        update: impl FnOnce(&mut TrustRecord) -> Result<(), Error>,
    ) -> Result<(), DeviceError> {
        let mut record = self
            .store
            .trust_record(account)?
            .ok_or(DeviceError::UnknownContact { account: *account })?;
        update(&mut record)?;
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveTrust {
            account: *account,
            record: Box::new(record),
        });
        Ok(self.store.apply(changes)?)
    }

    /// Stores a group state (a new group, or one changed outside the manager).
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub fn save_group(&mut self, session: GroupSession) -> Result<(), DeviceError> {
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveGroup {
            session: Box::new(session),
        });
        Ok(self.store.apply(changes)?)
    }

    /// Runs `operation` on the stored state of group `group_id` and saves the
    /// result if it succeeds.
    ///
    /// # Errors
    /// [`DeviceError::UnknownGroup`], the operation's error, [`DeviceError::Store`].
    pub fn with_group<T>(
        &mut self,
        group_id: &[u8],
        operation: impl FnOnce(&mut GroupSession) -> Result<T, Error>,
    ) -> Result<T, DeviceError> {
        let mut session = self
            .store
            .group_session(group_id)?
            .ok_or(DeviceError::UnknownGroup)?;
        let result = operation(&mut session)?;
        let mut changes = ChangeSet::new();
        changes.push(Change::SaveGroup {
            session: Box::new(session),
        });
        self.store.apply(changes)?;
        Ok(result)
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
        && active.is_awaiting_reply()
        && active.remote_identity() == incoming.remote_identity()
        && active.base_key().as_bytes() < incoming.base_key().as_bytes()
}

impl<S: ProtocolStore + fmt::Debug> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("local", &self.local)
            .field("store", &self.store)
            .field("max_archived", &self.max_archived)
            .finish_non_exhaustive()
    }
}
