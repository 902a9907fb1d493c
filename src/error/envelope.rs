//! Why the server's validation (or a client's parse) refused an envelope.
//! It lives below [`crate::error`], which wraps it, and [`crate::sealed`]
//! re-exports it.

use super::DecodeError;

/// Why an envelope was rejected by structural validation: on the server, from
/// [`sealed::validate`](crate::sealed::validate) (refuse the upload and return
/// the reason to the sender); on a client, wrapped in
/// [`Error::Envelope`](crate::Error::Envelope) by
/// [`sealed::open`](crate::sealed::open) (drop the envelope). What the sending
/// app does with the server's answer:
/// - [`Oversize`](Self::Oversize): send the content as an attachment;
/// - [`TooManyRecipients`](Self::TooManyRecipients): split the recipients over
///   several envelopes;
/// - [`MissingToken`](Self::MissingToken), [`WrongToken`](Self::WrongToken),
///   [`UnknownRecipient`](Self::UnknownRecipient): its copy of a recipient's
///   delivery access key is missing or stale: fetch it again (or send unsealed);
/// - [`VersionNotAllowed`](Self::VersionNotAllowed): the server no longer takes
///   this envelope version: update the app;
/// - [`BufferTooSmall`](Self::BufferTooSmall): the caller's buffer for a
///   [`SplitPart`](crate::sealed::SplitPart) is too small (a bug: size it with
///   [`len`](crate::sealed::SplitPart::len));
/// - any other variant: the bytes are malformed (a bug, or abuse): do not
///   resend them.
///
/// ```
/// use ratchetbox::IdentityKeyPair;
/// use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 1, server.public_key());
/// # let alice_address = Address::new(b"alice", 1)?;
/// # let alice_key = alice.public_key();
/// # let alice_cert =
/// #     SenderCertificate::issue(alice_address, alice_key, 2_000_000_000, &server, server_cert)?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let (kind, hint) = (InnerKind::Opaque, ContentHint::Default);
/// # let content = SealedContent { kind, hint, message: b"hi" };
/// let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// let envelope =
///     seal(&mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key))?;
///
/// let policy = ServerPolicy::default();
/// let registry = |account: &[u8]| (account == b"bob").then(|| bob_key.clone());
/// assert!(validate(&envelope, &policy, &registry).is_ok());
/// let stale = |_: &[u8]| Some(DeliveryAccessKey::derive(&[8; 32]));
/// assert_eq!(validate(&envelope, &policy, &stale).err(), Some(EnvelopeError::WrongToken));
/// let small = ServerPolicy { max_size: 100, ..policy };
/// let refused = validate(&envelope, &small, &registry);
/// assert!(matches!(refused, Err(EnvelopeError::Oversize { max: 100, .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
