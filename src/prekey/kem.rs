//! Signed ML-KEM-768 prekeys: one-time ones, spent by the first message that
//! uses them, and the last-resort one, used when none is left.

use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::PreKeyId;
use crate::codec::{Reader, Writer};
use crate::crypto::SIGNATURE_LEN;
use crate::crypto::kem::{KEM_SEED_LEN, KemKeyPair, KemPublicKey};
use crate::error::DecodeError;
use crate::identity::IdentityKeyPair;

const KEM_PREKEY_TAG: u8 = 0x5B;

/// A signed ML-KEM-768 prekey: its id, the key pair (stored as its 64-byte
/// seed) and the identity's signature over `EncodeKEM(public key)`.
///
/// A device's [`PreKeyStore`](crate::PreKeyStore) holds them; the app uploads
/// each one's id, public key and signature.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, KemPreKey, KemPreKeyKind, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let ids = store.generate_one_time_kem_prekeys(&mut rng, &bob, 2)?;
/// for &id in &ids {
///     let (key, kind): (&KemPreKey, _) = store.find_kem_prekey(id).ok_or("missing")?;
///     assert_eq!((key.id(), kind), (id, KemPreKeyKind::OneTime));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KemPreKey {
    id: PreKeyId,
    key_pair: KemKeyPair,
    signature: [u8; SIGNATURE_LEN],
}

impl KemPreKey {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        id: PreKeyId,
    ) -> Self {
        let key_pair = KemKeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public().signed_encoding());
        Self {
            id,
            key_pair,
            signature,
        }
    }

    /// The prekey id (one id space for one-time and last-resort KEM prekeys).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// assert_eq!(store.last_resort_kem_prekey().id(), 1);
    /// let ids = store.generate_one_time_kem_prekeys(&mut rng, &bob, 1)?;
    /// assert_eq!(ids, [2]); // after the last-resort key's id
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The encapsulation key, to publish.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let kem = store.last_resort_kem_prekey();
    /// assert_eq!(kem.public_key().as_bytes().len(), ratchetbox::KEM_PUBLIC_KEY_LEN);
    /// ```
    pub fn public_key(&self) -> &KemPublicKey {
        self.key_pair.public()
    }

    /// The identity's signature over `0x0A ‖ encapsulation key`.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let kem = store.last_resort_kem_prekey();
    /// let signed = [&[0x0A][..], kem.public_key().as_bytes()].concat();
    /// assert!(bob.public_key().verify(&signed, kem.signature()).is_ok());
    /// ```
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    pub(crate) fn key_pair(&self) -> &KemKeyPair {
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
    /// (SPEC.md §6.2): `0x5B ‖ id ‖ seed (64) ‖ signature` (133 bytes). Holds a
    /// secret.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, KemPreKey, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let row = store.last_resort_kem_prekey().encode();
    /// let back = KemPreKey::decode(&row)?;
    /// assert_eq!(back.public_key(), store.last_resort_kem_prekey().public_key());
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(1 + 4 + KEM_SEED_LEN + SIGNATURE_LEN);
        w.u8(KEM_PREKEY_TAG);
        encode_kem(&mut w, self);
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced; the key pair is
    /// regenerated from its seed (one ML-KEM key generation).
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, KemPreKey, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let mut row = store.last_resort_kem_prekey().encode();
    /// assert_eq!(KemPreKey::decode(&row)?.id(), 1);
    /// row.push(0);
    /// assert_eq!(KemPreKey::decode(&row).err(), Some(DecodeError::TrailingBytes { extra: 1 }));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a wrong tag, truncation or trailing bytes: the
    /// stored row is corrupt. Treat the prekey as gone: for a one-time one,
    /// delete the row (an initiator that was given it gets
    /// [`Error::UnknownKemPreKey`](crate::Error::UnknownKemPreKey) and must
    /// fetch a new bundle); for the last-resort one, start a fresh
    /// [`PreKeyStore`](crate::PreKeyStore) and replace the device's prekeys
    /// on the server.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(KEM_PREKEY_TAG)?;
        let key = decode_kem(&mut r)?;
        r.finish()?;
        Ok(key)
    }
}

/// `id ‖ seed ‖ signature`, the form inside the prekey store.
pub(super) fn encode_kem(w: &mut Writer, key: &KemPreKey) {
    w.u32(key.id)
        .bytes(key.key_pair.seed())
        .bytes(&key.signature);
}

pub(super) fn decode_kem(r: &mut Reader<'_>) -> Result<KemPreKey, DecodeError> {
    let id = r.u32("KEM prekey id")?;
    let seed = Zeroizing::new(r.array::<KEM_SEED_LEN>("KEM prekey seed")?);
    let signature = r.array("KEM prekey signature")?;
    Ok(KemPreKey {
        id,
        key_pair: KemKeyPair::from_seed(&seed),
        signature,
    })
}

impl core::fmt::Debug for KemPreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KemPreKey")
            .field("id", &self.id)
            .field("public", self.key_pair.public())
            .finish_non_exhaustive()
    }
}
