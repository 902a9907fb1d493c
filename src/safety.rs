//! Safety numbers: what two contacts compare to verify each other (SPEC.md §11).
//!
//! Each party's fingerprint is an iterated SHA-512 of its identity key and
//! account id. The iteration makes every guess at a colliding identity cost
//! [`SAFETY_NUMBER_ITERATIONS`] hashes, on top of an X25519/Ed25519 key generation.

use core::fmt;

use crate::account::AccountId;
use crate::crypto::{self, KEY_LEN, labels};
use crate::error::DecodeError;
use crate::identity::IdentityKey;

/// SHA-512 iterations per fingerprint (the figure Signal uses: about 2.5 ms here,
/// once per contact, and the same factor on every brute-force guess).
pub const SAFETY_NUMBER_ITERATIONS: u32 = 5200;
/// The safety-number format version, carried in the scannable form.
pub const SAFETY_NUMBER_VERSION: u8 = 2;
/// Digits in the displayed number: 30 per party.
pub const SAFETY_NUMBER_DIGITS: usize = 60;
/// Length of the scannable form: tag, version, two 32-byte fingerprints.
pub const SCANNABLE_LEN: usize = 2 + 2 * KEY_LEN;

const SCANNABLE_TAG: u8 = 0x5A;
const DIGITS_PER_PARTY: usize = SAFETY_NUMBER_DIGITS / 2;

/// One party's fingerprint: the full final hash is kept for the scannable form;
/// its first 30 bytes make the party's 30 digits.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint([u8; 64]);

impl Fingerprint {
    fn new(identity: &IdentityKey, account: &AccountId) -> Self {
        let key = identity.to_bytes();
        let account_id = account.as_bytes();
        let version = [0u8, SAFETY_NUMBER_VERSION];
        let mut hash = crypto::sha512(&[
            &version,
            labels::SAFETY_NUMBER,
            &key,
            &[account_id.len() as u8],
            account_id,
        ]);
        for _ in 0..SAFETY_NUMBER_ITERATIONS {
            hash = crypto::sha512(&[&hash, &key]);
        }
        Self(hash)
    }

    fn scannable(&self) -> &[u8] {
        &self.0[..KEY_LEN]
    }

    /// 30 digits: six 5-byte big-endian chunks, each reduced mod 100000.
    fn digits(&self) -> [u8; DIGITS_PER_PARTY] {
        let mut out = [0u8; DIGITS_PER_PARTY];
        for (chunk, digits) in self.0[..30].chunks_exact(5).zip(out.chunks_exact_mut(5)) {
            let mut value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) % 100_000;
            for digit in digits.iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        out
    }
}

/// The safety number of a pair of contacts, as seen from one side.
///
/// Both sides get the same [`digits`](Self::digits) whichever computes it; the
/// [`scannable`](Self::scannable) form (for a QR code) lists the computing side
/// first, and [`compare_scanned`](Self::compare_scanned) accounts for that.
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
/// let mut rng = ratchetbox::os_rng();
/// let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
/// let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
///
/// let on_alice = SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
/// let on_bob = SafetyNumber::new(&bob_id, bob.public_key(), &alice_id, alice.public_key());
/// assert_eq!(on_alice.digits(), on_bob.digits());
/// assert_eq!(
///     on_alice.compare_scanned(&on_bob.scannable())?,
///     SafetyNumberMatch::Match
/// );
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SafetyNumber {
    local: Fingerprint,
    remote: Fingerprint,
}

/// The result of comparing a scanned safety number with the local one.
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
/// # let mut rng = ratchetbox::os_rng();
/// # let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
/// # let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
/// # let on_alice = SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
/// # let on_bob = SafetyNumber::new(&bob_id, bob.public_key(), &alice_id, alice.public_key());
/// # let scanned = on_bob.scannable();
/// let verdict = match on_alice.compare_scanned(&scanned)? {
///     SafetyNumberMatch::Match => "mark Bob verified (TrustRecord::mark_verified)",
///     SafetyNumberMatch::Mismatch => "warn: the keys differ; do not mark verified",
///     SafetyNumberMatch::VersionMismatch { .. } => "ask both sides to update the app",
/// };
/// assert_eq!(verdict, "mark Bob verified (TrustRecord::mark_verified)");
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafetyNumberMatch {
    /// Both sides see the same identities.
    Match,
    /// The identities differ: someone's key is not what the other side has.
    Mismatch,
    /// The other side uses another safety-number version; nothing was compared.
    VersionMismatch {
        /// The version the scanned code carries.
        theirs: u8,
    },
}

