//! Signed and one-time prekeys, X25519 and ML-KEM-768, and the per-device
//! store that holds them.
//!
//! A device publishes its current signed prekey, its last-resort KEM prekey,
//! and batches of one-time prekeys of both kinds. When it rotates the signed
//! prekey, the last-resort KEM prekey rotates with it, and the old pair is
//! *retired*, not deleted: initiators that fetched an old bundle can still
//! reach the device until the caller expires retired keys after a grace
//! period of its choosing.

mod kem;
mod state;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::crypto::{DhKeyPair, KEY_LEN, PublicKey, SIGNATURE_LEN};
use crate::error::{DecodeError, Error};
use crate::identity::{DeviceId, IdentityKeyPair};

/// Prekey id type.
pub type PreKeyId = u32;

/// Most one-time prekeys a store holds. Bounds the stored state and what a
/// decoder will accept; 10 000 keys is far beyond any server's upload batch.
pub const MAX_ONE_TIME_PREKEYS: usize = 10_000;

/// Most one-time KEM prekeys a store holds. Each is a 64-byte seed expanded
/// into a 3.6 KB key pair when the store is decoded (one ML-KEM key generation
/// each); a server hands out one per new session, and apps upload them in
/// batches of about a hundred.
pub const MAX_ONE_TIME_KEM_PREKEYS: usize = 1000;

/// Most retired signed prekeys (each with its last-resort KEM prekey) kept
/// for their grace period. Rotating more often than this within one grace
/// period drops the oldest retired pair.
pub const MAX_RETIRED_SIGNED_PREKEYS: usize = 4;

/// Most base keys of accepted prekey messages a store remembers, oldest
/// dropped first. A prekey message whose base key is remembered is a repeat or
/// a replay ([`Error::RepeatedPreKeyMessage`]), never a new session, even once
/// its one-time prekey is gone or when it used none. Anyone can make a device
/// accept a session, so the memory is bounded: 1000 new sessions within one
/// signed prekey's lifetime and grace period is far beyond any real device;
/// beyond it, only a replay of one of the oldest first messages that named no
/// one-time prekey could create a session again. Entries go with their signed
/// prekey, since a message naming an expired prekey is refused anyway. This
/// is also what detects a replay of a prekey message that used the reusable
/// last-resort KEM prekey (libsignal keeps the same triple for it).
pub const MAX_ACCEPTED_BASE_KEYS: usize = 1000;

pub use kem::KemPreKey;

const SIGNED_PREKEY_TAG: u8 = 0x51;
const ONE_TIME_PREKEY_TAG: u8 = 0x52;

/// A signed prekey: an X25519 key pair, its id, and the identity's signature
/// over `Encode(public key)`.
///
/// A device has one current signed prekey (and a few retired ones); every
/// bundle carries it.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, PreKeyStore, SignedPreKey};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let current: &SignedPreKey = store.signed_prekey();
/// assert_eq!(current.id(), 1);
/// let rotated = store.rotate_signed_prekey(&mut rng, &bob, 1_000)?;
/// assert_eq!(rotated.id(), 2);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
pub struct SignedPreKey {
    id: PreKeyId,
    key_pair: DhKeyPair,
    signature: [u8; SIGNATURE_LEN],
}

impl SignedPreKey {
    fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
    ) -> Self {
        let key_pair = DhKeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public().signed_encoding());
        Self {
            id,
            key_pair,
            signature,
        }
    }

    /// The prekey id: 1 for a new store, one more at each rotation.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// assert_eq!(store.signed_prekey().id(), 1);
    /// ```
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The public half, to publish.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # use ratchetbox::PreKeyBundle;
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.signed_prekey(), store.signed_prekey().public_key());
    /// ```
    pub fn public_key(&self) -> &PublicKey {
        self.key_pair.public()
    }

    /// The identity's signature over `0x05 ‖ public key`.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let spk = store.signed_prekey();
    /// let signed = [&[0x05][..], spk.public_key().as_bytes()].concat();
    /// assert!(bob.public_key().verify(&signed, spk.signature()).is_ok());
    /// ```
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    pub(crate) fn key_pair(&self) -> &DhKeyPair {
        &self.key_pair
    }

    pub(crate) fn duplicate(&self) -> Self {
        Self {
            id: self.id,
            key_pair: self.key_pair.duplicate(),
            signature: self.signature,
        }
    }

    /// Encodes the key alone, for a store that keeps prekeys as separate rows
    /// (SPEC.md §6.2): `0x51 ‖ id ‖ secret ‖ signature`. Holds a secret.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let row = store.signed_prekey().encode(); // zeroized when dropped
    /// assert_eq!(row.len(), 1 + 4 + 32 + 64);
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(1 + 4 + KEY_LEN + SIGNATURE_LEN);
        w.u8(SIGNED_PREKEY_TAG);
        encode_signed(&mut w, self);
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, PreKeyStore, SignedPreKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let mut row = store.signed_prekey().encode();
    /// let back = SignedPreKey::decode(&row)?;
    /// assert_eq!(back.public_key(), store.signed_prekey().public_key());
    /// row[5] |= 7; // the secret's low bits: no longer a clamped scalar
    /// assert!(matches!(SignedPreKey::decode(&row), Err(DecodeError::InvalidValue { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed or unclamped key: the stored row is
    /// corrupt. Treat the prekey as gone: if it was the current one, start a
    /// fresh [`PreKeyStore`] and replace the device's prekeys on the server.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(SIGNED_PREKEY_TAG)?;
        let key = decode_signed(&mut r)?;
        r.finish()?;
        Ok(key)
    }
}

