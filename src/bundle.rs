//! Prekey bundles: what a server hands an initiator so it can start a session
//! with a device that is offline.

use alloc::vec::Vec;

use crate::codec::{Reader, Writer};
use crate::crypto::kem::{KEM_PUBLIC_KEY_LEN, KemPublicKey};
use crate::crypto::{KEY_LEN, PublicKey, SIGNATURE_LEN};
use crate::error::{DecodeError, Error};
use crate::identity::{DeviceId, IdentityKey};
use crate::prekey::{KemPreKeyKind, PreKeyId, PreKeyStore};

/// Format tag of an encoded bundle, protocol version 2 (SPEC.md §4.1).
pub(crate) const BUNDLE_TAG: u8 = 0x06;

/// Encoded size of a bundle without a one-time prekey (its KEM prekey is
/// 1184 bytes, with a 4-byte id and a 64-byte signature).
pub const BUNDLE_LEN_WITHOUT_ONE_TIME: usize =
    1 + KEY_LEN + 4 + 4 + KEY_LEN + SIGNATURE_LEN + 4 + KEM_PUBLIC_KEY_LEN + SIGNATURE_LEN + 1;
/// Encoded size of a bundle with a one-time prekey.
pub const BUNDLE_LEN_WITH_ONE_TIME: usize = BUNDLE_LEN_WITHOUT_ONE_TIME + 4 + KEY_LEN;

/// A signed ML-KEM-768 prekey as a bundle carries it: its id, the
/// encapsulation key and the identity's signature over `0x0A ‖ key`.
///
/// ```
/// use ratchetbox::{BundleKemPreKey, IdentityKeyPair, PreKeyStore};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let kem = store.last_resort_kem_prekey(); // what the device uploads
/// let published = BundleKemPreKey {
///     id: kem.id(),
///     key: kem.public_key().clone(),
///     signature: *kem.signature(),
/// };
/// let signed = [&[0x0A][..], published.key.as_bytes()].concat();
/// assert!(bob.public_key().verify(&signed, &published.signature).is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleKemPreKey {
    /// The KEM prekey id.
    pub id: PreKeyId,
    /// The encapsulation key (validated when decoded).
    pub key: KemPublicKey,
    /// The identity's signature over `0x0A ‖ key`.
    pub signature: [u8; SIGNATURE_LEN],
}

/// A prekey bundle as published, not yet verified. Only
/// [`verify`](Self::verify) turns it into something a session can start from.
///
/// The device uploads its parts; the server assembles a bundle per request
/// (spending a one-time prekey of each kind while any is left) and sends its
/// encoding; the initiator decodes and verifies it.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore, BUNDLE_LEN_WITH_ONE_TIME};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
/// let one_time = store.generate_one_time_prekeys(&mut rng, 1)?;
/// let wire = PreKeyBundle::from_store(bob.public_key(), &store, Some(one_time[0].0)).encode();
/// assert_eq!(wire.len(), BUNDLE_LEN_WITH_ONE_TIME);
///
/// let bundle = PreKeyBundle::decode(&wire)?.verify_for(bob.public_key())?;
/// assert_eq!(bundle.one_time_prekey(), Some((one_time[0].0, &one_time[0].1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    identity_key: IdentityKey,
    device_id: DeviceId,
    signed_prekey_id: PreKeyId,
    signed_prekey: PublicKey,
    signed_prekey_signature: [u8; SIGNATURE_LEN],
    kem_prekey: BundleKemPreKey,
    one_time_prekey: Option<(PreKeyId, PublicKey)>,
}

