//! This device (account, device id, identity key pair), the key that seals
//! state at rest, and safety numbers.

use std::sync::Arc;

use ratchetbox::at_rest;
use ratchetbox::devices::LocalDevice;
use ratchetbox::{IdentityKeyPair, KEY_LEN, SafetyNumberMatch};
use ratchetbox::{os_rng, rand_core::Rng};

use crate::error::RatchetboxError;
use crate::records;

/// The slot a device blob is sealed for (bound into the blob).
pub(crate) const DEVICE_SLOT: &[u8] = b"local device";

/// This device: its account id, device id and the account's identity key
/// pair. Immutable; the identity's secret half never leaves Rust.
#[derive(uniffi::Object)]
pub struct Device {
    local: LocalDevice,
}

impl Device {
    /// A second copy of the local device, for a manager to own. (Identity key
    /// pairs are deliberately not `Clone`; this copies through the encoding,
    /// and both copies zeroize on drop.)
    pub(crate) fn local_copy(&self) -> Result<LocalDevice, RatchetboxError> {
        Ok(LocalDevice::decode(&self.local.encode())?)
    }

    /// The local device.
    pub(crate) fn local(&self) -> &LocalDevice {
        &self.local
    }
}

#[uniffi::export]
impl Device {
    /// A new account's first device: a fresh identity key pair from the
    /// operating system's generator.
    ///
    /// # Errors
    /// `InvalidInput` for an empty account id or one over 64 bytes.
    #[uniffi::constructor]
    pub fn create(account: Vec<u8>, device_id: u32) -> Result<Arc<Self>, RatchetboxError> {
        let account = records::account(&account)?;
        let identity = IdentityKeyPair::generate(&mut os_rng());
        Ok(Arc::new(Self {
            local: LocalDevice {
                account,
                device_id,
                identity,
            },
        }))
    }

    /// Opens a device sealed by [`seal`](Self::seal).
    ///
    /// # Errors
    /// `StorageWrongKey` for a wrong key or an altered blob; `StorageCorrupt`
    /// for anything that is not a sealed device.
    #[uniffi::constructor]
    pub fn open(key: &StorageKey, sealed: Vec<u8>) -> Result<Arc<Self>, RatchetboxError> {
        let local = at_rest::open::<LocalDevice>(&key.key, DEVICE_SLOT, &sealed)?;
        Ok(Arc::new(Self { local }))
    }

    /// Another device of this account, sharing its identity (as a linked
    /// desktop does once the primary has provisioned it).
    ///
    /// This is for an identity already in this process; linking a device on
    /// another machine goes through the provisioning protocol, which these
    /// bindings do not expose yet.
    ///
    /// # Errors
    /// `InvalidInput` if `device_id` is this device's own.
    pub fn link_device(&self, device_id: u32) -> Result<Arc<Self>, RatchetboxError> {
        if device_id == self.local.device_id {
            return Err(RatchetboxError::invalid("a linked device needs its own id"));
        }
        let mut local = self.local_copy()?;
        local.device_id = device_id;
        Ok(Arc::new(Self { local }))
    }

    /// The account id.
    pub fn account(&self) -> Vec<u8> {
        self.local.account.as_bytes().to_vec()
    }

    /// The device id.
    pub fn device_id(&self) -> u32 {
        self.local.device_id
    }

    /// The account's public identity key (32 bytes).
    pub fn identity_key(&self) -> Vec<u8> {
        self.local.identity.public_key().to_bytes().to_vec()
    }

    /// The device sealed under `key` (it holds the identity's secret key).
    pub fn seal(&self, key: &StorageKey) -> Vec<u8> {
        at_rest::seal(&mut os_rng(), &key.key, DEVICE_SLOT, &self.local)
    }
}

/// A 32-byte key that seals state at rest. Keep it in the platform keystore
/// (Keychain, Android Keystore), never beside the blobs it seals.
#[derive(uniffi::Object)]
pub struct StorageKey {
    pub(crate) key: at_rest::StorageKey,
}

#[uniffi::export]
impl StorageKey {
    /// A storage key from the 32 bytes the keystore holds.
    ///
    /// # Errors
    /// `InvalidInput` unless `bytes` is 32 bytes long.
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, RatchetboxError> {
        let bytes: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            RatchetboxError::invalid(format!("storage key: expected {KEY_LEN} bytes"))
        })?;
        Ok(Arc::new(Self {
            key: at_rest::StorageKey::from_bytes(bytes),
        }))
    }
}

/// 32 fresh random bytes from the operating system, for a new storage key:
/// store them in the keystore, then call `StorageKey.from_bytes`.
#[uniffi::export]
pub fn generate_storage_key_bytes() -> Vec<u8> {
    let mut bytes = vec![0u8; KEY_LEN];
    os_rng().fill_bytes(&mut bytes);
    bytes
}

/// What comparing a scanned safety number found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SafetyNumberComparison {
    /// Both sides see the same identities.
    Match,
    /// The identities differ.
    Mismatch,
    /// The other side uses another safety-number version.
    VersionMismatch {
        /// Their version.
        theirs: u8,
    },
}

/// The safety number between this device's account and a contact: the same
/// 60 digits (and a comparable scannable code) on both sides.
#[derive(uniffi::Object)]
pub struct SafetyNumber {
    number: ratchetbox::SafetyNumber,
}

impl SafetyNumber {
    /// Wraps a core safety number.
    pub(crate) fn new(number: ratchetbox::SafetyNumber) -> Arc<Self> {
        Arc::new(Self { number })
    }
}

#[uniffi::export]
impl SafetyNumber {
    /// The 60 digits, as twelve space-separated groups of five.
    pub fn display(&self) -> String {
        self.number.to_string()
    }

    /// The 60 digits, without spaces.
    pub fn digits(&self) -> String {
        self.number
            .digits()
            .iter()
            .map(|&d| char::from(d))
            .collect()
    }

    /// The scannable form (for a QR code).
    pub fn scannable(&self) -> Vec<u8> {
        self.number.scannable().to_vec()
    }

    /// Compares the code scanned from the contact's screen with this side's,
    /// in constant time.
    ///
    /// # Errors
    /// `Decode` if `scanned` is not a scannable safety number at all.
    pub fn compare_scanned(
        &self,
        scanned: Vec<u8>,
    ) -> Result<SafetyNumberComparison, RatchetboxError> {
        Ok(match self.number.compare_scanned(&scanned)? {
            SafetyNumberMatch::Match => SafetyNumberComparison::Match,
            SafetyNumberMatch::Mismatch => SafetyNumberComparison::Mismatch,
            SafetyNumberMatch::VersionMismatch { theirs } => {
                SafetyNumberComparison::VersionMismatch { theirs }
            }
        })
    }
}

/// The safety number between `device`'s account and a contact's account
/// and identity key (32 bytes), without a session manager.
///
/// # Errors
/// `InvalidInput` for a bad account id or a key of the wrong length;
/// `Decode` for bytes that are not an identity key.
#[uniffi::export]
pub fn safety_number(
    device: &Device,
    contact_account: Vec<u8>,
    contact_identity: Vec<u8>,
) -> Result<Arc<SafetyNumber>, RatchetboxError> {
    let local = device.local();
    Ok(SafetyNumber::new(ratchetbox::SafetyNumber::new(
        &local.account,
        local.identity.public_key(),
        &records::account(&contact_account)?,
        &records::identity_key(&contact_identity)?,
    )))
}
