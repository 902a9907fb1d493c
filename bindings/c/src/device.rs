//! Devices (identity, device id, prekeys), bare key pairs, bundles, safety
//! numbers and storage keys.

use ratchetbox::at_rest;
use ratchetbox::rand_core::Rng;
use ratchetbox::{
    BUNDLE_LEN_WITH_ONE_TIME, IdentityKey, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyStore,
    SAFETY_NUMBER_DIGITS, SCANNABLE_LEN, SafetyNumber, SafetyNumberMatch,
};

use crate::boundary::{
    account, array, bytes, free, guard, handle, handle_ref, out_array, out_buf, out_handle,
    out_value, storage_key,
};
use crate::status::RbStatus;

/// Length of an identity (Ed25519) public key.
pub const RB_PUBLIC_KEY_LEN: usize = 32;
/// Length of a storage key.
pub const RB_STORAGE_KEY_LEN: usize = 32;
/// Length of an encoded bundle from `rb_device_new_bundle`.
pub const RB_BUNDLE_LEN: usize = 1426;
/// Number of ASCII digits of a safety number.
pub const RB_SAFETY_NUMBER_DIGITS: usize = 60;
/// Length of the scannable form of a safety number.
pub const RB_SAFETY_NUMBER_SCANNABLE_LEN: usize = 66;

// The header needs literals; these keep them equal to the core's values.
const _: () = assert!(RB_BUNDLE_LEN == BUNDLE_LEN_WITH_ONE_TIME);
const _: () = assert!(RB_SAFETY_NUMBER_DIGITS == SAFETY_NUMBER_DIGITS);
const _: () = assert!(RB_SAFETY_NUMBER_SCANNABLE_LEN == SCANNABLE_LEN);

/// One device of an account: its account id, device id, the account's
/// identity key pair and the device's prekeys (signed, one-time, KEM).
pub struct RbDevice {
    pub(crate) local: LocalDevice,
    pub(crate) prekeys: PreKeyStore,
}

/// A bare Ed25519 key pair: a trust root's or a server's signing key.
pub struct RbKeyPair(pub(crate) IdentityKeyPair);

/// The slot every device blob is sealed for (bound into the blob).
const DEVICE_SLOT: &[u8] = b"ratchetbox-ffi device";

/// Creates a device with a new identity key pair and a signed prekey and
/// last-resort KEM prekey. `account_id` is 1 to 64 bytes.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT` for a bad account id.
///
/// # Safety
/// `account_id` points to `account_id_len` readable bytes; `out` is a
/// writable `RbDevice *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_new(
    account_id: *const u8,
    account_id_len: usize,
    device_id: u32,
    out: *mut *mut RbDevice,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (account, out) = unsafe { (account(account_id, account_id_len)?, out_handle(out)?) };
        let mut rng = ratchetbox::os_rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let prekeys = PreKeyStore::generate(&mut rng, &identity, device_id);
        let local = LocalDevice {
            account,
            device_id,
            identity,
        };
        out.set(RbDevice { local, prekeys });
        Ok(())
    })
}

/// Frees a device (its secrets are zeroized). NULL is ignored.
///
/// # Safety
/// `device` is NULL or a live device, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_free(device: *mut RbDevice) {
    // SAFETY: the caller's contract above.
    unsafe { free(device) }
}

/// Writes the account's identity public key (32 bytes) to `out`.
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `device` is a live device; `out` points to 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_identity_key(device: *const RbDevice, out: *mut u8) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, out) = unsafe { (handle_ref(device)?, out_array::<32>(out)?) };
        out.write(&device.local.identity.public_key().to_bytes());
        Ok(())
    })
}

/// Generates a fresh one-time prekey and one-time ML-KEM prekey and writes a
/// signed bundle offering them (`RB_BUNDLE_LEN` bytes) for the server to hand
/// out once. Nothing is generated if the buffer is too small.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`, `RB_TOO_MANY_PREKEYS`,
/// `RB_PREKEY_IDS_EXHAUSTED`.
///
/// # Safety
/// `device` is a live device; `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_new_bundle(
    device: *mut RbDevice,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, mut out) = unsafe { (handle(device)?, out_buf(out, out_cap, out_len)?) };
        out.reserve(RB_BUNDLE_LEN)?;
        let mut rng = ratchetbox::os_rng();
        let RbDevice { local, prekeys } = device;
        let one_time = prekeys.generate_one_time_prekeys(&mut rng, 1)?;
        let kem = prekeys.generate_one_time_kem_prekeys(&mut rng, &local.identity, 1)?;
        let identity = local.identity.public_key();
        let one_time = one_time.first().map(|(id, _)| *id);
        let bundle =
            PreKeyBundle::from_store_with_kem(identity, prekeys, one_time, kem.first().copied());
        out.write(&bundle.encode())
    })
}

