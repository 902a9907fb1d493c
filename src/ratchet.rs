//! Double Ratchet building blocks (Signal Double Ratchet spec §3): the root,
//! chain and message keys, and the bounded store of skipped message keys.
//! [`crate::Session`] composes them.

pub(crate) mod keys;
pub(crate) mod skipped;
