//! Signed and one-time prekeys, and the per-device store that holds them.
//!
//! A device publishes its current signed prekey and a batch of one-time prekeys.
//! When it rotates the signed prekey, the old one is *retired*, not deleted:
//! initiators that fetched the old bundle can still reach the device until the
//! caller expires retired keys after a grace period of its choosing.

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

/// Most retired signed prekeys kept for their grace period. Rotating more often
/// than this within one grace period drops the oldest retired key.
pub const MAX_RETIRED_SIGNED_PREKEYS: usize = 4;

/// Most base keys of accepted prekey messages a store remembers, oldest
/// dropped first. A prekey message whose base key is remembered is a repeat or
/// a replay ([`Error::RepeatedPreKeyMessage`]), never a new session, even once
/// its one-time prekey is gone or when it used none. Anyone can make a device
/// accept a session, so the memory is bounded: 1000 new sessions within one
/// signed prekey's lifetime and grace period is far beyond any real device;
/// beyond it, only a replay of one of the oldest first messages that named no
/// one-time prekey could create a session again. Entries go with their signed
/// prekey, since a message naming an expired prekey is refused anyway.
pub const MAX_ACCEPTED_BASE_KEYS: usize = 1000;

const PREKEY_STATE_TAG: u8 = 0x50;
const PREKEY_STATE_VERSION: u8 = 2;
const SIGNED_PREKEY_TAG: u8 = 0x51;
const ONE_TIME_PREKEY_TAG: u8 = 0x52;

/// A signed prekey: an X25519 key pair, its id, and the identity's signature
/// over `Encode(public key)`.
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

    /// The prekey id.
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        self.key_pair.public()
    }

    /// The identity's signature over `0x05 ‖ public key`.
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
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(1 + 4 + KEY_LEN + SIGNATURE_LEN);
        w.u8(SIGNED_PREKEY_TAG);
        encode_signed(&mut w, self);
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed or unclamped key.
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
pub struct OneTimePreKey {
    id: PreKeyId,
    key_pair: DhKeyPair,
}

impl OneTimePreKey {
    /// The prekey id.
    pub fn id(&self) -> PreKeyId {
        self.id
    }

    /// The public half.
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
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(1 + 4 + KEY_LEN);
        w.u8(ONE_TIME_PREKEY_TAG)
            .u32(self.id)
            .bytes(self.key_pair.secret_bytes());
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed or unclamped key.
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

struct RetiredSignedPreKey {
    key: SignedPreKey,
    retired_at: u64,
}

/// A prekey message this device accepted: the signed prekey it named and the
/// initiator's base key, which names the session it created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AcceptedBaseKey {
    signed_prekey_id: PreKeyId,
    base_key: PublicKey,
}

/// One device's prekeys: the current signed prekey, retired signed prekeys in
/// their grace period, unused one-time prekeys, and the base keys of the prekey
/// messages accepted under them (bounded by [`MAX_ACCEPTED_BASE_KEYS`]).
pub struct PreKeyStore {
    device_id: DeviceId,
    signed: SignedPreKey,
    retired: Vec<RetiredSignedPreKey>,
    one_time: BTreeMap<PreKeyId, OneTimePreKey>,
    next_one_time_id: PreKeyId,
    accepted: VecDeque<AcceptedBaseKey>,
}

