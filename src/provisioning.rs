//! Device linking: the primary device hands the account identity to a new
//! device over a one-shot provisioning channel (SPEC.md §14).
//!
//! 1. The new device makes a [`LinkRequest`] and shows its
//!    [`code`](LinkRequest::code) (65 bytes: an ephemeral X25519 key and a
//!    32-byte random secret), for example as a QR code. The secret travels
//!    only through the camera, never through the server.
//! 2. The primary scans it and calls [`provision`], which seals the identity
//!    seed and the account data to that key and secret (X25519 + HKDF +
//!    ChaCha20-Poly1305) and returns a [`ConfirmationCode`]. A relay that sees
//!    the payload (and so the link key) cannot make one the new device
//!    accepts: it does not know the secret.
//! 3. The new device calls [`LinkRequest::accept`] with the sealed payload and
//!    gets the same confirmation code; the user checks the two screens agree,
//!    which exposes a substituted key.
//! 4. The new device picks its own device id and prekeys with
//!    [`ProvisionedAccount::into_device`].
//!
//! ```
//! use ratchetbox::{AccountId, IdentityKeyPair};
//! use ratchetbox::provisioning::{LinkRequest, provision};
//! let mut rng = ratchetbox::os_rng();
//! let identity = IdentityKeyPair::generate(&mut rng);
//! let alice = AccountId::new(b"alice")?;
//!
//! let mut desktop = LinkRequest::new(&mut rng);
//! let (payload, shown_on_phone) = provision(&mut rng, &identity, &alice, &[1], &*desktop.code())?;
//! let account = desktop.accept(&payload)?;
//! assert_eq!(account.confirmation_code(), &shown_on_phone);
//!
//! let device = account.into_device(&mut rng);
//! assert_eq!(device.identity.public_key(), identity.public_key());
//! assert_ne!(device.device_id, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::account::AccountId;
use crate::codec::{Reader, Writer};
use crate::crypto::{self, DhKeyPair, KEY_LEN, PublicKey, SecretKey32, TAG_LEN, labels};
use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityKey, IdentityKeyPair};
use crate::prekey::PreKeyStore;

const LINK_REQUEST_TAG: u8 = 0x62;
const PROVISIONING_TAG: u8 = 0x63;

/// Length of a link request code (what the new device shows): tag, link key,
/// link secret.
pub const LINK_REQUEST_LEN: usize = 1 + KEY_LEN + KEY_LEN;
/// Most device ids a provisioning payload lists.
pub const MAX_LISTED_DEVICES: usize = 64;
/// SHA-512 iterations behind a confirmation code: each guess of an attacker
/// grinding a matching code costs this many hashes on top of a key generation.
pub const CONFIRMATION_CODE_ITERATIONS: u32 = 5200;
/// Digits in a confirmation code.
pub const CONFIRMATION_CODE_DIGITS: usize = 8;

const HEADER_LEN: usize = 1 + 2 * KEY_LEN;

/// Why provisioning failed.
///
/// On the new device, every error but [`AlreadyCompleted`](Self::AlreadyCompleted)
/// leaves the link request usable: keep showing its code and wait for the
/// real payload, or, if none comes, start over with a new request. On the
/// primary, an error means the scanned code is bad: scan again.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// let mut request = LinkRequest::new(&mut rng);
/// let (payload, _) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
/// let mut altered = payload.clone();
/// altered[100] ^= 1;
/// assert_eq!(request.accept(&altered).unwrap_err(), ProvisioningError::Tampered);
/// request.accept(&payload)?; // the real payload still opens
/// assert_eq!(request.accept(&payload).unwrap_err(), ProvisioningError::AlreadyCompleted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// The link request code or the payload is malformed.
    Malformed(DecodeError),
    /// The payload is sealed to another link request's key (a payload replayed
    /// from an earlier linking, or meant for another device).
    WrongEphemeralKey,
    /// The payload did not authenticate: it was altered, or forged.
    Tampered,
    /// This link request already accepted a payload; a second one (a replay) is refused.
    AlreadyCompleted,
    /// A key in the exchange has small order.
    NonContributoryDh,
}

