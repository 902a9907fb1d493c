//! Shared helpers for the integration tests: a deterministic random number
//! generator, identities and local devices, prekey stores, verified bundles
//! and session pairs.
//!
//! Every session is bound to both device addresses (SPEC.md §5.1): Alice is
//! device [`ALICE_DEVICE`] of account `"alice"`, Bob is device [`BOB_DEVICE`]
//! of account `"bob"`, and Bob's prekey store (hence his bundle) is for
//! [`BOB_DEVICE`], so Alice's session's remote address is `("bob", BOB_DEVICE)`.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, Error, IdentityKey, IdentityKeyPair, LocalDevice,
    PreKeyBundle, PreKeyId, PreKeyMessage, PreKeyStore, Responder, Session, SessionConfig,
    VerifiedBundle,
};

/// The generator every test uses.
pub type TestRng = ChaCha20Rng;

/// Device id of every prekey store made here, and of [`bob`].
pub const BOB_DEVICE: DeviceId = 7;

/// Device id of [`alice`] and of every other initiating device made here.
pub const ALICE_DEVICE: DeviceId = 1;

/// A deterministic generator: the same seed gives the same keys and messages.
pub fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x5a;
    ChaCha20Rng::from_seed(bytes)
}

/// A fresh identity key pair.
pub fn identity(rng: &mut TestRng) -> IdentityKeyPair {
    IdentityKeyPair::generate(rng)
}

/// The account id `name` (which must be 1 to 64 bytes).
pub fn account(name: &str) -> AccountId {
    AccountId::new(name.as_bytes()).expect("a valid account id")
}

/// Device `device_id` of account `name`, with a fresh identity.
pub fn device(rng: &mut TestRng, name: &str, device_id: DeviceId) -> LocalDevice {
    LocalDevice {
        account: account(name),
        device_id,
        identity: identity(rng),
    }
}

/// Alice: device [`ALICE_DEVICE`] of account `"alice"`, with a fresh identity.
pub fn alice(rng: &mut TestRng) -> LocalDevice {
    device(rng, "alice", ALICE_DEVICE)
}

/// Bob: device [`BOB_DEVICE`] of account `"bob"` (the device of every
/// [`prekey_store`]), with a fresh identity.
pub fn bob(rng: &mut TestRng) -> LocalDevice {
    device(rng, "bob", BOB_DEVICE)
}

/// A prekey store for `identity` and device [`BOB_DEVICE`] holding `one_time`
/// one-time prekeys, with the ids of those prekeys in order.
pub fn prekey_store(
    rng: &mut TestRng,
    identity: &IdentityKeyPair,
    one_time: usize,
) -> (PreKeyStore, Vec<PreKeyId>) {
    let mut store = PreKeyStore::generate(rng, identity, BOB_DEVICE);
    let ids = store
        .generate_one_time_prekeys(rng, one_time)
        .expect("store has room")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    (store, ids)
}

/// The bundle a server would hand out for `store`, sent through its wire
/// encoding and verified against the identity the initiator expects.
pub fn verified_bundle(
    identity: &IdentityKeyPair,
    store: &PreKeyStore,
    one_time: Option<PreKeyId>,
) -> VerifiedBundle {
    let published = PreKeyBundle::from_store(identity.public_key(), store, one_time);
    PreKeyBundle::decode(&published.encode())
        .expect("bundle decodes")
        .verify_for(identity.public_key())
        .expect("bundle verifies")
}

/// Parses bytes that must be a prekey message.
pub fn prekey_message(wire: &[u8]) -> PreKeyMessage<'_> {
    PreKeyMessage::parse(wire).expect("a well-formed prekey message")
}

/// Runs [`Responder::accept`] as `local` on `wire`, which the transport says
/// came from device `from`, with the given limits.
pub fn accept(
    local: &LocalDevice,
    store: &mut PreKeyStore,
    from: &DeviceAddress,
    wire: &[u8],
    config: SessionConfig,
) -> Result<(Session, Vec<u8>), Error> {
    Responder::new(local, store)
        .with_config(config)
        .accept(from, &prekey_message(wire))
}

/// Runs an accept as `local` of `wire` from `from` (with `config`, and
/// requiring `expected_initiator` if given) that must fail, checks that the
/// prekey store's encoding did not change, and returns the error.
#[allow(clippy::too_many_arguments)]
pub fn rejected_accept(
    local: &LocalDevice,
    store: &mut PreKeyStore,
    from: &DeviceAddress,
    wire: &[u8],
    config: SessionConfig,
    expected_initiator: Option<&IdentityKey>,
) -> Error {
    let before = store.encode().to_vec();
    let message = prekey_message(wire);
    let mut responder = Responder::new(local, store).with_config(config);
    if let Some(expected) = expected_initiator {
        responder = responder.expect_initiator(expected);
    }
    let error = responder
        .accept(from, &message)
        .expect_err("the accept must fail");
    assert_eq!(
        store.encode().to_vec(),
        before,
        "a failed accept ({error:?}) changed the prekey store"
    );
    error
}

