//! Long-term identity keys.
//!
//! One Ed25519 identity per account, shared by all of its devices. Its X25519
//! form (used in X3DH) comes from the standard birational map, so there is one
//! public key to publish, fingerprint and verify.

use alloc::vec::Vec;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::crypto::{self, DhKeyPair, KEY_LEN, PublicKey, SIGNATURE_LEN};
use crate::error::{DecodeError, Error};

/// Format tag of a stored identity key pair (SPEC.md §6.1).
const IDENTITY_STATE_TAG: u8 = 0x49;
/// Current version of the stored identity key pair.
const IDENTITY_STATE_VERSION: u8 = 1;

/// A device identifier within an account.
pub type DeviceId = u32;

/// An account's public identity key: an Ed25519 public key, with its X25519
/// (Montgomery) form cached.
///
/// Only canonical encodings of points of large order are accepted, so two
/// distinct byte strings never name the same identity. Equality is constant time.
///
/// An app meets one as a contact's key: in a bundle, a session or a trust
/// record. It stores and compares the 32-byte encoding.
///
/// ```
/// use ratchetbox::{IdentityKey, IdentityKeyPair};
/// let bob = IdentityKeyPair::generate(&mut ratchetbox::os_rng());
/// let stored: [u8; 32] = bob.public_key().to_bytes(); // e.g. in the contact's row
/// let recorded = IdentityKey::from_bytes(&stored)?;
/// assert_eq!(&recorded, bob.public_key());
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy)]
pub struct IdentityKey {
    verifying: VerifyingKey,
    dh_public: PublicKey,
}

impl IdentityKey {
    /// Parses a 32-byte Ed25519 public key.
    ///
    /// ```
    /// use ratchetbox::{IdentityKey, IdentityKeyPair};
    /// let alice = IdentityKeyPair::generate(&mut ratchetbox::os_rng());
    /// let parsed = IdentityKey::from_bytes(&alice.public_key().to_bytes())?;
    /// assert_eq!(&parsed, alice.public_key());
    /// assert!(IdentityKey::from_bytes(&[0; 32]).is_err()); // small order
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::InvalidIdentityKey`] if the bytes are not a canonical point
    /// encoding, the point has small order, or it has a small-torsion
    /// component (it is not in the prime-order subgroup).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, DecodeError> {
        let verifying =
            VerifyingKey::from_bytes(bytes).map_err(|_| DecodeError::InvalidIdentityKey)?;
        // Reject small-order points, and non-canonical encodings: re-encoding the
        // decoded point must give back the same bytes. (`VerifyingKey::to_bytes`
        // returns the bytes it was parsed from, so compress the point itself.)
        // Then reject A + T for a torsion point T: honest keys are multiples of
        // the base point, and only they have one meaning under every
        // verification equation.
        if verifying.is_weak()
            || verifying.to_edwards().compress().to_bytes() != *bytes
            || !crypto::is_torsion_free(&verifying)
        {
            return Err(DecodeError::InvalidIdentityKey);
        }
        Ok(Self::from_verifying(verifying))
    }

    fn from_verifying(verifying: VerifyingKey) -> Self {
        Self {
            verifying,
            dh_public: crypto::identity_dh_public(&verifying),
        }
    }

    /// The 32-byte Ed25519 encoding, which is also `Encode(IK)` in SPEC.md.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKey, IdentityKeyPair};
    /// let alice = IdentityKeyPair::from_seed(&[7; 32]);
    /// let bytes = alice.public_key().to_bytes();
    /// assert_eq!(IdentityKey::from_bytes(&bytes)?.to_bytes(), bytes);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.verifying.to_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The X25519 form used in X3DH: the Montgomery form of the same point, so
    /// it follows from the Ed25519 key and is never published separately.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let alice = IdentityKeyPair::from_seed(&[7; 32]);
    /// let dh = alice.public_key().dh_public();
    /// assert_eq!(dh, IdentityKeyPair::from_seed(&[7; 32]).public_key().dh_public());
    /// assert_ne!(dh.as_bytes(), &alice.public_key().to_bytes());
    /// ```
    pub fn dh_public(&self) -> &PublicKey {
        &self.dh_public
    }

