//! Why the server's validation (or a client's parse) refused an envelope.
//! It lives below [`crate::error`], which wraps it, and [`crate::sealed`]
//! re-exports it.

use super::DecodeError;

/// Why an envelope was rejected by structural validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The format tag is not a known envelope version.
    UnknownVersion {
        /// The tag found.
        found: u8,
    },
    /// The version is known but the server's policy does not accept it.
    VersionNotAllowed {
        /// The tag found.
        found: u8,
    },
    /// The envelope ends early.
    Truncated {
        /// What was being read.
        field: &'static str,
    },
    /// Bytes follow the end of the envelope.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field is malformed (bad account id, flag or length).
    Malformed(DecodeError),
    /// The envelope is larger than the policy allows.
    Oversize {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// There are no recipients.
    NoRecipients,
    /// There are more recipients than the policy allows.
    TooManyRecipients {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same device is listed twice.
    DuplicateRecipient,
    /// Recipients are not in strictly increasing order.
    UnsortedRecipients,
    /// The content length is not a padded length (SPEC.md §9.3).
    InvalidPadding,
    /// The policy requires a token and there is none.
    MissingToken,
    /// The token does not match the recipients' registered access keys.
    WrongToken,
    /// A recipient account has no registered access key.
    UnknownRecipient,
    /// The output buffer is too small for a split part.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownVersion { found } => write!(f, "unknown envelope version 0x{found:02x}"),
            Self::VersionNotAllowed { found } => {
                write!(f, "envelope version 0x{found:02x} not accepted by policy")
            }
            Self::Truncated { field } => write!(f, "envelope ended while reading {field}"),
            Self::TrailingBytes { extra } => write!(f, "{extra} trailing bytes after envelope"),
            Self::Malformed(e) => write!(f, "malformed envelope: {e}"),
            Self::Oversize { size, max } => write!(f, "envelope is {size} bytes, limit {max}"),
            Self::NoRecipients => f.write_str("envelope has no recipients"),
            Self::TooManyRecipients { count, max } => {
                write!(f, "envelope has {count} recipients, limit {max}")
            }
            Self::DuplicateRecipient => f.write_str("a recipient device is listed twice"),
            Self::UnsortedRecipients => f.write_str("recipients are not in increasing order"),
            Self::InvalidPadding => f.write_str("content length is not a padded length"),
            Self::MissingToken => f.write_str("delivery token required"),
            Self::WrongToken => f.write_str("delivery token does not match"),
            Self::UnknownRecipient => f.write_str("recipient has no registered access key"),
            Self::BufferTooSmall { needed } => write!(f, "output buffer needs {needed} bytes"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EnvelopeError {}

impl From<DecodeError> for EnvelopeError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Truncated { field } => Self::Truncated { field },
            DecodeError::TrailingBytes { extra } => Self::TrailingBytes { extra },
            other => Self::Malformed(other),
        }
    }
}