impl PreKeyBundle {
    /// Assembles a bundle from published parts (what a server does): the
    /// KEM prekey is one of the device's one-time KEM prekeys while any is
    /// left, else its last-resort KEM prekey. Nothing is checked here: the
    /// initiator's [`verify`](Self::verify) does that.
    ///
    /// ```
    /// # use ratchetbox::{BundleKemPreKey, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (spk, kem) = (store.signed_prekey(), store.last_resort_kem_prekey());
    /// let kem_prekey = BundleKemPreKey {
    ///     id: kem.id(),
    ///     key: kem.public_key().clone(),
    ///     signature: *kem.signature(),
    /// };
    /// let bundle = PreKeyBundle::new(
    ///     *bob.public_key(), 1, spk.id(), *spk.public_key(), *spk.signature(), kem_prekey, None,
    /// );
    /// assert_eq!(bundle, PreKeyBundle::from_store(bob.public_key(), &store, None));
    /// ```
    pub fn new(
        identity_key: IdentityKey,
        device_id: DeviceId,
        signed_prekey_id: PreKeyId,
        signed_prekey: PublicKey,
        signed_prekey_signature: [u8; SIGNATURE_LEN],
        kem_prekey: BundleKemPreKey,
        one_time_prekey: Option<(PreKeyId, PublicKey)>,
    ) -> Self {
        Self {
            identity_key,
            device_id,
            signed_prekey_id,
            signed_prekey,
            signed_prekey_signature,
            kem_prekey,
            one_time_prekey,
        }
    }

    /// The bundle for a device's current signed prekey, its last-resort KEM
    /// prekey and, if given and still held, one of its one-time prekeys.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.kem_prekey().id, store.last_resort_kem_prekey().id());
    /// ```
    pub fn from_store(
        identity_key: &IdentityKey,
        store: &PreKeyStore,
        one_time_prekey_id: Option<PreKeyId>,
    ) -> Self {
        Self::from_store_with_kem(identity_key, store, one_time_prekey_id, None)
    }

