//! Envelope wire formats (SPEC.md §9.4–9.6): parsing borrowed bytes, without
//! keys and without allocating. The server's validation and split, and the
//! client's opening, all start here.

use crate::codec::Reader;
use crate::crypto::{KEY_LEN, PublicKey, TAG_LEN};
use crate::error::{DecodeError, EnvelopeError};
use crate::sealed::address::Address;
use crate::sealed::padding;
use crate::sealed::token::TOKEN_LEN;

/// Format tag of a single-recipient envelope, protocol version 2.
pub(crate) const SINGLE_TAG: u8 = 0x24;
/// Format tag of a multi-recipient envelope, protocol version 2.
pub(crate) const MULTI_TAG: u8 = 0x25;
/// Format tag of one recipient's part split from a multi-recipient envelope.
pub(crate) const SPLIT_TAG: u8 = 0x26;

/// Length of the encrypted sender identity block: a key and its tag.
pub(crate) const SENDER_BLOCK_LEN: usize = KEY_LEN + TAG_LEN;
/// Shortest wrapped key in a recipient entry: the 32-byte content key and a tag.
pub(crate) const MIN_WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
/// Length of a recipient entry's sender authentication tag.
pub(crate) const AUTH_TAG_LEN: usize = 16;

/// A parsed single-recipient envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SingleEnvelope<'a> {
    pub(crate) recipient: Address<'a>,
    pub(crate) token: Option<[u8; TOKEN_LEN]>,
    pub(crate) ephemeral: PublicKey,
    /// Everything before the sender block (tag, address, token, ephemeral key):
    /// bound into both layers' associated data.
    pub(crate) header: &'a [u8],
    pub(crate) sender_block: &'a [u8],
    pub(crate) content: &'a [u8],
}

/// One recipient's entry in a multi-recipient envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecipientEntry<'a> {
    pub(crate) address: Address<'a>,
    /// The address as encoded, bound into the wrapped key's associated data.
    pub(crate) address_bytes: &'a [u8],
    pub(crate) wrapped: &'a [u8],
    pub(crate) auth_tag: &'a [u8],
    /// The whole entry, copied verbatim into a split part.
    pub(crate) bytes: &'a [u8],
}

/// A parsed multi-recipient envelope; entries are parsed lazily.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MultiEnvelope<'a> {
    /// The ephemeral key as sent (split parts copy these bytes).
    pub(crate) ephemeral_bytes: &'a [u8],
    pub(crate) ephemeral: PublicKey,
    pub(crate) count: usize,
    pub(crate) entries: &'a [u8],
    pub(crate) token: Option<[u8; TOKEN_LEN]>,
    /// Sender block then content: identical for every recipient.
    pub(crate) shared: &'a [u8],
}

/// A split part, as a recipient receives it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SplitEnvelope<'a> {
    pub(crate) ephemeral: PublicKey,
    pub(crate) entry: RecipientEntry<'a>,
    pub(crate) shared: &'a [u8],
}

fn token(r: &mut Reader<'_>) -> Result<Option<[u8; TOKEN_LEN]>, DecodeError> {
    Ok(if r.flag("token flag")? {
        Some(r.array("token")?)
    } else {
        None
    })
}

/// Splits and checks the sealed tail: the 48-byte sender block, then padded
/// content and its tag, running to the end of the envelope.
fn sealed_tail(rest: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    if rest.len() < SENDER_BLOCK_LEN {
        return Err(EnvelopeError::Truncated {
            field: "sender block",
        });
    }
    let (sender_block, content) = rest.split_at(SENDER_BLOCK_LEN);
    let padded = content
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(EnvelopeError::Truncated { field: "content" })?;
    if !padding::is_padded_len(padded) {
        return Err(EnvelopeError::InvalidPadding);
    }
    Ok((sender_block, content))
}

impl<'a> SingleEnvelope<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(bytes);
        r.tag(SINGLE_TAG).map_err(|_| unknown(bytes))?;
        let recipient = Address::parse(&mut r)?;
        let token = token(&mut r)?;
        let ephemeral = r.public_key("ephemeral key")?;
        let rest = r.remaining();
        let header = &bytes[..bytes.len() - rest.len()];
        let (sender_block, content) = sealed_tail(rest)?;
        Ok(Self {
            recipient,
            token,
            ephemeral,
            header,
            sender_block,
            content,
        })
    }
}

