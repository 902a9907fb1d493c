//! What the session manager's operations return, and how they fail.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::account::{AccountId, DeviceAddress};
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::plaintext::Plaintext;
use crate::store::StoreError;
use crate::trust::{IdentityChange, TrustRecord, TrustState};

/// Why a session-manager operation failed. Nothing was written to the store,
/// except that [`UntrustedIdentity`](Self::UntrustedIdentity) records a key
/// change that blocks.
///
/// Each variant says what the app does about it. For example, writing to a
/// device the app listed but has no session with:
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
/// use ratchetbox::devices::DeviceError;
/// let sent = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1]);
/// let Err(DeviceError::DeviceListMismatch { missing, stale }) = sent else { unreachable!() };
/// assert_eq!((missing, stale), (vec![bob_addr], vec![]));
///
/// // Fetch the missing device's bundle (and remove stale ones), then retry.
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// assert_eq!(alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// A protocol error from the session, bundle or envelope layer.
    Protocol(Error),
    /// The store failed.
    Store(StoreError),
    /// The identity key in use is not one the contact's trust record admits:
    /// - the key changed away from a verified key: sending and new sessions are
    ///   blocked until the app accepts the new key
    ///   ([`SessionManager::accept_identity`](super::SessionManager::accept_identity))
    ///   or verifies it (the change itself was recorded);
    /// - or a message arrived on a session under a key the record no longer
    ///   holds (`previous` is the admitted key, `new` the session's).
    UntrustedIdentity {
        /// The change: the last verified key (`previous`) and the key now
        /// offered (`new`), to show beside the new safety number.
        change: Box<IdentityChange>,
    },
    /// The device lists the app gave differ from the sessions held. Fetch
    /// bundles for `missing` ([`process_bundle`](super::SessionManager::process_bundle)),
    /// drop `stale` ([`remove_device`](super::SessionManager::remove_device)), retry.
    DeviceListMismatch {
        /// Listed devices with no usable session.
        missing: Vec<DeviceAddress>,
        /// Devices with sessions that are no longer listed.
        stale: Vec<DeviceAddress>,
    },
    /// There is no session with this device: fetch its bundle and start one.
    NoSession {
        /// The device.
        address: DeviceAddress,
    },
    /// No session held for this device decrypts its message: the two sides
    /// have diverged (typically one was restored from an old backup). Fetch a
    /// new bundle and start a fresh session. (A forged message looks the same;
    /// apps rate-limit the reset.)
    SessionDesync {
        /// The device.
        address: DeviceAddress,
    },
    /// No trust record exists for this account (no key was ever seen).
    UnknownContact {
        /// The account.
        account: AccountId,
    },
    /// This device holds no state for the group.
    UnknownGroup,
    /// The account already has
    /// [`MAX_DEVICES_PER_ACCOUNT`](super::MAX_DEVICES_PER_ACCOUNT) devices with
    /// sessions here; remove stale ones first.
    TooManyDevices {
        /// The account.
        account: AccountId,
    },
}

impl DeviceError {
    /// The error for a record that blocks.
    pub(crate) fn untrusted(account: &AccountId, record: &TrustRecord) -> Self {
        let previous = match record.state() {
            TrustState::Changed { previous, .. } => *previous,
            _ => *record.identity(),
        };
        Self::UntrustedIdentity {
            change: Box::new(IdentityChange {
                account: *account,
                previous,
                new: *record.identity(),
                was_verified: true,
            }),
        }
    }

