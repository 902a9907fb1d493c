//! 1:1 Double Ratchet sessions: start one from a bundle, accept one from a
//! prekey message, encrypt, decrypt, save and restore.

use ratchetbox::at_rest;
use ratchetbox::{
    DeviceAddress, Message, PREKEY_MESSAGE_OVERHEAD, PreKeyBundle, RATCHET_MESSAGE_OVERHEAD,
    Responder, Session,
};

use crate::boundary::{
    account, bytes, free, guard, handle, handle_ref, out_buf, out_handle, out_value, storage_key,
};
use crate::device::RbDevice;
use crate::status::RbStatus;

/// A session with one remote device.
pub struct RbSession(pub(crate) Session);

/// Bytes a ratchet message adds to its plaintext.
pub const RB_RATCHET_MESSAGE_OVERHEAD: usize = 69;
/// Bytes a prekey message (the first messages of the initiator, which carry the
/// handshake) adds to its plaintext.
pub const RB_PREKEY_MESSAGE_OVERHEAD: usize = 1235;

// The header needs literals; these keep them equal to the core's values.
const _: () = assert!(RB_RATCHET_MESSAGE_OVERHEAD == RATCHET_MESSAGE_OVERHEAD);
const _: () = assert!(RB_PREKEY_MESSAGE_OVERHEAD == PREKEY_MESSAGE_OVERHEAD);
/// `rb_message_kind`: a prekey message (it may start a new session).
pub const RB_MESSAGE_PREKEY: u8 = 1;
/// `rb_message_kind`: a ratchet message.
pub const RB_MESSAGE_RATCHET: u8 = 2;

/// The slot every session blob is sealed for.
const SESSION_SLOT: &[u8] = b"ratchetbox-ffi session";

/// Starts a session with the device a bundle describes (from
/// `rb_device_new_bundle`, via the server) of account `remote_account_id`.
/// The bundle's signatures are checked. The session's messages are prekey
/// messages until the first reply arrives.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_DECODE_ERROR`,
/// `RB_INVALID_SIGNATURE`, `RB_NON_CONTRIBUTORY_DH`.
///
/// # Safety
/// `device` is a live device; `remote_account_id` and `bundle` point to their
/// lengths in readable bytes; `out` is a writable `RbSession *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_initiate(
    device: *const RbDevice,
    remote_account_id: *const u8,
    remote_account_id_len: usize,
    bundle: *const u8,
    bundle_len: usize,
    out: *mut *mut RbSession,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, remote, bundle, out) = unsafe {
            (
                handle_ref(device)?,
                account(remote_account_id, remote_account_id_len)?,
                bytes(bundle, bundle_len)?,
                out_handle(out)?,
            )
        };
        let bundle = PreKeyBundle::decode(bundle)?.verify()?;
        let session =
            Session::initiate(&mut ratchetbox::os_rng(), &device.local, &remote, &bundle)?;
        out.set(RbSession(session));
        Ok(())
    })
}

/// Tells what a 1:1 message is: `RB_MESSAGE_PREKEY` (for a new session:
/// `rb_session_accept`; a repeat for an existing one: `rb_session_decrypt`)
/// or `RB_MESSAGE_RATCHET` (`rb_session_decrypt`).
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_DECODE_ERROR`.
///
/// # Safety
/// `message` points to `message_len` readable bytes; `kind` is a writable `uint8_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_message_kind(
    message: *const u8,
    message_len: usize,
    kind: *mut u8,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (message, mut kind) = unsafe { (bytes(message, message_len)?, out_value(kind)?) };
        kind.set(match Message::parse(message)? {
            Message::PreKey(_) => RB_MESSAGE_PREKEY,
            Message::Ratchet(_) => RB_MESSAGE_RATCHET,
        });
        Ok(())
    })
}

/// Accepts a prekey message from device `from_device_id` of
/// `from_account_id` (as the envelope layer authenticated it): creates this
/// device's side of the session and decrypts the message into `out` (its
/// plaintext is `message_len - RB_PREKEY_MESSAGE_OVERHEAD` bytes). The
/// one-time prekeys it used are spent only on success; nothing changes on
/// any error, including `RB_BUFFER_TOO_SMALL`.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_BUFFER_TOO_SMALL`,
/// `RB_DECODE_ERROR`, `RB_REPEATED_PREKEY_MESSAGE`, `RB_UNKNOWN_PREKEY`,
/// `RB_DECRYPTION_FAILED`, ...
///
/// # Safety
/// `device` is a live device; byte inputs point to their lengths in readable
/// bytes; `(out, out_cap, out_len)` is an output buffer; `session_out` is a
/// writable `RbSession *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_accept(
    device: *mut RbDevice,
    from_account_id: *const u8,
    from_account_id_len: usize,
    from_device_id: u32,
    message: *const u8,
    message_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    session_out: *mut *mut RbSession,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, from, message, mut out, session_out) = unsafe {
            (
                handle(device)?,
                account(from_account_id, from_account_id_len)?,
                bytes(message, message_len)?,
                out_buf(out, out_cap, out_len)?,
                out_handle(session_out)?,
            )
        };
        let Message::PreKey(prekey) = Message::parse(message)? else {
            return Err(RbStatus::RB_WRONG_SESSION);
        };
        let buffer = out.reserve(prekey.message().plaintext_len())?;
        let from = DeviceAddress::new(from, from_device_id);
        let responder = Responder::new(&device.local, &mut device.prekeys);
        let (session, written) = responder.accept_into(&from, &prekey, buffer)?;
        out.set_len(written);
        session_out.set(RbSession(session));
        Ok(())
    })
}

