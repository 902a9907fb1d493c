//! What a server does with envelopes it cannot read: validate them against a
//! policy and its registry of delivery access keys, and split multi-recipient
//! envelopes into per-device parts by copying bytes. No secret key, no allocation.

use crate::error::EnvelopeError;
use crate::sealed::address::Address;
use crate::sealed::token::{DeliveryAccessKey, TOKEN_LEN};
use crate::sealed::wire::{
    MULTI_TAG, MultiEnvelope, RecipientEntry, SINGLE_TAG, SPLIT_TAG, SingleEnvelope,
};

/// What a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Accept single-recipient envelopes (version 1).
    pub allow_single: bool,
    /// Accept multi-recipient envelopes (version 1).
    pub allow_multi: bool,
    /// Largest envelope, in bytes.
    pub max_size: usize,
    /// Most recipient devices in one multi-recipient envelope.
    pub max_recipients: usize,
    /// Reject envelopes without a delivery token.
    pub require_token: bool,
}

impl Default for ServerPolicy {
    /// Both versions, 256 KiB, 1000 recipients, tokens required.
    fn default() -> Self {
        Self {
            allow_single: true,
            allow_multi: true,
            max_size: 256 * 1024,
            max_recipients: 1000,
            require_token: true,
        }
    }
}

/// The server's registry of delivery access keys, by account id.
pub trait DeliveryKeys {
    /// The access key the account registered, if any.
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey>;
}

impl<F: Fn(&[u8]) -> Option<DeliveryAccessKey>> DeliveryKeys for F {
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey> {
        self(account_id)
    }
}

/// An envelope that passed [`validate`]: the only way to route or split one.
#[derive(Clone, Copy, Debug)]
pub enum ValidatedEnvelope<'a> {
    /// A single-recipient envelope; deliver the bytes as they are.
    Single(ValidatedSingle<'a>),
    /// A multi-recipient envelope; deliver its [`parts`](ValidatedMulti::parts).
    Multi(ValidatedMulti<'a>),
}

/// A validated single-recipient envelope.
#[derive(Clone, Copy, Debug)]
pub struct ValidatedSingle<'a> {
    bytes: &'a [u8],
    recipient: Address<'a>,
}

impl<'a> ValidatedSingle<'a> {
    /// Where it goes.
    pub fn recipient(&self) -> Address<'a> {
        self.recipient
    }

    /// The bytes to deliver.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A validated multi-recipient envelope.
#[derive(Clone, Copy, Debug)]
pub struct ValidatedMulti<'a> {
    envelope: MultiEnvelope<'a>,
}

impl<'a> ValidatedMulti<'a> {
    /// Number of recipient devices.
    pub fn recipient_count(&self) -> usize {
        self.envelope.count
    }

    /// One part per recipient device, borrowing from the envelope.
    pub fn parts(&self) -> impl Iterator<Item = SplitPart<'a>> + 'a {
        let ephemeral = self.envelope.ephemeral_bytes;
        let shared = self.envelope.shared;
        self.envelope.entries().map(move |entry| SplitPart {
            entry,
            ephemeral,
            shared,
        })
    }
}

/// One recipient's part of a multi-recipient envelope: four borrowed pieces
/// whose concatenation is the envelope that device receives (SPEC.md §9.6).
#[derive(Clone, Copy, Debug)]
pub struct SplitPart<'a> {
    entry: RecipientEntry<'a>,
    ephemeral: &'a [u8],
    shared: &'a [u8],
}

const SPLIT_TAG_BYTES: [u8; 1] = [SPLIT_TAG];