impl fmt::Display for ProvisioningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed provisioning data: {e}"),
            Self::WrongEphemeralKey => {
                f.write_str("provisioning payload is for another link request")
            }
            Self::Tampered => f.write_str("provisioning payload did not authenticate"),
            Self::AlreadyCompleted => {
                f.write_str("link request already completed; replayed payload refused")
            }
            Self::NonContributoryDh => f.write_str("provisioning key has small order"),
        }
    }
}

impl core::error::Error for ProvisioningError {}

impl From<DecodeError> for ProvisioningError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}

/// The short code both devices display; equal codes mean the payload went to
/// the key the new device showed. If the user says they differ, discard the
/// linked account on the new device and start over.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// # let mut request = LinkRequest::new(&mut rng);
/// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
/// # let account = request.accept(&payload)?;
/// let on_desktop = account.confirmation_code();
/// assert_eq!(on_desktop, &on_phone);
/// assert_eq!(on_phone.to_string().len(), 9); // "1234 5678"
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfirmationCode([u8; CONFIRMATION_CODE_DIGITS]);

impl ConfirmationCode {
    /// `SHA-512` iterated over the transcript (link key, primary's ephemeral key,
    /// identity key); the first 8 bytes as a big-endian integer mod 10^8.
    fn derive(link_key: &PublicKey, ephemeral: &PublicKey, identity: &IdentityKey) -> Self {
        let identity = identity.to_bytes();
        let mut hash = crypto::sha512(&[
            labels::PROVISIONING_CODE,
            link_key.as_bytes(),
            ephemeral.as_bytes(),
            &identity,
        ]);
        for _ in 0..CONFIRMATION_CODE_ITERATIONS {
            hash = crypto::sha512(&[&hash, link_key.as_bytes()]);
        }
        let mut value = u64::from_be_bytes([
            hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
        ]) % 100_000_000;
        let mut digits = [0u8; CONFIRMATION_CODE_DIGITS];
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        Self(digits)
    }

    /// The ASCII digits.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// let digits = on_phone.digits();
    /// assert!(digits.iter().all(u8::is_ascii_digit));
    /// assert_eq!(digits, account.confirmation_code().digits());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn digits(&self) -> &[u8; CONFIRMATION_CODE_DIGITS] {
        &self.0
    }
}

impl fmt::Display for ConfirmationCode {
    /// Two groups of four digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, digit) in self.0.iter().enumerate() {
            if i == 4 {
                f.write_str(" ")?;
            }
            write!(f, "{}", char::from(*digit))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfirmationCode({self})")
    }
}

/// The new device's side: an ephemeral key and a link secret, used for
/// exactly one payload.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// let mut request = LinkRequest::new(&mut rng); // on the new device
/// let code = request.code(); // shown as a QR code, scanned by the phone
/// let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*code)?;
/// let account = request.accept(&payload)?; // relayed by the server
/// assert_eq!(account.confirmation_code(), &on_phone);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LinkRequest {
    public: PublicKey,
    /// `None` once a payload was accepted: the keys are gone, replays are refused.
    secret: Option<LinkSecrets>,
}

/// What only the new device (and whoever scans its screen) knows.
struct LinkSecrets {
    key_pair: DhKeyPair,
    /// Mixed into the payload key; shown in the code, never sent.
    link_secret: SecretKey32,
}