    /// Strictly verifies an Ed25519 signature made by this identity.
    ///
    /// ```
    /// # use ratchetbox::{Error, IdentityKeyPair};
    /// let alice = IdentityKeyPair::generate(&mut ratchetbox::os_rng());
    /// let signature = alice.sign(b"hello");
    /// alice.public_key().verify(b"hello", &signature)?;
    /// assert_eq!(alice.public_key().verify(b"hellO", &signature), Err(Error::InvalidSignature));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if the signature does not verify strictly:
    /// the data was not signed by this identity (forged or corrupted in
    /// transit). Do not use the data; if it came from a server, fetch it again.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), Error> {
        crypto::verify_strict(&self.verifying, message, signature)
    }
}

impl PartialEq for IdentityKey {
    fn eq(&self, other: &Self) -> bool {
        crypto::ct_eq(self.verifying.as_bytes(), other.verifying.as_bytes())
    }
}

impl Eq for IdentityKey {}

impl core::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IdentityKey(")?;
        for b in &self.verifying.as_bytes()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// An account's identity key pair. Secret: zeroized on drop, never printed,
/// neither `Clone` nor `Copy` (hand it to a new device through its encoding).
///
/// An account generates one at registration, keeps it sealed at rest, and
/// gives a copy to each device it links.
///
/// ```
/// use ratchetbox::IdentityKeyPair;
/// let alice = IdentityKeyPair::generate(&mut ratchetbox::os_rng());
/// let saved = alice.encode(); // seal it before writing it anywhere
/// let restored = IdentityKeyPair::decode(&saved)?;
/// assert_eq!(restored.public_key(), alice.public_key());
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
pub struct IdentityKeyPair {
    signing: SigningKey,
    dh: DhKeyPair,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a fresh identity.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let mut rng = ratchetbox::os_rng();
    /// let alice = IdentityKeyPair::generate(&mut rng);
    /// assert_eq!(alice.public_key().to_bytes().len(), 32);
    /// ```
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Rebuilds an identity from its 32-byte Ed25519 seed. The same seed
    /// always gives the same identity; use it for test fixtures, or for a seed
    /// the app keeps in a platform keystore.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let a = IdentityKeyPair::from_seed(&[42; 32]);
    /// let b = IdentityKeyPair::from_seed(&[42; 32]);
    /// assert_eq!(a.public_key(), b.public_key());
    /// assert_ne!(a.public_key(), IdentityKeyPair::from_seed(&[43; 32]).public_key());
    /// ```
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let dh = crypto::identity_dh_key_pair(&signing);
        let public = IdentityKey::from_verifying(signing.verifying_key());
        Self {
            signing,
            dh,
            public,
        }
    }

    /// The public identity key, to publish with the device's prekeys.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let alice = IdentityKeyPair::from_seed(&[1; 32]);
    /// let public = *alice.public_key(); // `Copy`, unlike the pair
    /// assert_eq!(public.to_bytes().len(), 32);
    /// ```
    pub fn public_key(&self) -> &IdentityKey {
        &self.public
    }

    /// An independent copy without re-deriving anything, for a store that
    /// hands out owned state. Deliberately not `Clone`.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            signing: self.signing.clone(),
            dh: self.dh.duplicate(),
            public: self.public,
        }
    }

    /// Signs `message` with the identity key (Ed25519). Signatures are
    /// deterministic: the same message gives the same signature.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let alice = IdentityKeyPair::from_seed(&[1; 32]);
    /// let signature = alice.sign(b"my device list, version 3");
    /// assert!(alice.public_key().verify(b"my device list, version 3", &signature).is_ok());
    /// assert_eq!(signature, alice.sign(b"my device list, version 3"));
    /// ```
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        crypto::sign(&self.signing, message)
    }

    pub(crate) fn seed(&self) -> &[u8; KEY_LEN] {
        self.signing.as_bytes()
    }

    pub(crate) fn dh_key_pair(&self) -> &DhKeyPair {
        &self.dh
    }

    /// Encodes the key pair for storage (SPEC.md §6.1). The result holds the
    /// secret seed: store it encrypted.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// let alice = IdentityKeyPair::from_seed(&[1; 32]);
    /// let saved = alice.encode(); // zeroized when dropped
    /// assert_eq!(saved.len(), 2 + 32); // tag, version, seed
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(2 + KEY_LEN);
        w.u8(IDENTITY_STATE_TAG)
            .u8(IDENTITY_STATE_VERSION)
            .bytes(self.signing.as_bytes());
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair};
    /// let alice = IdentityKeyPair::from_seed(&[1; 32]);
    /// let restored = IdentityKeyPair::decode(&alice.encode())?;
    /// assert_eq!(restored.public_key(), alice.public_key());
    /// let truncated = IdentityKeyPair::decode(&alice.encode()[..20]);
    /// assert!(matches!(truncated, Err(DecodeError::Truncated { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a wrong tag, unknown version, truncation or trailing
    /// bytes. The stored identity is corrupt (or from a newer ratchetbox, for
    /// [`DecodeError::UnsupportedVersion`]): do not generate a new identity
    /// silently, since every contact would see a changed key; restore it from a
    /// backup or link this device again.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(IDENTITY_STATE_TAG)?;
        let version = r.u8("version")?;
        if version != IDENTITY_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let seed = Zeroizing::new(r.array::<KEY_LEN>("identity seed")?);
        r.finish()?;
        Ok(Self::from_seed(&seed))
    }
}

