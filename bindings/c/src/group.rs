//! Sender-key groups: one device's state in one group.

use ratchetbox::at_rest;
use ratchetbox::group::{GroupSession, group_message_overhead};

use crate::boundary::{
    address, bytes, free, guard, handle, handle_ref, out_buf, out_handle, storage_key,
};
use crate::status::RbStatus;

/// This device's state in one group: its own sending chain and the chains of
/// the member devices whose distributions it processed.
pub struct RbGroup(pub(crate) GroupSession);

/// Creates this device's state for group `group_id` (1 to 64 bytes) with a
/// new sending chain.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT` / `RB_DECODE_ERROR` for a bad group id.
///
/// # Safety
/// `group_id` points to `group_id_len` readable bytes; `out` is a writable `RbGroup *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_create(
    group_id: *const u8,
    group_id_len: usize,
    out: *mut *mut RbGroup,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group_id, out) = unsafe { (bytes(group_id, group_id_len)?, out_handle(out)?) };
        let session = GroupSession::create(&mut ratchetbox::os_rng(), group_id)?;
        out.set(RbGroup(session));
        Ok(())
    })
}

/// Frees a group state (zeroized). NULL is ignored.
///
/// # Safety
/// `group` is NULL or a live group, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_free(group: *mut RbGroup) {
    // SAFETY: the caller's contract above.
    unsafe { free(group) }
}

/// Writes the distribution message of this device's chain: send it to every
/// member device over 1:1 sessions (it holds the chain key: only encrypted).
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `group` is a live group; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_distribution(
    group: *const RbGroup,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group, mut out) = unsafe { (handle_ref(group)?, out_buf(out, out_cap, out_len)?) };
        out.write(&group.0.distribution())
    })
}

/// Records the distribution of member device `sender_device_id` of
/// `sender_account_id` (the sender the 1:1 session or envelope authenticated).
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_DECODE_ERROR`,
/// `RB_WRONG_GROUP`, `RB_NOT_A_MEMBER`, `RB_INVALID_CONFIG`.
///
/// # Safety
/// `group` is a live group; byte inputs point to their lengths in readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_process_distribution(
    group: *mut RbGroup,
    sender_account_id: *const u8,
    sender_account_id_len: usize,
    sender_device_id: u32,
    distribution: *const u8,
    distribution_len: usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group, sender, distribution) = unsafe {
            (
                handle(group)?,
                address(sender_account_id, sender_account_id_len, sender_device_id)?,
                bytes(distribution, distribution_len)?,
            )
        };
        Ok(group.0.process_distribution(sender, distribution)?)
    })
}

/// Encrypts and signs `plaintext` for the whole group into `out`
/// (`plaintext_len + rb_group_message_overhead(group_id_len)` bytes). On
/// `RB_BUFFER_TOO_SMALL` nothing changes.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`, `RB_COUNTER_EXHAUSTED`.
///
/// # Safety
/// `group` is a live group; `plaintext` points to `plaintext_len` readable
/// bytes; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_encrypt(
    group: *mut RbGroup,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group, plaintext, mut out) = unsafe {
            (
                handle(group)?,
                bytes(plaintext, plaintext_len)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let buffer = out.reserve(group.0.encrypted_len(plaintext.len()))?;
        let written = group
            .0
            .encrypt_into(&mut ratchetbox::os_rng(), plaintext, buffer)?;
        out.set_len(written);
        Ok(())
    })
}

/// Bytes a group message adds to its plaintext for a group id of
/// `group_id_len` bytes.
#[unsafe(no_mangle)]
pub extern "C" fn rb_group_message_overhead(group_id_len: usize) -> usize {
    group_message_overhead(group_id_len)
}

/// Verifies and decrypts a group message from member device
/// `sender_device_id` of `sender_account_id` into `out` (the message length
/// minus `rb_group_message_overhead`). On any error, including
/// `RB_BUFFER_TOO_SMALL`, the state is unchanged.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_BUFFER_TOO_SMALL`,
/// `RB_DECODE_ERROR`, `RB_WRONG_GROUP`, `RB_NOT_A_MEMBER`,
/// `RB_INVALID_SIGNATURE`, `RB_DUPLICATE_MESSAGE`, `RB_DECRYPTION_FAILED`, ...
///
/// # Safety
/// `group` is a live group; byte inputs point to their lengths in readable
/// bytes; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_decrypt(
    group: *mut RbGroup,
    sender_account_id: *const u8,
    sender_account_id_len: usize,
    sender_device_id: u32,
    message: *const u8,
    message_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group, sender, message, mut out) = unsafe {
            (
                handle(group)?,
                address(sender_account_id, sender_account_id_len, sender_device_id)?,
                bytes(message, message_len)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let overhead = group_message_overhead(group.0.group_id().len());
        let needed = message
            .len()
            .checked_sub(overhead)
            .ok_or(RbStatus::RB_DECODE_ERROR)?;
        let buffer = out.reserve(needed)?;
        let mut plaintext = group.0.decrypt(sender, message)?;
        let copied = buffer
            .get_mut(..plaintext.len())
            .map(|b| b.copy_from_slice(&plaintext));
        let len = plaintext.len();
        // The core returns a plain `Vec`: wipe it before it is freed.
        plaintext.fill(0);
        copied.ok_or(RbStatus::RB_DECODE_ERROR)?;
        out.set_len(len);
        Ok(())
    })
}

/// The slot every group blob is sealed for.
const GROUP_SLOT: &[u8] = b"ratchetbox-ffi group";

/// Seals the group state under a 32-byte storage key.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `group` is a live group; `key` points to 32 readable bytes;
/// `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_save(
    group: *const RbGroup,
    key: *const u8,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (group, key, mut out) = unsafe {
            (
                handle_ref(group)?,
                storage_key(key)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let blob = at_rest::seal(&mut ratchetbox::os_rng(), &key, GROUP_SLOT, &group.0);
        out.write(&blob)
    })
}

/// Restores a group state from what `rb_group_save` wrote.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_STORAGE_*`.
///
/// # Safety
/// `key` points to 32 readable bytes; `blob` to `blob_len` readable bytes;
/// `out` is a writable `RbGroup *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_group_restore(
    key: *const u8,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut RbGroup,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (key, blob, out) =
            unsafe { (storage_key(key)?, bytes(blob, blob_len)?, out_handle(out)?) };
        let session: GroupSession = at_rest::open(&key, GROUP_SLOT, blob)?;
        out.set(RbGroup(session));
        Ok(())
    })
}