    /// The device to start a fresh session with (from a new bundle), if that is
    /// what this error calls for.
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
    /// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// # let first = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
    /// # bob.decrypt(&alice_addr, &first[0].message)?;
    /// let reply = bob.encrypt(&mut rng, &alice_id, b"hi Alice", &[1], &[1])?;
    /// alice.remove_device(&bob_addr)?; // say, Alice restored an old backup
    /// let error = alice.decrypt(&bob_addr, &reply[0].message).unwrap_err();
    /// assert_eq!(error.needs_fresh_session(), Some(&bob_addr));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn needs_fresh_session(&self) -> Option<&DeviceAddress> {
        match self {
            Self::NoSession { address } | Self::SessionDesync { address } => Some(address),
            _ => None,
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => fmt::Display::fmt(e, f),
            Self::Store(e) => fmt::Display::fmt(e, f),
            Self::UntrustedIdentity { change } => write!(
                f,
                "identity of {} changed from a verified key; accept the new key first",
                change.account
            ),
            Self::DeviceListMismatch { missing, stale } => {
                f.write_str("device list mismatch: missing [")?;
                write_list(f, missing)?;
                f.write_str("], stale [")?;
                write_list(f, stale)?;
                f.write_str("]")
            }
            Self::NoSession { address } => write!(f, "no session with {address}"),
            Self::SessionDesync { address } => {
                write!(f, "sessions with {address} diverged; start a fresh session")
            }
            Self::UnknownContact { account } => write!(f, "no identity recorded for {account}"),
            Self::UnknownGroup => f.write_str("no state for this group"),
            Self::TooManyDevices { account } => write!(
                f,
                "{account} already has {} devices with sessions",
                super::MAX_DEVICES_PER_ACCOUNT
            ),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, addresses: &[DeviceAddress]) -> fmt::Result {
    for (i, address) in addresses.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{address}")?;
    }
    Ok(())
}

impl core::error::Error for DeviceError {}

impl From<Error> for DeviceError {
    fn from(e: Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<crate::error::DecodeError> for DeviceError {
    fn from(e: crate::error::DecodeError) -> Self {
        Self::Protocol(Error::Decode(e))
    }
}

/// A decrypted message.
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
/// use ratchetbox::devices::SessionUse;
/// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// # let outgoing = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
/// let received = bob.decrypt(&alice_addr, &outgoing[0].message)?;
/// assert_eq!(received.plaintext, b"hi Bob");
/// assert_eq!(received.session, SessionUse::Created); // Alice's first message
/// assert_eq!(received.identity_change, None); // no notice to show
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext (zeroized on drop, never printed).
    pub plaintext: Plaintext,
    /// How the message's session stands now.
    pub session: SessionUse,
    /// Set when the sender's identity key differs from the one recorded (a
    /// change the policy allowed: show the notice).
    pub identity_change: Option<IdentityChange>,
}

/// Which session decrypted a message. Apps mostly ignore it; it tells tests
/// and logs how sessions move.
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
/// use ratchetbox::devices::SessionUse;
/// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let first = alice.encrypt(&mut rng, &bob_id, b"one", &[1], &[1])?;
/// let second = alice.encrypt(&mut rng, &bob_id, b"two", &[1], &[1])?;
/// assert_eq!(bob.decrypt(&alice_addr, &first[0].message)?.session, SessionUse::Created);
/// assert_eq!(bob.decrypt(&alice_addr, &second[0].message)?.session, SessionUse::Active);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionUse {
    /// The active session.
    Active,
    /// An archived session, now promoted to active.
    Promoted,
    /// A new session from a prekey message, now active.
    Created,
    /// A new session from a prekey message that crossed one this device started;
    /// the tie-break kept this device's session active and archived the new one.
    CreatedArchived,
    /// An archived session that lost that tie-break decrypted a repeat of its
    /// prekey message, and stays archived.
    Archived,
}

/// One device's copy of an outgoing message: send `message` to `address`
/// (or seal it to `identity_key` first).
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
/// # alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let outgoing = alice.encrypt(&mut rng, &bob_id, b"hi Bob", &[1], &[1])?;
/// assert_eq!(outgoing[0].address, bob_addr);
/// assert_eq!(outgoing[0].identity_key, bob_key);
/// assert_eq!(bob.decrypt(&alice_addr, &outgoing[0].message)?.plaintext, b"hi Bob");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The device it goes to.
    pub address: DeviceAddress,
    /// That device's account identity key (for sealing).
    pub identity_key: IdentityKey,
    /// The session message (a prekey or ratchet message).
    pub message: Vec<u8>,
}

/// A session started from a bundle.
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
/// let started = alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// assert_eq!(started.address, bob_addr);
/// assert!(started.identity_change.is_none()); // otherwise show a "key changed" notice
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct SessionStarted {
    /// The device the session is with.
    pub address: DeviceAddress,
    /// Set when the bundle's identity key differs from the one recorded (a
    /// change the policy allowed: show the notice).
    pub identity_change: Option<IdentityChange>,
}
