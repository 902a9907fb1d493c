//! Sealed-sender envelopes: certificates, sealing and opening (clients), and
//! validation and splitting (servers, without keys and without allocating).

use core::ffi::c_void;

use ratchetbox::IdentityKey;
use ratchetbox::sealed::{
    self, Address, ContentHint, DeliveryAccessKey, InnerKind, MAX_ACCOUNT_ID_LEN, MultiRecipient,
    Recipient, SenderCertificate, ServerCertificate, ServerPolicy, TOKEN_LEN, TrustRoot,
    TrustStore, ValidatedEnvelope,
};

use crate::boundary::{
    address, array, bytes, free, guard, handle, handle_ref, items, out_array, out_buf, out_handle,
    out_items, out_value, read,
};
use crate::device::{RbDevice, RbKeyPair, identity_key};
use crate::status::RbStatus;

/// Longest account id, in bytes.
pub const RB_MAX_ACCOUNT_ID_LEN: usize = 64;
/// Length of a delivery access key and of a delivery token.
pub const RB_TOKEN_LEN: usize = 16;

// The header needs literals; these keep them equal to the core's values.
const _: () = assert!(RB_MAX_ACCOUNT_ID_LEN == MAX_ACCOUNT_ID_LEN);
const _: () = assert!(RB_TOKEN_LEN == TOKEN_LEN);
/// Inner message kind: a 1:1 prekey message.
pub const RB_INNER_PREKEY: u8 = 1;
/// Inner message kind: a 1:1 ratchet message.
pub const RB_INNER_RATCHET: u8 = 2;
/// Inner message kind: anything else the app defines (a group message).
pub const RB_INNER_OPAQUE: u8 = 3;
/// `RbEnvelopeInfo::kind`: a single-recipient envelope (or a split part).
pub const RB_ENVELOPE_SINGLE: u8 = 1;
/// `RbEnvelopeInfo::kind`: a multi-recipient envelope.
pub const RB_ENVELOPE_MULTI: u8 = 2;

/// Pinned trust roots (and revoked server keys) a recipient checks sender
/// certificates against.
pub struct RbTrustStore(TrustStore);

/// A pinned trust root.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbTrustRoot {
    /// The root's id, as named by server certificates.
    pub id: u32,
    /// The root's public key.
    pub key: [u8; 32],
}

/// One recipient device of a multi-recipient envelope.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbMultiRecipient {
    /// Its account id (1 to 64 bytes).
    pub account_id: *const u8,
    /// Length of `account_id`.
    pub account_id_len: usize,
    /// Its device id.
    pub device_id: u32,
    /// Its account's identity key.
    pub identity_key: [u8; 32],
    /// Bytes for this device alone (its 1:1 message, say); may be NULL if empty.
    pub payload: *const u8,
    /// Length of `payload`.
    pub payload_len: usize,
}

/// Who sent an opened envelope, as certified and checked.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbSender {
    /// The sender's account id (the first `account_id_len` bytes).
    pub account_id: [u8; RB_MAX_ACCOUNT_ID_LEN],
    /// Length of the account id.
    pub account_id_len: usize,
    /// The sender's device id.
    pub device_id: u32,
    /// The sender's identity key.
    pub identity_key: [u8; 32],
    /// The inner message's kind (`RB_INNER_*`).
    pub kind: u8,
}

/// What a server accepts. `rb_server_policy_default` fills in the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbServerPolicy {
    /// Non-zero: accept single-recipient envelopes.
    pub allow_single: u8,
    /// Non-zero: accept multi-recipient envelopes.
    pub allow_multi: u8,
    /// Non-zero: reject envelopes without a delivery token.
    pub require_token: u8,
    /// Largest envelope, in bytes.
    pub max_size: usize,
    /// Most recipient devices in one envelope.
    pub max_recipients: usize,
}

