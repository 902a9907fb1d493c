//! ML-KEM-768 (FIPS 203) for the hybrid handshake, through libcrux-ml-kem.
//!
//! Key pairs are made from 64-byte seeds (`d ‖ z`, FIPS 203 `ML-KEM.KeyGen_internal`),
//! which is also their stored form. Received encapsulation keys pass the
//! FIPS 203 §7.2 checks (length, and the modulus check: every coefficient below
//! q) before use. Decapsulation never fails: a ciphertext that was not made
//! for this key gives an unrelated shared secret (implicit rejection), so the
//! handshake that uses it fails to authenticate, like any other forgery.

use alloc::boxed::Box;

use libcrux_ml_kem::mlkem768;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::{labels, sha256};
use crate::error::DecodeError;

/// Length of an ML-KEM-768 encapsulation (public) key.
pub const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of the seed an ML-KEM-768 key pair is made from (and stored as).
pub const KEM_SEED_LEN: usize = 64;
/// Length of the randomness one encapsulation draws.
const ENCAPSULATION_RANDOMNESS_LEN: usize = 32;

/// A validated ML-KEM-768 encapsulation key. Public: equality is byte equality.
///
/// An app meets one as a KEM prekey: the post-quantum half of a bundle.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, KemPublicKey, PreKeyBundle, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None).verify()?;
/// let (id, key): (u32, &KemPublicKey) = bundle.kem_prekey();
/// assert_eq!(key, store.last_resort_kem_prekey().public_key());
/// assert_eq!(id, 1);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey(Box<[u8; KEM_PUBLIC_KEY_LEN]>);

impl KemPublicKey {
    /// Parses a received encapsulation key, with the FIPS 203 §7.2 input
    /// checks (the length is the type's; the modulus check: re-encoding the
    /// decoded coefficients gives the same bytes). A server assembling bundles
    /// from uploaded keys parses them with this.
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, KemPublicKey, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let uploaded = *store.last_resort_kem_prekey().public_key().as_bytes();
    /// assert_eq!(KemPublicKey::from_bytes(&uploaded)?.as_bytes(), &uploaded);
    ///
    /// let mut bad = uploaded;
    /// bad[0] = 0xff; // first 12-bit coefficient 4095, not below q = 3329
    /// bad[1] |= 0x0f;
    /// assert_eq!(KemPublicKey::from_bytes(&bad), Err(DecodeError::InvalidKemKey));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::InvalidKemKey`] if the modulus check fails: the key is
    /// corrupt or forged. A server refuses the upload; a client treats the
    /// bundle carrying it as broken (fetch it again, do not start a session).
    pub fn from_bytes(bytes: &[u8; KEM_PUBLIC_KEY_LEN]) -> Result<Self, DecodeError> {
        let key = mlkem768::MlKem768PublicKey::from(bytes);
        if !mlkem768::validate_public_key(&key) {
            return Err(DecodeError::InvalidKemKey);
        }
        Ok(Self(Box::new(*bytes)))
    }

    /// The 1184-byte encoding.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, KEM_PUBLIC_KEY_LEN, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let key = store.last_resort_kem_prekey().public_key();
    /// assert_eq!(key.as_bytes().len(), KEM_PUBLIC_KEY_LEN);
    /// ```
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_KEY_LEN] {
        &self.0
    }

    /// `EncodeKEM(PQPK)` as the PQXDH specification frames it: a type byte
    /// (`0x0A`, distinct from X25519's `0x05`) then the key; what its
    /// signature covers and what the session AD hashes.
    pub(crate) fn signed_encoding(&self) -> [u8; KEM_PUBLIC_KEY_LEN + 1] {
        let mut out = [0u8; KEM_PUBLIC_KEY_LEN + 1];
        out[0] = labels::ML_KEM_768_KEY_TYPE;
        out[1..].copy_from_slice(&*self.0);
        out
    }

    /// `SHA-256(EncodeKEM(PQPK))`, the key's part of the session AD.
    pub(crate) fn digest(&self) -> [u8; 32] {
        sha256(&[&[labels::ML_KEM_768_KEY_TYPE], &*self.0])
    }
}

impl core::fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KemPublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// An ML-KEM-768 ciphertext as received: any 1088 bytes are a valid input to
/// decapsulation (FIPS 203 §7.3 checks only its length).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KemCiphertext(Box<[u8; KEM_CIPHERTEXT_LEN]>);

