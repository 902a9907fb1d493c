//! Trust records: what this device knows about a contact account's identity key,
//! and the identity-change policy (SPEC.md §12).
//!
//! # Policy
//! - The first key seen for an account is recorded as [`TrustState::Unverified`].
//! - The user compares safety numbers and marks the key
//!   [`Verified`](TrustState::Verified).
//! - A different key arriving (in a bundle, or in a prekey message that
//!   authenticates) makes the record [`Changed`](TrustState::Changed):
//!   - if the old key was **verified**, the change **blocks**: no message is
//!     encrypted to the account and no new session is created with it (either
//!     direction) until the app calls the accept operation for the new key;
//!   - if the old key was **unverified**, the change is **reported** (the app
//!     shows a notice) but allowed: sessions with the new key proceed.
//! - Accepting a changed key makes it [`Unverified`](TrustState::Unverified)
//!   again; verifying it makes it [`Verified`](TrustState::Verified).
//! - If, during a blocking change, the verified key itself arrives again, the
//!   record returns to verified with that key (reported as a change).
//!
//! A lock icon maps directly: unverified grey, verified green, changed red.

use crate::account::AccountId;
use crate::codec::{Reader, Writer};
use crate::crypto::KEY_LEN;
use crate::error::DecodeError;
use crate::identity::IdentityKey;

const TRUST_RECORD_TAG: u8 = 0x55;
const TRUST_RECORD_VERSION: u8 = 1;

/// Where a contact's identity key stands: the lock icon to show.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
/// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
/// let lock = |state: &TrustState| match state {
///     TrustState::Unverified => "grey",
///     TrustState::Verified => "green",
///     TrustState::Changed { .. } => "red",
/// };
/// let mut record = TrustRecord::first_seen(bob);
/// assert_eq!(lock(record.state()), "grey");
/// record.mark_verified(&bob)?;
/// assert_eq!(lock(record.state()), "green");
/// record.observe(&reinstalled);
/// assert_eq!(lock(record.state()), "red");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// IdentityKey keeps its decompressed point (to verify without re-decoding), so
// the changed state is large; records are few and copied rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustState {
    /// Seen, not verified by the user (a grey lock).
    Unverified,
    /// The user compared safety numbers for this key (a green lock).
    Verified,
    /// The key differs from the one recorded before (a red lock).
    Changed {
        /// The key recorded before the change: the last verified key if the
        /// change blocks, otherwise the key that was in use.
        previous: IdentityKey,
        /// Whether the previous key was verified. If so the change blocks
        /// sending and new sessions until the app accepts the new key.
        was_verified: bool,
    },
}

impl TrustState {
    /// Whether this state blocks sending and new sessions (a change away from a
    /// verified key that the app has not accepted yet).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.observe(&reinstalled); // from unverified: reported, not blocking
    /// assert!(!record.state().is_blocking());
    ///
    /// let mut verified = TrustRecord::first_seen(bob);
    /// verified.mark_verified(&bob)?;
    /// verified.observe(&reinstalled); // from verified: blocks until accepted
    /// assert!(verified.state().is_blocking());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Self::Changed {
                was_verified: true,
                ..
            }
        )
    }
}

/// A contact account's identity key and its trust state.
///
/// ```
/// use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
/// let mut rng = ratchetbox::os_rng();
/// let bob = IdentityKeyPair::generate(&mut rng);
/// let mut record = TrustRecord::first_seen(*bob.public_key());
/// assert_eq!(record.state(), &TrustState::Unverified);
/// record.mark_verified(bob.public_key())?;
/// assert_eq!(record.state(), &TrustState::Verified);
///
/// let reinstalled = IdentityKeyPair::generate(&mut rng);
/// let change = record.observe(reinstalled.public_key());
/// assert!(change.blocked);
/// assert!(record.state().is_blocking());
/// record.accept(reinstalled.public_key())?;
/// assert_eq!(record.state(), &TrustState::Unverified);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustRecord {
    identity: IdentityKey,
    state: TrustState,
}

/// What [`TrustRecord::observe`] found.
///
/// ```
/// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
/// # let mut rng = ratchetbox::os_rng();
/// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
/// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
/// use ratchetbox::Observation;
/// let mut record = TrustRecord::first_seen(bob);
/// assert_eq!(record.observe(&bob), Observation { changed: false, blocked: false });
/// let seen = record.observe(&reinstalled);
/// assert_eq!(seen, Observation { changed: true, blocked: false }); // show a notice
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The key differs from the one recorded: the change to report.
    pub changed: bool,
    /// The record blocks sending and new sessions with the offered key.
    pub blocked: bool,
}

