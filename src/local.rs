//! This device's own identity: account, device id and identity key pair.
//!
//! Every session is bound to the two devices' addresses (SPEC.md §5.1), so the
//! session constructors take the local device, not just its key pair.

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use crate::account::{AccountId, DeviceAddress};
use crate::codec::{Reader, Writer};
use crate::crypto::KEY_LEN;
use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityKeyPair};
use crate::sealed::Address;

const LOCAL_DEVICE_TAG: u8 = 0x4C;
const LOCAL_DEVICE_VERSION: u8 = 1;

/// This device: its account, device id and the account's identity key pair.
///
/// ```
/// use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice};
/// let phone = LocalDevice {
///     account: AccountId::new(b"alice")?,
///     device_id: 1,
///     identity: IdentityKeyPair::generate(&mut ratchetbox::os_rng()),
/// };
/// assert_eq!(phone.address().device_id(), 1);
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
pub struct LocalDevice {
    /// The account.
    pub account: AccountId,
    /// This device's id.
    pub device_id: DeviceId,
    /// The account's identity key pair (shared by all its devices).
    pub identity: IdentityKeyPair,
}

impl LocalDevice {
    /// This device's address: what peers' sessions with it are keyed by, and
    /// what the server names as the sender of its messages.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress, IdentityKeyPair, LocalDevice};
    /// # let identity = IdentityKeyPair::from_seed(&[1; 32]);
    /// let laptop = LocalDevice { account: AccountId::new(b"alice")?, device_id: 2, identity };
    /// assert_eq!(laptop.address(), DeviceAddress::new(AccountId::new(b"alice")?, 2));
    /// assert_eq!(laptop.address().to_string(), "alice/2");
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn address(&self) -> DeviceAddress {
        DeviceAddress::new(self.account, self.device_id)
    }
}

impl fmt::Debug for LocalDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDevice")
            .field("address", &self.address())
            .field("identity_key", self.identity.public_key())
            .finish_non_exhaustive()
    }
}

impl LocalDevice {
    /// Encodes the device (SPEC.md §13.3): `0x4C ‖ 0x01 ‖ u8(len) ‖ account id ‖
    /// device id ‖ identity seed`. Holds the identity secret: seal it.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice};
    /// # let identity = IdentityKeyPair::from_seed(&[1; 32]);
    /// let phone = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// let saved = phone.encode(); // zeroized when dropped
    /// assert_eq!(saved.len(), 3 + b"alice".len() + 4 + 32);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let account = self.account.as_bytes();
        let mut w = Writer::with_capacity(3 + account.len() + 4 + KEY_LEN);
        w.u8(LOCAL_DEVICE_TAG)
            .u8(LOCAL_DEVICE_VERSION)
            .u8(account.len() as u8)
            .bytes(account)
            .u32(self.device_id)
            .bytes(self.identity.seed());
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DecodeError, IdentityKeyPair, LocalDevice};
    /// # let identity = IdentityKeyPair::from_seed(&[1; 32]);
    /// # let phone = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// let restored = LocalDevice::decode(&phone.encode())?;
    /// assert_eq!(restored.address(), phone.address());
    /// assert_eq!(restored.identity.public_key(), phone.identity.public_key());
    /// let newer = LocalDevice::decode(b"\x4c\x09"); // version 9
    /// assert!(matches!(newer, Err(DecodeError::UnsupportedVersion { found: 9 })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed blob (wrong tag, unknown version, an
    /// account id of 0 or more than 64 bytes, truncation or trailing bytes). The
    /// stored device is lost: do not invent a new identity for it; restore it
    /// from a backup or link the device again.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(LOCAL_DEVICE_TAG)?;
        let version = r.u8("version")?;
        if version != LOCAL_DEVICE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let len = usize::from(r.u8("account id length")?);
        let account = AccountId::from_address(&Address::new(r.take(len, "account id")?, 0)?);
        let device_id = r.u32("device id")?;
        let seed = Zeroizing::new(r.array::<KEY_LEN>("identity seed")?);
        r.finish()?;
        Ok(Self {
            account,
            device_id,
            identity: IdentityKeyPair::from_seed(&seed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let device = LocalDevice {
            account: AccountId::new(b"alice").unwrap(),
            device_id: 7,
            identity: IdentityKeyPair::from_seed(&[3; 32]),
        };
        let bytes = device.encode();
        assert_eq!(bytes.len(), 3 + 5 + 4 + 32);
        let back = LocalDevice::decode(&bytes).unwrap();
        assert_eq!(back.address(), device.address());
        assert_eq!(back.identity.public_key(), device.identity.public_key());
        for cut in 0..bytes.len() {
            assert!(LocalDevice::decode(&bytes[..cut]).is_err());
        }
        let mut empty_account = bytes.to_vec();
        empty_account[2] = 0;
        assert!(LocalDevice::decode(&empty_account).is_err());
    }
}