/// What `rb_envelope_validate` found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbEnvelopeInfo {
    /// `RB_ENVELOPE_SINGLE` or `RB_ENVELOPE_MULTI`.
    pub kind: u8,
    /// Recipient devices (1 for a single-recipient envelope).
    pub recipient_count: usize,
    /// Total bytes of the parts `rb_envelope_split` writes.
    pub split_len: usize,
}

/// One per-device part written by `rb_envelope_split`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RbSplitPart {
    /// Where the part starts in the output buffer.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The recipient's account id (the first `account_id_len` bytes).
    pub account_id: [u8; RB_MAX_ACCOUNT_ID_LEN],
    /// Length of the account id.
    pub account_id_len: usize,
    /// The recipient's device id.
    pub device_id: u32,
}

/// The server's registry of delivery access keys: writes the 16-byte access
/// key registered by `account_id` to `key_out` and returns non-zero, or
/// returns 0 if the account registered none. It must not call back into
/// ratchetbox.
pub type RbAccessKeyLookup = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        account_id: *const u8,
        account_id_len: usize,
        key_out: *mut u8,
    ) -> i32,
>;

/// Creates a trust store pinning `roots`.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_DECODE_ERROR` for an invalid key or too many roots.
///
/// # Safety
/// `roots` points to `roots_len` `RbTrustRoot`s; `out` is a writable `RbTrustStore *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_trust_store_new(
    roots: *const RbTrustRoot,
    roots_len: usize,
    out: *mut *mut RbTrustStore,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (roots, out) = unsafe { (items(roots, roots_len)?, out_handle(out)?) };
        let roots = roots
            .iter()
            .map(|r| Ok(TrustRoot::new(r.id, IdentityKey::from_bytes(&r.key)?)))
            .collect::<Result<Vec<_>, RbStatus>>()?;
        out.set(RbTrustStore(TrustStore::new(&roots)?));
        Ok(())
    })
}

/// Revokes a server key id: certificates it issued stop validating.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_DECODE_ERROR` if the store is full.
///
/// # Safety
/// `trust` is a live trust store.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_trust_store_revoke(
    trust: *mut RbTrustStore,
    server_key_id: u32,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let trust = unsafe { handle(trust) }?;
        Ok(trust.0.revoke(server_key_id)?)
    })
}

/// Frees a trust store. NULL is ignored.
///
/// # Safety
/// `trust` is NULL or a live trust store, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_trust_store_free(trust: *mut RbTrustStore) {
    // SAFETY: the caller's contract above.
    unsafe { free(trust) }
}

/// The trust root signs a server key: writes the server certificate.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `root` and `server_key` are live key pairs; `(out, out_cap, out_len)` is an
/// output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_certificate_issue(
    root: *const RbKeyPair,
    root_id: u32,
    server_key: *const RbKeyPair,
    server_key_id: u32,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (root, server_key, mut out) = unsafe {
            (
                handle_ref(root)?,
                handle_ref(server_key)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let certificate =
            ServerCertificate::issue(root_id, &root.0, server_key_id, server_key.0.public_key());
        out.write(&certificate.encode())
    })
}

/// The server certifies a sender device (address, identity key, expiry in
/// the caller's epoch, seconds): writes the sender certificate.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_DECODE_ERROR`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `server_key` is a live key pair; byte inputs point to their lengths in
/// readable bytes, `identity_key` to 32; `(out, out_cap, out_len)` is an
/// output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_sender_certificate_issue(
    server_key: *const RbKeyPair,
    server_certificate: *const u8,
    server_certificate_len: usize,
    account_id: *const u8,
    account_id_len: usize,
    device_id: u32,
    identity_key: *const u8,
    expires: u64,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (server_key, server_certificate, sender, identity, mut out) = unsafe {
            (
                handle_ref(server_key)?,
                bytes(server_certificate, server_certificate_len)?,
                address(account_id, account_id_len, device_id)?,
                crate::device::identity_key(identity_key)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let server = ServerCertificate::decode(server_certificate)?;
        let certificate =
            SenderCertificate::issue(sender, &identity, expires, &server_key.0, server)?;
        out.write(&certificate.encode())
    })
}