impl LinkRequest {
    /// A fresh link request: draws the link key pair, then the 32-byte secret.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// let (one, two) = (LinkRequest::new(&mut rng), LinkRequest::new(&mut rng));
    /// assert_ne!(*one.code(), *two.code());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let key_pair = DhKeyPair::generate(rng);
        let mut link_secret = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(link_secret.as_mut());
        Self {
            public: *key_pair.public(),
            secret: Some(LinkSecrets {
                key_pair,
                link_secret: SecretKey32::from_bytes(*link_secret),
            }),
        }
    }

    /// What to show the primary device: `0x62 ‖ link key ‖ link secret`. It
    /// holds the secret: show it on screen only, never send it to the server.
    /// After a successful [`accept`](Self::accept) the code is all zeros
    /// after the tag and key (the secret is gone).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// use ratchetbox::provisioning::LINK_REQUEST_LEN;
    /// let mut request = LinkRequest::new(&mut rng);
    /// let code = request.code();
    /// assert_eq!((code.len(), code[0]), (LINK_REQUEST_LEN, 0x62));
    /// # let (payload, _) = provision(&mut rng, &identity, &alice, &[1], &*code)?;
    /// request.accept(&payload)?;
    /// assert!(request.code()[33..].iter().all(|&b| b == 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn code(&self) -> Zeroizing<[u8; LINK_REQUEST_LEN]> {
        let mut out = Zeroizing::new([0u8; LINK_REQUEST_LEN]);
        out[0] = LINK_REQUEST_TAG;
        out[1..1 + KEY_LEN].copy_from_slice(self.public.as_bytes());
        if let Some(secrets) = &self.secret {
            out[1 + KEY_LEN..].copy_from_slice(secrets.link_secret.as_bytes());
        }
        out
    }

    /// Opens the primary's payload. On success the ephemeral secret is erased,
    /// so the request accepts nothing again; on failure it stays usable (a
    /// forged payload cannot spoil the real one).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// let mut request = LinkRequest::new(&mut rng);
    /// let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// let account = request.accept(&payload)?;
    /// assert_eq!(account.identity_key(), identity.public_key());
    /// assert_eq!(account.confirmation_code(), &on_phone); // the user compares both screens
    ///
    /// // A payload for another request (a replay from an earlier linking) is refused.
    /// let mut other = LinkRequest::new(&mut rng);
    /// assert_eq!(other.accept(&payload).unwrap_err(), ProvisioningError::WrongEphemeralKey);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Except after success, the request stays usable: ignore the payload and
    /// wait for the real one (or start over with a new request).
    /// - [`ProvisioningError::AlreadyCompleted`] after a successful accept: a
    ///   replay; ignore it;
    /// - [`ProvisioningError::Malformed`] for bytes that do not parse;
    /// - [`ProvisioningError::WrongEphemeralKey`] for a payload sealed to another request;
    /// - [`ProvisioningError::Tampered`] for one that does not authenticate
    ///   (altered, or made by someone who does not know the link secret, such
    ///   as the relaying server);
    /// - [`ProvisioningError::NonContributoryDh`] for a small-order ephemeral key.
    pub fn accept(&mut self, payload: &[u8]) -> Result<ProvisionedAccount, ProvisioningError> {
        let secrets = self
            .secret
            .as_ref()
            .ok_or(ProvisioningError::AlreadyCompleted)?;
        // Tag before length, so the first defect in byte order is the one reported.
        let Some(&tag) = payload.first() else {
            return Err(DecodeError::Truncated {
                field: "provisioning payload",
            }
            .into());
        };
        if tag != PROVISIONING_TAG {
            return Err(DecodeError::UnknownFormat {
                expected: PROVISIONING_TAG,
                found: tag,
            }
            .into());
        }
        if payload.len() < HEADER_LEN + TAG_LEN {
            return Err(DecodeError::Truncated {
                field: "provisioning payload",
            }
            .into());
        }
        let (header, sealed) = payload.split_at(HEADER_LEN);
        if !crypto::ct_eq(&header[1..1 + KEY_LEN], self.public.as_bytes()) {
            return Err(ProvisioningError::WrongEphemeralKey);
        }
        let mut ephemeral = [0u8; KEY_LEN];
        ephemeral.copy_from_slice(&header[1 + KEY_LEN..]);
        let ephemeral = PublicKey::parse(ephemeral, "provisioning ephemeral key")?;
        let key = payload_key(
            &secrets.key_pair,
            &self.public,
            &ephemeral,
            &secrets.link_secret,
        )?;
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut body = Zeroizing::new(alloc::vec![0u8; ciphertext.len()]);
        crypto::aead_open(&key, header, ciphertext, &tag_bytes, &mut body)
            .map_err(|_| ProvisioningError::Tampered)?;
        // Authenticated, but only to someone who saw our public code: a body that
        // does not parse is still refused as tampered rather than trusted.
        let account = decode_body(&body, &self.public, &ephemeral)
            .map_err(|_| ProvisioningError::Tampered)?;
        self.secret = None;
        Ok(account)
    }
}

