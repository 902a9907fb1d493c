//! The C ABI of ratchetbox (work in progress).