impl core::fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_matches() {
        let id = IdentityKeyPair::from_seed(&[5u8; 32]);
        let back = IdentityKeyPair::decode(&id.encode()).expect("decodes");
        assert_eq!(back.public_key(), id.public_key());
        let pk = IdentityKey::from_bytes(&id.public_key().to_bytes()).expect("valid");
        assert_eq!(&pk, id.public_key());
        assert_eq!(pk.dh_public(), id.dh_key_pair().public());
    }

    #[test]
    fn weak_and_non_canonical_identity_keys_are_rejected() {
        // The identity point (y = 1) has small order.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert_eq!(
            IdentityKey::from_bytes(&identity_point),
            Err(DecodeError::InvalidIdentityKey)
        );
        // y = p + 1 is a non-canonical encoding of the same point.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(IdentityKey::from_bytes(&non_canonical).is_err());
    }

    #[test]
    fn keys_with_a_torsion_component_are_rejected() {
        let id = IdentityKeyPair::from_seed(&[8u8; 32]);
        let a = id.public_key().verifying_key().to_edwards();
        // T: a point of order 8 (the torsion subgroup is cyclic of order 8);
        // A + T has large order, a canonical encoding, and is not torsion-free.
        let t = ed25519_dalek::VerifyingKey::from_bytes(&EIGHT_TORSION)
            .expect("decodes")
            .to_edwards();
        let mixed = (a + t).compress().to_bytes();
        assert_eq!(
            IdentityKey::from_bytes(&mixed),
            Err(DecodeError::InvalidIdentityKey)
        );
        assert!(IdentityKey::from_bytes(&id.public_key().to_bytes()).is_ok());
    }

    /// A point of order 8 on edwards25519 (from curve25519-dalek's torsion table).
    const EIGHT_TORSION: [u8; 32] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];

    #[test]
    fn signatures_verify_strictly() {
        let id = IdentityKeyPair::from_seed(&[6u8; 32]);
        let sig = id.sign(b"m");
        assert!(id.public_key().verify(b"m", &sig).is_ok());
        assert_eq!(
            id.public_key().verify(b"n", &sig),
            Err(Error::InvalidSignature)
        );
    }

    #[test]
    fn debug_hides_the_seed() {
        let id = IdentityKeyPair::from_seed(&[0xAB; 32]);
        let text = alloc::format!("{id:?}");
        assert!(!text.contains("abab"), "{text}");
    }

    #[test]
    fn decode_rejects_bad_blobs() {
        let id = IdentityKeyPair::from_seed(&[5u8; 32]);
        let blob = id.encode();
        for len in 0..blob.len() {
            assert!(IdentityKeyPair::decode(&blob[..len]).is_err());
        }
        let mut wrong_version = blob.to_vec();
        wrong_version[1] = 9;
        assert_eq!(
            IdentityKeyPair::decode(&wrong_version).err(),
            Some(DecodeError::UnsupportedVersion { found: 9 })
        );
        let mut long = blob.to_vec();
        long.push(0);
        assert!(IdentityKeyPair::decode(&long).is_err());
    }
}
