//! Outgoing messages: one per device of the recipient and of the sender's own
//! other devices, optionally in one sealed envelope (SPEC.md §12.5).

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::{DeviceError, OutgoingMessage, SessionManager, SessionRecord};
use crate::account::{AccountId, DeviceAddress};
use crate::error::Error;
use crate::identity::{DeviceId, IdentityKey};
use crate::sealed::{self, DeliveryAccessKey, SenderCertificate};
use crate::store::{Change, ChangeSet, ProtocolStore};

impl<S: ProtocolStore> SessionManager<S> {
    /// Encrypts `plaintext` for every device of `to` and every other device of
    /// this account. `to_devices` and `own_devices` are the device lists the
    /// app last got from the server; they must match the sessions held.
    ///
    /// To write only to this account's other devices (a note to self), pass
    /// this account as `to`; `own_devices` is then ignored.
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
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// // Bob has one device (1); Alice has no other device than this one (1).
    /// let outgoing = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
    /// assert_eq!(outgoing.len(), 1);
    /// assert_eq!(outgoing[0].address, bob_addr);
    ///
    /// let received = bob.decrypt(&alice_addr, &outgoing[0].message)?;
    /// assert_eq!(received.plaintext, b"hi Bob");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`DeviceError::UntrustedIdentity`] if the contact's key change blocks:
    ///   show a red lock and send nothing until the user accepts or verifies
    ///   the new key;
    /// - [`DeviceError::DeviceListMismatch`] naming missing and stale devices:
    ///   fetch bundles for `missing`, remove `stale`, and retry;
    /// - [`DeviceError::Protocol`] from the sessions (for example
    ///   [`Error::CounterExhausted`]: start a fresh session from a new bundle);
    /// - [`DeviceError::Store`]: retry later. Nothing was saved, so the retry
    ///   encrypts afresh.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        to: &AccountId,
        plaintext: &[u8],
        to_devices: &[DeviceId],
        own_devices: &[DeviceId],
    ) -> Result<Vec<OutgoingMessage>, DeviceError> {
        let (outgoing, changes) = self.prepare(rng, to, plaintext, to_devices, own_devices)?;
        self.store.apply(changes)?;
        Ok(outgoing)
    }

    /// The messages and the sessions they advance, not yet saved.
    fn prepare<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        to: &AccountId,
        plaintext: &[u8],
        to_devices: &[DeviceId],
        own_devices: &[DeviceId],
    ) -> Result<(Vec<OutgoingMessage>, ChangeSet), DeviceError> {
        // A contact never seen has no sessions: every listed device is missing.
        let expected_identity = if self.is_own_account(to) {
            Some(*self.local.identity.public_key())
        } else {
            match self.store.trust_record(to)? {
                Some(record) if record.state().is_blocking() => {
                    return Err(DeviceError::untrusted(to, &record));
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
            let message = session.encrypt(rng, plaintext)?;
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
        Ok((outgoing, changes))
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
    /// The delivery token is computed here, over exactly the accounts the
    /// envelope reaches (the recipient's, and this account's when other own
    /// devices are included): if `sealing.access_keys` knows every one of them,
    /// the envelope carries their combination; otherwise it carries none.
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
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let sealing = Sealing { certificate: &certificate, access_keys: &key_of };
    /// let envelope = alice.encrypt_sealed(&mut rng, &bob_id, b"hi Bob", &[1], &[1], &sealing)?;
    ///
    /// // The server validates the envelope without learning the sender, and splits it.
    /// let policy = ServerPolicy::default();
    /// let validated = sealed::validate(&envelope, &policy, &server_keys)?;
    /// let ValidatedEnvelope::Multi(multi) = validated else {
    ///     unreachable!("a fan-out is a multi-recipient envelope")
    /// };
    /// assert_eq!(multi.recipient_count(), 1);
    /// # let part = multi.parts().next().ok_or("no part")?;
    /// # let mut bytes = vec![0; part.len()];
    /// # part.write_to(&mut bytes)?;
    /// # let (from, received) = bob.open_sealed(&bytes, &trust, NOW)?;
    /// # assert_eq!(from, alice_addr);
    /// # assert_eq!(received.plaintext, b"hi Bob");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt), plus [`Error::MessageTooLarge`] when a
    /// device's message would exceed [`sealed::MAX_PAYLOAD_LEN`],
    /// [`Error::IdentityMismatch`] when the certificate is not this device's,
    /// and [`Error::Envelope`] when there is no device to send to. On any error
    /// no session has advanced.
    ///
    /// An app whose message is too large sends it as an attachment; one with
    /// the wrong certificate (an app bug, or a certificate from before a
    /// re-link) gets a new one from the server; with no device to send to,
    /// there is nothing to send.
    pub fn encrypt_sealed<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        to: &AccountId,
        plaintext: &[u8],
        to_devices: &[DeviceId],
        own_devices: &[DeviceId],
        sealing: &Sealing<'_>,
    ) -> Result<Vec<u8>, DeviceError> {
        let session_overhead = crate::message::PREKEY_MESSAGE_OVERHEAD;
        if plaintext.len().saturating_add(session_overhead) > sealed::MAX_PAYLOAD_LEN {
            return Err(Error::MessageTooLarge.into());
        }
        // A certificate for another identity or device would make every
        // recipient refuse (or misfile) the envelope.
        if sealing.certificate.identity_key() != self.local.identity.public_key()
            || sealing.certificate.address() != self.local.address().as_address()
        {
            return Err(Error::IdentityMismatch.into());
        }
        // Sessions are saved only once the envelope exists.
        let (outgoing, changes) = self.prepare(rng, to, plaintext, to_devices, own_devices)?;
        let recipients: Vec<sealed::MultiRecipient<'_>> = outgoing
            .iter()
            .map(|o| sealed::MultiRecipient {
                address: o.address.as_address(),
                identity_key: &o.identity_key,
                payload: &o.message,
            })
            .collect();
        let accounts: BTreeSet<AccountId> = outgoing.iter().map(|o| *o.address.account()).collect();
        let keys: Option<Vec<DeliveryAccessKey>> =
            accounts.iter().map(|a| (sealing.access_keys)(a)).collect();
        let token = keys.map(|keys| DeliveryAccessKey::combine(&keys));
        let content = sealed::SealedContent {
            kind: sealed::InnerKind::Opaque,
            hint: sealed::ContentHint::Default,
            message: &[],
        };
        let envelope = sealed::seal_multi(
            rng,
            &self.local.identity,
            sealing.certificate,
            &recipients,
            content,
            token.as_ref(),
        )?;
        drop(recipients);
        self.store.apply(changes)?;
        Ok(envelope)
    }
}

/// What sealing a fan-out needs besides the messages: this device's sender
/// certificate, and the delivery access keys of the accounts it may reach.
///
/// Without a key for every account the envelope reaches, it carries no delivery
/// token, and a server that requires one refuses it.
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
/// use ratchetbox::devices::Sealing;
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let sealing = Sealing { certificate: &certificate, access_keys: &|_| None };
/// let envelope = alice.encrypt_sealed(&mut rng, &bob_id, b"hi Bob", &[1], &[1], &sealing)?;
/// assert!(sealed::validate(&envelope, &ServerPolicy::default(), &server_keys).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sealing<'a> {
    /// This device's current sender certificate.
    pub certificate: &'a SenderCertificate,
    /// The delivery access key of an account, if known (contacts share theirs;
    /// this account's own is known to all its devices).
    pub access_keys: &'a dyn Fn(&AccountId) -> Option<DeliveryAccessKey>,
}

impl core::fmt::Debug for Sealing<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealing")
            .field("certificate", self.certificate)
            .finish_non_exhaustive()
    }
}