/// Runs a decrypt that must fail, checks that the session's encoding did not
/// change, and returns the error.
pub fn rejected(session: &mut Session, wire: &[u8]) -> Error {
    let before = session.encode().to_vec();
    let error = session.decrypt(wire).expect_err("the decrypt must fail");
    assert_eq!(
        session.encode().to_vec(),
        before,
        "a failed decrypt ({error:?}) changed the session"
    );
    error
}

/// A distinct, non-empty plaintext for message `i` of stream `tag`, of varying
/// length (up to a few hundred bytes).
pub fn text(tag: &str, i: usize) -> Vec<u8> {
    let mut out = format!("{tag}#{i}:").into_bytes();
    out.extend((0..(i * 37) % 211).map(|j| (i + j) as u8));
    out
}

/// Everything for a conversation between Alice (initiator) and Bob (responder).
pub struct Pair {
    /// The generator both sides draw from.
    pub rng: TestRng,
    /// Alice's device (see [`alice`]).
    pub alice_device: LocalDevice,
    /// Bob's device (see [`bob`]); his prekey store is for it.
    pub bob_device: LocalDevice,
    /// Bob's prekeys after accepting Alice's first message.
    pub bob_prekeys: PreKeyStore,
    /// Alice's session.
    pub alice: Session,
    /// Bob's session.
    pub bob: Session,
}

impl Pair {
    /// Alice initiated with a one-time prekey and both sides use `config`; Bob
    /// accepted her first message, `"hello"`. Alice is still awaiting a reply.
    pub fn started(seed: u64, config: SessionConfig) -> Self {
        let mut rng = rng(seed);
        let alice_device = alice(&mut rng);
        let bob_device = bob(&mut rng);
        let (mut bob_prekeys, ids) = prekey_store(&mut rng, &bob_device.identity, 2);
        let bundle = verified_bundle(&bob_device.identity, &bob_prekeys, Some(ids[0]));
        let mut alice = Session::initiate_with_config(
            &mut rng,
            &alice_device,
            &bob_device.account,
            &bundle,
            config,
        )
        .unwrap();
        let first = alice.encrypt(&mut rng, b"hello").unwrap();
        let (bob, plaintext) = accept(
            &bob_device,
            &mut bob_prekeys,
            &alice_device.address(),
            &first,
            config,
        )
        .unwrap();
        assert_eq!(plaintext, b"hello");
        assert_eq!(alice.remote_address(), &bob_device.address());
        assert_eq!(bob.remote_address(), &alice_device.address());
        Self {
            rng,
            alice_device,
            bob_device,
            bob_prekeys,
            alice,
            bob,
        }
    }

    /// [`started`](Self::started), then Bob replied `"hi"` and Alice decrypted it:
    /// both sides have ratcheted and send ratchet messages.
    pub fn established(seed: u64, config: SessionConfig) -> Self {
        let mut pair = Self::started(seed, config);
        let reply = pair.bob_sends(b"hi");
        assert_eq!(pair.alice_receives(&reply).unwrap(), b"hi");
        assert!(!pair.alice.is_awaiting_reply());
        pair
    }

    /// Alice encrypts.
    pub fn alice_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.alice.encrypt(&mut self.rng, plaintext).unwrap()
    }

    /// Bob encrypts.
    pub fn bob_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.bob.encrypt(&mut self.rng, plaintext).unwrap()
    }

    /// Alice decrypts.
    pub fn alice_receives(&mut self, wire: &[u8]) -> Result<Vec<u8>, Error> {
        self.alice.decrypt(wire)
    }

    /// Bob decrypts.
    pub fn bob_receives(&mut self, wire: &[u8]) -> Result<Vec<u8>, Error> {
        self.bob.decrypt(wire)
    }

    /// Bob decrypts a message that must be rejected without changing his session.
    pub fn bob_rejects(&mut self, wire: &[u8]) -> Error {
        rejected(&mut self.bob, wire)
    }

    /// Alice decrypts a message that must be rejected without changing her session.
    pub fn alice_rejects(&mut self, wire: &[u8]) -> Error {
        rejected(&mut self.alice, wire)
    }
}
