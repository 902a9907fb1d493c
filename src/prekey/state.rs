//! The stored form of a prekey store (SPEC.md §6.2). Public keys are
//! recomputed from the stored secrets and seeds, and every count is bounded
//! before anything is allocated for it.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::kem::{decode_kem, encode_kem};
use super::{
    AcceptedBaseKey, MAX_ACCEPTED_BASE_KEYS, MAX_ONE_TIME_KEM_PREKEYS, MAX_ONE_TIME_PREKEYS,
    MAX_RETIRED_SIGNED_PREKEYS, OneTimePreKey, PreKeyId, PreKeyStore, RetiredPreKeys,
    decode_signed, encode_signed, stored_key_pair,
};
use crate::codec::{Reader, Writer};
use crate::crypto::KEY_LEN;
use crate::crypto::kem::KEM_SEED_LEN;
use crate::error::DecodeError;

const PREKEY_STATE_TAG: u8 = 0x50;
const PREKEY_STATE_VERSION: u8 = 2;

/// A stored signed prekey: id, private key, signature.
const SIGNED_LEN: usize = 4 + KEY_LEN + 64;
/// A stored KEM prekey: id, seed, signature.
const KEM_LEN: usize = 4 + KEM_SEED_LEN + 64;

impl PreKeyStore {
    /// Encodes the store for persistence (SPEC.md §6.2). Holds secrets: store it
    /// encrypted.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// let saved = store.encode();
    /// assert_eq!(*PreKeyStore::decode(&saved)?.encode(), *saved);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(
            24 + (SIGNED_LEN + KEM_LEN) * (1 + self.retired.len())
                + 8 * self.retired.len()
                + (4 + KEY_LEN) * self.one_time.len()
                + KEM_LEN * self.one_time_kem.len()
                + (8 + KEY_LEN) * self.accepted.len(),
        );
        w.u8(PREKEY_STATE_TAG)
            .u8(PREKEY_STATE_VERSION)
            .u32(self.device_id);
        encode_signed(&mut w, &self.signed);
        encode_kem(&mut w, &self.last_resort);
        w.u8(self.retired.len() as u8);
        for r in &self.retired {
            encode_signed(&mut w, &r.signed);
            encode_kem(&mut w, &r.last_resort);
            w.u64(r.retired_at);
        }
        w.u32(self.next_one_time_id).u32(self.one_time.len() as u32);
        for key in self.one_time.values() {
            w.u32(key.id).bytes(key.key_pair.secret_bytes());
        }
        w.u32(self.next_kem_id).u32(self.one_time_kem.len() as u32);
        for key in self.one_time_kem.values() {
            encode_kem(&mut w, key);
        }
        w.u32(self.accepted.len() as u32);
        for accepted in &self.accepted {
            w.u32(accepted.signed_prekey_id)
                .u32(accepted.kem_prekey_id)
                .bytes(accepted.base_key.as_bytes());
        }
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced. Public keys are recomputed
    /// from the secrets rather than trusted from storage; every KEM key pair
    /// is regenerated from its seed (one ML-KEM key generation each).
    ///
    /// ```
    /// # use ratchetbox::{DecodeError, IdentityKeyPair, PreKeyStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # store.generate_one_time_prekeys(&mut rng, 2)?;
    /// let saved = store.encode();
    /// let restored = PreKeyStore::decode(&saved)?;
    /// assert_eq!(restored.one_time_prekey_ids().collect::<Vec<_>>(), [1, 2]);
    /// assert!(matches!(PreKeyStore::decode(&saved[..40]), Err(DecodeError::Truncated { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for any malformed, truncated, over-limit or inconsistent
    /// blob (see SPEC.md §6.2 for the rules). The device's prekeys are lost
    /// (its sessions are not): first messages sent to its old bundles will
    /// fail. Generate a fresh store and upload it, replacing every prekey the
    /// server holds for the device (ids restart at 1, so merging would hand out
    /// keys the device no longer has).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(PREKEY_STATE_TAG)?;
        let version = r.u8("version")?;
        if version != PREKEY_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let device_id = r.u32("device id")?;
        let signed = decode_signed(&mut r)?;
        let last_resort = decode_kem(&mut r)?;
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
            let signed = decode_signed(&mut r)?;
            let last_resort = decode_kem(&mut r)?;
            let retired_at = r.u64("retired at")?;
            retired.push(RetiredPreKeys {
                signed,
                last_resort,
                retired_at,
            });
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
        let next_kem_id = r.u32("next KEM prekey id")?;
        let kem_count = r.count_u32("one-time KEM prekey count", MAX_ONE_TIME_KEM_PREKEYS)?;
        let mut one_time_kem = BTreeMap::new();
        let mut previous: Option<PreKeyId> = None;
        for _ in 0..kem_count {
            let key = decode_kem(&mut r)?;
            if previous.is_some_and(|p| p >= key.id()) {
                return Err(DecodeError::InvalidValue {
                    field: "one-time KEM prekey id",
                });
            }
            previous = Some(key.id());
            one_time_kem.insert(key.id(), key);
        }
        // Every KEM prekey id is below the next id, and names one key.
        let mut kem_ids = BTreeSet::new();
        let all_kem_ids = core::iter::once(last_resort.id())
            .chain(retired.iter().map(|r| r.last_resort.id()))
            .chain(one_time_kem.keys().copied());
        for id in all_kem_ids {
            if id >= next_kem_id || !kem_ids.insert(id) {
                return Err(DecodeError::InvalidValue {
                    field: "KEM prekey id",
                });
            }
        }
        let accepted_count = r.count_u32("accepted base key count", MAX_ACCEPTED_BASE_KEYS)?;
        let mut accepted = VecDeque::with_capacity(accepted_count);
        let mut seen = BTreeSet::new();
        for _ in 0..accepted_count {
            let signed_prekey_id = r.u32("accepted signed prekey id")?;
            // Each names a signed prekey the store still holds.
            if signed_prekey_id != signed.id
                && !retired.iter().any(|k| k.signed.id == signed_prekey_id)
            {
                return Err(DecodeError::InvalidValue {
                    field: "accepted signed prekey id",
                });
            }
            let kem_prekey_id = r.u32("accepted KEM prekey id")?;
            if kem_prekey_id >= next_kem_id {
                return Err(DecodeError::InvalidValue {
                    field: "accepted KEM prekey id",
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
                kem_prekey_id,
                base_key,
            });
        }
        r.finish()?;
        Ok(Self {
            device_id,
            signed,
            last_resort,
            retired,
            one_time,
            next_one_time_id,
            one_time_kem,
            next_kem_id,
            accepted,
        })
    }
}