impl<'a> RecipientEntry<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self, EnvelopeError> {
        let start = r.remaining();
        let address = Address::parse(r)?;
        let address_bytes = &start[..address.encoded_len()];
        let wrapped_len = usize::from(u16::from_be_bytes(r.array("wrapped key length")?));
        if wrapped_len < MIN_WRAPPED_LEN {
            return Err(EnvelopeError::Malformed(DecodeError::InvalidValue {
                field: "wrapped key length",
            }));
        }
        // A payload is absent or padded (SPEC.md §9.6).
        let payload_len = wrapped_len - MIN_WRAPPED_LEN;
        if payload_len != 0 && !padding::is_padded_len(payload_len) {
            return Err(EnvelopeError::InvalidPadding);
        }
        let wrapped = r.take(wrapped_len, "wrapped key")?;
        let auth_tag = r.take(AUTH_TAG_LEN, "authentication tag")?;
        let used = start.len() - r.remaining().len();
        Ok(Self {
            address,
            address_bytes,
            wrapped,
            auth_tag,
            bytes: &start[..used],
        })
    }
}

impl<'a> MultiEnvelope<'a> {
    /// Parses the envelope and walks every entry once: bounds, strict order (so
    /// no duplicates), and the padded content length. `max_recipients` bounds
    /// the walk before it starts.
    pub(crate) fn parse(bytes: &'a [u8], max_recipients: usize) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(bytes);
        r.tag(MULTI_TAG).map_err(|_| unknown(bytes))?;
        let ephemeral_bytes = r.remaining().get(..KEY_LEN).unwrap_or_default();
        let ephemeral = r.public_key("ephemeral key")?;
        let count = usize::from(u16::from_be_bytes(r.array("recipient count")?));
        if count == 0 {
            return Err(EnvelopeError::NoRecipients);
        }
        if count > max_recipients {
            return Err(EnvelopeError::TooManyRecipients {
                count,
                max: max_recipients,
            });
        }
        let entries_start = r.remaining();
        let mut previous: Option<Address<'a>> = None;
        for _ in 0..count {
            let entry = RecipientEntry::parse(&mut r)?;
            if let Some(prev) = previous {
                match prev.cmp(&entry.address) {
                    core::cmp::Ordering::Less => {}
                    core::cmp::Ordering::Equal => return Err(EnvelopeError::DuplicateRecipient),
                    core::cmp::Ordering::Greater => {
                        return Err(EnvelopeError::UnsortedRecipients);
                    }
                }
            }
            previous = Some(entry.address);
        }
        let entries = &entries_start[..entries_start.len() - r.remaining().len()];
        let token = token(&mut r)?;
        let shared = r.remaining();
        sealed_tail(shared)?;
        Ok(Self {
            ephemeral_bytes,
            ephemeral,
            count,
            entries,
            token,
            shared,
        })
    }

    /// The entries, already validated by [`parse`](Self::parse).
    pub(crate) fn entries(&self) -> impl Iterator<Item = RecipientEntry<'a>> + 'a {
        let mut r = Reader::new(self.entries);
        (0..self.count).map_while(move |_| RecipientEntry::parse(&mut r).ok())
    }
}

impl<'a> SplitEnvelope<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(bytes);
        r.tag(SPLIT_TAG).map_err(|_| unknown(bytes))?;
        let ephemeral = r.public_key("ephemeral key")?;
        let entry = RecipientEntry::parse(&mut r)?;
        let shared = r.remaining();
        sealed_tail(shared)?;
        Ok(Self {
            ephemeral,
            entry,
            shared,
        })
    }
}

fn unknown(bytes: &[u8]) -> EnvelopeError {
    match bytes.first() {
        Some(&found) => EnvelopeError::UnknownVersion { found },
        None => EnvelopeError::Truncated {
            field: "format tag",
        },
    }
}
