//! The boundary itself: panics caught, raw pointers turned into references
//! after their NULL checks, and the "needed length" protocol of output buffers.
//!
//! Every entry point validates all of its pointers before it changes anything,
//! so an `RB_NULL_ARGUMENT` or `RB_BUFFER_TOO_SMALL` never leaves a handle
//! half-updated.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ratchetbox::AccountId;
use ratchetbox::at_rest::StorageKey;
use ratchetbox::sealed::Address;

use crate::status::RbStatus;

/// Runs `body`, turning its error into a status and a panic into `RB_PANIC`:
/// nothing unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), RbStatus>) -> RbStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RbStatus::RB_OK,
        Ok(Err(status)) => status,
        Err(_) => RbStatus::RB_PANIC,
    }
}

/// The `len` bytes at `ptr` (NULL is accepted for an empty input).
///
/// # Safety
/// Unless `len` is 0, `ptr` is NULL or points to `len` readable bytes that
/// stay valid and unmodified for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], RbStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes that
    // live and stay unchanged for 'a.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A copy of the `N` bytes at `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to `N` readable bytes.
pub(crate) unsafe fn array<const N: usize>(ptr: *const u8) -> Result<[u8; N], RbStatus> {
    // SAFETY: forwarded from the caller (N readable bytes unless NULL).
    let slice = unsafe { bytes(ptr, N) }?;
    slice.try_into().map_err(|_| RbStatus::RB_INVALID_ARGUMENT)
}

/// A caller-owned output value (a length, a flag, a struct), checked for NULL
/// before any work is done and written through the raw pointer, so the
/// caller's memory may be uninitialized.
pub(crate) struct OutValue<'a, T> {
    ptr: *mut T,
    _borrow: PhantomData<&'a mut T>,
}

impl<T> OutValue<'_, T> {
    /// Writes the value (the previous one, if any, is not dropped: `T` is
    /// plain data).
    pub(crate) fn set(&mut self, value: T) {
        // SAFETY: `ptr` is non-NULL (checked in `out_value`), aligned and
        // writable for 'a by the entry point's contract.
        unsafe { self.ptr.write(value) }
    }
}

/// The output value at `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to a writable, properly aligned `T` (initialized or
/// not), not aliased by any other argument, valid for `'a`.
pub(crate) unsafe fn out_value<'a, T>(ptr: *mut T) -> Result<OutValue<'a, T>, RbStatus> {
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    Ok(OutValue {
        ptr,
        _borrow: PhantomData,
    })
}

/// A fixed-size output array.
pub(crate) struct OutArray<'a, const N: usize>(OutValue<'a, [u8; N]>);

impl<const N: usize> OutArray<'_, N> {
    /// Writes the `N` bytes.
    pub(crate) fn write(mut self, value: &[u8; N]) {
        self.0.set(*value);
    }
}

/// The `N`-byte output array at `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to `N` writable bytes, not aliased by any other
/// argument, valid for `'a`.
pub(crate) unsafe fn out_array<'a, const N: usize>(
    ptr: *mut u8,
) -> Result<OutArray<'a, N>, RbStatus> {
    // SAFETY: forwarded from the caller; `[u8; N]` has alignment 1.
    Ok(OutArray(unsafe { out_value(ptr.cast::<[u8; N]>()) }?))
}

/// A caller buffer with the "needed length" protocol: `*out_len` receives the
/// length needed, and the call fails with `RB_BUFFER_TOO_SMALL` (having
/// changed nothing else) when the capacity is short.
pub(crate) struct OutBuf<'a> {
    ptr: *mut u8,
    cap: usize,
    len: OutValue<'a, usize>,
}

