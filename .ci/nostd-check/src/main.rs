//! A freestanding binary that links ratchetbox without std.
#![no_std]
#![no_main]

use core::alloc::{GlobalAlloc, Layout};
use core::panic::PanicInfo;

/// Never run: it only has to link. An allocator that always fails is enough.
struct NoAlloc;

unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

/// The precompiled `alloc` refers to the unwinding personality even under
/// `panic = "abort"`; nothing here unwinds, so a stub satisfies the linker.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let identity = ratchetbox::IdentityKeyPair::from_seed(&[7; 32]);
    let blob = identity.encode();
    core::hint::black_box(&blob);
    let parsed = ratchetbox::Message::parse(core::hint::black_box(&[1u8; 60]));
    core::hint::black_box(&parsed);
    loop {}
}
