//! Why a sender certificate chain was refused. It lives below
//! [`crate::error`], which wraps it, and [`crate::sealed`] re-exports it.

use super::DecodeError;

/// Why a certificate was not accepted.
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