impl OutBuf<'_> {
    /// Sets `*out_len` to `needed` and returns the first `needed` bytes of the
    /// buffer (zeroed, so that they are initialized), or `RB_BUFFER_TOO_SMALL`.
    pub(crate) fn reserve(&mut self, needed: usize) -> Result<&mut [u8], RbStatus> {
        self.len.set(needed);
        if needed > self.cap {
            return Err(RbStatus::RB_BUFFER_TOO_SMALL);
        }
        if needed == 0 {
            return Ok(&mut []);
        }
        // SAFETY: `ptr` is non-NULL whenever `cap` > 0 (checked in `out_buf`)
        // and points to `cap` >= `needed` writable bytes nothing else aliases;
        // zeroing them first makes the slice's bytes initialized.
        unsafe {
            self.ptr.write_bytes(0, needed);
            Ok(core::slice::from_raw_parts_mut(self.ptr, needed))
        }
    }

    /// Copies `bytes` into the buffer (the needed length is theirs).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), RbStatus> {
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Records that `written` bytes were written.
    pub(crate) fn set_len(&mut self, written: usize) {
        self.len.set(written);
    }
}

/// The output buffer `(out, out_cap, out_len)`.
///
/// # Safety
/// `out_len` is NULL or a writable `size_t`; unless `cap` is 0, `ptr` is NULL
/// or points to `cap` writable bytes (initialized or not). Neither overlaps
/// any other argument, and both stay valid for `'a`.
pub(crate) unsafe fn out_buf<'a>(
    ptr: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Result<OutBuf<'a>, RbStatus> {
    // SAFETY: forwarded from the caller.
    let len = unsafe { out_value(out_len) }?;
    if cap > 0 && ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    Ok(OutBuf { ptr, cap, len })
}

/// The caller's array of `cap` output items.
pub(crate) struct OutItems<'a, T> {
    ptr: *mut T,
    cap: usize,
    _borrow: PhantomData<&'a mut T>,
}

impl<T> OutItems<'_, T> {
    /// How many items fit.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Writes item `index` (below [`cap`](Self::cap)).
    pub(crate) fn set(&mut self, index: usize, value: T) -> Result<(), RbStatus> {
        if index >= self.cap {
            return Err(RbStatus::RB_BUFFER_TOO_SMALL);
        }
        // SAFETY: `index` < `cap`, and `ptr` (non-NULL when `cap` > 0) points
        // to `cap` writable, aligned items nothing else aliases.
        unsafe { self.ptr.add(index).write(value) };
        Ok(())
    }
}

/// The `cap` output items at `ptr` (NULL with `cap` 0 is none).
///
/// # Safety
/// Unless `cap` is 0, `ptr` is NULL or points to `cap` writable, aligned `T`s
/// (initialized or not) that nothing else aliases, valid for `'a`.
pub(crate) unsafe fn out_items<'a, T>(
    ptr: *mut T,
    cap: usize,
) -> Result<OutItems<'a, T>, RbStatus> {
    if cap > 0 && ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    Ok(OutItems {
        ptr,
        cap,
        _borrow: PhantomData,
    })
}

/// The handle behind `ptr`.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library, used by no
/// other thread during the call.
pub(crate) unsafe fn handle<'a, T>(ptr: *mut T) -> Result<&'a mut T, RbStatus> {
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL; a live handle is a valid, aligned `T` that the caller
    // lets this call use exclusively.
    Ok(unsafe { &mut *ptr })
}

/// The handle behind a `const` pointer.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library, not being
/// changed by another thread during the call.
pub(crate) unsafe fn handle_ref<'a, T>(ptr: *const T) -> Result<&'a T, RbStatus> {
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL; a live handle is a valid, aligned `T`.
    Ok(unsafe { &*ptr })
}

/// Where a new handle goes, checked before any work is done.
pub(crate) struct OutHandle<'a, T>(OutValue<'a, *mut T>);

impl<T> OutHandle<'_, T> {
    /// Moves `value` to the heap and hands it to the caller.
    pub(crate) fn set(mut self, value: T) {
        self.0.set(Box::into_raw(Box::new(value)));
    }
}