    /// [`from_store`](Self::from_store) with the one-time KEM prekey
    /// `one_time_kem_prekey_id` if the store still holds it (else the
    /// last-resort one).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let kem = store.generate_one_time_kem_prekeys(&mut rng, &bob, 1)?;
    /// let bundle =
    ///     PreKeyBundle::from_store_with_kem(bob.public_key(), &store, None, Some(kem[0]));
    /// assert_eq!(bundle.kem_prekey().id, kem[0]);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn from_store_with_kem(
        identity_key: &IdentityKey,
        store: &PreKeyStore,
        one_time_prekey_id: Option<PreKeyId>,
        one_time_kem_prekey_id: Option<PreKeyId>,
    ) -> Self {
        let spk = store.signed_prekey();
        let one_time_prekey = one_time_prekey_id
            .and_then(|id| store.find_one_time_prekey(id))
            .map(|k| (k.id(), *k.public_key()));
        // Only an unused one-time KEM prekey; anything else gets the current
        // last-resort one (never a retired one).
        let kem = one_time_kem_prekey_id
            .and_then(|id| store.find_kem_prekey(id))
            .filter(|(_, kind)| *kind == KemPreKeyKind::OneTime)
            .map_or(store.last_resort_kem_prekey(), |(key, _)| key);
        Self::new(
            *identity_key,
            store.device_id(),
            spk.id(),
            *spk.public_key(),
            *spk.signature(),
            BundleKemPreKey {
                id: kem.id(),
                key: kem.public_key().clone(),
                signature: *kem.signature(),
            },
            one_time_prekey,
        )
    }

    /// The identity key the bundle claims (unverified: compare it with the
    /// contact's recorded key, or use [`verify_for`](Self::verify_for)).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.identity_key(), bob.public_key());
    /// ```
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }

    /// The device the bundle belongs to.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 3);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.device_id(), 3);
    /// ```
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The signed prekey's id.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.signed_prekey_id(), store.signed_prekey().id());
    /// ```
    pub fn signed_prekey_id(&self) -> PreKeyId {
        self.signed_prekey_id
    }

    /// The signed prekey.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(bundle.signed_prekey(), store.signed_prekey().public_key());
    /// ```
    pub fn signed_prekey(&self) -> &PublicKey {
        &self.signed_prekey
    }

    /// The identity's signature over `0x05 ‖ signed prekey`.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let signed = [&[0x05][..], bundle.signed_prekey().as_bytes()].concat();
    /// assert!(bob.public_key().verify(&signed, bundle.signed_prekey_signature()).is_ok());
    /// ```
    pub fn signed_prekey_signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signed_prekey_signature
    }

    /// The one-time prekey's id and key, if the bundle has one. A bundle has
    /// none once the device's one-time prekeys ran out; sessions still start.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, key) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, Some(id));
    /// assert_eq!(bundle.one_time_prekey(), Some((id, &key)));
    /// let without = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert_eq!(without.one_time_prekey(), None);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_prekey(&self) -> Option<(PreKeyId, &PublicKey)> {
        self.one_time_prekey.as_ref().map(|(id, k)| (*id, k))
    }

    /// The KEM prekey (one-time or last resort; the bundle does not say which).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let kem = store.last_resort_kem_prekey();
    /// let published = bundle.kem_prekey();
    /// assert_eq!((published.id, &published.key), (kem.id(), kem.public_key()));
    /// ```
    pub fn kem_prekey(&self) -> &BundleKemPreKey {
        &self.kem_prekey
    }

    /// Checks the signed prekey's and the KEM prekey's signatures strictly
    /// against the bundle's identity key.
    ///
    /// This proves the bundle is self-consistent, not that the identity is the
    /// one you meant: use [`verify_for`](Self::verify_for) when you know whom to expect.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let wire = PreKeyBundle::from_store(bob.public_key(), &store, None).encode();
    /// let verified = PreKeyBundle::decode(&wire)?.verify()?;
    /// assert_eq!(verified.identity_key(), bob.public_key());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if either signature fails strict
    /// verification (the bundle is forged or corrupted: fetch it again, and
    /// do not start a session from it).
    pub fn verify(self) -> Result<VerifiedBundle, Error> {
        self.identity_key.verify(
            &self.signed_prekey.signed_encoding(),
            &self.signed_prekey_signature,
        )?;
        self.identity_key.verify(
            &self.kem_prekey.key.signed_encoding(),
            &self.kem_prekey.signature,
        )?;
        let kem_digest = self.kem_prekey.key.digest();
        Ok(VerifiedBundle {
            bundle: self,
            kem_digest,
        })
    }

    /// Like [`verify`](Self::verify), and also checks that the bundle's identity
    /// is `expected` (for example the key recorded for this contact).
    ///
    /// ```
    /// # use ratchetbox::{Error, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// assert!(bundle.clone().verify_for(bob.public_key()).is_ok());
    ///
    /// let recorded = IdentityKeyPair::generate(&mut rng); // the key we knew for Bob
    /// let changed = bundle.verify_for(recorded.public_key());
    /// assert_eq!(changed.err(), Some(Error::IdentityMismatch));
    /// ```
    ///
    /// # Errors
    /// - [`Error::IdentityMismatch`] if the identity differs from `expected`:
    ///   the contact reinstalled, or someone is impersonating them. Do not
    ///   start a session silently: show a red lock and ask the user to compare
    ///   the new safety number, then verify against the accepted key.
    /// - [`Error::InvalidSignature`] as for [`verify`](Self::verify): the
    ///   bundle is forged or corrupted; fetch it again.
    pub fn verify_for(self, expected: &IdentityKey) -> Result<VerifiedBundle, Error> {
        if self.identity_key != *expected {
            return Err(Error::IdentityMismatch);
        }
        self.verify()
    }

    /// Encodes the bundle (SPEC.md §4.1), as a server sends it:
    /// [`BUNDLE_LEN_WITH_ONE_TIME`] or [`BUNDLE_LEN_WITHOUT_ONE_TIME`] bytes.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore, BUNDLE_LEN_WITHOUT_ONE_TIME};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let wire = bundle.encode();
    /// assert_eq!(wire.len(), BUNDLE_LEN_WITHOUT_ONE_TIME);
    /// assert_eq!(PreKeyBundle::decode(&wire)?, bundle);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(BUNDLE_LEN_WITH_ONE_TIME);
        w.u8(BUNDLE_TAG)
            .bytes(&self.identity_key.to_bytes())
            .u32(self.device_id)
            .u32(self.signed_prekey_id)
            .bytes(self.signed_prekey.as_bytes())
            .bytes(&self.signed_prekey_signature)
            .u32(self.kem_prekey.id)
            .bytes(self.kem_prekey.key.as_bytes())
            .bytes(&self.kem_prekey.signature);
        match &self.one_time_prekey {
            Some((id, key)) => {
                w.flag(true).u32(*id).bytes(key.as_bytes());
            }
            None => {
                w.flag(false);
            }
        }
        w.into_vec()
    }

    /// Decodes a bundle. Decoding checks structure only; call
    /// [`verify`](Self::verify) before use.
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let wire = PreKeyBundle::from_store(bob.public_key(), &store, None).encode();
    /// assert_eq!(PreKeyBundle::decode(&wire)?.identity_key(), bob.public_key());
    /// let cut = PreKeyBundle::decode(&wire[..100]);
    /// assert!(matches!(cut, Err(DecodeError::Truncated { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a wrong tag, invalid identity key, non-canonical
    /// prekey, invalid KEM key (FIPS 203 modulus check), bad flag, truncation
    /// or trailing bytes. The server sent something that is not a bundle: do
    /// not start a session; fetch the bundle again, and if it fails again the
    /// server holds a broken upload (report it; the contact's device should
    /// upload new prekeys).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(BUNDLE_TAG)?;
        let identity_key = IdentityKey::from_bytes(&r.array("identity key")?)?;
        let device_id = r.u32("device id")?;
        let signed_prekey_id = r.u32("signed prekey id")?;
        let signed_prekey = r.public_key("signed prekey")?;
        let signed_prekey_signature = r.array("signed prekey signature")?;
        let kem_prekey = BundleKemPreKey {
            id: r.u32("KEM prekey id")?,
            key: KemPublicKey::from_bytes(&r.array("KEM prekey")?)?,
            signature: r.array("KEM prekey signature")?,
        };
        let one_time_prekey = if r.flag("one-time prekey flag")? {
            let id = r.u32("one-time prekey id")?;
            Some((id, r.public_key("one-time prekey")?))
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            identity_key,
            device_id,
            signed_prekey_id,
            signed_prekey,
            signed_prekey_signature,
            kem_prekey,
            one_time_prekey,
        })
    }
}

