//! Why a sender certificate chain was refused. It lives below
//! [`crate::error`], which wraps it, and [`crate::sealed`] re-exports it.

use super::DecodeError;

/// Why a certificate was not accepted: from
/// [`SenderCertificate::validate`](crate::sealed::SenderCertificate::validate),
/// or wrapped in [`Error::Certificate`](crate::Error::Certificate) by
/// [`sealed::open`](crate::sealed::open). Whatever the variant, the recipient
/// drops the sealed message; the variant says what to fix:
/// - [`Malformed`](Self::Malformed), [`BadSignature`](Self::BadSignature): a
///   forged or corrupted certificate;
/// - [`WrongRoot`](Self::WrongRoot): the sender's server chains to a root this
///   app does not pin (an outdated app, or another service);
/// - [`Expired`](Self::Expired): the sender must fetch a fresh certificate (or
///   one of the two clocks is wrong); a sender refreshes its own before `expires`;
/// - [`Revoked`](Self::Revoked): the issuing server key was withdrawn.
///
/// ```
/// use ratchetbox::IdentityKeyPair;
/// use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// let alice_address = Address::new(b"alice", 1)?;
/// let alice_key = alice.public_key();
/// let cert = SenderCertificate::issue(alice_address, alice_key, 1_000, &server, server_cert)?;
/// let mut trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
///
/// assert!(cert.validate(&trust, 999).is_ok());
/// let late = cert.validate(&trust, 1_000);
/// assert_eq!(late.err(), Some(CertificateError::Expired { expires: 1_000, now: 1_000 }));
/// trust.revoke(7)?;
/// assert_eq!(cert.validate(&trust, 999).err(), Some(CertificateError::Revoked { key_id: 7 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a certificate.
    Malformed(DecodeError),
    /// The server certificate names a trust root that is not pinned.
    WrongRoot {
        /// The root id the certificate names.
        root_id: u32,
    },
    /// A signature in the chain does not verify.
    BadSignature,
    /// The sender certificate has expired.
    Expired {
        /// Its expiry time.
        expires: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// The server key that issued the certificate is revoked.
    Revoked {
        /// The revoked server key id.
        key_id: u32,
    },
}

impl core::fmt::Display for CertificateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed certificate: {e}"),
            Self::WrongRoot { root_id } => {
                write!(f, "certificate chains to unpinned root {root_id}")
            }
            Self::BadSignature => f.write_str("certificate signature does not verify"),
            Self::Expired { expires, now } => {
                write!(f, "certificate expired at {expires} (now {now})")
            }
            Self::Revoked { key_id } => write!(f, "server key {key_id} is revoked"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CertificateError {}

impl From<DecodeError> for CertificateError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}