/// Decodes a bundle and checks its prekey signatures; on success writes the
/// identity key it speaks for (32 bytes) and its device id.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_DECODE_ERROR`, `RB_INVALID_SIGNATURE`.
///
/// # Safety
/// `bundle` points to `bundle_len` readable bytes; `identity_out` to 32
/// writable bytes; `device_id_out` is a writable `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_bundle_verify(
    bundle: *const u8,
    bundle_len: usize,
    identity_out: *mut u8,
    device_id_out: *mut u32,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (bundle, identity_out, mut device_id_out) = unsafe {
            (
                bytes(bundle, bundle_len)?,
                out_array::<32>(identity_out)?,
                out_value(device_id_out)?,
            )
        };
        let verified = PreKeyBundle::decode(bundle)?.verify()?;
        identity_out.write(&verified.identity_key().to_bytes());
        device_id_out.set(verified.device_id());
        Ok(())
    })
}

/// Seals the whole device (account, device id, identity, prekeys) under a
/// 32-byte storage key, for the app to persist.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `device` is a live device; `key` points to 32 readable bytes;
/// `(out, out_cap, out_len)` is an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_save(
    device: *const RbDevice,
    key: *const u8,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (device, key, mut out) = unsafe {
            (
                handle_ref(device)?,
                storage_key(key)?,
                out_buf(out, out_cap, out_len)?,
            )
        };
        let mut rng = ratchetbox::os_rng();
        // One blob: the sealed local device, then the sealed prekey store,
        // each behind a 4-byte big-endian length.
        let local = at_rest::seal(&mut rng, &key, DEVICE_SLOT, &device.local);
        let prekeys = at_rest::seal(&mut rng, &key, DEVICE_SLOT, &device.prekeys);
        let mut blob = Vec::with_capacity(8 + local.len() + prekeys.len());
        for part in [&local, &prekeys] {
            let len = u32::try_from(part.len()).map_err(|_| RbStatus::RB_MESSAGE_TOO_LARGE)?;
            blob.extend_from_slice(&len.to_be_bytes());
            blob.extend_from_slice(part);
        }
        out.write(&blob)
    })
}

/// Restores a device from what `rb_device_save` wrote.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_STORAGE_*` (`RB_STORAGE_WRONG_KEY_OR_CORRUPTED`
/// for a wrong key or an altered byte).
///
/// # Safety
/// `key` points to 32 readable bytes; `blob` to `blob_len` readable
/// bytes; `out` is a writable `RbDevice *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_device_restore(
    key: *const u8,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut RbDevice,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (key, blob, out) =
            unsafe { (storage_key(key)?, bytes(blob, blob_len)?, out_handle(out)?) };
        let (local, rest) = split_part(blob)?;
        let (prekeys, rest) = split_part(rest)?;
        if !rest.is_empty() {
            return Err(RbStatus::RB_STORAGE_DECODE);
        }
        let local: LocalDevice = at_rest::open(&key, DEVICE_SLOT, local)?;
        let prekeys: PreKeyStore = at_rest::open(&key, DEVICE_SLOT, prekeys)?;
        out.set(RbDevice { local, prekeys });
        Ok(())
    })
}

/// One length-prefixed part of a device blob, and the rest.
fn split_part(blob: &[u8]) -> Result<(&[u8], &[u8]), RbStatus> {
    let (len, rest) = blob
        .split_first_chunk::<4>()
        .ok_or(RbStatus::RB_STORAGE_TRUNCATED)?;
    let len =
        usize::try_from(u32::from_be_bytes(*len)).map_err(|_| RbStatus::RB_STORAGE_TRUNCATED)?;
    if rest.len() < len {
        return Err(RbStatus::RB_STORAGE_TRUNCATED);
    }
    Ok(rest.split_at(len))
}

/// Fills `out` with a new random 32-byte storage key (keep it in the
/// platform keystore).
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `out` points to 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_storage_key_generate(out: *mut u8) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_array::<32>(out) }?;
        let mut key = [0u8; 32];
        ratchetbox::os_rng().fill_bytes(&mut key);
        out.write(&key);
        key.fill(0);
        Ok(())
    })
}

