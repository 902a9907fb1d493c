//! State at rest: every stored object sealed under a caller's 32-byte storage
//! key (SPEC.md §13).
//!
//! A sealed blob is `0x7A ‖ version ‖ kind ‖ nonce (24) ‖ ciphertext ‖ tag (16)`:
//! XChaCha20-Poly1305 under a key derived from the storage key, with a random
//! 192-bit nonce (one long-lived key seals every blob, so the nonce space must
//! make collisions negligible). The first three bytes and the blob's *slot* —
//! where the application keeps it — are associated data, so a blob sealed as
//! one kind of object never opens as another, and a blob moved to another
//! slot (another contact's record, say) does not open there.
//!
//! ```
//! use ratchetbox::IdentityKeyPair;
//! use ratchetbox::at_rest::{self, StorageKey};
//! let mut rng = ratchetbox::os_rng();
//! let identity = IdentityKeyPair::generate(&mut rng);
//! let key = StorageKey::generate(&mut rng);
//!
//! let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
//! let restored: IdentityKeyPair = at_rest::open(&key, b"identity", &blob)?;
//! assert_eq!(restored.public_key(), identity.public_key());
//! assert!(at_rest::open::<IdentityKeyPair>(&key, b"elsewhere", &blob).is_err());
//!
//! // Moving to a new storage key is one call per blob.
//! let new_key = StorageKey::generate(&mut rng);
//! let moved = at_rest::reseal(&mut rng, &key, &new_key, b"identity", &blob)?;
//! assert!(at_rest::open::<IdentityKeyPair>(&key, b"identity", &moved).is_err());
//! # Ok::<(), ratchetbox::at_rest::StorageError>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, SecretKey32, TAG_LEN, XNONCE_LEN, labels};
use crate::error::DecodeError;

const SEALED_STATE_TAG: u8 = 0x7A;
const SEALED_STATE_VERSION: u8 = 2;
const HEADER_LEN: usize = 3;

/// Bytes a sealed blob adds to the object's encoding: 3-byte header, 24-byte
/// nonce, 16-byte tag.
pub const SEALED_STATE_OVERHEAD: usize = HEADER_LEN + XNONCE_LEN + TAG_LEN;

/// A 32-byte key that seals stored state. The app keeps it in the platform
/// keystore (Keychain, Android Keystore) and never stores it beside the blobs.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let other = StorageKey::generate(&mut rng);
/// let wrong = at_rest::open::<IdentityKeyPair>(&other, b"identity", &blob);
/// assert_eq!(wrong.err(), Some(StorageError::WrongKeyOrCorrupted));
/// assert_eq!(format!("{key:?}"), "StorageKey([redacted])");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StorageKey(SecretKey32);

impl StorageKey {
    /// A storage key from its bytes (as read back from the platform keystore).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord};
    /// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let key = StorageKey::generate(&mut rng);
    /// let from_keystore = [7u8; 32];
    /// let key = StorageKey::from_bytes(from_keystore);
    /// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
    /// // The same bytes make the same key, on the next start of the app.
    /// let again = StorageKey::from_bytes(from_keystore);
    /// let opened: IdentityKeyPair = at_rest::open(&again, b"identity", &blob)?;
    /// assert_eq!(opened.public_key(), identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(SecretKey32::from_bytes(bytes))
    }

    /// A fresh random storage key, made once when the app is installed.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord};
    /// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let key = StorageKey::generate(&mut rng);
    /// let key = StorageKey::generate(&mut rng);
    /// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
    /// let opened: IdentityKeyPair = at_rest::open(&key, b"identity", &blob)?;
    /// assert_eq!(opened.public_key(), identity.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_bytes(*bytes)
    }

    /// `HKDF(salt = 32 zero bytes, ikm = storage key, info, 32)`: the AEAD key.
    fn aead_key(&self) -> Zeroizing<[u8; KEY_LEN]> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        crypto::hkdf_sha256(
            &[0u8; KEY_LEN],
            &[self.0.as_bytes()],
            labels::STATE_AT_REST_INFO,
            key.as_mut(),
        );
        key
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey([redacted])")
    }
}