impl core::fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("id", &self.id)
            .field("public", self.key_pair.public())
            .finish_non_exhaustive()
    }
}

/// A one-time prekey: used by at most one session, then deleted.
///
/// The app uploads batches of their public keys; the server hands each out
/// once, and the device deletes the secret when the first message that used
/// it decrypts.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, OneTimePreKey, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let upload = store.generate_one_time_prekeys(&mut rng, 3)?;
/// let (id, key) = upload[0];
/// let held: &OneTimePreKey = store.find_one_time_prekey(id).ok_or("missing")?;
/// assert_eq!(held.public_key(), &key);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OneTimePreKey {
    id: PreKeyId,
    key_pair: DhKeyPair,
}

impl OneTimePreKey {
    /// The prekey id, unique among the device's one-time prekeys.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, _) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// assert_eq!(store.find_one_time_prekey(id).map(|k| k.id()), Some(id));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The public half, to publish.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, key) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// assert_eq!(store.find_one_time_prekey(id).map(|k| *k.public_key()), Some(key));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn public_key(&self) -> &PublicKey {
        self.key_pair.public()
    }

    pub(crate) fn key_pair(&self) -> &DhKeyPair {
        &self.key_pair
    }

    pub(crate) fn duplicate(&self) -> Self {
        Self {
            id: self.id,
            key_pair: self.key_pair.duplicate(),
        }
    }

    /// Encodes the key alone (SPEC.md §6.2): `0x52 ‖ id ‖ secret`. Holds a secret.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, _) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// let row = store.find_one_time_prekey(id).ok_or("missing")?.encode();
    /// assert_eq!(row.len(), 1 + 4 + 32);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(1 + 4 + KEY_LEN);
        w.u8(ONE_TIME_PREKEY_TAG)
            .u32(self.id)
            .bytes(self.key_pair.secret_bytes());
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, OneTimePreKey, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let (id, _) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// let row = store.find_one_time_prekey(id).ok_or("missing")?.encode();
    /// assert_eq!(OneTimePreKey::decode(&row)?.id(), id);
    /// let wrong = OneTimePreKey::decode(&store.signed_prekey().encode());
    /// assert!(matches!(wrong, Err(DecodeError::UnknownFormat { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed or unclamped key: the stored row is
    /// corrupt. Delete it; an initiator that was given this prekey gets
    /// [`Error::UnknownOneTimePreKey`] and must fetch a new bundle.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(ONE_TIME_PREKEY_TAG)?;
        let id = r.u32("one-time prekey id")?;
        let secret = Zeroizing::new(r.array::<KEY_LEN>("one-time prekey secret")?);
        let key_pair = stored_key_pair(*secret, "one-time prekey secret")?;
        r.finish()?;
        Ok(Self { id, key_pair })
    }
}

impl core::fmt::Debug for OneTimePreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OneTimePreKey")
            .field("id", &self.id)
            .field("public", self.key_pair.public())
            .finish_non_exhaustive()
    }
}

/// A retired signed prekey and the last-resort KEM prekey retired with it.
struct RetiredPreKeys {
    signed: SignedPreKey,
    last_resort: KemPreKey,
    retired_at: u64,
}

/// A prekey message this device accepted: the prekeys it named and the
/// initiator's base key, which names the session it created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AcceptedBaseKey {
    signed_prekey_id: PreKeyId,
    kem_prekey_id: PreKeyId,
    base_key: PublicKey,
}