impl fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRequest")
            .field("public", &self.public)
            .field("completed", &self.secret.is_none())
            .finish_non_exhaustive()
    }
}

/// What the new device received: the account's identity and data. Keep it
/// only until the user confirmed the codes match, then make it a device.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// # let mut request = LinkRequest::new(&mut rng);
/// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
/// # let account = request.accept(&payload)?;
/// assert_eq!(account.account(), &alice);
/// assert_eq!(account.existing_devices(), [1]);
/// if account.confirmation_code() == &on_phone {
///     let device = account.into_device(&mut rng);
///     assert_eq!(device.identity.public_key(), identity.public_key());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProvisionedAccount {
    identity: IdentityKeyPair,
    account: AccountId,
    existing_devices: Vec<DeviceId>,
    code: ConfirmationCode,
}

/// A linked device, ready to register its prekeys and start a
/// [`SessionManager`](crate::devices::SessionManager).
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// # let mut request = LinkRequest::new(&mut rng);
/// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
/// # let account = request.accept(&payload)?;
/// use ratchetbox::devices::{LocalDevice, SessionManager};
/// use ratchetbox::store::MemoryStore;
/// let linked = account.into_device(&mut rng);
/// assert_eq!(linked.prekeys.device_id(), linked.device_id);
/// let (account, device_id) = (linked.account, linked.device_id);
/// let local = LocalDevice { account, device_id, identity: linked.identity };
/// let desktop = SessionManager::new(local, MemoryStore::new(linked.prekeys));
/// assert_eq!(desktop.local().identity.public_key(), identity.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LinkedDevice {
    /// The account's identity key pair, shared by all its devices.
    pub identity: IdentityKeyPair,
    /// The account.
    pub account: AccountId,
    /// This device's own id, distinct from every id the primary listed.
    pub device_id: DeviceId,
    /// This device's own signed prekey (and room for one-time prekeys).
    pub prekeys: PreKeyStore,
}

impl ProvisionedAccount {
    /// The code to compare with the primary's screen.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// println!("Does your phone show {}?", account.confirmation_code());
    /// assert_eq!(account.confirmation_code(), &on_phone);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn confirmation_code(&self) -> &ConfirmationCode {
        &self.code
    }

    /// The account's identity key.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// assert_eq!(account.identity_key(), identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity_key(&self) -> &IdentityKey {
        self.identity.public_key()
    }

    /// The account.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// assert_eq!(account.account(), &alice);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The account's device ids at provisioning time (as the primary listed
    /// them).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// assert_eq!(account.existing_devices(), [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn existing_devices(&self) -> &[DeviceId] {
        &self.existing_devices
    }

    /// Becomes a device of the account: a random device id in `1..2^31` that
    /// no listed device uses, and a fresh prekey store for it.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair};
    /// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = AccountId::new(b"alice")?;
    /// # let mut request = LinkRequest::new(&mut rng);
    /// # let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
    /// # let account = request.accept(&payload)?;
    /// let device = account.into_device(&mut rng);
    /// assert_ne!(device.device_id, 1); // the phone's id is taken
    /// assert_eq!((device.account, device.prekeys.device_id()), (alice, device.device_id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_device<R: CryptoRng + ?Sized>(self, rng: &mut R) -> LinkedDevice {
        let device_id = choose_device_id(rng, &self.existing_devices);
        let prekeys = PreKeyStore::generate(rng, &self.identity, device_id);
        LinkedDevice {
            identity: self.identity,
            account: self.account,
            device_id,
            prekeys,
        }
    }
}