/// What kind of object a sealed blob holds; bound into its associated data.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let misfiled = at_rest::open::<TrustRecord>(&key, b"identity", &blob);
/// let expected = StateKind::Trust;
/// assert_eq!(misfiled.err(), Some(StorageError::WrongKind { expected, found: 1 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateKind {
    /// An [`IdentityKeyPair`](crate::IdentityKeyPair).
    Identity,
    /// A device's [`PreKeyStore`](crate::PreKeyStore).
    PreKeys,
    /// A [`SessionRecord`](crate::store::SessionRecord) (one remote device's sessions).
    Sessions,
    /// A [`TrustRecord`](crate::TrustRecord).
    Trust,
    /// A [`GroupSession`](crate::group::GroupSession).
    Group,
    /// A whole [`MemoryStore`](crate::store::MemoryStore) snapshot.
    DeviceStore,
    /// A [`LocalDevice`](crate::devices::LocalDevice): account, device id and identity.
    LocalDevice,
    /// A single [`Session`](crate::Session), kept by an application that
    /// manages raw sessions itself (a binding, say) rather than records.
    Session,
    /// The application's own bytes (through [`seal_bytes`]), such as a
    /// database row it commits beside the protocol state.
    AppData,
}

impl StateKind {
    /// The kind's byte in the sealed header.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord};
    /// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let key = StorageKey::generate(&mut rng);
    /// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
    /// assert_eq!(blob[2], StateKind::Identity.to_byte());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Identity => 1,
            Self::PreKeys => 2,
            Self::Sessions => 3,
            Self::Trust => 4,
            Self::Group => 5,
            Self::DeviceStore => 6,
            Self::LocalDevice => 7,
            Self::Session => 8,
            Self::AppData => 9,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Identity,
            2 => Self::PreKeys,
            3 => Self::Sessions,
            4 => Self::Trust,
            5 => Self::Group,
            6 => Self::DeviceStore,
            7 => Self::LocalDevice,
            8 => Self::Session,
            9 => Self::AppData,
            _ => return None,
        })
    }
}

/// Why a sealed blob could not be opened.
///
/// What the app does: for [`WrongKeyOrCorrupted`](Self::WrongKeyOrCorrupted),
/// check it used the right storage key and slot; otherwise, and for every
/// other variant, the blob is lost: restore a backup, or for a session record
/// delete it and start a fresh session, for the identity re-register or
/// re-link the device. [`UnsupportedVersion`](Self::UnsupportedVersion) and
/// [`Decode`](Self::Decode) mean a newer app wrote it: do not delete it on a
/// downgrade.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let mut flipped = blob.clone();
/// flipped[40] ^= 1;
/// match at_rest::open::<IdentityKeyPair>(&key, b"identity", &flipped) {
///     Err(StorageError::WrongKeyOrCorrupted) => {} // the key is right, so: corrupted
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(
///     at_rest::open::<IdentityKeyPair>(&key, b"identity", &blob[..10]).err(),
///     Some(StorageError::Truncated)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The blob is shorter than a header, nonce and tag.
    Truncated,
    /// The first byte is not the sealed-state tag: not a sealed blob.
    NotSealed {
        /// The byte found.
        found: u8,
    },
    /// A sealed-state version this library does not read.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The blob holds another kind of object than the one asked for.
    WrongKind {
        /// The kind asked for.
        expected: StateKind,
        /// The kind byte in the header.
        found: u8,
    },
    /// The tag did not verify: the wrong storage key, or the blob was altered.
    WrongKeyOrCorrupted,
    /// The blob authenticated but its content is not a valid object
    /// (written by an incompatible version of the app).
    Decode(DecodeError),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("sealed state is truncated"),
            Self::NotSealed { found } => {
                write!(f, "not sealed state (tag 0x{found:02x}, expected 0x7a)")
            }
            Self::UnsupportedVersion { found } => {
                write!(f, "unsupported sealed-state version {found}")
            }
            Self::WrongKind { expected, found } => write!(
                f,
                "sealed state holds kind {found}, expected {expected:?} ({})",
                expected.to_byte()
            ),
            Self::WrongKeyOrCorrupted => {
                f.write_str("sealed state did not authenticate: wrong storage key or corrupted")
            }
            Self::Decode(e) => write!(f, "sealed state content is malformed: {e}"),
        }
    }
}