/// Whether a KEM prekey is spent by the message that uses it.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, KemPreKeyKind, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let one_time = store.generate_one_time_kem_prekeys(&mut rng, &bob, 1)?[0];
/// let kind = |id| store.find_kem_prekey(id).map(|(_, kind)| kind);
/// assert_eq!(kind(one_time), Some(KemPreKeyKind::OneTime));
/// assert_eq!(kind(1), Some(KemPreKeyKind::LastResort));
/// # Ok::<(), ratchetbox::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KemPreKeyKind {
    /// Used by one session, then deleted.
    OneTime,
    /// Reused while no one-time KEM prekey is left; rotates with the signed
    /// prekey.
    LastResort,
}

/// One device's prekeys: the current signed prekey and last-resort KEM
/// prekey, the retired pairs in their grace period, unused one-time prekeys
/// of both kinds, and the base keys of the prekey messages accepted under them
/// (bounded by [`MAX_ACCEPTED_BASE_KEYS`]).
///
/// A device creates one at registration, uploads its public parts, tops the
/// one-time prekeys up when the server runs low, rotates the signed prekey
/// periodically, and saves the store (sealed) after every change.
/// [`Responder`](crate::Responder) spends its keys as first messages arrive.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let one_time = store.generate_one_time_prekeys(&mut rng, 5)?;
/// let kem = store.generate_one_time_kem_prekeys(&mut rng, &bob, 5)?;
/// // Upload: what a server needs to assemble bundles.
/// let bundle = PreKeyBundle::from_store_with_kem(
///     bob.public_key(), &store, Some(one_time[0].0), Some(kem[0]));
/// assert!(bundle.verify().is_ok());
/// let saved = store.encode(); // seal before writing
/// assert_eq!(PreKeyStore::decode(&saved)?.one_time_kem_prekey_count(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PreKeyStore {
    device_id: DeviceId,
    signed: SignedPreKey,
    last_resort: KemPreKey,
    retired: Vec<RetiredPreKeys>,
    one_time: BTreeMap<PreKeyId, OneTimePreKey>,
    next_one_time_id: PreKeyId,
    one_time_kem: BTreeMap<PreKeyId, KemPreKey>,
    /// One id space for last-resort and one-time KEM prekeys.
    next_kem_id: PreKeyId,
    accepted: VecDeque<AcceptedBaseKey>,
}