impl fmt::Debug for ProvisionedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionedAccount")
            .field("identity_key", self.identity.public_key())
            .field("account", &self.account)
            .field("existing_devices", &self.existing_devices)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LinkedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedDevice")
            .field("identity_key", self.identity.public_key())
            .field("account", &self.account)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn choose_device_id<R: CryptoRng + ?Sized>(rng: &mut R, taken: &[DeviceId]) -> DeviceId {
    for _ in 0..64 {
        let id = rng.next_u32() & 0x7FFF_FFFF;
        if id != 0 && !taken.contains(&id) {
            return id;
        }
    }
    // Unreachable in practice (at most 64 of 2^31 ids are taken); stay total.
    (1..=DeviceId::MAX)
        .find(|id| !taken.contains(id))
        .unwrap_or(DeviceId::MAX)
}

/// Seals `identity` and the account data to the new device's link request
/// `code` (as scanned from its screen). Returns the payload to send it and the
/// code to display.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair};
/// # use ratchetbox::provisioning::{LinkRequest, ProvisioningError, provision};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = AccountId::new(b"alice")?;
/// let mut request = LinkRequest::new(&mut rng);
/// let (payload, on_phone) = provision(&mut rng, &identity, &alice, &[1], &*request.code())?;
/// assert_eq!(request.accept(&payload)?.confirmation_code(), &on_phone);
///
/// // A code that was misread is refused: scan again.
/// let misread = provision(&mut rng, &identity, &alice, &[1], &request.code()[..40]);
/// assert!(matches!(misread, Err(ProvisioningError::Malformed(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ProvisioningError::Malformed`] for a bad request code (scan it again) or
/// more than [`MAX_LISTED_DEVICES`] devices (remove old devices first);
/// [`ProvisioningError::NonContributoryDh`] for a small-order key in it (a
/// forged code: do not link).
pub fn provision<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &IdentityKeyPair,
    account: &AccountId,
    existing_devices: &[DeviceId],
    code: &[u8],
) -> Result<(Vec<u8>, ConfirmationCode), ProvisioningError> {
    let mut r = Reader::new(code);
    r.tag(LINK_REQUEST_TAG)?;
    let link_key = r.public_key("link request key")?;
    let link_secret = SecretKey32::from_bytes(r.array("link secret")?);
    r.finish()?;
    if existing_devices.len() > MAX_LISTED_DEVICES {
        return Err(DecodeError::LimitExceeded {
            field: "listed devices",
            max: MAX_LISTED_DEVICES as u64,
            found: existing_devices.len() as u64,
        }
        .into());
    }
    let ephemeral = DhKeyPair::generate(rng);
    let key = payload_key(&ephemeral, &link_key, ephemeral.public(), &link_secret)?;

    let mut w = Writer::with_capacity(KEY_LEN + 2 + account.as_bytes().len() + 4 * 64);
    w.bytes(identity.seed())
        .u8(account.as_bytes().len() as u8)
        .bytes(account.as_bytes())
        .u8(existing_devices.len() as u8);
    for id in existing_devices {
        w.u32(*id);
    }
    let body = Zeroizing::new(w.into_vec());

    let mut payload = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
    payload.push(PROVISIONING_TAG);
    payload.extend_from_slice(link_key.as_bytes());
    payload.extend_from_slice(ephemeral.public().as_bytes());
    payload.resize(HEADER_LEN + body.len(), 0);
    let (header, ciphertext) = payload.split_at_mut(HEADER_LEN);
    let tag = crypto::aead_seal(&key, header, &body, ciphertext)
        .map_err(|_| ProvisioningError::Tampered)?;
    payload.extend_from_slice(&tag);
    let code = ConfirmationCode::derive(&link_key, ephemeral.public(), identity.public_key());
    Ok((payload, code))
}

/// `HKDF(salt = link key ‖ ephemeral key, ikm = DH ‖ link secret, info, 32)`.
/// `local` is whichever secret key this side holds. The link secret is what a
/// relay lacks: it sees both public keys, but without the secret it cannot
/// derive the key of a payload the new device would accept.
fn payload_key(
    local: &DhKeyPair,
    link_key: &PublicKey,
    ephemeral: &PublicKey,
    link_secret: &SecretKey32,
) -> Result<Zeroizing<[u8; KEY_LEN]>, ProvisioningError> {
    let their = if local.public() == link_key {
        ephemeral
    } else {
        link_key
    };
    let dh = local
        .dh(their)
        .map_err(|_| ProvisioningError::NonContributoryDh)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    crypto::hkdf_sha256(
        &[&link_key.as_bytes()[..], &ephemeral.as_bytes()[..]].concat(),
        &[dh.as_bytes(), link_secret.as_bytes()],
        labels::PROVISIONING_INFO,
        key.as_mut(),
    );
    Ok(key)
}