impl core::error::Error for StorageError {}

impl From<DecodeError> for StorageError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

/// An object with a stored encoding that can be sealed at rest: the identity
/// key pair, the prekey store, the local device, session and trust records,
/// group states and a whole [`MemoryStore`](crate::store::MemoryStore).
///
/// Code generic over it seals any of them:
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// use ratchetbox::at_rest::Persist;
/// fn save<T: Persist>(key: &StorageKey, slot: &[u8], object: &T) -> Vec<u8> {
///     at_rest::seal(&mut ratchetbox::os_rng(), key, slot, object)
/// }
/// let record = TrustRecord::first_seen(*identity.public_key());
/// let blob = save(&key, b"bob", &record);
/// assert_eq!(blob[2], TrustRecord::KIND.to_byte());
/// assert_eq!(at_rest::open::<TrustRecord>(&key, b"bob", &blob)?, record);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Persist: Sized {
    /// The kind bound into the sealed blob.
    const KIND: StateKind;
    /// The object's versioned encoding (it may hold secrets).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord};
    /// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let key = StorageKey::generate(&mut rng);
    /// use ratchetbox::at_rest::{Persist, SEALED_STATE_OVERHEAD};
    /// let encoding = identity.encode_state();
    /// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
    /// assert_eq!(blob.len(), encoding.len() + SEALED_STATE_OVERHEAD);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn encode_state(&self) -> Zeroizing<Vec<u8>>;
    /// Decodes what [`encode_state`](Self::encode_state) produced.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord};
    /// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let key = StorageKey::generate(&mut rng);
    /// use ratchetbox::at_rest::Persist;
    /// let record = TrustRecord::first_seen(*identity.public_key());
    /// assert_eq!(TrustRecord::decode_state(&record.encode_state())?, record);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed encoding.
    fn decode_state(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Seals `object` under `key` for `slot`: where the application keeps the
/// blob, such as a session record's encoded device address, a contact's
/// account id, or a fixed name for a one-of-a-kind object (`b"identity"`).
/// The same slot must be given to [`open`]. Its size is the object's encoding
/// plus [`SEALED_STATE_OVERHEAD`].
///
/// Nothing here stops a blob from being replaced by an *older* blob of the
/// same slot (a rollback); an application that must detect that keeps a
/// counter in storage it trusts.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// use ratchetbox::at_rest::SEALED_STATE_OVERHEAD;
/// let record = TrustRecord::first_seen(*identity.public_key());
/// let blob = at_rest::seal(&mut rng, &key, b"bob", &record); // slot: Bob's account id
/// assert_eq!(blob.len(), record.encode().len() + SEALED_STATE_OVERHEAD);
/// assert_eq!(at_rest::open::<TrustRecord>(&key, b"bob", &blob)?, record);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal<T: Persist, R: CryptoRng + ?Sized>(
    rng: &mut R,
    key: &StorageKey,
    slot: &[u8],
    object: &T,
) -> Vec<u8> {
    seal_bytes(rng, key, T::KIND, slot, &object.encode_state())
}

/// Opens a blob [`seal`] produced for `slot` as a `T`.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let opened: IdentityKeyPair = at_rest::open(&key, b"identity", &blob)?;
/// assert_eq!(opened.public_key(), identity.public_key());
/// // A blob copied to another slot does not open there.
/// let moved = at_rest::open::<IdentityKeyPair>(&key, b"backup", &blob);
/// assert_eq!(moved.err(), Some(StorageError::WrongKeyOrCorrupted));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`StorageError`]: truncation, a foreign tag or version, another kind of
/// object, a wrong key, another slot or an altered byte
/// ([`StorageError::WrongKeyOrCorrupted`]: check the key, else treat the blob
/// as lost), or undecodable content. See [`StorageError`] for what to do.
pub fn open<T: Persist>(key: &StorageKey, slot: &[u8], blob: &[u8]) -> Result<T, StorageError> {
    let plaintext = open_bytes(key, T::KIND, slot, blob)?;
    Ok(T::decode_state(&plaintext)?)
}