impl PreKeyStore {
    /// Creates a store for `device_id` with a fresh signed prekey (id 1), a
    /// fresh last-resort KEM prekey (KEM id 1) and no one-time prekeys.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// let mut rng = ratchetbox::os_rng();
    /// let bob = IdentityKeyPair::generate(&mut rng);
    /// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let published = store.generate_one_time_prekeys(&mut rng, 10)?;
    /// assert_eq!(published.len(), 10);
    /// let kem = store.generate_one_time_kem_prekeys(&mut rng, &bob, 5)?;
    /// assert_eq!(kem.len(), 5);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        device_id: DeviceId,
    ) -> Self {
        let signed = SignedPreKey::generate(rng, identity, 1);
        let last_resort = KemPreKey::generate(rng, identity, 1);
        Self {
            device_id,
            signed,
            last_resort,
            retired: Vec::new(),
            one_time: BTreeMap::new(),
            next_one_time_id: 1,
            one_time_kem: BTreeMap::new(),
            next_kem_id: 2,
            accepted: VecDeque::new(),
        }
    }

    /// The device these prekeys belong to (it must match the local device
    /// that accepts with them).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 7);
    /// assert_eq!(store.device_id(), 7);
    /// ```
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The current signed prekey, the one new bundles carry.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// store.rotate_signed_prekey(&mut rng, &bob, 1_000)?;
    /// assert_eq!(store.signed_prekey().id(), 2);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn signed_prekey(&self) -> &SignedPreKey {
        &self.signed
    }

    /// The current last-resort KEM prekey, which bundles carry once the
    /// one-time KEM prekeys are used up.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # use ratchetbox::PreKeyBundle;
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.kem_prekey().id, store.last_resort_kem_prekey().id());
    /// ```
    pub fn last_resort_kem_prekey(&self) -> &KemPreKey {
        &self.last_resort
    }

    /// Generates `count` one-time prekeys and returns their ids and public keys,
    /// ready to upload. Save the store before uploading them.
    ///
    /// ```
    /// # use ratchetbox::{Error, IdentityKeyPair, PreKeyStore, MAX_ONE_TIME_PREKEYS};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let upload = store.generate_one_time_prekeys(&mut rng, 10)?;
    /// let ids: Vec<u32> = upload.iter().map(|(id, _)| *id).collect();
    /// assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    /// let too_many = store.generate_one_time_prekeys(&mut rng, MAX_ONE_TIME_PREKEYS);
    /// assert_eq!(too_many, Err(Error::TooManyPreKeys { max: MAX_ONE_TIME_PREKEYS }));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// Nothing is generated on an error.
    /// - [`Error::TooManyPreKeys`] if the store would exceed
    ///   [`MAX_ONE_TIME_PREKEYS`]: top up only to the limit (see
    ///   [`one_time_prekey_count`](Self::one_time_prekey_count)).
    /// - [`Error::PreKeyIdsExhausted`] when ids run out (after 2^32 keys): register
    ///   the device again with a fresh store.
    pub fn generate_one_time_prekeys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        count: usize,
    ) -> Result<Vec<(PreKeyId, PublicKey)>, Error> {
        if self.one_time.len().saturating_add(count) > MAX_ONE_TIME_PREKEYS {
            return Err(Error::TooManyPreKeys {
                max: MAX_ONE_TIME_PREKEYS,
            });
        }
        let first = take_ids(&mut self.next_one_time_id, count)?;
        let mut published = Vec::with_capacity(count);
        for id in first..first + count as u32 {
            let key_pair = DhKeyPair::generate(rng);
            published.push((id, *key_pair.public()));
            self.one_time.insert(id, OneTimePreKey { id, key_pair });
        }
        Ok(published)
    }

    /// Generates `count` one-time KEM prekeys, each signed by `identity`, and
    /// returns their ids (ready to upload with
    /// [`find_kem_prekey`](Self::find_kem_prekey)'s public keys and signatures).
    ///
    /// ```
    /// # use ratchetbox::{Error, IdentityKeyPair, PreKeyStore, MAX_ONE_TIME_KEM_PREKEYS};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// for id in store.generate_one_time_kem_prekeys(&mut rng, &bob, 2)? {
    ///     let (key, _) = store.find_kem_prekey(id).expect("just generated");
    ///     let _upload = (id, key.public_key(), key.signature());
    /// }
    /// let too_many =
    ///     store.generate_one_time_kem_prekeys(&mut rng, &bob, MAX_ONE_TIME_KEM_PREKEYS + 1);
    /// assert_eq!(too_many, Err(Error::TooManyPreKeys { max: MAX_ONE_TIME_KEM_PREKEYS }));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// Nothing is generated on an error.
    /// - [`Error::TooManyPreKeys`] beyond [`MAX_ONE_TIME_KEM_PREKEYS`]: top up
    ///   only to the limit (see
    ///   [`one_time_kem_prekey_count`](Self::one_time_kem_prekey_count)).
    /// - [`Error::PreKeyIdsExhausted`] when ids run out (shared with the
    ///   last-resort KEM prekeys): register the device again with a fresh store.
    pub fn generate_one_time_kem_prekeys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &IdentityKeyPair,
        count: usize,
    ) -> Result<Vec<PreKeyId>, Error> {
        if self.one_time_kem.len().saturating_add(count) > MAX_ONE_TIME_KEM_PREKEYS {
            return Err(Error::TooManyPreKeys {
                max: MAX_ONE_TIME_KEM_PREKEYS,
            });
        }
        let first = take_ids(&mut self.next_kem_id, count)?;
        let ids: Vec<PreKeyId> = (first..first + count as u32).collect();
        for &id in &ids {
            self.one_time_kem
                .insert(id, KemPreKey::generate(rng, identity, id));
        }
        Ok(ids)
    }

    /// Replaces the signed prekey and the last-resort KEM prekey with fresh
    /// ones. The old pair is retired at `now` (seconds, any epoch the caller
    /// uses consistently) and keeps working until
    /// [`expire_retired_signed_prekeys`](Self::expire_retired_signed_prekeys)
    /// removes it.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let now = 1_700_000_000; // seconds since the Unix epoch, say
    /// let new_id = store.rotate_signed_prekey(&mut rng, &bob, now)?.id();
    /// assert_eq!(new_id, 2);
    /// assert!(store.find_signed_prekey(1).is_some()); // retired, still accepted
    /// assert_eq!(store.last_resort_kem_prekey().id(), 2); // rotated with it
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::PreKeyIdsExhausted`] when prekey ids run out (the store is
    /// unchanged): register the device again with a fresh store.
    pub fn rotate_signed_prekey<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &IdentityKeyPair,
        now: u64,
    ) -> Result<&SignedPreKey, Error> {
        let id = self
            .signed
            .id
            .checked_add(1)
            .ok_or(Error::PreKeyIdsExhausted)?;
        let kem_id = take_ids(&mut self.next_kem_id, 1)?;
        let signed =
            core::mem::replace(&mut self.signed, SignedPreKey::generate(rng, identity, id));
        let last_resort = core::mem::replace(
            &mut self.last_resort,
            KemPreKey::generate(rng, identity, kem_id),
        );
        if self.retired.len() == MAX_RETIRED_SIGNED_PREKEYS {
            let dropped = self.retired.remove(0);
            self.forget_base_keys_of(dropped.signed.id);
        }
        self.retired.push(RetiredPreKeys {
            signed,
            last_resort,
            retired_at: now,
        });
        Ok(&self.signed)
    }

    /// Deletes retired prekey pairs retired at least `grace` seconds before
    /// `now`. Returns how many were deleted. A message naming a deleted prekey
    /// fails with [`Error::UnknownSignedPreKey`], so choose a grace period
    /// longer than messages usually wait on the server.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let week = 7 * 24 * 3600;
    /// store.rotate_signed_prekey(&mut rng, &bob, 1_000)?;
    /// assert_eq!(store.expire_retired_signed_prekeys(1_000 + week - 1, week), 0);
    /// assert_eq!(store.expire_retired_signed_prekeys(1_000 + week, week), 1);
    /// assert!(store.find_signed_prekey(1).is_none());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn expire_retired_signed_prekeys(&mut self, now: u64, grace: u64) -> usize {
        let before = self.retired.len();
        self.retired
            .retain(|r| r.retired_at.saturating_add(grace) > now);
        let current = self.signed.id;
        let retired: Vec<PreKeyId> = self.retired.iter().map(|r| r.signed.id).collect();
        self.accepted
            .retain(|a| a.signed_prekey_id == current || retired.contains(&a.signed_prekey_id));
        before - self.retired.len()
    }

    fn forget_base_keys_of(&mut self, signed_prekey_id: PreKeyId) {
        self.accepted
            .retain(|a| a.signed_prekey_id != signed_prekey_id);
    }

    /// Whether a prekey message with this base key was already accepted (its
    /// session exists, or existed): a repeat or a replay, never a new session.
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
    /// # let wire = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// let first = PreKeyMessage::parse(&wire)?;
    /// assert!(!bob_prekeys.has_accepted_base_key(first.base_key()));
    /// Responder::new(&bob, &mut bob_prekeys).accept(&alice.address(), &first)?;
    /// assert!(bob_prekeys.has_accepted_base_key(first.base_key()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_accepted_base_key(&self, base_key: &PublicKey) -> bool {
        self.accepted.iter().any(|a| a.base_key == *base_key)
    }

    /// Records that a prekey message was accepted: deletes the one-time prekey
    /// and the one-time KEM prekey it named (a last-resort KEM prekey stays)
    /// and remembers its base key with its prekey ids, dropping the oldest
    /// beyond [`MAX_ACCEPTED_BASE_KEYS`]. Call it only after the message
    /// decrypted. Returns `false`, changing nothing, if a named prekey (the
    /// signed one included) is gone or the base key is already recorded (two
    /// operations raced).
    ///
    /// [`Responder`](crate::Responder) calls this; a store implementation
    /// that keeps prekeys elsewhere does the same in one transaction.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore, PublicKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, _) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// let base_key = PublicKey::from_bytes([9; 32])?; // from the prekey message
    /// assert!(store.record_accepted(1, 1, Some(id), &base_key));
    /// assert!(store.find_one_time_prekey(id).is_none()); // spent
    /// assert!(!store.record_accepted(1, 1, None, &base_key)); // already recorded
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_accepted(
        &mut self,
        signed_prekey_id: PreKeyId,
        kem_prekey_id: PreKeyId,
        one_time_prekey_id: Option<PreKeyId>,
        base_key: &PublicKey,
    ) -> bool {
        // The signed prekey too: a remembered triple whose signed prekey is
        // gone would make the stored form undecodable (SPEC.md §6.2).
        let signed_held = self.find_signed_prekey(signed_prekey_id).is_some();
        let one_time_held = one_time_prekey_id.is_none_or(|id| self.one_time.contains_key(&id));
        let kem_held = self.find_kem_prekey(kem_prekey_id).is_some();
        if !signed_held || !one_time_held || !kem_held || self.has_accepted_base_key(base_key) {
            return false;
        }
        if let Some(id) = one_time_prekey_id {
            self.one_time.remove(&id);
        }
        self.one_time_kem.remove(&kem_prekey_id);
        if self.accepted.len() == MAX_ACCEPTED_BASE_KEYS {
            self.accepted.pop_front();
        }
        self.accepted.push_back(AcceptedBaseKey {
            signed_prekey_id,
            kem_prekey_id,
            base_key: *base_key,
        });
        true
    }

    /// How many base keys of accepted prekey messages are remembered (at most
    /// [`MAX_ACCEPTED_BASE_KEYS`]).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore, PublicKey};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// assert_eq!(store.accepted_base_key_count(), 0);
    /// store.record_accepted(1, 1, None, &PublicKey::from_bytes([9; 32])?);
    /// assert_eq!(store.accepted_base_key_count(), 1);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn accepted_base_key_count(&self) -> usize {
        self.accepted.len()
    }

    /// Looks a signed prekey up by id: the current one or a retired one.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// store.rotate_signed_prekey(&mut rng, &bob, 1_000)?;
    /// assert_eq!(store.find_signed_prekey(1).map(|k| k.id()), Some(1)); // retired
    /// assert_eq!(store.find_signed_prekey(2).map(|k| k.id()), Some(2)); // current
    /// assert!(store.find_signed_prekey(3).is_none());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn find_signed_prekey(&self, id: PreKeyId) -> Option<&SignedPreKey> {
        if self.signed.id == id {
            return Some(&self.signed);
        }
        self.retired.iter().map(|r| &r.signed).find(|k| k.id == id)
    }

    /// Looks a KEM prekey up by id: an unused one-time one, or the current or
    /// a retired last-resort one.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, KemPreKeyKind, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let id = store.generate_one_time_kem_prekeys(&mut rng, &bob, 1)?[0];
    /// let (key, kind) = store.find_kem_prekey(id).expect("held");
    /// assert_eq!((key.id(), kind), (id, KemPreKeyKind::OneTime));
    /// assert!(store.find_kem_prekey(id + 1).is_none());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn find_kem_prekey(&self, id: PreKeyId) -> Option<(&KemPreKey, KemPreKeyKind)> {
        if let Some(key) = self.one_time_kem.get(&id) {
            return Some((key, KemPreKeyKind::OneTime));
        }
        core::iter::once(&self.last_resort)
            .chain(self.retired.iter().map(|r| &r.last_resort))
            .find(|k| k.id() == id)
            .map(|k| (k, KemPreKeyKind::LastResort))
    }

    /// Looks a one-time prekey up by id, without removing it.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, key) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// assert_eq!(store.find_one_time_prekey(id).map(|k| *k.public_key()), Some(key));
    /// assert!(store.find_one_time_prekey(id + 1).is_none());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn find_one_time_prekey(&self, id: PreKeyId) -> Option<&OneTimePreKey> {
        self.one_time.get(&id)
    }

    /// Deletes a one-time prekey. Sessions call this only after the initial
    /// message that used the key has decrypted. Returns whether it was held.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, _) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// assert!(store.remove_one_time_prekey(id));
    /// assert!(!store.remove_one_time_prekey(id)); // already gone
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn remove_one_time_prekey(&mut self, id: PreKeyId) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// How many one-time prekeys remain, so the app knows when to upload more.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// const TARGET: usize = 20; // what the app keeps on the server
    /// let missing = TARGET - store.one_time_prekey_count();
    /// let _upload = store.generate_one_time_prekeys(&mut rng, missing)?;
    /// assert_eq!(store.one_time_prekey_count(), TARGET);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_prekey_count(&self) -> usize {
        self.one_time.len()
    }

    /// Ids of the one-time prekeys that remain, in increasing order (for
    /// example to tell the server which ones it may still hand out).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// store.generate_one_time_prekeys(&mut rng, 3)?;
    /// store.remove_one_time_prekey(2);
    /// assert_eq!(store.one_time_prekey_ids().collect::<Vec<_>>(), [1, 3]);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_prekey_ids(&self) -> impl Iterator<Item = PreKeyId> + '_ {
        self.one_time.keys().copied()
    }

    /// How many one-time KEM prekeys remain, so the app knows when to upload
    /// more (bundles fall back to the last-resort KEM prekey meanwhile).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// assert_eq!(store.one_time_kem_prekey_count(), 0);
    /// store.generate_one_time_kem_prekeys(&mut rng, &bob, 2)?;
    /// assert_eq!(store.one_time_kem_prekey_count(), 2);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_kem_prekey_count(&self) -> usize {
        self.one_time_kem.len()
    }

    /// Ids of the one-time KEM prekeys that remain, in increasing order.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let ids = store.generate_one_time_kem_prekeys(&mut rng, &bob, 2)?;
    /// assert_eq!(store.one_time_kem_prekey_ids().collect::<Vec<_>>(), ids);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_kem_prekey_ids(&self) -> impl Iterator<Item = PreKeyId> + '_ {
        self.one_time_kem.keys().copied()
    }
}

/// Reserves `count` consecutive ids from `next`, returning the first.
fn take_ids(next: &mut PreKeyId, count: usize) -> Result<PreKeyId, Error> {
    let count = u32::try_from(count).map_err(|_| Error::PreKeyIdsExhausted)?;
    let first = *next;
    *next = first.checked_add(count).ok_or(Error::PreKeyIdsExhausted)?;
    Ok(first)
}

fn stored_key_pair(secret: [u8; KEY_LEN], field: &'static str) -> Result<DhKeyPair, DecodeError> {
    DhKeyPair::from_stored_secret(secret).ok_or(DecodeError::InvalidValue { field })
}

fn encode_signed(w: &mut Writer, key: &SignedPreKey) {
    w.u32(key.id)
        .bytes(key.key_pair.secret_bytes())
        .bytes(&key.signature);
}

fn decode_signed(r: &mut Reader<'_>) -> Result<SignedPreKey, DecodeError> {
    let id = r.u32("signed prekey id")?;
    let secret = Zeroizing::new(r.array::<KEY_LEN>("signed prekey secret")?);
    let signature = r.array::<SIGNATURE_LEN>("signed prekey signature")?;
    Ok(SignedPreKey {
        id,
        key_pair: stored_key_pair(*secret, "signed prekey secret")?,
        signature,
    })
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyStore")
            .field("device_id", &self.device_id)
            .field("signed_prekey_id", &self.signed.id)
            .field("last_resort_kem_prekey_id", &self.last_resort.id())
            .field("retired", &self.retired.len())
            .field("one_time", &self.one_time.len())
            .field("one_time_kem", &self.one_time_kem.len())
            .field("accepted_base_keys", &self.accepted.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn store() -> (IdentityKeyPair, PreKeyStore) {
        let mut rng = test_rng(1);
        let id = IdentityKeyPair::generate(&mut rng);
        let mut store = PreKeyStore::generate(&mut rng, &id, 7);
        store.generate_one_time_prekeys(&mut rng, 3).expect("fits");
        (id, store)
    }

    #[test]
    fn signed_prekey_signature_verifies() {
        let (id, store) = store();
        let spk = store.signed_prekey();
        assert!(
            id.public_key()
                .verify(&spk.public_key().signed_encoding(), spk.signature())
                .is_ok()
        );
    }

    #[test]
    fn rotation_keeps_retired_keys_until_expired() {
        let (id, mut store) = store();
        let mut rng = test_rng(2);
        store
            .rotate_signed_prekey(&mut rng, &id, 1000)
            .expect("rotates");
        assert_eq!(store.signed_prekey().id(), 2);
        assert!(store.find_signed_prekey(1).is_some());
        assert_eq!(store.expire_retired_signed_prekeys(1099, 100), 0);
        assert_eq!(store.expire_retired_signed_prekeys(1100, 100), 1);
        assert!(store.find_signed_prekey(1).is_none());
        for t in 0..10 {
            store
                .rotate_signed_prekey(&mut rng, &id, t)
                .expect("rotates");
        }
        assert_eq!(store.retired.len(), MAX_RETIRED_SIGNED_PREKEYS);
    }

    #[test]
    fn store_round_trips() {
        let (id, mut store) = store();
        let mut rng = test_rng(3);
        store
            .rotate_signed_prekey(&mut rng, &id, 5)
            .expect("rotates");
        store.remove_one_time_prekey(2);
        let blob = store.encode();
        let back = PreKeyStore::decode(&blob).expect("decodes");
        assert_eq!(*back.encode(), *blob);
        assert_eq!(back.one_time_prekey_ids().collect::<Vec<_>>(), [1, 3]);
        for len in 0..blob.len() {
            assert!(PreKeyStore::decode(&blob[..len]).is_err());
        }
    }

    #[test]
    fn accepted_base_keys_are_bounded_and_go_with_their_signed_prekey() {
        let (id, mut store) = store();
        let key = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            PublicKey::from_bytes(b).expect("canonical")
        };
        assert!(store.record_accepted(1, 1, Some(1), &key(0)));
        assert!(!store.record_accepted(1, 1, Some(1), &key(1)), "spent");
        assert!(!store.record_accepted(1, 1, None, &key(0)), "recorded");
        assert!(store.find_one_time_prekey(1).is_none());
        for i in 1..=MAX_ACCEPTED_BASE_KEYS as u32 {
            assert!(store.record_accepted(1, 1, None, &key(i)));
        }
        assert_eq!(store.accepted_base_key_count(), MAX_ACCEPTED_BASE_KEYS);
        assert!(!store.has_accepted_base_key(&key(0)), "oldest dropped");
        assert!(store.has_accepted_base_key(&key(1)));
        let blob = store.encode();
        assert_eq!(
            *PreKeyStore::decode(&blob).expect("decodes").encode(),
            *blob
        );
        // A base key listed twice is not a canonical store.
        let mut twice = blob.to_vec();
        let last = twice.len() - 40;
        let previous: Vec<u8> = twice[last - 32..last].to_vec();
        twice[last + 8..].copy_from_slice(&previous);
        assert_eq!(
            PreKeyStore::decode(&twice).err(),
            Some(DecodeError::InvalidValue {
                field: "accepted base key"
            })
        );
        let mut rng = test_rng(5);
        store
            .rotate_signed_prekey(&mut rng, &id, 10)
            .expect("rotates");
        assert!(store.record_accepted(2, 2, None, &key(0)));
        assert_eq!(store.expire_retired_signed_prekeys(100, 10), 1);
        assert_eq!(store.accepted_base_key_count(), 1);
        assert!(store.has_accepted_base_key(&key(0)));
    }

    #[test]
    fn accepting_under_a_signed_prekey_no_longer_held_changes_nothing() {
        let (id, mut store) = store();
        let mut rng = test_rng(6);
        store
            .rotate_signed_prekey(&mut rng, &id, 10)
            .expect("rotates");
        assert_eq!(store.expire_retired_signed_prekeys(100, 10), 1);
        let before = store.encode();
        let base_key = PublicKey::from_bytes([9; 32]).expect("canonical");
        // Signed prekey 1 expired (say, between the lookup and the commit).
        assert!(!store.record_accepted(1, 2, Some(1), &base_key));
        assert_eq!(*store.encode(), *before, "nothing spent or remembered");
        assert!(PreKeyStore::decode(&store.encode()).is_ok());
        assert!(store.record_accepted(2, 2, Some(1), &base_key));
        assert!(PreKeyStore::decode(&store.encode()).is_ok());
    }

    #[test]
    fn kem_prekeys_one_time_and_last_resort() {
        let (id, mut store) = store();
        let mut rng = test_rng(6);
        let ids = store
            .generate_one_time_kem_prekeys(&mut rng, &id, 2)
            .expect("fits");
        assert_eq!(ids, [2, 3], "one id space after the last-resort key (1)");
        let (one_time, kind) = store.find_kem_prekey(2).expect("held");
        assert_eq!(kind, KemPreKeyKind::OneTime);
        assert!(
            id.public_key()
                .verify(
                    &one_time.public_key().signed_encoding(),
                    one_time.signature()
                )
                .is_ok()
        );
        assert_eq!(
            store.find_kem_prekey(1).map(|(_, k)| k),
            Some(KemPreKeyKind::LastResort)
        );
        // A one-time KEM prekey is spent; the last-resort one stays.
        let key = PublicKey::from_bytes([9; 32]).expect("canonical");
        assert!(store.record_accepted(1, 2, None, &key));
        assert!(store.find_kem_prekey(2).is_none());
        let other = PublicKey::from_bytes([10; 32]).expect("canonical");
        assert!(store.record_accepted(1, 1, None, &other));
        assert!(store.find_kem_prekey(1).is_some());
        assert!(!store.record_accepted(1, 2, None, &PublicKey::from_bytes([11; 32]).expect("ok")));
        // Rotation retires the last-resort KEM prekey with the signed prekey.
        store
            .rotate_signed_prekey(&mut rng, &id, 50)
            .expect("rotates");
        assert_eq!(store.last_resort_kem_prekey().id(), 4);
        assert_eq!(
            store.find_kem_prekey(1).map(|(_, k)| k),
            Some(KemPreKeyKind::LastResort)
        );
        let blob = store.encode();
        let back = PreKeyStore::decode(&blob).expect("decodes");
        assert_eq!(*back.encode(), *blob);
        assert_eq!(back.one_time_kem_prekey_ids().collect::<Vec<_>>(), [3]);
        assert_eq!(store.expire_retired_signed_prekeys(100, 10), 1);
        assert!(store.find_kem_prekey(1).is_none());
        for len in 0..blob.len() {
            assert!(PreKeyStore::decode(&blob[..len]).is_err());
        }
        // The row form of a KEM prekey.
        let row = store.last_resort_kem_prekey().encode();
        assert_eq!(row.len(), 133);
        assert_eq!(
            KemPreKey::decode(&row).expect("decodes").public_key(),
            store.last_resort_kem_prekey().public_key()
        );
    }

    #[test]
    fn one_time_prekey_capacity_is_enforced() {
        let (_, mut store) = store();
        let mut rng = test_rng(4);
        assert_eq!(
            store.generate_one_time_prekeys(&mut rng, MAX_ONE_TIME_PREKEYS),
            Err(Error::TooManyPreKeys {
                max: MAX_ONE_TIME_PREKEYS
            })
        );
        assert_eq!(store.one_time_prekey_count(), 3);
    }
}
