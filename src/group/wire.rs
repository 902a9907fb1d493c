//! Group wire formats (SPEC.md §10.2–10.3): the sender-key distribution message
//! and the group message. Parsing borrows and holds no keys.

use alloc::vec::Vec;

use crate::codec::Reader;
use crate::crypto::{KEY_LEN, NONCE_LEN, SIGNATURE_LEN, TAG_LEN};
use crate::error::DecodeError;
use crate::identity::IdentityKey;

/// Format tag of a distribution message, protocol version 2.
pub(crate) const DISTRIBUTION_TAG: u8 = 0x33;
/// Format tag of a group message, protocol version 2.
pub(crate) const GROUP_MESSAGE_TAG: u8 = 0x34;
/// Longest group id, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 64;

/// A parsed distribution message: one member's sending chain, as of an iteration.
#[derive(Clone)]
pub(crate) struct Distribution<'a> {
    pub(crate) group_id: &'a [u8],
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    pub(crate) chain_key: [u8; KEY_LEN],
    pub(crate) signing_key: IdentityKey,
}

impl Drop for Distribution<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.chain_key);
    }
}

pub(crate) fn group_id<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let len = usize::from(r.u8("group id length")?);
    if len == 0 || len > MAX_GROUP_ID_LEN {
        return Err(DecodeError::InvalidValue { field: "group id" });
    }
    r.take(len, "group id")
}

pub(crate) fn check_group_id(id: &[u8]) -> Result<(), DecodeError> {
    if id.is_empty() || id.len() > MAX_GROUP_ID_LEN {
        return Err(DecodeError::InvalidValue { field: "group id" });
    }
    Ok(())
}

impl<'a> Distribution<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(DISTRIBUTION_TAG)?;
        let group_id = group_id(&mut r)?;
        let chain_id = r.u32("chain id")?;
        let iteration = r.u32("iteration")?;
        let chain_key = r.array("chain key")?;
        let signing_key = IdentityKey::from_bytes(&r.array("signing key")?)?;
        r.finish()?;
        Ok(Self {
            group_id,
            chain_id,
            iteration,
            chain_key,
            signing_key,
        })
    }

    pub(crate) fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = Vec::with_capacity(2 + self.group_id.len() + 8 + 2 * KEY_LEN);
        out.push(DISTRIBUTION_TAG);
        out.push(self.group_id.len() as u8);
        out.extend_from_slice(self.group_id);
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(&self.iteration.to_be_bytes());
        out.extend_from_slice(&self.chain_key);
        out.extend_from_slice(&self.signing_key.to_bytes());
        zeroize::Zeroizing::new(out)
    }
}

/// A parsed group message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupMessage<'a> {
    pub(crate) group_id: &'a [u8],
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    /// The random AEAD nonce.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// Tag through nonce: the AEAD associated data.
    pub(crate) header: &'a [u8],
    pub(crate) ciphertext: &'a [u8],
    pub(crate) tag: [u8; TAG_LEN],
    /// Everything the signature covers.
    pub(crate) signed: &'a [u8],
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

impl<'a> GroupMessage<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(GROUP_MESSAGE_TAG)?;
        let group_id = group_id(&mut r)?;
        let chain_id = r.u32("chain id")?;
        let iteration = r.u32("iteration")?;
        let nonce = r.array("nonce")?;
        let rest = r.remaining();
        let header = &bytes[..bytes.len() - rest.len()];
        if rest.len() < TAG_LEN + SIGNATURE_LEN {
            return Err(DecodeError::Truncated {
                field: "group message body",
            });
        }
        let (body, signature) = rest.split_at(rest.len() - SIGNATURE_LEN);
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut signature_bytes = [0u8; SIGNATURE_LEN];
        signature_bytes.copy_from_slice(signature);
        Ok(Self {
            group_id,
            chain_id,
            iteration,
            nonce,
            header,
            ciphertext,
            tag: tag_bytes,
            signed: &bytes[..bytes.len() - SIGNATURE_LEN],
            signature: signature_bytes,
        })
    }
}

/// Bytes a group message adds to its plaintext, for a group id of `group_id_len` bytes.
///
/// ```
/// use ratchetbox::group::{GroupSession, group_message_overhead};
/// let mut rng = ratchetbox::os_rng();
/// let mut group = GroupSession::create(&mut rng, b"hiking club")?;
/// let message = group.encrypt(&mut rng, b"Saturday, 9am?")?;
/// assert_eq!(message.len(), group_message_overhead(b"hiking club".len()) + 14);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
pub const fn group_message_overhead(group_id_len: usize) -> usize {
    1 + 1 + group_id_len + 4 + 4 + NONCE_LEN + TAG_LEN + SIGNATURE_LEN
}
