//! UniFFI bindings of ratchetbox for Kotlin, Swift and Python.
//!
//! The surface is a handful of objects, not a copy of the C API:
//! - [`Device`]: an account's device (account id, device id, identity key
//!   pair), created, linked, sealed and opened;
//! - [`SessionManager`]: sessions with every device of every contact over an
//!   in-memory store or a store the app implements ([`KeyValueStore`]);
//!   bundles, encrypt and decrypt with device fan-out, trust and identity
//!   changes, safety numbers, sender-key groups, state sealed at rest;
//! - [`Session`]: the raw hot path, one Double Ratchet session with one
//!   device (no trust records, device lists or store), one call per message;
//! - [`StorageKey`] and [`SafetyNumber`];
//! - one error type, [`RatchetboxError`], whose variants mirror the core's
//!   typed errors (each is its own exception class in Python).
//!
//! Randomness comes from the operating system. The objects are thread-safe;
//! a manager serializes its calls with a lock.
//!
//! Generate the bindings from the built library with the `uniffi-bindgen`
//! binary (feature `bindgen`); `tests/run.sh` shows the commands.

mod bench;
mod device;
mod error;
mod manager;
mod records;
mod session;
mod store;

pub use bench::{bench_rust_round_trips, bench_rust_session_round_trips};
pub use device::{
    Device, SafetyNumber, SafetyNumberComparison, StorageKey, generate_storage_key_bytes,
    safety_number,
};
pub use error::RatchetboxError;
pub use manager::SessionManager;
pub use records::{
    Decrypted, DeviceAddress, IdentityChange, OutgoingMessage, SessionStarted, SessionUse, Trust,
    TrustLevel,
};
pub use session::{AcceptedSession, Session};
pub use store::{HostStoreError, KeyValueStore, StoreWrite};

uniffi::setup_scaffolding!("ratchetbox");