/// Re-seals a blob of `slot` under a new storage key, keeping its kind and
/// slot, without decoding the object.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let new_key = StorageKey::generate(&mut rng);
/// let moved = at_rest::reseal(&mut rng, &key, &new_key, b"identity", &blob)?;
/// let opened: IdentityKeyPair = at_rest::open(&new_key, b"identity", &moved)?;
/// assert_eq!(opened.public_key(), identity.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`open_bytes`], for the old key. Keep the old key until every blob
/// was resealed; a blob that fails is lost as [`StorageError`] describes.
pub fn reseal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    old: &StorageKey,
    new: &StorageKey,
    slot: &[u8],
    blob: &[u8],
) -> Result<Vec<u8>, StorageError> {
    let kind = parse_header(blob)?;
    let plaintext = open_bytes(old, kind, slot, blob)?;
    Ok(seal_bytes(rng, new, kind, slot, &plaintext))
}

/// Seals an already encoded object of `kind` for `slot` (for example a
/// record a store keeps encoded, without decoding it first).
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let encoding = identity.encode();
/// let blob = at_rest::seal_bytes(&mut rng, &key, StateKind::Identity, b"identity", &encoding);
/// let opened: IdentityKeyPair = at_rest::open(&key, b"identity", &blob)?;
/// assert_eq!(opened.public_key(), identity.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal_bytes<R: CryptoRng + ?Sized>(
    rng: &mut R,
    key: &StorageKey,
    kind: StateKind,
    slot: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut blob = Vec::with_capacity(plaintext.len() + SEALED_STATE_OVERHEAD);
    blob.extend_from_slice(&[SEALED_STATE_TAG, SEALED_STATE_VERSION, kind.to_byte()]);
    let mut nonce = [0u8; XNONCE_LEN];
    rng.fill_bytes(&mut nonce);
    blob.extend_from_slice(&nonce);
    blob.resize(HEADER_LEN + XNONCE_LEN + plaintext.len(), 0);
    let (header, body) = blob.split_at_mut(HEADER_LEN + XNONCE_LEN);
    let aad = [&header[..HEADER_LEN], slot].concat();
    let tag = crypto::xaead_seal(&key.aead_key(), &nonce, &aad, plaintext, body);
    // A plaintext that fits in memory is far below XChaCha20's 256 GiB limit.
    match tag {
        Ok(tag) => blob.extend_from_slice(&tag),
        Err(_) => blob.clear(),
    }
    blob
}

/// Opens a blob of `kind` and `slot` into the object's encoding.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord};
/// # use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let key = StorageKey::generate(&mut rng);
/// let blob = at_rest::seal(&mut rng, &key, b"identity", &identity);
/// let encoding = at_rest::open_bytes(&key, StateKind::Identity, b"identity", &blob)?;
/// assert_eq!(&encoding[..], &identity.encode()[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`open`], except that content is not decoded.
pub fn open_bytes(
    key: &StorageKey,
    kind: StateKind,
    slot: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StorageError> {
    let found = parse_header(blob)?;
    if found != kind {
        return Err(StorageError::WrongKind {
            expected: kind,
            found: found.to_byte(),
        });
    }
    let (header, rest) = blob.split_at(HEADER_LEN);
    let (nonce, sealed) = rest.split_at(XNONCE_LEN);
    let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut plaintext = Zeroizing::new(alloc::vec![0u8; ciphertext.len()]);
    let aad = [header, slot].concat();
    crypto::xaead_open(
        &key.aead_key(),
        nonce.try_into().map_err(|_| StorageError::Truncated)?,
        &aad,
        ciphertext,
        tag.try_into().map_err(|_| StorageError::Truncated)?,
        &mut plaintext,
    )
    .map_err(|_| StorageError::WrongKeyOrCorrupted)?;
    Ok(plaintext)
}

/// The kind a blob claims, after checking tag, version and minimum length.
/// The kind byte is authenticated only when the blob is opened.
fn parse_header(blob: &[u8]) -> Result<StateKind, StorageError> {
    if let Some(&tag) = blob.first()
        && tag != SEALED_STATE_TAG
    {
        return Err(StorageError::NotSealed { found: tag });
    }
    if let Some(&version) = blob.get(1)
        && version != SEALED_STATE_VERSION
    {
        return Err(StorageError::UnsupportedVersion { found: version });
    }
    if blob.len() < SEALED_STATE_OVERHEAD {
        return Err(StorageError::Truncated);
    }
    // An unknown kind byte cannot be what any caller expects; an attacker who
    // changed it gets the same answer as any other alteration.
    StateKind::from_byte(blob[2]).ok_or(StorageError::WrongKeyOrCorrupted)
}

/// `Persist` for types whose own `encode` / `decode` are the stored form.
macro_rules! persist_by_codec {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl Persist for $ty {
            const KIND: StateKind = StateKind::$kind;
            fn encode_state(&self) -> Zeroizing<Vec<u8>> {
                self.encode()
            }
            fn decode_state(bytes: &[u8]) -> Result<Self, DecodeError> {
                Self::decode(bytes)
            }
        }
    )*};
}