/// Derives the 16-byte delivery access key from a 32-byte secret the
/// recipient keeps (and gives its contacts; it registers the key with the
/// server). The token of a multi-recipient envelope is the XOR of the access
/// keys of its recipient accounts, each account once.
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `secret` points to 32 readable bytes, `out` to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_delivery_access_key_derive(
    secret: *const u8,
    out: *mut u8,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (secret, out) = unsafe { (array::<32>(secret)?, out_array::<TOKEN_LEN>(out)?) };
        out.write(&DeliveryAccessKey::derive(&secret).to_bytes());
        Ok(())
    })
}

fn inner_kind(kind: u8) -> Result<InnerKind, RbStatus> {
    match kind {
        RB_INNER_PREKEY => Ok(InnerKind::PreKey),
        RB_INNER_RATCHET => Ok(InnerKind::Ratchet),
        RB_INNER_OPAQUE => Ok(InnerKind::Opaque),
        _ => Err(RbStatus::RB_INVALID_ARGUMENT),
    }
}

/// # Safety
/// `token` is NULL or points to 16 readable bytes.
unsafe fn token(token: *const u8) -> Result<Option<DeliveryAccessKey>, RbStatus> {
    if token.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller; non-NULL.
    let bytes = unsafe { array::<TOKEN_LEN>(token) }?;
    Ok(Some(DeliveryAccessKey::from_bytes(bytes)))
}

/// Seals `message` (of kind `RB_INNER_*`) from `device` for one recipient
/// device, with the sender's certificate and the recipient's delivery token
/// (16 bytes, or NULL for none). Sealing changes no state, so on
/// `RB_BUFFER_TOO_SMALL` just retry with `*out_len` bytes.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_DECODE_ERROR`,
/// `RB_BUFFER_TOO_SMALL`, `RB_MESSAGE_TOO_LARGE`, `RB_NON_CONTRIBUTORY_DH`.
///
/// # Safety
/// `device` is a live device; byte inputs point to their lengths in readable
/// bytes, `recipient_identity_key` to 32 and `token` (unless NULL) to 16;
/// `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_sealed_seal(
    device: *const RbDevice,
    certificate: *const u8,
    certificate_len: usize,
    recipient_account_id: *const u8,
    recipient_account_id_len: usize,
    recipient_device_id: u32,
    recipient_identity_key: *const u8,
    kind: u8,
    message: *const u8,
    message_len: usize,
    token: *const u8,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, certificate, recipient, recipient_key, message, token, mut out) = unsafe {
            (
                handle_ref(device)?,
                bytes(certificate, certificate_len)?,
                address(
                    recipient_account_id,
                    recipient_account_id_len,
                    recipient_device_id,
                )?,
                identity_key(recipient_identity_key)?,
                bytes(message, message_len)?,
                self::token(token)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let certificate = SenderCertificate::decode(certificate)?;
        let content = sealed::SealedContent {
            kind: inner_kind(kind)?,
            hint: ContentHint::Default,
            message,
        };
        let envelope = sealed::seal(
            &mut ratchetbox::os_rng(),
            &device.local.identity,
            &certificate,
            recipient,
            &recipient_key,
            content,
            token.as_ref(),
        )?;
        out.write(&envelope)
    })
}

