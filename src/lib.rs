//! # ratchetbox
//!
//! End-to-end encryption for messengers: identity keys, signed and one-time
//! prekeys, a hybrid post-quantum handshake (PQXDH: X25519 with ML-KEM-768) and
//! Double Ratchet sessions, built to the byte-level specification in `SPEC.md`.
//!
//! ```
//! use ratchetbox::{AccountId, IdentityKeyPair, LocalDevice, Message, PreKeyBundle, PreKeyStore, Responder, Session};
//!
//! let mut rng = ratchetbox::os_rng();
//! let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity: IdentityKeyPair::generate(&mut rng) };
//! let bob = LocalDevice { account: AccountId::new(b"bob")?, device_id: 1, identity: IdentityKeyPair::generate(&mut rng) };
//!
//! // Bob publishes a bundle (through a server, in real life).
//! let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
//! let one_time = bob_prekeys.generate_one_time_prekeys(&mut rng, 1)?;
//! let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, Some(one_time[0].0));
//!
//! // Alice verifies it and starts a session with bob/1; her first message
//! // carries the handshake. The session is bound to both device addresses.
//! let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle.verify()?)?;
//! let wire = alice_session.encrypt(&mut rng, b"hello Bob")?;
//!
//! // Bob accepts it (the server said it came from alice/1), which creates his side.
//! let Message::PreKey(first) = Message::parse(&wire)? else { unreachable!() };
//! let (mut bob_session, plaintext) =
//!     Responder::new(&bob, &mut bob_prekeys).accept(&alice.address(), &first)?;
//! assert_eq!(plaintext, b"hello Bob");
//!
//! // From here on both sides ratchet.
//! let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
//! assert_eq!(alice_session.decrypt(&reply)?, b"hi Alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! New here? The [`guide`] walks an app through setup, prekeys, the server's
//! part, 1:1 and group messages, persistence, identity changes, backup and
//! restore, and linking devices, with a running example for each step.
//!
//! Beyond 1:1 sessions:
//! - [`sealed`]: sealed-sender envelopes. The server learns the recipient and a
//!   padded length, validates envelopes and splits multi-recipient ones without
//!   any key or allocation; recipients learn the certified sender.
//! - [`group`]: sender-key groups. Each member device's chain is distributed once;
//!   every group message is then encrypted and signed once.
//!
//! ## Design
//! - One module, `crypto`, touches the primitive crates and names every label.
//! - Wire and stored formats are parsed by code that holds no keys.
//! - Secrets zeroize on drop, never print, and are neither `Clone` nor `Copy`.
//! - Decryption is transactional: on any error the session is unchanged.
//! - Every buffer an attacker can grow is bounded by a named constant or a
//!   [`SessionConfig`] limit.
//!
//! Randomness always comes from a caller-supplied [`rand_core::CryptoRng`]; with
//! the default `std` feature, [`os_rng`] gives the operating system's generator.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod account;
pub mod at_rest;
mod bundle;
mod codec;
mod crypto;
pub mod devices;
mod error;
pub mod group;
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}
mod identity;
mod local;
mod message;
mod plaintext;
mod prekey;
pub mod provisioning;
mod ratchet;
mod safety;
pub mod sealed;
mod session;
pub mod store;
pub mod trust;
mod x3dh;

pub use account::{AccountId, DeviceAddress};
pub use bundle::{
    BUNDLE_LEN_WITH_ONE_TIME, BUNDLE_LEN_WITHOUT_ONE_TIME, BundleKemPreKey, PreKeyBundle,
    VerifiedBundle,
};
pub use crypto::kem::{KEM_CIPHERTEXT_LEN, KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN, KemPublicKey};
pub use crypto::{KEY_LEN, NONCE_LEN, PublicKey, SIGNATURE_LEN, TAG_LEN};
pub use error::{DecodeError, Error};
pub use identity::{DeviceId, IdentityKey, IdentityKeyPair};
pub use local::LocalDevice;
pub use message::{
    HEADER_LEN, Header, Message, PREKEY_MESSAGE_OVERHEAD, PREKEY_PREFIX_LEN, PreKeyMessage,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage,
};
pub use plaintext::Plaintext;
pub use prekey::{
    KemPreKey, KemPreKeyKind, MAX_ACCEPTED_BASE_KEYS, MAX_ONE_TIME_KEM_PREKEYS,
    MAX_ONE_TIME_PREKEYS, MAX_RETIRED_SIGNED_PREKEYS, OneTimePreKey, PreKeyId, PreKeyStore,
    SignedPreKey,
};
pub use rand_core;
pub use safety::{
    SAFETY_NUMBER_DIGITS, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION, SCANNABLE_LEN,
    SafetyNumber, SafetyNumberMatch,
};
pub use session::{MAX_PREVIOUS_RATCHET_KEYS, Responder, Role, Session, SessionConfig};
pub use trust::{IdentityChange, Observation, TrustRecord, TrustState};

/// The README's Rust code, compiled and run as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Internal values for known-answer vectors and fuzzing. Not a stable API;
/// never enable the `hazmat` feature in an application.
#[cfg(feature = "hazmat")]
#[doc(hidden)]
pub mod hazmat;

/// Entry points for the fuzz targets and the corpus replay test. Not a stable API.
#[cfg(all(feature = "hazmat", feature = "std"))]
#[doc(hidden)]
pub mod fuzzing;

/// The operating system's random number generator, as a [`rand_core::CryptoRng`].
///
/// It panics if the operating system cannot supply randomness, which no
/// protocol could continue safely without anyway.
///
/// ```
/// use ratchetbox::IdentityKeyPair;
/// let mut rng = ratchetbox::os_rng();
/// let alice = IdentityKeyPair::generate(&mut rng);
/// let bob = IdentityKeyPair::generate(&mut rng);
/// assert_ne!(alice.public_key(), bob.public_key());
/// ```
#[cfg(feature = "std")]
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A deterministic generator for unit tests.
#[cfg(test)]
pub(crate) fn test_rng(seed: u8) -> chacha20::ChaCha20Rng {
    use rand_core::SeedableRng;
    chacha20::ChaCha20Rng::from_seed([seed; 32])
}
