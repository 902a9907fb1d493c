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
    /// # Errors
    /// - [`DeviceError::UntrustedIdentity`] if the contact's key change blocks;
    /// - [`DeviceError::DeviceListMismatch`] naming missing and stale devices;
    /// - [`DeviceError::Protocol`] from the sessions (for example
    ///   [`Error::CounterExhausted`]), [`DeviceError::Store`].
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
    /// # Errors
    /// As [`encrypt`](Self::encrypt), plus [`Error::MessageTooLarge`] when a
    /// device's message would exceed [`sealed::MAX_PAYLOAD_LEN`],
    /// [`Error::IdentityMismatch`] when the certificate is not this device's,
    /// and [`Error::Envelope`] when there is no device to send to. On any error
    /// no session has advanced.
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