/// Seals `message` once for many recipient devices, each with its own
/// payload (its 1:1 message, say), under one combined delivery token (or
/// NULL). Changes no state; on `RB_BUFFER_TOO_SMALL` retry with `*out_len`.
///
/// # Errors
/// As `rb_sealed_seal`, and `RB_ENVELOPE_NO_RECIPIENTS`,
/// `RB_ENVELOPE_DUPLICATE_RECIPIENT`, `RB_ENVELOPE_TOO_MANY_RECIPIENTS`.
///
/// # Safety
/// As `rb_sealed_seal`; `recipients` points to `recipients_len` recipients
/// whose pointers are valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_sealed_seal_multi(
    device: *const RbDevice,
    certificate: *const u8,
    certificate_len: usize,
    recipients: *const RbMultiRecipient,
    recipients_len: usize,
    kind: u8,
    message: *const u8,
    message_len: usize,
    token: *const u8,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, certificate, recipients, message, token, mut out) = unsafe {
            (
                handle_ref(device)?,
                bytes(certificate, certificate_len)?,
                items(recipients, recipients_len)?,
                bytes(message, message_len)?,
                self::token(token)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let keys = recipients
            .iter()
            .map(|r| Ok(IdentityKey::from_bytes(&r.identity_key)?))
            .collect::<Result<Vec<_>, RbStatus>>()?;
        let mut list = Vec::with_capacity(recipients.len());
        for (r, identity_key) in recipients.iter().zip(&keys) {
            // SAFETY: the caller's contract: each recipient's pointers are
            // valid for their lengths during the call.
            let (address, payload) = unsafe {
                (
                    address(r.account_id, r.account_id_len, r.device_id)?,
                    bytes(r.payload, r.payload_len)?,
                )
            };
            list.push(MultiRecipient {
                address,
                identity_key,
                payload,
            });
        }
        let certificate = SenderCertificate::decode(certificate)?;
        let content = sealed::SealedContent {
            kind: inner_kind(kind)?,
            hint: ContentHint::Default,
            message,
        };
        let envelope = sealed::seal_multi(
            &mut ratchetbox::os_rng(),
            &device.local.identity,
            &certificate,
            &list,
            content,
            token.as_ref(),
        )?;
        out.write(&envelope)
    })
}

/// Opens an envelope addressed to `device` (a single-recipient envelope, a
/// split part or a whole multi-recipient envelope), checking the sender's
/// certificate against `trust` at time `now`. Writes the sender, the inner
/// message to `(out, ...)` and this device's payload to `(payload_out, ...)`
/// (empty for a single-recipient envelope). Opening changes no state: on
/// `RB_BUFFER_TOO_SMALL` both lengths are set; retry with them.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`, `RB_ENVELOPE_*`,
/// `RB_WRONG_RECIPIENT`, `RB_DECRYPTION_FAILED`, `RB_CERTIFICATE_*`,
/// `RB_SENDER_IDENTITY_MISMATCH`, `RB_SELF_SEND`, `RB_DECODE_ERROR`.
///
/// # Safety
/// `device` and `trust` are live handles; `envelope` points to
/// `envelope_len` readable bytes; `sender_out` is a writable `RbSender`; both
/// `(ptr, cap, len)` triples are output buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_sealed_open(
    device: *const RbDevice,
    trust: *const RbTrustStore,
    now: u64,
    envelope: *const u8,
    envelope_len: usize,
    sender_out: *mut RbSender,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    payload_out: *mut u8,
    payload_cap: usize,
    payload_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, trust, envelope, mut sender_out, mut out, mut payload_out) = unsafe {
            (
                handle_ref(device)?,
                handle_ref(trust)?,
                bytes(envelope, envelope_len)?,
                out_value(sender_out)?,
                out_buf(out, out_cap, out_len)?,
                out_buf(payload_out, payload_cap, payload_len)?,
            )
        };
        let address = device.local.address();
        let recipient = Recipient {
            identity: &device.local.identity,
            address: address.as_address(),
            trust: &trust.0,
            now,
        };
        let opened = sealed::open(envelope, &recipient)?;
        let message_fits = out.reserve(opened.message.len()).is_ok();
        let payload_fits = payload_out.reserve(opened.payload.len()).is_ok();
        if !(message_fits && payload_fits) {
            return Err(RbStatus::RB_BUFFER_TOO_SMALL);
        }
        out.write(&opened.message)?;
        payload_out.write(&opened.payload)?;
        let sender = &opened.sender;
        let mut account_id = [0u8; RB_MAX_ACCOUNT_ID_LEN];
        let id = account_id
            .get_mut(..sender.account_id.len())
            .ok_or(RbStatus::RB_DECODE_ERROR)?;
        id.copy_from_slice(&sender.account_id);
        sender_out.set(RbSender {
            account_id,
            account_id_len: sender.account_id.len(),
            device_id: sender.device_id,
            identity_key: sender.identity_key.to_bytes(),
            kind: match opened.kind {
                InnerKind::PreKey => RB_INNER_PREKEY,
                InnerKind::Ratchet => RB_INNER_RATCHET,
                _ => RB_INNER_OPAQUE,
            },
        });
        Ok(())
    })
}