/// The `T **out` of a constructor.
///
/// # Safety
/// `ptr` is NULL or a writable, aligned `T *`, valid for `'a`.
pub(crate) unsafe fn out_handle<'a, T>(ptr: *mut *mut T) -> Result<OutHandle<'a, T>, RbStatus> {
    // SAFETY: forwarded from the caller.
    Ok(OutHandle(unsafe { out_value(ptr) }?))
}

/// Frees a handle made by [`OutHandle::set`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T`, which is not used again.
pub(crate) unsafe fn free<T>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: a live handle came from `Box::into_raw`, and the caller hands
    // over its ownership.
    let boxed = unsafe { Box::from_raw(ptr) };
    // Dropping zeroizes secrets; it does not panic, but nothing may unwind
    // into C either way.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// An account id from C.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn account(ptr: *const u8, len: usize) -> Result<AccountId, RbStatus> {
    // SAFETY: forwarded from the caller.
    let id = unsafe { bytes(ptr, len) }?;
    AccountId::new(id).map_err(|_| RbStatus::RB_INVALID_ARGUMENT)
}

/// A device address from C.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn address<'a>(
    ptr: *const u8,
    len: usize,
    device_id: u32,
) -> Result<Address<'a>, RbStatus> {
    // SAFETY: forwarded from the caller.
    let id = unsafe { bytes(ptr, len) }?;
    Address::new(id, device_id).map_err(|_| RbStatus::RB_INVALID_ARGUMENT)
}

/// A storage key from its 32 bytes.
///
/// # Safety
/// As [`array`].
pub(crate) unsafe fn storage_key(ptr: *const u8) -> Result<StorageKey, RbStatus> {
    // SAFETY: forwarded from the caller.
    let mut raw = unsafe { array::<32>(ptr) }?;
    let key = StorageKey::from_bytes(raw);
    raw.fill(0);
    Ok(key)
}

/// The `len` items at `ptr` (NULL is accepted for none).
///
/// # Safety
/// Unless `len` is 0, `ptr` is NULL or points to `len` initialized, aligned
/// `T`s that stay valid and unmodified for `'a`.
pub(crate) unsafe fn items<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], RbStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` valid `T`s for 'a.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A copy of the caller's `T`.
///
/// # Safety
/// `ptr` is NULL or points to an initialized, aligned `T`.
pub(crate) unsafe fn read<T: Copy>(ptr: *const T) -> Result<T, RbStatus> {
    if ptr.is_null() {
        return Err(RbStatus::RB_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL; the caller guarantees an initialized, aligned T.
    Ok(unsafe { *ptr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status() {
        let empty: Vec<u8> = Vec::new();
        let status = guard(|| {
            let _ = empty[usize::from(empty.is_empty())];
            Ok(())
        });
        assert_eq!(status, RbStatus::RB_PANIC);
        assert_eq!(
            guard(|| Err(RbStatus::RB_DECODE_ERROR)),
            RbStatus::RB_DECODE_ERROR
        );
        assert_eq!(guard(|| Ok(())), RbStatus::RB_OK);
    }

    #[test]
    fn a_short_buffer_reports_the_length_needed() {
        let mut buffer = [7u8; 4];
        let mut len = 0usize;
        // SAFETY: a 4-byte buffer and a local length.
        let mut out = unsafe { out_buf(buffer.as_mut_ptr(), buffer.len(), &mut len) }
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(out.write(b"hello"), Err(RbStatus::RB_BUFFER_TOO_SMALL));
        assert_eq!(out.write(b"hey"), Ok(()));
        assert_eq!((len, &buffer[..3]), (3, &b"hey"[..]));
        // SAFETY: NULL with a capacity is refused before any use.
        let null = unsafe { out_buf(core::ptr::null_mut(), 4, &mut len) };
        assert!(matches!(null, Err(RbStatus::RB_NULL_ARGUMENT)));
    }
}