impl PreKeyStore {
    /// Creates a store for `device_id` with a fresh signed prekey (id 1) and no
    /// one-time prekeys.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// let mut rng = ratchetbox::os_rng();
    /// let bob = IdentityKeyPair::generate(&mut rng);
    /// let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let published = store.generate_one_time_prekeys(&mut rng, 10)?;
    /// assert_eq!(published.len(), 10);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        device_id: DeviceId,
    ) -> Self {
        Self {
            device_id,
            signed: SignedPreKey::generate(rng, identity, 1),
            retired: Vec::new(),
            one_time: BTreeMap::new(),
            next_one_time_id: 1,
            accepted: VecDeque::new(),
        }
    }

    /// The device these prekeys belong to.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The current signed prekey.
    pub fn signed_prekey(&self) -> &SignedPreKey {
        &self.signed
    }

    /// Generates `count` one-time prekeys and returns their ids and public keys,
    /// ready to upload.
    ///
    /// # Errors
    /// [`Error::TooManyPreKeys`] if the store would exceed
    /// [`MAX_ONE_TIME_PREKEYS`]; [`Error::PreKeyIdsExhausted`] when ids run out.
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
        let count_u32 = u32::try_from(count).map_err(|_| Error::PreKeyIdsExhausted)?;
        if self.next_one_time_id.checked_add(count_u32).is_none() {
            return Err(Error::PreKeyIdsExhausted);
        }
        let mut published = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_one_time_id;
            self.next_one_time_id += 1;
            let key_pair = DhKeyPair::generate(rng);
            published.push((id, *key_pair.public()));
            self.one_time.insert(id, OneTimePreKey { id, key_pair });
        }
        Ok(published)
    }

    /// Replaces the signed prekey with a fresh one. The old key is retired at
    /// `now` (seconds, any epoch the caller uses consistently) and keeps working
    /// until [`expire_retired_signed_prekeys`](Self::expire_retired_signed_prekeys)
    /// removes it.
    ///
    /// # Errors
    /// [`Error::PreKeyIdsExhausted`] when signed prekey ids run out.
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
        let fresh = SignedPreKey::generate(rng, identity, id);
        let old = core::mem::replace(&mut self.signed, fresh);
        if self.retired.len() == MAX_RETIRED_SIGNED_PREKEYS {
            let dropped = self.retired.remove(0);
            self.forget_base_keys_of(dropped.key.id);
        }
        self.retired.push(RetiredSignedPreKey {
            key: old,
            retired_at: now,
        });
        Ok(&self.signed)
    }

    /// Deletes retired signed prekeys retired at least `grace` seconds before
    /// `now`. Returns how many were deleted.
    pub fn expire_retired_signed_prekeys(&mut self, now: u64, grace: u64) -> usize {
        let before = self.retired.len();
        self.retired
            .retain(|r| r.retired_at.saturating_add(grace) > now);
        let current = self.signed.id;
        let retired: Vec<PreKeyId> = self.retired.iter().map(|r| r.key.id).collect();
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
    pub fn has_accepted_base_key(&self, base_key: &PublicKey) -> bool {
        self.accepted.iter().any(|a| a.base_key == *base_key)
    }

    /// Records that a prekey message was accepted: deletes the one-time prekey
    /// it named (if any) and remembers its base key, dropping the oldest beyond
    /// [`MAX_ACCEPTED_BASE_KEYS`]. Call it only after the message decrypted.
    /// Returns `false`, changing nothing, if the one-time prekey is already
    /// gone or the base key is already recorded (two operations raced).
    pub fn record_accepted(
        &mut self,
        signed_prekey_id: PreKeyId,
        one_time_prekey_id: Option<PreKeyId>,
        base_key: &PublicKey,
    ) -> bool {
        let one_time_held = one_time_prekey_id.is_none_or(|id| self.one_time.contains_key(&id));
        if !one_time_held || self.has_accepted_base_key(base_key) {
            return false;
        }
        if let Some(id) = one_time_prekey_id {
            self.one_time.remove(&id);
        }
        if self.accepted.len() == MAX_ACCEPTED_BASE_KEYS {
            self.accepted.pop_front();
        }
        self.accepted.push_back(AcceptedBaseKey {
            signed_prekey_id,
            base_key: *base_key,
        });
        true
    }

    /// How many base keys of accepted prekey messages are remembered.
    pub fn accepted_base_key_count(&self) -> usize {
        self.accepted.len()
    }

    /// Looks a signed prekey up by id: the current one or a retired one.
    pub fn find_signed_prekey(&self, id: PreKeyId) -> Option<&SignedPreKey> {
        if self.signed.id == id {
            return Some(&self.signed);
        }
        self.retired.iter().map(|r| &r.key).find(|k| k.id == id)
    }

    /// Looks a one-time prekey up by id, without removing it.
    pub fn find_one_time_prekey(&self, id: PreKeyId) -> Option<&OneTimePreKey> {
        self.one_time.get(&id)
    }

    /// Deletes a one-time prekey. Sessions call this only after the initial
    /// message that used the key has decrypted.
    pub fn remove_one_time_prekey(&mut self, id: PreKeyId) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// How many one-time prekeys remain, so the app knows when to upload more.
    pub fn one_time_prekey_count(&self) -> usize {
        self.one_time.len()
    }

    /// Ids of the one-time prekeys that remain.
    pub fn one_time_prekey_ids(&self) -> impl Iterator<Item = PreKeyId> + '_ {
        self.one_time.keys().copied()
    }

    /// Encodes the store for persistence (SPEC.md §6.2). Holds secrets: store it
    /// encrypted.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let per_signed = 4 + KEY_LEN + SIGNATURE_LEN;
        let mut w = Writer::with_capacity(
            16 + per_signed * (1 + self.retired.len())
                + 12 * self.retired.len()
                + (4 + KEY_LEN) * (self.one_time.len() + self.accepted.len()),
        );
        w.u8(PREKEY_STATE_TAG)
            .u8(PREKEY_STATE_VERSION)
            .u32(self.device_id);
        encode_signed(&mut w, &self.signed);
        w.u8(self.retired.len() as u8);
        for r in &self.retired {
            encode_signed(&mut w, &r.key);
            w.u64(r.retired_at);
        }
        w.u32(self.next_one_time_id).u32(self.one_time.len() as u32);
        for key in self.one_time.values() {
            w.u32(key.id).bytes(key.key_pair.secret_bytes());
        }
        w.u32(self.accepted.len() as u32);
        for accepted in &self.accepted {
            w.u32(accepted.signed_prekey_id)
                .bytes(accepted.base_key.as_bytes());
        }
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced. Public keys are recomputed
    /// from the secrets rather than trusted from storage.
    ///
    /// # Errors
    /// A [`DecodeError`] for any malformed, truncated, over-limit or inconsistent blob.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(PREKEY_STATE_TAG)?;
        let version = r.u8("version")?;
        if version != PREKEY_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let device_id = r.u32("device id")?;
        let signed = decode_signed(&mut r)?;
        let retired_count = usize::from(r.u8("retired count")?);
        if retired_count > MAX_RETIRED_SIGNED_PREKEYS {
            return Err(DecodeError::LimitExceeded {
                field: "retired signed prekeys",
                max: MAX_RETIRED_SIGNED_PREKEYS as u64,
                found: retired_count as u64,
            });
        }
        let mut retired = Vec::with_capacity(retired_count);
        for _ in 0..retired_count {
            let key = decode_signed(&mut r)?;
            let retired_at = r.u64("retired at")?;
            retired.push(RetiredSignedPreKey { key, retired_at });
        }
        let next_one_time_id = r.u32("next one-time prekey id")?;
        let count = r.count_u32("one-time prekey count", MAX_ONE_TIME_PREKEYS)?;
        let mut one_time = BTreeMap::new();
        let mut previous: Option<PreKeyId> = None;
        for _ in 0..count {
            let id = r.u32("one-time prekey id")?;
            // Ids are strictly increasing and below the next id to issue.
            if previous.is_some_and(|p| p >= id) || id >= next_one_time_id {
                return Err(DecodeError::InvalidValue {
                    field: "one-time prekey id",
                });
            }
            previous = Some(id);
            let secret = Zeroizing::new(r.array::<KEY_LEN>("one-time prekey secret")?);
            let key_pair = stored_key_pair(*secret, "one-time prekey secret")?;
            one_time.insert(id, OneTimePreKey { id, key_pair });
        }
        let accepted_count = r.count_u32("accepted base key count", MAX_ACCEPTED_BASE_KEYS)?;
        let mut accepted = VecDeque::with_capacity(accepted_count);
        let mut seen = alloc::collections::BTreeSet::new();
        for _ in 0..accepted_count {
            let signed_prekey_id = r.u32("accepted signed prekey id")?;
            // Each names a signed prekey the store still holds.
            if signed_prekey_id != signed.id
                && !retired.iter().any(|k| k.key.id == signed_prekey_id)
            {
                return Err(DecodeError::InvalidValue {
                    field: "accepted signed prekey id",
                });
            }
            let base_key = r.public_key("accepted base key")?;
            // Each base key once: `record_accepted` never repeats one.
            if !seen.insert(*base_key.as_bytes()) {
                return Err(DecodeError::InvalidValue {
                    field: "accepted base key",
                });
            }
            accepted.push_back(AcceptedBaseKey {
                signed_prekey_id,
                base_key,
            });
        }
        r.finish()?;
        Ok(Self {
            device_id,
            signed,
            retired,
            one_time,
            next_one_time_id,
            accepted,
        })
    }
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

