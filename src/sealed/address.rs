//! Device addresses: an opaque account id and a device id.

use alloc::vec::Vec;

use crate::codec::Reader;
use crate::error::DecodeError;
use crate::identity::DeviceId;

/// Longest account id, in bytes. Bounds every address an attacker can send.
pub const MAX_ACCOUNT_ID_LEN: usize = 64;

/// A device address as it appears on the wire: `len u8 ‖ account id ‖ device id u32`.
/// Borrowed, so the server can route without copying.
///
/// Addresses order by account id, then device id: the order of the recipients
/// of a multi-recipient envelope, which puts an account's devices side by side.
///
/// ```
/// use ratchetbox::sealed::Address;
/// let bob1 = Address::new(b"bob", 1)?;
/// let bob2 = Address::new(b"bob", 2)?;
/// let carol = Address::new(b"carol", 1)?;
/// assert!(bob1 < bob2 && bob2 < carol);
/// assert_ne!(bob1, Address::new(b"bob", 3)?);
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address<'a> {
    account_id: &'a [u8],
    device_id: DeviceId,
}

impl<'a> Address<'a> {
    /// An address; the account id must be 1 to [`MAX_ACCOUNT_ID_LEN`] bytes.
    ///
    /// ```
    /// use ratchetbox::DecodeError;
    /// use ratchetbox::sealed::{Address, MAX_ACCOUNT_ID_LEN};
    /// let bob = Address::new(b"bob", 2)?;
    /// assert_eq!((bob.account_id(), bob.device_id()), (&b"bob"[..], 2));
    /// assert!(matches!(Address::new(b"", 1), Err(DecodeError::InvalidValue { .. })));
    /// let long = [b'x'; MAX_ACCOUNT_ID_LEN + 1];
    /// assert!(matches!(Address::new(&long, 1), Err(DecodeError::LimitExceeded { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::InvalidValue`] for an empty account id,
    /// [`DecodeError::LimitExceeded`] for one longer than [`MAX_ACCOUNT_ID_LEN`].
    /// Account ids come from the app's own directory, so either is a bug there:
    /// fix the id (servers should refuse to register such accounts), do not retry.
    pub fn new(account_id: &'a [u8], device_id: DeviceId) -> Result<Self, DecodeError> {
        check_account_id(account_id)?;
        Ok(Self {
            account_id,
            device_id,
        })
    }

    /// An address from parts already known to be valid.
    pub(crate) fn from_parts(account_id: &'a [u8], device_id: DeviceId) -> Self {
        Self {
            account_id,
            device_id,
        }
    }

    /// The account id.
    ///
    /// ```
    /// # use ratchetbox::sealed::Address;
    /// let bob = Address::new(b"bob", 2)?;
    /// assert_eq!(bob.account_id(), b"bob");
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn account_id(&self) -> &'a [u8] {
        self.account_id
    }

    /// The device id.
    ///
    /// ```
    /// # use ratchetbox::sealed::Address;
    /// let bob = Address::new(b"bob", 2)?;
    /// assert_eq!(bob.device_id(), 2);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// Encoded length: a length byte, the account id and a 4-byte device id.
    ///
    /// ```
    /// # use ratchetbox::sealed::Address;
    /// let bob = Address::new(b"bob", 2)?;
    /// assert_eq!(bob.encoded_len(), 1 + 3 + 4);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn encoded_len(&self) -> usize {
        1 + self.account_id.len() + 4
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.account_id.len() as u8);
        out.extend_from_slice(self.account_id);
        out.extend_from_slice(&self.device_id.to_be_bytes());
    }

    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let len = usize::from(r.u8("account id length")?);
        let account_id = r.take(len, "account id")?;
        check_account_id(account_id)?;
        Ok(Self {
            account_id,
            device_id: r.u32("device id")?,
        })
    }
}

fn check_account_id(account_id: &[u8]) -> Result<(), DecodeError> {
    if account_id.is_empty() {
        return Err(DecodeError::InvalidValue {
            field: "account id",
        });
    }
    if account_id.len() > MAX_ACCOUNT_ID_LEN {
        return Err(DecodeError::LimitExceeded {
            field: "account id length",
            max: MAX_ACCOUNT_ID_LEN as u64,
            found: account_id.len() as u64,
        });
    }
    Ok(())
}
