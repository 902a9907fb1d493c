//! The sealed content: what only the recipient reads (SPEC.md §9.3). Codec only.

use alloc::vec::Vec;

use crate::codec::Reader;
use crate::error::DecodeError;
use crate::sealed::padding;

/// What kind of message a sealed envelope carries: which layer the recipient
/// hands the opened message to.
///
/// ```
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_cert = SenderCertificate::issue(
/// #     Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert,
/// # )?;
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// # let now = 1_700_000_000;
/// # let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let opened = open(&envelope, &me)?;
/// let layer = match opened.kind {
///     InnerKind::PreKey => "accept a new session (Responder::accept)",
///     InnerKind::Ratchet => "decrypt with the session of opened.sender",
///     InnerKind::Opaque => "app-defined, for example GroupSession::decrypt",
///     _ => "a kind from a newer version: drop it",
/// };
/// assert_eq!(layer, "decrypt with the session of opened.sender");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InnerKind {
    /// A prekey message (session setup).
    PreKey,
    /// A ratchet message.
    Ratchet,
    /// Anything else the application defines (for example a group message).
    Opaque,
}

impl InnerKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::PreKey => 1,
            Self::Ratchet => 2,
            Self::Opaque => 3,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            1 => Ok(Self::PreKey),
            2 => Ok(Self::Ratchet),
            3 => Ok(Self::Opaque),
            _ => Err(DecodeError::InvalidValue {
                field: "inner kind",
            }),
        }
    }
}

/// What the recipient should do if the content cannot be processed (for
/// example the session layer fails to decrypt it). The sender picks it.
///
/// ```
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let bob = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_cert = SenderCertificate::issue(
/// #     Address::new(b"alice", 1)?, alice.public_key(), 2_000_000_000, &server, server_cert,
/// # )?;
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let bob_addr = Address::new(b"bob", 1)?;
/// # let bob_key = DeliveryAccessKey::derive(&[7; 32]);
/// # let now = 1_700_000_000;
/// # let me = Recipient { identity: &bob, address: bob_addr, trust: &trust, now };
/// # let content = SealedContent {
/// #     kind: InnerKind::Ratchet, hint: ContentHint::Resendable, message: b"hi",
/// # };
/// # let envelope = seal(
/// #     &mut rng, &alice, &alice_cert, bob_addr, bob.public_key(), content, Some(&bob_key),
/// # )?;
/// let opened = open(&envelope, &me)?;
/// // Say the session cannot decrypt `opened.message`: the hint says what to show.
/// let action = match opened.hint {
///     ContentHint::Resendable => "ask the sender to resend, quietly",
///     ContentHint::Implicit => "nothing to show",
///     _ => "show an error", // ContentHint::Default, or a newer hint
/// };
/// assert_eq!(action, "ask the sender to resend, quietly");
/// assert_eq!(ContentHint::default(), ContentHint::Default);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContentHint {
    /// Show an error.
    #[default]
    Default,
    /// The sender can resend; ask for it quietly.
    Resendable,
    /// Nothing to show (for example a receipt).
    Implicit,
}

impl ContentHint {
    fn to_byte(self) -> u8 {
        match self {
            Self::Default => 0,
            Self::Resendable => 1,
            Self::Implicit => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            0 => Ok(Self::Default),
            1 => Ok(Self::Resendable),
            2 => Ok(Self::Implicit),
            _ => Err(DecodeError::InvalidValue {
                field: "content hint",
            }),
        }
    }
}

/// The inner message handed to sealing: its kind, hint and bytes. `Debug`
/// shows the message's length, not its bytes.
///
/// ```
/// use ratchetbox::sealed::{ContentHint, InnerKind, SealedContent};
/// # let ratchet_message = b"bytes from Session::encrypt".to_vec();
/// let content = SealedContent {
///     kind: InnerKind::Ratchet,
///     hint: ContentHint::Resendable,
///     message: &ratchet_message,
/// };
/// assert!(format!("{content:?}").ends_with("message_len: 27 }"));
/// ```
#[derive(Clone, Copy)]
pub struct SealedContent<'a> {
    /// What the message is.
    pub kind: InnerKind,
    /// What to do if it cannot be processed.
    pub hint: ContentHint,
    /// The message bytes (for example from [`crate::Session::encrypt`]).
    pub message: &'a [u8],
}

impl core::fmt::Debug for SealedContent<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealedContent")
            .field("kind", &self.kind)
            .field("hint", &self.hint)
            .field("message_len", &self.message.len())
            .finish()
    }
}

/// Longest inner message. Envelopes are bounded by the server's policy anyway;
/// this keeps the length field honest.
pub const MAX_INNER_LEN: usize = 1 << 24;

pub(crate) fn encode(certificate: &[u8], content: &SealedContent<'_>) -> Vec<u8> {
    let unpadded = 2 + certificate.len() + 2 + 4 + content.message.len();
    let mut out = Vec::with_capacity(padding::padded_len(unpadded + 1).unwrap_or(unpadded + 1));
    out.extend_from_slice(&(certificate.len() as u16).to_be_bytes());
    out.extend_from_slice(certificate);
    out.push(content.kind.to_byte());
    out.push(content.hint.to_byte());
    out.extend_from_slice(&(content.message.len() as u32).to_be_bytes());
    out.extend_from_slice(content.message);
    padding::pad(&mut out);
    out
}

pub(crate) struct Decoded<'a> {
    pub(crate) certificate: &'a [u8],
    pub(crate) kind: InnerKind,
    pub(crate) hint: ContentHint,
    pub(crate) message: &'a [u8],
}

pub(crate) fn decode(padded: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let unpadded = padding::unpad(padded).ok_or(DecodeError::InvalidValue { field: "padding" })?;
    let mut r = Reader::new(unpadded);
    let cert_len = usize::from(u16::from_be_bytes(r.array("certificate length")?));
    let certificate = r.take(cert_len, "sender certificate")?;
    let kind = InnerKind::from_byte(r.u8("inner kind")?)?;
    let hint = ContentHint::from_byte(r.u8("content hint")?)?;
    let len = r.count_u32("inner message length", MAX_INNER_LEN)?;
    let message = r.take(len, "inner message")?;
    r.finish()?;
    Ok(Decoded {
        certificate,
        kind,
        hint,
        message,
    })
}
