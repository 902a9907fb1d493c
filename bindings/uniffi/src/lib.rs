//! UniFFI bindings of ratchetbox (work in progress).