impl KemCiphertext {
    pub(crate) fn from_bytes(bytes: &[u8; KEM_CIPHERTEXT_LEN]) -> Self {
        Self(Box::new(*bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEM_CIPHERTEXT_LEN] {
        &self.0
    }
}

/// The 32-byte ML-KEM shared secret; zeroized on drop.
pub(crate) struct KemSharedSecret(Zeroizing<[u8; 32]>);

impl KemSharedSecret {
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// An ML-KEM-768 key pair with its seed (its stored form). Secret: zeroized
/// on drop, never printed. (Copies libcrux makes on its own stack while
/// generating or decapsulating are outside this type's reach.)
pub(crate) struct KemKeyPair {
    seed: Zeroizing<[u8; KEM_SEED_LEN]>,
    private: Box<mlkem768::MlKem768PrivateKey>,
    public: KemPublicKey,
    /// `SHA-256(EncodeKEM(public))`, computed once.
    digest: [u8; 32],
}

impl KemKeyPair {
    /// A fresh key pair: draws its 64-byte seed from `rng`.
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The key pair a seed determines (FIPS 203 `KeyGen_internal(d, z)` with
    /// `d = seed[0..32]`, `z = seed[32..64]`).
    pub(crate) fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> Self {
        let (private, public) = mlkem768::generate_key_pair(*seed).into_parts();
        let public = KemPublicKey(Box::new(*public.as_slice()));
        let digest = public.digest();
        Self {
            seed: Zeroizing::new(*seed),
            private: Box::new(private),
            public,
            digest,
        }
    }

    pub(crate) fn seed(&self) -> &[u8; KEM_SEED_LEN] {
        &self.seed
    }

    pub(crate) fn public(&self) -> &KemPublicKey {
        &self.public
    }

    pub(crate) fn public_digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Decapsulates; a ciphertext for another key gives an unrelated secret.
    pub(crate) fn decapsulate(&self, ciphertext: &[u8; KEM_CIPHERTEXT_LEN]) -> KemSharedSecret {
        let ciphertext = mlkem768::MlKem768Ciphertext::from(ciphertext);
        KemSharedSecret(Zeroizing::new(mlkem768::decapsulate(
            &self.private,
            &ciphertext,
        )))
    }

    /// An independent copy, for a store handing out owned keys.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            seed: self.seed.clone(),
            private: Box::new(mlkem768::MlKem768PrivateKey::from(self.private.as_slice())),
            public: self.public.clone(),
            digest: self.digest,
        }
    }
}

impl Drop for KemKeyPair {
    fn drop(&mut self) {
        self.private[0..].zeroize();
    }
}

impl core::fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KemKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Encapsulates to `public`: draws 32 bytes of randomness (FIPS 203
/// `Encaps_internal(ek, m)`), returns the ciphertext and the shared secret.
pub(crate) fn encapsulate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    public: &KemPublicKey,
) -> (KemCiphertext, KemSharedSecret) {
    let mut randomness = Zeroizing::new([0u8; ENCAPSULATION_RANDOMNESS_LEN]);
    rng.fill_bytes(randomness.as_mut());
    let key = mlkem768::MlKem768PublicKey::from(&*public.0);
    let (ciphertext, secret) = mlkem768::encapsulate(&key, *randomness);
    (
        KemCiphertext(Box::new(*ciphertext.as_slice())),
        KemSharedSecret(Zeroizing::new(secret)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulation_round_trips_and_implicit_rejection_differs() {
        let mut rng = crate::test_rng(40);
        let pair = KemKeyPair::generate(&mut rng);
        let (ct, ss) = encapsulate(&mut rng, pair.public());
        assert_eq!(pair.decapsulate(ct.as_bytes()).as_bytes(), ss.as_bytes());
        let mut other = *ct.as_bytes();
        other[0] ^= 1;
        assert_ne!(pair.decapsulate(&other).as_bytes(), ss.as_bytes());
        // A seed determines the key pair.
        let again = KemKeyPair::from_seed(pair.seed());
        assert_eq!(again.public(), pair.public());
        assert_eq!(again.public_digest(), pair.public_digest());
    }

    #[test]
    fn encapsulation_keys_failing_the_modulus_check_are_refused() {
        let pair = KemKeyPair::from_seed(&[7; KEM_SEED_LEN]);
        assert!(KemPublicKey::from_bytes(pair.public().as_bytes()).is_ok());
        // The first 12-bit coefficient set to 4095 ≥ q = 3329.
        let mut bad = *pair.public().as_bytes();
        bad[0] = 0xff;
        bad[1] |= 0x0f;
        assert_eq!(
            KemPublicKey::from_bytes(&bad),
            Err(DecodeError::InvalidKemKey)
        );
    }
}