impl<'a> SplitPart<'a> {
    /// The device this part is for.
    pub fn recipient(&self) -> Address<'a> {
        self.entry.address
    }

    /// The pieces to send, in order (for vectored writes).
    pub fn pieces(&self) -> [&'a [u8]; 4] {
        [
            &SPLIT_TAG_BYTES,
            self.ephemeral,
            self.entry.bytes,
            self.shared,
        ]
    }

    /// Total length of the part.
    pub fn len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }

    /// Always false: a part has at least its tag.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies the part into `out`, returning its length.
    ///
    /// # Errors
    /// [`EnvelopeError::BufferTooSmall`] if `out` is too short.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, EnvelopeError> {
        let needed = self.len();
        if out.len() < needed {
            return Err(EnvelopeError::BufferTooSmall { needed });
        }
        let mut at = 0;
        for piece in self.pieces() {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        Ok(at)
    }
}

/// Validates an envelope against `policy` and the registry of access keys,
/// without keys and without allocating.
///
/// ```
/// use ratchetbox::sealed::{validate, ServerPolicy, EnvelopeError};
/// let policy = ServerPolicy::default();
/// let no_keys = |_: &[u8]| None;
/// assert_eq!(validate(&[0x7f], &policy, &no_keys).err(), Some(EnvelopeError::UnknownVersion { found: 0x7f }));
/// ```
///
/// # Errors
/// The [`EnvelopeError`] for the first defect found.
pub fn validate<'a>(
    bytes: &'a [u8],
    policy: &ServerPolicy,
    keys: &impl DeliveryKeys,
) -> Result<ValidatedEnvelope<'a>, EnvelopeError> {
    if bytes.len() > policy.max_size {
        return Err(EnvelopeError::Oversize {
            size: bytes.len(),
            max: policy.max_size,
        });
    }
    match bytes.first() {
        Some(&SINGLE_TAG) => {
            if !policy.allow_single {
                return Err(EnvelopeError::VersionNotAllowed { found: SINGLE_TAG });
            }
            let envelope = SingleEnvelope::parse(bytes)?;
            check_token(policy, envelope.token, || {
                keys.access_key(envelope.recipient.account_id())
            })?;
            Ok(ValidatedEnvelope::Single(ValidatedSingle {
                bytes,
                recipient: envelope.recipient,
            }))
        }
        Some(&MULTI_TAG) => {
            if !policy.allow_multi {
                return Err(EnvelopeError::VersionNotAllowed { found: MULTI_TAG });
            }
            let envelope = MultiEnvelope::parse(bytes, policy.max_recipients)?;
            check_token(policy, envelope.token, || combined_key(&envelope, keys))?;
            Ok(ValidatedEnvelope::Multi(ValidatedMulti { envelope }))
        }
        Some(&found) => Err(EnvelopeError::UnknownVersion { found }),
        None => Err(EnvelopeError::Truncated {
            field: "format tag",
        }),
    }
}

/// XOR of the access keys of the distinct accounts (entries are sorted, so an
/// account's devices are adjacent and its key is counted once).
fn combined_key(
    envelope: &MultiEnvelope<'_>,
    keys: &impl DeliveryKeys,
) -> Option<DeliveryAccessKey> {
    let mut combined = [0u8; TOKEN_LEN];
    let mut previous: Option<&[u8]> = None;
    for entry in envelope.entries() {
        let account = entry.address.account_id();
        if previous == Some(account) {
            continue;
        }
        previous = Some(account);
        let key = keys.access_key(account)?.to_bytes();
        for (c, k) in combined.iter_mut().zip(key) {
            *c ^= k;
        }
    }
    Some(DeliveryAccessKey::from_bytes(combined))
}

fn check_token(
    policy: &ServerPolicy,
    token: Option<[u8; TOKEN_LEN]>,
    expected: impl FnOnce() -> Option<DeliveryAccessKey>,
) -> Result<(), EnvelopeError> {
    match token {
        None if policy.require_token => Err(EnvelopeError::MissingToken),
        None => Ok(()),
        Some(token) => {
            let expected = expected().ok_or(EnvelopeError::UnknownRecipient)?;
            if expected.matches(&token) {
                Ok(())
            } else {
                Err(EnvelopeError::WrongToken)
            }
        }
    }
}