/// A bundle whose signed prekey and KEM prekey signatures have both been
/// strictly verified. The only way to get one is [`PreKeyBundle::verify`];
/// only this type starts a session.
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyStore, Session};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
/// # let identity = IdentityKeyPair::generate(&mut rng);
/// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
/// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
/// let verified = bundle.verify()?;
/// let session = Session::initiate(&mut rng, &alice, &AccountId::new(b"bob")?, &verified)?;
/// assert_eq!(session.remote_identity(), verified.identity_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    bundle: PreKeyBundle,
    /// `SHA-256(EncodeKEM(KEM prekey))`, the key's part of the session AD.
    kem_digest: [u8; 32],
}

impl VerifiedBundle {
    /// The verified identity key: record it for the contact (or compare it
    /// with the recorded one) before trusting the session.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let verified = bundle.verify()?;
    /// assert_eq!(verified.identity_key(), bob.public_key());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn identity_key(&self) -> &IdentityKey {
        &self.bundle.identity_key
    }

    /// The device the bundle belongs to: the device id of the session it
    /// starts.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let verified = bundle.verify()?;
    /// assert_eq!(verified.device_id(), store.device_id());
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn device_id(&self) -> DeviceId {
        self.bundle.device_id
    }

    /// The signed prekey's id and key.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let verified = bundle.verify()?;
    /// let spk = store.signed_prekey();
    /// assert_eq!(verified.signed_prekey(), (spk.id(), spk.public_key()));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn signed_prekey(&self) -> (PreKeyId, &PublicKey) {
        (self.bundle.signed_prekey_id, &self.bundle.signed_prekey)
    }

    /// The verified KEM prekey's id and encapsulation key.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None);
    /// let verified = bundle.verify()?;
    /// let kem = store.last_resort_kem_prekey();
    /// assert_eq!(verified.kem_prekey(), (kem.id(), kem.public_key()));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn kem_prekey(&self) -> (PreKeyId, &KemPublicKey) {
        (self.bundle.kem_prekey.id, &self.bundle.kem_prekey.key)
    }

    pub(crate) fn kem_digest(&self) -> &[u8; 32] {
        &self.kem_digest
    }

    /// The one-time prekey's id and key, if the bundle has one.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let (id, key) = store.generate_one_time_prekeys(&mut rng, 1)?[0];
    /// let bundle = PreKeyBundle::from_store(bob.public_key(), &store, Some(id));
    /// assert_eq!(bundle.verify()?.one_time_prekey(), Some((id, &key)));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn one_time_prekey(&self) -> Option<(PreKeyId, &PublicKey)> {
        self.bundle.one_time_prekey()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;
    use crate::test_rng;

    fn bundle(with_one_time: bool) -> (IdentityKeyPair, PreKeyBundle) {
        let mut rng = test_rng(9);
        let id = IdentityKeyPair::generate(&mut rng);
        let mut store = PreKeyStore::generate(&mut rng, &id, 3);
        store.generate_one_time_prekeys(&mut rng, 1).expect("fits");
        let otk = with_one_time.then_some(1);
        let b = PreKeyBundle::from_store(id.public_key(), &store, otk);
        (id, b)
    }

    #[test]
    fn bundle_round_trips_with_documented_sizes() {
        for with in [false, true] {
            let (_, b) = bundle(with);
            let bytes = b.encode();
            let expected = if with {
                BUNDLE_LEN_WITH_ONE_TIME
            } else {
                BUNDLE_LEN_WITHOUT_ONE_TIME
            };
            assert_eq!(bytes.len(), expected);
            assert_eq!(PreKeyBundle::decode(&bytes), Ok(b));
            for len in 0..bytes.len() {
                assert!(PreKeyBundle::decode(&bytes[..len]).is_err());
            }
        }
    }

    #[test]
    fn tampered_signature_or_key_fails_verification() {
        let (_, b) = bundle(true);
        assert!(b.clone().verify().is_ok());
        let mut bytes = b.encode();
        bytes[1 + 32 + 8] ^= 1; // signed prekey
        let tampered = PreKeyBundle::decode(&bytes).expect("still well formed");
        assert_eq!(tampered.verify().err(), Some(Error::InvalidSignature));
        // The KEM prekey's signature is checked too.
        let mut bytes = b.encode();
        let kem_signature = 1 + 32 + 8 + 32 + 64 + 4 + KEM_PUBLIC_KEY_LEN;
        bytes[kem_signature] ^= 1;
        let tampered = PreKeyBundle::decode(&bytes).expect("still well formed");
        assert_eq!(tampered.verify().err(), Some(Error::InvalidSignature));
        // A KEM key failing the modulus check does not decode.
        let mut bytes = b.encode();
        let kem_key = 1 + 32 + 8 + 32 + 64 + 4;
        bytes[kem_key] = 0xff;
        bytes[kem_key + 1] |= 0x0f;
        assert_eq!(
            PreKeyBundle::decode(&bytes),
            Err(DecodeError::InvalidKemKey)
        );
    }

    #[test]
    fn substituted_identity_is_caught() {
        let (_, b) = bundle(false);
        let other = IdentityKeyPair::from_seed(&[1; 32]);
        assert_eq!(
            b.clone().verify_for(other.public_key()).err(),
            Some(Error::IdentityMismatch)
        );
        // Same bundle under another identity: the signature no longer verifies.
        let forged = PreKeyBundle {
            identity_key: *other.public_key(),
            ..b
        };
        assert_eq!(forged.verify().err(), Some(Error::InvalidSignature));
    }
}