impl SafetyNumber {
    /// The safety number between this side (`local_*`) and a contact (`remote_*`).
    /// Costs two fingerprints of [`SAFETY_NUMBER_ITERATIONS`] hashes each:
    /// compute it when the user opens the verification screen, not per message.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
    /// # let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
    /// let on_alice = SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
    /// let on_bob = SafetyNumber::new(&bob_id, bob.public_key(), &alice_id, alice.public_key());
    /// assert_eq!(on_alice.to_string(), on_bob.to_string());
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn new(
        local_account: &AccountId,
        local_identity: &IdentityKey,
        remote_account: &AccountId,
        remote_identity: &IdentityKey,
    ) -> Self {
        Self {
            local: Fingerprint::new(local_identity, local_account),
            remote: Fingerprint::new(remote_identity, remote_account),
        }
    }

    /// The 60 ASCII digits to display: the two parties' 30 digits, smaller first,
    /// so both sides show the same number. `Display` shows them in twelve
    /// groups of five.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
    /// # let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
    /// # let on_alice =
    /// #     SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
    /// let digits = on_alice.digits();
    /// assert!(digits.iter().all(u8::is_ascii_digit));
    /// assert_eq!(on_alice.to_string().replace(' ', "").as_bytes(), digits);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn digits(&self) -> [u8; SAFETY_NUMBER_DIGITS] {
        let (local, remote) = (self.local.digits(), self.remote.digits());
        let (first, second) = if local <= remote {
            (local, remote)
        } else {
            (remote, local)
        };
        let mut out = [0u8; SAFETY_NUMBER_DIGITS];
        out[..DIGITS_PER_PARTY].copy_from_slice(&first);
        out[DIGITS_PER_PARTY..].copy_from_slice(&second);
        out
    }

    /// The scannable form: `0x5A ‖ version ‖ local fingerprint ‖ remote fingerprint`,
    /// to show as a QR code for the contact to scan.
    ///
    /// ```
    /// use ratchetbox::SCANNABLE_LEN;
    /// # use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
    /// # let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
    /// # let on_alice =
    /// #     SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
    /// let code = on_alice.scannable();
    /// assert_eq!((code.len(), code[0]), (SCANNABLE_LEN, 0x5A));
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn scannable(&self) -> [u8; SCANNABLE_LEN] {
        let mut out = [0u8; SCANNABLE_LEN];
        out[0] = SCANNABLE_TAG;
        out[1] = SAFETY_NUMBER_VERSION;
        out[2..2 + KEY_LEN].copy_from_slice(self.local.scannable());
        out[2 + KEY_LEN..].copy_from_slice(self.remote.scannable());
        out
    }

    /// Compares the contact's scannable form (as scanned from their screen) with
    /// this side's, in constant time. Their "local" is our "remote".
    ///
    /// ```
    /// use ratchetbox::DecodeError;
    /// # use ratchetbox::{AccountId, IdentityKeyPair, SafetyNumber, SafetyNumberMatch};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let (alice, alice_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"alice")?);
    /// # let (bob, bob_id) = (IdentityKeyPair::generate(&mut rng), AccountId::new(b"bob")?);
    /// # let on_alice =
    /// #     SafetyNumber::new(&alice_id, alice.public_key(), &bob_id, bob.public_key());
    /// # let on_bob = SafetyNumber::new(&bob_id, bob.public_key(), &alice_id, alice.public_key());
    /// let scanned = on_bob.scannable(); // from Bob's screen
    /// assert_eq!(on_alice.compare_scanned(&scanned)?, SafetyNumberMatch::Match);
    /// // Scanning one's own code is no match; a QR code of something else is an error.
    /// assert_eq!(on_alice.compare_scanned(&on_alice.scannable())?, SafetyNumberMatch::Mismatch);
    /// let not_ours = on_alice.compare_scanned(b"https://example.com");
    /// assert!(matches!(not_ours, Err(DecodeError::UnknownFormat { .. })));
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] if `scanned` is not a scannable safety number at all
    /// (wrong tag or length): tell the user the code is not a safety number and
    /// let them scan again. A well-formed code of another version is not an
    /// error: it gives [`SafetyNumberMatch::VersionMismatch`].
    pub fn compare_scanned(&self, scanned: &[u8]) -> Result<SafetyNumberMatch, DecodeError> {
        let (&tag, rest) = scanned.split_first().ok_or(DecodeError::Truncated {
            field: "safety number tag",
        })?;
        if tag != SCANNABLE_TAG {
            return Err(DecodeError::UnknownFormat {
                expected: SCANNABLE_TAG,
                found: tag,
            });
        }
        let (&version, fingerprints) = rest.split_first().ok_or(DecodeError::Truncated {
            field: "safety number version",
        })?;
        if version != SAFETY_NUMBER_VERSION {
            return Ok(SafetyNumberMatch::VersionMismatch { theirs: version });
        }
        if fingerprints.len() < 2 * KEY_LEN {
            return Err(DecodeError::Truncated {
                field: "safety number fingerprints",
            });
        }
        if fingerprints.len() > 2 * KEY_LEN {
            return Err(DecodeError::TrailingBytes {
                extra: fingerprints.len() - 2 * KEY_LEN,
            });
        }
        let (theirs_local, theirs_remote) = fingerprints.split_at(KEY_LEN);
        // Both comparisons always run; `&` (not `&&`) keeps the time independent
        // of which half differs.
        let same = crypto::ct_eq(theirs_local, self.remote.scannable())
            & crypto::ct_eq(theirs_remote, self.local.scannable());
        Ok(if same {
            SafetyNumberMatch::Match
        } else {
            SafetyNumberMatch::Mismatch
        })
    }
}