fn decode_body(
    body: &[u8],
    link_key: &PublicKey,
    ephemeral: &PublicKey,
) -> Result<ProvisionedAccount, DecodeError> {
    let mut r = Reader::new(body);
    let seed = Zeroizing::new(r.array::<KEY_LEN>("identity seed")?);
    let identity = IdentityKeyPair::from_seed(&seed);
    let len = usize::from(r.u8("account id length")?);
    let account = AccountId::new(r.take(len, "account id")?)?;
    let count = usize::from(r.u8("device count")?);
    if count > MAX_LISTED_DEVICES {
        return Err(DecodeError::LimitExceeded {
            field: "listed devices",
            max: MAX_LISTED_DEVICES as u64,
            found: count as u64,
        });
    }
    let mut existing_devices = Vec::with_capacity(count);
    for _ in 0..count {
        existing_devices.push(r.u32("device id")?);
    }
    r.finish()?;
    let code = ConfirmationCode::derive(link_key, ephemeral, identity.public_key());
    Ok(ProvisionedAccount {
        identity,
        account,
        existing_devices,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn setup(
        seed: u8,
    ) -> (
        IdentityKeyPair,
        AccountId,
        LinkRequest,
        Vec<u8>,
        ConfirmationCode,
    ) {
        let mut rng = test_rng(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        let account = AccountId::new(b"alice").unwrap();
        let request = LinkRequest::new(&mut rng);
        let (payload, code) =
            provision(&mut rng, &identity, &account, &[1, 7], &*request.code()).unwrap();
        (identity, account, request, payload, code)
    }

    #[test]
    fn linking_transfers_the_identity_and_codes_agree() {
        let (identity, account, mut request, payload, code) = setup(1);
        let linked = request.accept(&payload).unwrap();
        assert_eq!(linked.confirmation_code(), &code);
        assert_eq!(linked.identity_key(), identity.public_key());
        assert_eq!(linked.account(), &account);
        assert_eq!(linked.existing_devices(), &[1, 7]);
        let device = linked.into_device(&mut test_rng(9));
        assert!(device.device_id != 0 && device.device_id != 1 && device.device_id != 7);
        assert_eq!(device.prekeys.device_id(), device.device_id);
        assert_eq!(std::format!("{code}").len(), 9);
    }

    #[test]
    fn replay_tamper_and_foreign_payloads_are_refused() {
        let (_, _, mut request, payload, _) = setup(2);
        // Every single-bit change is refused, and the request stays usable.
        for i in 0..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 0x04;
            let err = request.accept(&bad).unwrap_err();
            let expected = if i == 0 {
                matches!(err, ProvisioningError::Malformed(_))
            } else if i <= KEY_LEN {
                err == ProvisioningError::WrongEphemeralKey
            } else if i == 2 * KEY_LEN {
                // Bit 2 of E's last byte: E stays canonical, the key changes.
                matches!(
                    err,
                    ProvisioningError::Tampered | ProvisioningError::NonContributoryDh
                )
            } else {
                matches!(
                    err,
                    ProvisioningError::Tampered | ProvisioningError::NonContributoryDh
                )
            };
            assert!(expected, "byte {i}: {err:?}");
        }
        for cut in 0..payload.len() {
            assert!(request.accept(&payload[..cut]).is_err());
        }
        request.accept(&payload).unwrap();
        assert_eq!(
            request.accept(&payload).unwrap_err(),
            ProvisioningError::AlreadyCompleted
        );
        // A payload for another request is refused by the next one.
        let mut other = LinkRequest::new(&mut test_rng(3));
        assert_eq!(
            other.accept(&payload).unwrap_err(),
            ProvisioningError::WrongEphemeralKey
        );
    }

    #[test]
    fn a_relay_that_knows_only_the_link_key_cannot_provision() {
        let mut rng = test_rng(6);
        let mut request = LinkRequest::new(&mut rng);
        let code = request.code();
        // The relay sees LK (it is in every payload header) but not the secret.
        let mut guessed = *code;
        guessed[1 + KEY_LEN..].fill(0);
        let relay_identity = IdentityKeyPair::generate(&mut rng);
        let relay_account = AccountId::new(b"mallory").unwrap();
        let (forged, _) =
            provision(&mut rng, &relay_identity, &relay_account, &[1], &guessed).unwrap();
        assert_eq!(forged[1..1 + KEY_LEN], code[1..1 + KEY_LEN]);
        assert_eq!(
            request.accept(&forged).unwrap_err(),
            ProvisioningError::Tampered
        );
        // The request still accepts the real payload.
        let identity = IdentityKeyPair::generate(&mut rng);
        let account = AccountId::new(b"alice").unwrap();
        let (real, _) = provision(&mut rng, &identity, &account, &[1], &*code).unwrap();
        assert_eq!(
            request.accept(&real).unwrap().identity_key(),
            identity.public_key()
        );
        assert!(request.code()[1 + KEY_LEN..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_non_canonical_key_is_malformed() {
        let mut rng = test_rng(7);
        let (identity, account) = (
            IdentityKeyPair::generate(&mut rng),
            AccountId::new(b"a").unwrap(),
        );
        let mut request = LinkRequest::new(&mut rng);
        let mut code = *request.code();
        code[KEY_LEN] |= 0x80; // bit 255 of LK
        assert!(matches!(
            provision(&mut rng, &identity, &account, &[], &code),
            Err(ProvisioningError::Malformed(
                DecodeError::NonCanonicalKey { .. }
            ))
        ));
        let (mut payload, _) =
            provision(&mut rng, &identity, &account, &[], &*request.code()).unwrap();
        payload[2 * KEY_LEN] |= 0x80; // bit 255 of E
        assert!(matches!(
            request.accept(&payload),
            Err(ProvisioningError::Malformed(
                DecodeError::NonCanonicalKey { .. }
            ))
        ));
    }

    #[test]
    fn a_substituted_link_key_shows_different_codes() {
        let mut rng = test_rng(4);
        let identity = IdentityKeyPair::generate(&mut rng);
        let account = AccountId::new(b"alice").unwrap();
        let mut real = LinkRequest::new(&mut rng);
        let mut attacker = LinkRequest::new(&mut rng);
        // The primary scanned the attacker's code; the attacker re-seals to the real device.
        let (to_attacker, on_phone) =
            provision(&mut rng, &identity, &account, &[1], &*attacker.code()).unwrap();
        let stolen = attacker.accept(&to_attacker).unwrap();
        let (to_real, _) =
            provision(&mut rng, &stolen.identity, &account, &[1], &*real.code()).unwrap();
        let on_desktop = real.accept(&to_real).unwrap();
        assert_ne!(on_desktop.confirmation_code(), &on_phone);
    }

    #[test]
    fn bad_request_codes_are_typed() {
        let mut rng = test_rng(5);
        let identity = IdentityKeyPair::generate(&mut rng);
        let account = AccountId::new(b"a").unwrap();
        let good = *LinkRequest::new(&mut rng).code();
        assert!(matches!(
            provision(&mut rng, &identity, &account, &[], &good[..64]),
            Err(ProvisioningError::Malformed(_))
        ));
        let mut zero = good;
        zero[1..1 + KEY_LEN].fill(0);
        assert_eq!(
            provision(&mut rng, &identity, &account, &[], &zero).unwrap_err(),
            ProvisioningError::NonContributoryDh
        );
        assert!(matches!(
            provision(&mut rng, &identity, &account, &[0; 65], &good),
            Err(ProvisioningError::Malformed(
                DecodeError::LimitExceeded { .. }
            ))
        ));
    }
}
