//! Owned account ids and device addresses, held inline so that using one as a
//! map key or copying it allocates nothing.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};

use crate::error::DecodeError;
use crate::identity::DeviceId;
use crate::sealed::{Address, MAX_ACCOUNT_ID_LEN};

/// An account id: 1 to [`MAX_ACCOUNT_ID_LEN`] opaque bytes chosen by the service.
///
/// ```
/// use ratchetbox::AccountId;
/// let alice = AccountId::new(b"alice")?;
/// assert_eq!(alice.as_bytes(), b"alice");
/// assert!(AccountId::new(b"").is_err());
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy)]
pub struct AccountId {
    len: u8,
    bytes: [u8; MAX_ACCOUNT_ID_LEN],
}

impl AccountId {
    /// An account id from its bytes.
    ///
    /// ```
    /// use ratchetbox::{AccountId, DecodeError};
    /// use ratchetbox::sealed::MAX_ACCOUNT_ID_LEN;
    /// let bob = AccountId::new(b"bob")?;
    /// assert_eq!(bob, AccountId::new(b"bob")?);
    /// let too_long = [b'x'; MAX_ACCOUNT_ID_LEN + 1];
    /// assert!(matches!(AccountId::new(&too_long), Err(DecodeError::LimitExceeded { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::InvalidValue`] for an empty id,
    /// [`DecodeError::LimitExceeded`] for one longer than [`MAX_ACCOUNT_ID_LEN`].
    /// Account ids come from the service's directory, so either is a bug there
    /// or in the app: fix the id (a server should refuse to register it), do
    /// not retry.
    pub fn new(account_id: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::from_address(&Address::new(account_id, 0)?))
    }

    /// The account of a (valid, hence bounded) wire address.
    pub(crate) fn from_address(address: &Address<'_>) -> Self {
        let account_id = address.account_id();
        let len = account_id.len().min(MAX_ACCOUNT_ID_LEN);
        let mut bytes = [0u8; MAX_ACCOUNT_ID_LEN];
        bytes[..len].copy_from_slice(&account_id[..len]);
        Self {
            len: len as u8,
            bytes,
        }
    }

    /// The id's bytes, as given to [`new`](Self::new).
    ///
    /// ```
    /// # use ratchetbox::AccountId;
    /// let alice = AccountId::new(b"alice")?;
    /// assert_eq!(alice.as_bytes(), b"alice");
    /// assert_eq!(alice.to_string(), "alice");
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for AccountId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for AccountId {}

impl PartialOrd for AccountId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AccountId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for AccountId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(text) => write!(f, "AccountId({text:?})"),
            Err(_) => write!(f, "AccountId({:02x?})", self.as_bytes()),
        }
    }
}

impl fmt::Display for AccountId {
    /// The id as text if it is printable UTF-8, else as lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(text) if !text.chars().any(char::is_control) => f.write_str(text),
            _ => {
                for byte in self.as_bytes() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// One device of one account: what sessions and group chains are keyed by.
/// Ordered like [`Address`]: account id bytes, then device id.
///
/// ```
/// use ratchetbox::{AccountId, DeviceAddress};
/// let phone = DeviceAddress::new(AccountId::new(b"alice")?, 1);
/// assert_eq!(phone.device_id(), 1);
/// assert_eq!(phone.as_address().account_id(), b"alice");
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceAddress {
    account: AccountId,
    device: DeviceId,
}

impl DeviceAddress {
    /// The address of `device` of `account`.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress};
    /// let alice = AccountId::new(b"alice")?;
    /// let laptop = DeviceAddress::new(alice, 2);
    /// assert_eq!(laptop.to_string(), "alice/2");
    /// assert!(DeviceAddress::new(alice, 1) < laptop);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub const fn new(account: AccountId, device: DeviceId) -> Self {
        Self { account, device }
    }

    /// An owned copy of a wire address, for example the recipient the server
    /// read from an envelope, to keep as a map key.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress};
    /// use ratchetbox::sealed::Address;
    /// let wire = Address::new(b"bob", 3)?;
    /// let owned = DeviceAddress::from_address(&wire);
    /// assert_eq!(owned, DeviceAddress::new(AccountId::new(b"bob")?, 3));
    /// assert_eq!(owned.as_address(), wire);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn from_address(address: &Address<'_>) -> Self {
        Self::new(AccountId::from_address(address), address.device_id())
    }

    /// The account.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress};
    /// let bob = AccountId::new(b"bob")?;
    /// let tablet = DeviceAddress::new(bob, 4);
    /// assert_eq!(tablet.account(), &bob);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The device id.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress};
    /// let tablet = DeviceAddress::new(AccountId::new(b"bob")?, 4);
    /// assert_eq!(tablet.device_id(), 4);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn device_id(&self) -> DeviceId {
        self.device
    }

    /// The borrowed wire form, as the sealed and group APIs take it.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, DeviceAddress};
    /// let tablet = DeviceAddress::new(AccountId::new(b"bob")?, 4);
    /// let wire = tablet.as_address();
    /// assert_eq!((wire.account_id(), wire.device_id()), (&b"bob"[..], 4));
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn as_address(&self) -> Address<'_> {
        Address::from_parts(self.account.as_bytes(), self.device)
    }
}

impl fmt::Debug for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceAddress({:?}, {})", self.account, self.device)
    }
}

impl fmt::Display for DeviceAddress {
    /// `account/device`, the account as in [`AccountId`]'s `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_matches_wire_addresses() {
        let ids: [&[u8]; 4] = [b"a", b"ab", b"b", b"\xff"];
        for x in ids {
            for y in ids {
                for (dx, dy) in [(1, 2), (2, 1), (3, 3)] {
                    let (ax, ay) = (Address::new(x, dx).unwrap(), Address::new(y, dy).unwrap());
                    let (ox, oy) = (
                        DeviceAddress::from_address(&ax),
                        DeviceAddress::from_address(&ay),
                    );
                    assert_eq!(ox.cmp(&oy), ax.cmp(&ay));
                    assert_eq!(ox == oy, ax == ay);
                    assert_eq!(ox.as_address(), ax);
                }
            }
        }
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(AccountId::new(&[7u8; MAX_ACCOUNT_ID_LEN]).is_ok());
        assert!(matches!(
            AccountId::new(&[7u8; MAX_ACCOUNT_ID_LEN + 1]),
            Err(DecodeError::LimitExceeded { .. })
        ));
        let id = AccountId::new(b"\x00\x01").unwrap();
        assert_eq!(std::format!("{}", DeviceAddress::new(id, 4)), "0001/4");
    }
}