/// Frees a session (zeroized). NULL is ignored.
///
/// # Safety
/// `session` is NULL or a live session, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_free(session: *mut RbSession) {
    // SAFETY: the caller's contract above.
    unsafe { free(session) }
}

/// Encrypts `plaintext` into `out`: `plaintext_len + RB_PREKEY_MESSAGE_OVERHEAD`
/// bytes while the session awaits its first reply, `plaintext_len +
/// RB_RATCHET_MESSAGE_OVERHEAD` after. On `RB_BUFFER_TOO_SMALL` nothing
/// changes (the chain does not advance).
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`, `RB_COUNTER_EXHAUSTED`.
///
/// # Safety
/// `session` is a live session; `plaintext` points to `plaintext_len`
/// readable bytes; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_encrypt(
    session: *mut RbSession,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (session, plaintext, mut out) = unsafe {
            (
                handle(session)?,
                bytes(plaintext, plaintext_len)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let buffer = out.reserve(session.0.encrypted_len(plaintext.len()))?;
        let written = session
            .0
            .encrypt_into(&mut ratchetbox::os_rng(), plaintext, buffer)?;
        out.set_len(written);
        Ok(())
    })
}

/// Decrypts a ratchet message (or a repeat of the prekey message that created
/// this session) into `out`; the plaintext is the message length minus
/// `RB_RATCHET_MESSAGE_OVERHEAD` (or `RB_PREKEY_MESSAGE_OVERHEAD`).
/// Decryption is transactional: on any error, including
/// `RB_BUFFER_TOO_SMALL`, the session is unchanged and the message can be
/// decrypted later.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`, `RB_DECODE_ERROR`,
/// `RB_WRONG_SESSION`, `RB_DUPLICATE_MESSAGE`, `RB_TOO_MANY_SKIPPED_MESSAGES`,
/// `RB_DECRYPTION_FAILED`, ...
///
/// # Safety
/// `session` is a live session; `message` points to `message_len` readable
/// bytes; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_decrypt(
    session: *mut RbSession,
    message: *const u8,
    message_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (session, message, mut out) = unsafe {
            (
                handle(session)?,
                bytes(message, message_len)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let ratchet = match Message::parse(message)? {
            Message::Ratchet(m) => m,
            Message::PreKey(p) if session.0.owns_prekey_message(&p) => *p.message(),
            Message::PreKey(_) => return Err(RbStatus::RB_WRONG_SESSION),
        };
        let buffer = out.reserve(ratchet.plaintext_len())?;
        let written = session.0.decrypt_into(&ratchet, buffer)?;
        out.set_len(written);
        Ok(())
    })
}

/// Writes the remote device's identity key (32 bytes), for safety numbers.
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `session` is a live session; `out` points to 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_remote_identity_key(
    session: *const RbSession,
    out: *mut u8,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (session, out) =
            unsafe { (handle_ref(session)?, crate::boundary::out_array::<32>(out)?) };
        out.write(&session.0.remote_identity().to_bytes());
        Ok(())
    })
}

/// Seals the session under a 32-byte storage key, for the app to persist.
/// Keep one copy only: a session restored from an older blob has diverged
/// from its peer.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `session` is a live session; `key` points to 32 readable bytes;
/// `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_save(
    session: *const RbSession,
    key: *const u8,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (session, key, mut out) = unsafe {
            (
                handle_ref(session)?,
                storage_key(key)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let blob = at_rest::seal(&mut ratchetbox::os_rng(), &key, SESSION_SLOT, &session.0);
        out.write(&blob)
    })
}

/// Restores a session from what `rb_session_save` wrote.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_STORAGE_*`, `RB_DECODE_ERROR`.
///
/// # Safety
/// `key` points to 32 readable bytes; `blob` to `blob_len` readable bytes;
/// `out` is a writable `RbSession *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_session_restore(
    key: *const u8,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut RbSession,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (key, blob, out) =
            unsafe { (storage_key(key)?, bytes(blob, blob_len)?, out_handle(out)?) };
        let session: Session = at_rest::open(&key, SESSION_SLOT, blob)?;
        out.set(RbSession(session));
        Ok(())
    })
}