/// Creates a new random key pair (for a trust root or a server key).
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `out` is a writable `RbKeyPair *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_keypair_generate(out: *mut *mut RbKeyPair) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_handle(out) }?;
        out.set(RbKeyPair(IdentityKeyPair::generate(
            &mut ratchetbox::os_rng(),
        )));
        Ok(())
    })
}

/// Writes a key pair's public key (32 bytes).
///
/// # Errors
/// `RB_NULL_ARGUMENT`.
///
/// # Safety
/// `keypair` is a live key pair; `out` points to 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_keypair_public_key(
    keypair: *const RbKeyPair,
    out: *mut u8,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (keypair, out) = unsafe { (handle_ref(keypair)?, out_array::<32>(out)?) };
        out.write(&keypair.0.public_key().to_bytes());
        Ok(())
    })
}

/// Frees a key pair (zeroized). NULL is ignored.
///
/// # Safety
/// `keypair` is NULL or a live key pair, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_keypair_free(keypair: *mut RbKeyPair) {
    // SAFETY: the caller's contract above.
    unsafe { free(keypair) }
}

/// Computes the safety number between this side and a contact: 60 ASCII
/// digits (not NUL-terminated), identical on both sides, and this side's
/// scannable form (`RB_SAFETY_NUMBER_SCANNABLE_LEN` bytes) for a QR code.
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT` for a bad account id,
/// `RB_DECODE_ERROR` for an invalid identity key.
///
/// # Safety
/// Account ids point to their lengths in readable bytes; identity keys to 32
/// readable bytes; `digits_out` to 60 writable bytes; `scannable_out` to
/// `RB_SAFETY_NUMBER_SCANNABLE_LEN` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_safety_number(
    local_account_id: *const u8,
    local_account_id_len: usize,
    local_identity_key: *const u8,
    remote_account_id: *const u8,
    remote_account_id_len: usize,
    remote_identity_key: *const u8,
    digits_out: *mut u8,
    scannable_out: *mut u8,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (number, digits_out, scannable_out) = unsafe {
            (
                safety_number(
                    local_account_id,
                    local_account_id_len,
                    local_identity_key,
                    remote_account_id,
                    remote_account_id_len,
                    remote_identity_key,
                )?,
                out_array::<SAFETY_NUMBER_DIGITS>(digits_out)?,
                out_array::<SCANNABLE_LEN>(scannable_out)?,
            )
        };
        digits_out.write(&number.digits());
        scannable_out.write(&number.scannable());
        Ok(())
    })
}

/// Compares a code scanned from the contact's screen with this side's safety
/// number; `*matches` is 1 on a match, 0 otherwise (including a code of
/// another safety-number version).
///
/// # Errors
/// `RB_NULL_ARGUMENT`, `RB_INVALID_ARGUMENT`, `RB_DECODE_ERROR` if `scanned`
/// is not a scannable safety number at all.
///
/// # Safety
/// As `rb_safety_number`; `scanned` points to `scanned_len` readable bytes;
/// `matches` is a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_safety_number_compare(
    local_account_id: *const u8,
    local_account_id_len: usize,
    local_identity_key: *const u8,
    remote_account_id: *const u8,
    remote_account_id_len: usize,
    remote_identity_key: *const u8,
    scanned: *const u8,
    scanned_len: usize,
    matches: *mut i32,
) -> RbStatus {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (number, scanned, mut matches) = unsafe {
            (
                safety_number(
                    local_account_id,
                    local_account_id_len,
                    local_identity_key,
                    remote_account_id,
                    remote_account_id_len,
                    remote_identity_key,
                )?,
                bytes(scanned, scanned_len)?,
                out_value(matches)?,
            )
        };
        matches.set(i32::from(
            number.compare_scanned(scanned)? == SafetyNumberMatch::Match,
        ));
        Ok(())
    })
}

/// # Safety
/// As `rb_safety_number`'s inputs.
unsafe fn safety_number(
    local_account_id: *const u8,
    local_account_id_len: usize,
    local_identity_key: *const u8,
    remote_account_id: *const u8,
    remote_account_id_len: usize,
    remote_identity_key: *const u8,
) -> Result<SafetyNumber, RbStatus> {
    // SAFETY: forwarded from the caller.
    let (local, local_key, remote, remote_key) = unsafe {
        (
            account(local_account_id, local_account_id_len)?,
            identity_key(local_identity_key)?,
            account(remote_account_id, remote_account_id_len)?,
            identity_key(remote_identity_key)?,
        )
    };
    Ok(SafetyNumber::new(&local, &local_key, &remote, &remote_key))
}

/// An identity public key from its 32 bytes.
///
/// # Safety
/// `ptr` is NULL or points to 32 readable bytes.
pub(crate) unsafe fn identity_key(ptr: *const u8) -> Result<IdentityKey, RbStatus> {
    // SAFETY: forwarded from the caller.
    let raw = unsafe { array::<32>(ptr) }?;
    Ok(IdentityKey::from_bytes(&raw)?)
}