/// An identity change, reported to the app when a contact's key differs from
/// the recorded one: show "Bob's safety number changed" beside the new
/// safety number.
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
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// // Bob reinstalls: a new identity key, and a new bundle with it.
/// let bob_again = device(&mut rng, b"bob")?;
/// let new_key = *bob_again.local().identity.public_key();
/// let new_bundle = PreKeyBundle::from_store(&new_key, bob_again.store().prekeys(), None);
/// let started = alice.process_bundle(&mut rng, &bob_id, &new_bundle)?;
///
/// let change = started.identity_change.ok_or("no change reported")?;
/// assert_eq!((change.account, change.previous, change.new), (bob_id, bob_key, new_key));
/// assert!(!change.was_verified); // so it did not block
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityChange {
    /// The contact account.
    pub account: AccountId,
    /// The key recorded before.
    pub previous: IdentityKey,
    /// The key now offered.
    pub new: IdentityKey,
    /// Whether the previous key was verified (then the change blocks).
    pub was_verified: bool,
}

impl TrustRecord {
    /// The record for a key seen for the first time: unverified.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let record = TrustRecord::first_seen(bob);
    /// assert_eq!((record.identity(), record.state()), (&bob, &TrustState::Unverified));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn first_seen(identity: IdentityKey) -> Self {
        Self {
            identity,
            state: TrustState::Unverified,
        }
    }

    /// The most recently seen key (after a change, the new one).
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// assert_eq!(record.identity(), &bob);
    /// record.observe(&reinstalled);
    /// assert_eq!(record.identity(), &reinstalled);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The trust state.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.observe(&reinstalled);
    /// assert_eq!(record.state(), &TrustState::Changed { previous: bob, was_verified: false });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> &TrustState {
        &self.state
    }

    /// Applies the policy to a key offered for this account (from a bundle or
    /// an authenticated prekey message). A different key turns the record into
    /// [`TrustState::Changed`]; see the [module docs](crate::trust) for the policy.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.mark_verified(&bob)?;
    /// let seen = record.observe(&reinstalled);
    /// assert!(seen.changed && seen.blocked); // red lock; nothing is sent until accepted
    /// assert!(record.observe(&bob).changed); // the verified key came back
    /// assert_eq!(record.state(), &TrustState::Verified);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe(&mut self, offered: &IdentityKey) -> Observation {
        if *offered == self.identity {
            return Observation {
                changed: false,
                blocked: self.state.is_blocking(),
            };
        }
        // The verified key coming back after a blocked change: it is the key the
        // user compared, so it is verified again (a change, but not a block).
        if let TrustState::Changed {
            previous,
            was_verified: true,
        } = self.state
            && *offered == previous
        {
            self.identity = previous;
            self.state = TrustState::Verified;
            return Observation {
                changed: true,
                blocked: false,
            };
        }
        let (previous, was_verified) = match self.state {
            TrustState::Verified => (self.identity, true),
            // A blocking change keeps naming the last verified key.
            TrustState::Changed {
                previous,
                was_verified: true,
            } => (previous, true),
            TrustState::Unverified
            | TrustState::Changed {
                was_verified: false,
                ..
            } => (self.identity, false),
        };
        self.identity = *offered;
        self.state = TrustState::Changed {
            previous,
            was_verified,
        };
        Observation {
            changed: true,
            blocked: was_verified,
        }
    }

    /// The user accepted the current key after a change (or acknowledged a
    /// reported one): it becomes unverified, and stops blocking.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.mark_verified(&bob)?;
    /// record.observe(&reinstalled);
    /// assert!(record.accept(&bob).is_err()); // not the key the user was shown
    /// record.accept(&reinstalled)?;
    /// assert_eq!(record.state(), &TrustState::Unverified);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::IdentityMismatch`] if `identity` is not the recorded key
    /// (the app accepted a key it did not show; another change arrived
    /// meanwhile): show the current key's safety number and ask again.
    pub fn accept(&mut self, identity: &IdentityKey) -> Result<(), crate::Error> {
        self.check(identity)?;
        if matches!(self.state, TrustState::Changed { .. }) {
            self.state = TrustState::Unverified;
        }
        Ok(())
    }

    /// The user compared safety numbers computed from `identity`: it becomes verified.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// # let reinstalled = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.mark_verified(&bob)?;
    /// assert_eq!(record.state(), &TrustState::Verified);
    /// assert_eq!(record.mark_verified(&reinstalled), Err(ratchetbox::Error::IdentityMismatch));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::IdentityMismatch`] if `identity` is not the recorded key
    /// (the key changed while the user compared): show the new safety number
    /// and let the user compare again.
    pub fn mark_verified(&mut self, identity: &IdentityKey) -> Result<(), crate::Error> {
        self.check(identity)?;
        self.state = TrustState::Verified;
        Ok(())
    }

    /// Clears the verified mark (for example when the user un-verifies). A
    /// changed state is left as it is.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.mark_verified(&bob)?;
    /// record.mark_unverified();
    /// assert_eq!(record.state(), &TrustState::Unverified);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_unverified(&mut self) {
        if self.state == TrustState::Verified {
            self.state = TrustState::Unverified;
        }
    }

    fn check(&self, identity: &IdentityKey) -> Result<(), crate::Error> {
        if *identity == self.identity {
            Ok(())
        } else {
            Err(crate::Error::IdentityMismatch)
        }
    }

    /// Encodes the record (SPEC.md §12.2). Public data only, but seal it
    /// anyway: it says who the user talks to.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let record = TrustRecord::first_seen(bob);
    /// let bytes = record.encode();
    /// assert_eq!(TrustRecord::decode(&bytes)?, record);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut w = Writer::with_capacity(3 + 2 * KEY_LEN + 1);
        w.u8(TRUST_RECORD_TAG)
            .u8(TRUST_RECORD_VERSION)
            .bytes(&self.identity.to_bytes());
        match self.state {
            TrustState::Unverified => {
                w.u8(0);
            }
            TrustState::Verified => {
                w.u8(1);
            }
            TrustState::Changed {
                previous,
                was_verified,
            } => {
                w.u8(2).bytes(&previous.to_bytes()).flag(was_verified);
            }
        }
        w.into_vec()
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{IdentityKeyPair, TrustRecord, TrustState};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let bob = *IdentityKeyPair::generate(&mut rng).public_key();
    /// let mut record = TrustRecord::first_seen(bob);
    /// record.mark_verified(&bob)?;
    /// let bytes = record.encode();
    /// assert_eq!(TrustRecord::decode(&bytes)?.state(), &TrustState::Verified);
    /// assert!(TrustRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed, truncated or unknown record. The
    /// record is lost: delete it; the contact's next key is then recorded as
    /// first seen (unverified), so the user must verify again.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(TRUST_RECORD_TAG)?;
        let version = r.u8("version")?;
        if version != TRUST_RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let identity = IdentityKey::from_bytes(&r.array("identity key")?)?;
        let state = match r.u8("trust state")? {
            0 => TrustState::Unverified,
            1 => TrustState::Verified,
            2 => {
                let previous = IdentityKey::from_bytes(&r.array("previous identity key")?)?;
                if previous == identity {
                    return Err(DecodeError::InvalidValue {
                        field: "previous identity key",
                    });
                }
                TrustState::Changed {
                    previous,
                    was_verified: r.flag("was verified")?,
                }
            }
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "trust state",
                });
            }
        };
        r.finish()?;
        Ok(Self { identity, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;

    fn key(seed: u8) -> IdentityKey {
        *IdentityKeyPair::from_seed(&[seed; 32]).public_key()
    }

    #[test]
    fn change_from_unverified_is_reported_but_allowed() {
        let mut record = TrustRecord::first_seen(key(1));
        assert_eq!(
            record.observe(&key(1)),
            Observation {
                changed: false,
                blocked: false
            }
        );
        let seen = record.observe(&key(2));
        assert!(seen.changed && !seen.blocked);
        assert_eq!(
            record.state(),
            &TrustState::Changed {
                previous: key(1),
                was_verified: false
            }
        );
        // The new key keeps working while the notice is shown.
        assert!(!record.observe(&key(2)).blocked);
        record.accept(&key(2)).unwrap();
        assert_eq!(record.state(), &TrustState::Unverified);
    }

    #[test]
    fn change_from_verified_blocks_until_accepted() {
        let mut record = TrustRecord::first_seen(key(1));
        record.mark_verified(&key(1)).unwrap();
        assert!(record.observe(&key(2)).blocked);
        // Still blocked on every later sighting, and a third key keeps the
        // verified key as the one to compare against.
        assert!(record.observe(&key(2)).blocked);
        assert!(record.observe(&key(3)).blocked);
        assert_eq!(
            record.state(),
            &TrustState::Changed {
                previous: key(1),
                was_verified: true
            }
        );
        // The verified key coming back restores the verified state.
        let mut back = record;
        let seen = back.observe(&key(1));
        assert!(seen.changed && !seen.blocked);
        assert_eq!(
            (back.identity(), back.state()),
            (&key(1), &TrustState::Verified)
        );
        assert_eq!(TrustRecord::decode(&back.encode()), Ok(back));
        // Accepting a key the app did not show is refused.
        assert_eq!(record.accept(&key(2)), Err(crate::Error::IdentityMismatch));
        record.accept(&key(3)).unwrap();
        assert!(!record.observe(&key(3)).blocked);
        // Going back to the old verified key is a change too, not a silent revert.
        assert!(record.observe(&key(1)).changed);
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let mut record = TrustRecord::first_seen(key(1));
        let mut all = std::vec![record];
        record.mark_verified(&key(1)).unwrap();
        all.push(record);
        record.observe(&key(2));
        all.push(record);
        for r in all {
            let bytes = r.encode();
            assert_eq!(TrustRecord::decode(&bytes), Ok(r));
            for cut in 0..bytes.len() {
                assert!(TrustRecord::decode(&bytes[..cut]).is_err());
            }
        }
        let mut bad = TrustRecord::first_seen(key(1)).encode();
        bad[34] = 3;
        assert!(TrustRecord::decode(&bad).is_err());
    }
}
