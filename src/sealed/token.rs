//! Delivery tokens: authorization for anonymous senders.
//!
//! A recipient derives a [`DeliveryAccessKey`] from a secret of its own and gives
//! it to its contacts (inside their encrypted sessions) and registers it with the
//! server. A sealed envelope carries a token that the server compares, in
//! constant time, with what the recipient registered. Every contact holds the same
//! key, so the server learns only that *some* contact sent the envelope.
//!
//! A multi-recipient envelope carries one combined token: the XOR of the access
//! keys of its distinct recipient accounts (each account once, however many of
//! its devices are listed). The server recomputes the XOR from its registry.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{self, ct_eq, labels};

/// Length of a delivery access key and of a token.
pub const TOKEN_LEN: usize = 16;

/// A recipient's delivery access key (also the token format).
///
/// It authorizes delivery to the recipient, so it is handled as a secret:
/// zeroized on drop, compared in constant time, never printed, not `Copy`.
///
/// ```
/// use ratchetbox::sealed::DeliveryAccessKey;
/// // Bob derives his key from a secret he keeps, registers it with the server
/// // and sends it to his contacts inside their sessions.
/// let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// let sent = bob_key.to_bytes();
/// // Alice stores what she received and puts it on envelopes to Bob.
/// assert_eq!(DeliveryAccessKey::from_bytes(sent), bob_key);
/// assert_eq!(format!("{bob_key:?}"), "DeliveryAccessKey([redacted])");
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeliveryAccessKey([u8; TOKEN_LEN]);

impl PartialEq for DeliveryAccessKey {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for DeliveryAccessKey {}

impl DeliveryAccessKey {
    /// Derives the access key from a 32-byte secret the recipient keeps (for
    /// example its profile key):
    /// `HKDF(salt = 32 zero bytes, ikm = secret, info = DELIVERY_KEY_INFO, 16)`.
    ///
    /// The same secret always gives the same key, so a device can re-derive it
    /// instead of storing it; registering a key from a new secret revokes every
    /// contact's copy of the old one.
    ///
    /// ```
    /// use ratchetbox::sealed::DeliveryAccessKey;
    /// let key = DeliveryAccessKey::derive(&[7; 32]);
    /// assert_eq!(key, DeliveryAccessKey::derive(&[7; 32]));
    /// assert_ne!(key, DeliveryAccessKey::derive(&[8; 32]));
    /// ```
    pub fn derive(secret: &[u8; 32]) -> Self {
        let mut out = [0u8; TOKEN_LEN];
        crypto::hkdf_sha256(&[0u8; 32], &[secret], labels::DELIVERY_KEY_INFO, &mut out);
        Self(out)
    }

    /// Wraps 16 bytes received from a contact or a registration.
    ///
    /// ```
    /// use ratchetbox::sealed::{DeliveryAccessKey, TOKEN_LEN};
    /// let received = [0x5a; TOKEN_LEN];
    /// let key = DeliveryAccessKey::from_bytes(received);
    /// assert!(key.matches(&received));
    /// ```
    pub const fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes, to send to contacts (inside a session) or to register.
    ///
    /// ```
    /// use ratchetbox::sealed::DeliveryAccessKey;
    /// let key = DeliveryAccessKey::derive(&[7; 32]);
    /// let bytes = key.to_bytes();
    /// assert_eq!(DeliveryAccessKey::from_bytes(bytes), key);
    /// ```
    pub const fn to_bytes(&self) -> [u8; TOKEN_LEN] {
        self.0
    }

    /// Combines access keys for a multi-recipient envelope (XOR). Pass each
    /// recipient **account's** key once, however many of its devices are listed:
    /// a key passed twice cancels out and the server will answer `WrongToken`.
    ///
    /// ```
    /// use ratchetbox::sealed::DeliveryAccessKey;
    /// let bob = DeliveryAccessKey::derive(&[7; 32]);
    /// let carol = DeliveryAccessKey::derive(&[8; 32]);
    /// // For Bob's two devices and Carol's one: each account once.
    /// let token = DeliveryAccessKey::combine([&bob, &carol]);
    /// assert_eq!(DeliveryAccessKey::combine([&token, &carol]), bob);
    /// // Bob's key passed for each of his devices cancels out.
    /// assert_eq!(DeliveryAccessKey::combine([&bob, &bob, &carol]), carol);
    /// ```
    pub fn combine<'a>(keys: impl IntoIterator<Item = &'a DeliveryAccessKey>) -> Self {
        let mut out = [0u8; TOKEN_LEN];
        for key in keys {
            for (o, k) in out.iter_mut().zip(key.0) {
                *o ^= k;
            }
        }
        Self(out)
    }

    /// Constant-time comparison with a presented token.
    ///
    /// ```
    /// use ratchetbox::sealed::DeliveryAccessKey;
    /// let registered = DeliveryAccessKey::derive(&[7; 32]);
    /// assert!(registered.matches(&registered.to_bytes()));
    /// assert!(!registered.matches(&[0; 16]));
    /// ```
    pub fn matches(&self, token: &[u8; TOKEN_LEN]) -> bool {
        ct_eq(&self.0, token)
    }
}

impl core::fmt::Debug for DeliveryAccessKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DeliveryAccessKey([redacted])")
    }
}
