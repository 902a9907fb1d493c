//! Sealed envelopes: the server sees where a message goes, never who sent it or
//! what it says, yet can validate envelopes and fan multi-recipient ones out
//! without any secret key (SPEC.md §9).
//!
//! - Clients: [`seal`], [`seal_multi`] and [`open`], with [`SenderCertificate`]s
//!   chained to pinned [`TrustRoot`]s.
//! - Servers: [`validate`] against a [`ServerPolicy`] and a [`DeliveryKeys`]
//!   registry, then route a [`ValidatedEnvelope`] or split it into [`SplitPart`]s.
//!   Neither allocates.

mod address;
mod certificate;
mod content;
mod open;
mod padding;
mod seal;
mod server;
mod token;
mod wire;

pub use address::{Address, MAX_ACCOUNT_ID_LEN};
pub use certificate::{
    CertificateError, MAX_TRUST_ENTRIES, SERVER_CERTIFICATE_LEN, SenderCertificate,
    ServerCertificate, TrustRoot, TrustStore, VerifiedSender,
};
pub use content::{ContentHint, InnerKind, MAX_INNER_LEN, SealedContent};
pub use open::{Opened, Recipient, open};
pub use padding::{MIN_PADDED_LEN, is_padded_len, padded_len};
pub use seal::{MAX_PAYLOAD_LEN, MAX_RECIPIENTS, MultiRecipient, seal, seal_multi};
pub use server::{
    DeliveryKeys, ServerPolicy, SplitPart, ValidatedEnvelope, ValidatedMulti, ValidatedSingle,
    validate,
};
pub use token::{DeliveryAccessKey, TOKEN_LEN};
pub use wire::EnvelopeError;

/// Whether `bytes` parse as a split part (used by the fuzz targets).
#[cfg(all(feature = "hazmat", feature = "std"))]
pub(crate) fn wire_split_is_well_formed(bytes: &[u8]) -> bool {
    wire::SplitEnvelope::parse(bytes).is_ok()
}