persist_by_codec! {
    crate::IdentityKeyPair => Identity,
    crate::PreKeyStore => PreKeys,
    crate::store::SessionRecord => Sessions,
    crate::store::MemoryStore => DeviceStore,
    crate::devices::LocalDevice => LocalDevice,
}

impl Persist for crate::TrustRecord {
    const KIND: StateKind = StateKind::Trust;
    fn encode_state(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.encode())
    }
    fn decode_state(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(bytes)
    }
}

impl Persist for crate::Session {
    const KIND: StateKind = StateKind::Session;
    fn encode_state(&self) -> Zeroizing<Vec<u8>> {
        self.encode()
    }
    fn decode_state(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(bytes).map_err(|e| match e {
            crate::Error::Decode(d) => d,
            _ => DecodeError::InvalidValue { field: "session" },
        })
    }
}

impl Persist for crate::group::GroupSession {
    const KIND: StateKind = StateKind::Group;
    fn encode_state(&self) -> Zeroizing<Vec<u8>> {
        self.encode()
    }
    fn decode_state(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_record(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;
    use crate::test_rng;

    #[test]
    fn wrong_key_kind_truncation_and_tampering_are_typed() {
        let mut rng = test_rng(1);
        let identity = IdentityKeyPair::generate(&mut rng);
        let key = StorageKey::generate(&mut rng);
        let blob = seal(&mut rng, &key, b"id", &identity);
        assert_eq!(blob.len(), identity.encode().len() + SEALED_STATE_OVERHEAD);

        let other = StorageKey::generate(&mut rng);
        assert_eq!(
            open::<IdentityKeyPair>(&other, b"id", &blob).err(),
            Some(StorageError::WrongKeyOrCorrupted)
        );
        assert_eq!(
            open::<crate::TrustRecord>(&key, b"id", &blob).err(),
            Some(StorageError::WrongKind {
                expected: StateKind::Trust,
                found: 1
            })
        );
        // Relabelling the blob is caught by the associated data.
        let mut relabelled = blob.clone();
        relabelled[2] = StateKind::Trust.to_byte();
        assert_eq!(
            open::<crate::TrustRecord>(&key, b"id", &relabelled).err(),
            Some(StorageError::WrongKeyOrCorrupted)
        );
        for cut in 0..blob.len() {
            let err = open::<IdentityKeyPair>(&key, b"id", &blob[..cut]).err();
            assert!(
                matches!(
                    err,
                    Some(StorageError::Truncated | StorageError::WrongKeyOrCorrupted)
                ),
                "cut {cut}: {err:?}"
            );
        }
        for i in 0..blob.len() {
            let mut flipped = blob.clone();
            flipped[i] ^= 0x01;
            assert!(
                open::<IdentityKeyPair>(&key, b"id", &flipped).is_err(),
                "byte {i}"
            );
        }
        let mut version = blob.clone();
        version[1] = 1;
        assert_eq!(
            open::<IdentityKeyPair>(&key, b"id", &version).err(),
            Some(StorageError::UnsupportedVersion { found: 1 })
        );
        assert_eq!(
            open::<IdentityKeyPair>(&key, b"id", &identity.encode()).err(),
            Some(StorageError::NotSealed { found: 0x49 })
        );
    }

    #[test]
    fn sealed_sizes_are_the_documented_ones() {
        let mut rng = test_rng(3);
        let key = StorageKey::generate(&mut rng);
        let identity = IdentityKeyPair::generate(&mut rng);
        let local = crate::LocalDevice {
            account: crate::AccountId::new(b"alice").unwrap(),
            device_id: 1,
            identity: IdentityKeyPair::generate(&mut rng),
        };
        let mut trust = crate::TrustRecord::first_seen(*identity.public_key());
        assert_eq!(seal(&mut rng, &key, b"", &identity).len(), 34 + 43);
        assert_eq!(seal(&mut rng, &key, b"", &local).len(), 44 + 43);
        assert_eq!(seal(&mut rng, &key, b"", &trust).len(), 35 + 43);
        trust.observe(local.identity.public_key());
        assert_eq!(seal(&mut rng, &key, b"", &trust).len(), 68 + 43);
        let prekeys = crate::PreKeyStore::generate(&mut rng, &identity, 1);
        let bundle = crate::PreKeyBundle::from_store(identity.public_key(), &prekeys, None)
            .verify()
            .unwrap();
        let bob = crate::AccountId::new(b"bob").unwrap();
        let session = crate::Session::initiate(&mut rng, &local, &bob, &bundle).unwrap();
        // A single session seals as its own kind, not as a record.
        let alone = seal(&mut rng, &key, b"s", &session);
        assert_eq!(alone.len(), 1402 + 43);
        assert_eq!(alone[2], StateKind::Session.to_byte());
        let reopened: crate::Session = open(&key, b"s", &alone).unwrap();
        assert_eq!(*reopened.encode(), *session.encode());
        assert_eq!(
            open::<crate::store::SessionRecord>(&key, b"s", &alone).err(),
            Some(StorageError::WrongKind {
                expected: StateKind::Sessions,
                found: 8
            })
        );
        let record = crate::store::SessionRecord::new(session);
        // A fresh initiator session between "alice" and "bob": 1402 bytes
        // (it keeps the 1088-byte KEM ciphertext until a reply arrives).
        assert_eq!(record.encode().len(), 2 + 4 + 1402 + 1);
        assert_eq!(seal(&mut rng, &key, b"", &record).len(), 1409 + 43);
    }

    #[test]
    fn a_blob_opens_only_in_its_slot() {
        let mut rng = test_rng(4);
        let key = StorageKey::generate(&mut rng);
        let record =
            crate::TrustRecord::first_seen(*IdentityKeyPair::generate(&mut rng).public_key());
        let blob = seal(&mut rng, &key, b"bob", &record);
        assert_eq!(open(&key, b"bob", &blob), Ok(record));
        assert_eq!(
            open::<crate::TrustRecord>(&key, b"carol", &blob),
            Err(StorageError::WrongKeyOrCorrupted)
        );
        assert!(open::<crate::TrustRecord>(&key, b"", &blob).is_err());
        let new = StorageKey::generate(&mut rng);
        let moved = reseal(&mut rng, &key, &new, b"bob", &blob).unwrap();
        assert_eq!(open(&new, b"bob", &moved), Ok(record));
        assert!(reseal(&mut rng, &key, &new, b"carol", &blob).is_err());
    }

    #[test]
    fn two_seals_of_one_object_differ_and_reseal_moves_keys() {
        let mut rng = test_rng(2);
        let identity = IdentityKeyPair::generate(&mut rng);
        let (old, new) = (
            StorageKey::generate(&mut rng),
            StorageKey::generate(&mut rng),
        );
        let a = seal(&mut rng, &old, b"id", &identity);
        let b = seal(&mut rng, &old, b"id", &identity);
        assert_ne!(a, b);
        // The 24-byte nonces differ.
        assert_ne!(a[3..3 + XNONCE_LEN], b[3..3 + XNONCE_LEN]);
        let moved = reseal(&mut rng, &old, &new, b"id", &a).unwrap();
        let back: IdentityKeyPair = open(&new, b"id", &moved).unwrap();
        assert_eq!(back.public_key(), identity.public_key());
        assert!(reseal(&mut rng, &new, &old, b"id", &a).is_err());
    }
}