fn stored_key_pair(secret: [u8; KEY_LEN], field: &'static str) -> Result<DhKeyPair, DecodeError> {
    DhKeyPair::from_stored_secret(secret).ok_or(DecodeError::InvalidValue { field })
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyStore")
            .field("device_id", &self.device_id)
            .field("signed_prekey_id", &self.signed.id)
            .field("retired", &self.retired.len())
            .field("one_time", &self.one_time.len())
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
        assert!(store.record_accepted(1, Some(1), &key(0)));
        assert!(!store.record_accepted(1, Some(1), &key(1)), "spent");
        assert!(!store.record_accepted(1, None, &key(0)), "recorded");
        assert!(store.find_one_time_prekey(1).is_none());
        for i in 1..=MAX_ACCEPTED_BASE_KEYS as u32 {
            assert!(store.record_accepted(1, None, &key(i)));
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
        let last = twice.len() - 36;
        let previous: Vec<u8> = twice[last - 32..last].to_vec();
        twice[last + 4..].copy_from_slice(&previous);
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
        assert!(store.record_accepted(2, None, &key(0)));
        assert_eq!(store.expire_retired_signed_prekeys(100, 10), 1);
        assert_eq!(store.accepted_base_key_count(), 1);
        assert!(store.has_accepted_base_key(&key(0)));
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