/// Fills `policy` with the defaults: both versions, 256 KiB, 1000
/// recipients, tokens required.
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `policy` is a writable `RbServerPolicy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_policy_default(policy: *mut RbServerPolicy) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let mut policy = unsafe { out_value(policy) }?;
        let d = ServerPolicy::default();
        policy.set(RbServerPolicy {
            allow_single: u8::from(d.allow_single),
            allow_multi: u8::from(d.allow_multi),
            require_token: u8::from(d.require_token),
            max_size: d.max_size,
            max_recipients: d.max_recipients,
        });
        Ok(())
    })
}

/// The C registry behind `rb_envelope_validate` and `rb_envelope_split`.
struct Lookup {
    lookup: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8) -> i32,
    ctx: *mut c_void,
}

impl sealed::DeliveryKeys for Lookup {
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey> {
        let mut key = [0u8; TOKEN_LEN];
        // SAFETY: the caller of the entry point passed a valid callback and
        // context; `account_id` is readable for its length and `key` is 16
        // writable bytes, as the callback's contract says.
        let found = unsafe {
            (self.lookup)(
                self.ctx,
                account_id.as_ptr(),
                account_id.len(),
                key.as_mut_ptr(),
            )
        };
        (found != 0).then(|| DeliveryAccessKey::from_bytes(key))
    }
}

/// # Safety
/// `policy` is NULL or points to an `RbServerPolicy`.
unsafe fn policy(policy: *const RbServerPolicy) -> Result<ServerPolicy, RbStatus> {
    if policy.is_null() {
        return Ok(ServerPolicy::default());
    }
    // SAFETY: forwarded from the caller; non-NULL.
    let p = unsafe { read(policy) }?;
    Ok(ServerPolicy {
        allow_single: p.allow_single != 0,
        allow_multi: p.allow_multi != 0,
        max_size: p.max_size,
        max_recipients: p.max_recipients,
        require_token: p.require_token != 0,
    })
}

fn validate<'a>(
    envelope: &'a [u8],
    policy: &ServerPolicy,
    lookup: RbAccessKeyLookup,
    ctx: *mut c_void,
) -> Result<ValidatedEnvelope<'a>, RbStatus> {
    let lookup = lookup.ok_or(RbStatus::RB_NULL_ARGUMENT)?;
    Ok(sealed::validate(envelope, policy, &Lookup { lookup, ctx })?)
}

/// Server side: validates an envelope against `policy` (NULL for the
/// defaults) and the registry behind `lookup`, without any key and without
/// allocating, and says what it is.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_ENVELOPE_*` for the first defect found.
///
/// # Safety
/// `envelope` points to `envelope_len` readable bytes; `policy` is NULL or
/// valid; `lookup` follows `RbAccessKeyLookup`'s contract with `ctx`; `info`
/// is a writable `RbEnvelopeInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_envelope_validate(
    envelope: *const u8,
    envelope_len: usize,
    policy: *const RbServerPolicy,
    lookup: RbAccessKeyLookup,
    ctx: *mut c_void,
    info: *mut RbEnvelopeInfo,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (envelope, policy, mut info) = unsafe {
            (
                bytes(envelope, envelope_len)?,
                self::policy(policy)?,
                out_value(info)?,
            )
        };
        info.set(match validate(envelope, &policy, lookup, ctx)? {
            ValidatedEnvelope::Single(single) => RbEnvelopeInfo {
                kind: RB_ENVELOPE_SINGLE,
                recipient_count: 1,
                split_len: single.bytes().len(),
            },
            ValidatedEnvelope::Multi(multi) => RbEnvelopeInfo {
                kind: RB_ENVELOPE_MULTI,
                recipient_count: multi.recipient_count(),
                split_len: multi.parts().map(|p| p.len()).sum(),
            },
        });
        Ok(())
    })
}