impl fmt::Display for SafetyNumber {
    /// Twelve groups of five digits separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.digits().chunks_exact(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for &digit in group {
                write!(f, "{}", char::from(digit))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;

    fn id(bytes: &[u8]) -> AccountId {
        AccountId::new(bytes).unwrap()
    }

    fn pair(seed: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[seed; 32])
    }

    #[test]
    fn both_sides_show_the_same_digits() {
        let (a, b) = (pair(1), pair(2));
        let on_a = SafetyNumber::new(&id(b"alice"), a.public_key(), &id(b"bob"), b.public_key());
        let on_b = SafetyNumber::new(&id(b"bob"), b.public_key(), &id(b"alice"), a.public_key());
        assert_eq!(on_a.digits(), on_b.digits());
        assert!(on_a.digits().iter().all(u8::is_ascii_digit));
        assert_eq!(std::format!("{on_a}").len(), 60 + 11);
        assert_eq!(
            on_a.compare_scanned(&on_b.scannable()),
            Ok(SafetyNumberMatch::Match)
        );
        assert_eq!(
            on_b.compare_scanned(&on_a.scannable()),
            Ok(SafetyNumberMatch::Match)
        );
    }

    #[test]
    fn any_change_of_key_or_account_changes_the_number() {
        let (a, b, m) = (pair(1), pair(2), pair(3));
        let real = SafetyNumber::new(&id(b"alice"), a.public_key(), &id(b"bob"), b.public_key());
        let mitm = SafetyNumber::new(&id(b"alice"), a.public_key(), &id(b"bob"), m.public_key());
        let renamed =
            SafetyNumber::new(&id(b"alice"), a.public_key(), &id(b"bob2"), b.public_key());
        assert_ne!(real.digits(), mitm.digits());
        assert_ne!(real.digits(), renamed.digits());
        let on_b = SafetyNumber::new(&id(b"bob"), b.public_key(), &id(b"alice"), a.public_key());
        assert_eq!(
            mitm.compare_scanned(&on_b.scannable()),
            Ok(SafetyNumberMatch::Mismatch)
        );
        // Scanning one's own code is not a match either.
        assert_eq!(
            real.compare_scanned(&real.scannable()),
            Ok(SafetyNumberMatch::Mismatch)
        );
    }

    #[test]
    fn malformed_and_foreign_versions_are_typed() {
        let (a, b) = (pair(1), pair(2));
        let n = SafetyNumber::new(&id(b"alice"), a.public_key(), &id(b"bob"), b.public_key());
        let mut other = n.scannable();
        other[1] = 3;
        assert_eq!(
            n.compare_scanned(&other),
            Ok(SafetyNumberMatch::VersionMismatch { theirs: 3 })
        );
        assert!(matches!(
            n.compare_scanned(&[]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            n.compare_scanned(&n.scannable()[..40]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut long = n.scannable().to_vec();
        long.push(0);
        assert!(matches!(
            n.compare_scanned(&long),
            Err(DecodeError::TrailingBytes { extra: 1 })
        ));
        assert!(matches!(
            n.compare_scanned(&[0x01; SCANNABLE_LEN]),
            Err(DecodeError::UnknownFormat { .. })
        ));
    }
}