/// Server side: validates an envelope as `rb_envelope_validate` does and
/// writes one part per recipient device into `out` (back to back; a
/// single-recipient envelope is its own one part), describing each in
/// `parts`. `*out_len` and `*parts_len` receive the bytes and parts needed;
/// if either buffer is short, `RB_BUFFER_TOO_SMALL` and nothing is written.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_ENVELOPE_*`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// As `rb_envelope_validate`; `(out, out_cap, out_len)` is an output buffer;
/// `parts` points to `parts_cap` writable `RbSplitPart`s (or is NULL with
/// `parts_cap` 0); `parts_len` is a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_envelope_split(
    envelope: *const u8,
    envelope_len: usize,
    policy: *const RbServerPolicy,
    lookup: RbAccessKeyLookup,
    ctx: *mut c_void,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    parts: *mut RbSplitPart,
    parts_cap: usize,
    parts_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (envelope, policy, mut out, mut parts, mut parts_len) = unsafe {
            (
                bytes(envelope, envelope_len)?,
                self::policy(policy)?,
                out_buf(out, out_cap, out_len)?,
                out_items(parts, parts_cap)?,
                out_value(parts_len)?,
            )
        };
        match validate(envelope, &policy, lookup, ctx)? {
            ValidatedEnvelope::Single(single) => {
                parts_len.set(1);
                let fits = out.reserve(single.bytes().len()).is_ok();
                if !fits || parts.cap() < 1 {
                    return Err(RbStatus::RB_BUFFER_TOO_SMALL);
                }
                out.write(single.bytes())?;
                parts.set(0, split_part(0, single.bytes().len(), single.recipient()))?;
            }
            ValidatedEnvelope::Multi(multi) => {
                parts_len.set(multi.recipient_count());
                let total = multi.parts().map(|p| p.len()).sum();
                let buffer = out.reserve(total);
                let (Ok(buffer), true) = (buffer, parts.cap() >= multi.recipient_count()) else {
                    return Err(RbStatus::RB_BUFFER_TOO_SMALL);
                };
                let mut offset = 0;
                for (index, part) in multi.parts().enumerate() {
                    let end = offset + part.len();
                    let dst = buffer
                        .get_mut(offset..end)
                        .ok_or(RbStatus::RB_BUFFER_TOO_SMALL)?;
                    part.write_to(dst)?;
                    parts.set(index, split_part(offset, part.len(), part.recipient()))?;
                    offset = end;
                }
            }
        }
        Ok(())
    })
}

fn split_part(offset: usize, len: usize, recipient: Address<'_>) -> RbSplitPart {
    let id = recipient.account_id();
    let mut account_id = [0u8; RB_MAX_ACCOUNT_ID_LEN];
    let n = id.len().min(MAX_ACCOUNT_ID_LEN);
    account_id[..n].copy_from_slice(&id[..n]);
    RbSplitPart {
        offset,
        len,
        account_id,
        account_id_len: n,
        device_id: recipient.device_id(),
    }
}
