//! Shared fixture for the multi-device tests (`tests/devices.rs`,
//! `tests/device_properties.rs`): devices over a [`MemoryStore`], bundles as a
//! server would hand them out, message delivery, and the sealed-sender trust
//! chain.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::devices::{Decrypted, LocalDevice, OutgoingMessage, SessionManager};
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::sealed::{
    Address, DeliveryAccessKey, SenderCertificate, ServerCertificate, TrustRoot, TrustStore,
};
use ratchetbox::store::{MemoryStore, ProtocolStore};
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, IdentityKey, IdentityKeyPair, PreKeyBundle, PreKeyStore,
    PublicKey,
};

/// A device whose state lives in a [`MemoryStore`].
pub type Device = SessionManager<MemoryStore>;

/// One-time prekeys every fixture device starts with.
pub const INITIAL_ONE_TIME_PREKEYS: usize = 4;

/// A deterministic generator: the same seed gives the same keys and messages.
pub fn rng(seed: u64) -> ChaCha20Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0xd5;
    ChaCha20Rng::from_seed(bytes)
}

/// The account id `name`.
pub fn account(name: &str) -> AccountId {
    AccountId::new(name.as_bytes()).unwrap()
}

/// The address of `device` of account `name`.
pub fn addr(name: &str, device: DeviceId) -> DeviceAddress {
    DeviceAddress::new(account(name), device)
}

/// The identity seed of account `name` in install `generation` (a reinstall
/// gets a new generation, hence a new identity).
pub fn identity_seed(name: &str, generation: u8) -> [u8; 32] {
    let mut seed = [0x42u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 31] ^= b.rotate_left(i as u32 % 8);
    }
    seed[31] = generation;
    seed
}

/// The identity key pair of account `name`, install `generation`. All devices
/// of one install share it.
pub fn identity(name: &str, generation: u8) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&identity_seed(name, generation))
}

/// Device `device_id` of account `name` (first install), with
/// [`INITIAL_ONE_TIME_PREKEYS`] one-time prekeys.
pub fn device(rng: &mut ChaCha20Rng, name: &str, device_id: DeviceId) -> Device {
    device_with_identity(rng, name, device_id, identity(name, 0))
}

/// Device `device_id` of account `name` holding `identity`.
pub fn device_with_identity(
    rng: &mut ChaCha20Rng,
    name: &str,
    device_id: DeviceId,
    identity: IdentityKeyPair,
) -> Device {
    let mut prekeys = PreKeyStore::generate(rng, &identity, device_id);
    prekeys
        .generate_one_time_prekeys(rng, INITIAL_ONE_TIME_PREKEYS)
        .unwrap();
    let local = LocalDevice {
        account: account(name),
        device_id,
        identity,
    };
    SessionManager::new(local, MemoryStore::new(prekeys))
}

/// A bundle for `prekeys` as the server hands it out: through its wire
/// encoding. With `one_time`, a fresh one-time prekey and a fresh one-time KEM
/// prekey (signed by `identity`) are generated for it, so no two bundles share
/// one; without, the bundle has no one-time prekey and names the last-resort
/// KEM prekey.
pub fn publish(
    rng: &mut ChaCha20Rng,
    identity: &IdentityKeyPair,
    prekeys: &mut PreKeyStore,
    one_time: bool,
) -> PreKeyBundle {
    let (one_time_id, kem_id) = if one_time {
        let id = prekeys.generate_one_time_prekeys(rng, 1).unwrap()[0].0;
        let kem_id = prekeys
            .generate_one_time_kem_prekeys(rng, identity, 1)
            .unwrap()[0];
        (Some(id), Some(kem_id))
    } else {
        (None, None)
    };
    let bundle =
        PreKeyBundle::from_store_with_kem(identity.public_key(), prekeys, one_time_id, kem_id);
    assert_eq!(bundle.one_time_prekey().map(|(id, _)| id), one_time_id);
    assert_eq!(
        bundle.kem_prekey().id,
        kem_id.unwrap_or(prekeys.last_resort_kem_prekey().id())
    );
    PreKeyBundle::decode(&bundle.encode()).unwrap()
}

/// A fresh bundle of `device`, with a new one-time prekey and a new one-time
/// KEM prekey.
pub fn bundle_of(rng: &mut ChaCha20Rng, device: &mut Device) -> PreKeyBundle {
    // The manager lends its identity and its store only one at a time.
    let identity = IdentityKeyPair::decode(&device.local().identity.encode()).unwrap();
    publish(rng, &identity, device.store_mut().prekeys_mut(), true)
}

/// A bundle of `device` without a one-time prekey.
pub fn bundle_without_one_time(device: &Device) -> PreKeyBundle {
    let bundle = PreKeyBundle::from_store(
        device.local().identity.public_key(),
        device.store().prekeys(),
        None,
    );
    PreKeyBundle::decode(&bundle.encode()).unwrap()
}

/// `from` starts a session with `to` from a fresh bundle of `to`.
pub fn introduce(rng: &mut ChaCha20Rng, from: &mut Device, to: &mut Device) {
    let to_account = to.local().account;
    let bundle = bundle_of(rng, to);
    let started = from.process_bundle(rng, &to_account, bundle).unwrap();
    assert_eq!(started.address, to.local().address());
}

/// The one message of `outgoing` addressed to `to`.
pub fn message_for<'a>(outgoing: &'a [OutgoingMessage], to: &DeviceAddress) -> &'a [u8] {
    let mut found = outgoing.iter().filter(|o| o.address == *to);
    let message = found
        .next()
        .unwrap_or_else(|| panic!("no message for {to}"));
    assert!(found.next().is_none(), "two messages for {to}");
    &message.message
}

/// The sorted recipient addresses of `outgoing`.
pub fn recipients(outgoing: &[OutgoingMessage]) -> Vec<DeviceAddress> {
    let mut all: Vec<_> = outgoing.iter().map(|o| o.address).collect();
    all.sort();
    all
}

/// `to` decrypts its message of `outgoing`, sent by `from`.
pub fn receive<S: ProtocolStore>(
    to: &mut SessionManager<S>,
    from: &DeviceAddress,
    outgoing: &[OutgoingMessage],
) -> Decrypted {
    let me = to.local().address();
    to.decrypt(from, message_for(outgoing, &me))
        .unwrap_or_else(|e| panic!("{me} could not decrypt from {from}: {e:?}"))
}

/// The base key of the active session `device` holds with `with`.
pub fn active_base_key<S: ProtocolStore>(
    device: &SessionManager<S>,
    with: &DeviceAddress,
) -> PublicKey {
    *device
        .store()
        .session_record(with)
        .unwrap()
        .unwrap_or_else(|| panic!("{} holds no session with {with}", device.local().address()))
        .active()
        .base_key()
}

/// The base keys of the archived sessions `device` holds with `with`, most recent first.
pub fn archived_base_keys<S: ProtocolStore>(
    device: &SessionManager<S>,
    with: &DeviceAddress,
) -> Vec<PublicKey> {
    device
        .store()
        .session_record(with)
        .unwrap()
        .map(|r| r.archived().iter().map(|s| *s.base_key()).collect())
        .unwrap_or_default()
}

/// Whether `bytes` is a prekey message (rather than a ratchet message).
pub fn is_prekey_message(bytes: &[u8]) -> bool {
    matches!(
        ratchetbox::Message::parse(bytes).unwrap(),
        ratchetbox::Message::PreKey(_)
    )
}

/// A distinct plaintext for message `i` of stream `tag`, of varying length.
pub fn text(tag: &str, i: usize) -> Vec<u8> {
    let mut out = format!("{tag}#{i}:").into_bytes();
    out.extend((0..(i * 37) % 97).map(|j| (i + j) as u8));
    out
}

// ---------------------------------------------------------------------------
// Sealed sender.

/// Trust root id of the fixture server.
pub const ROOT_ID: u32 = 1;
/// Key id of the fixture server's certificate.
pub const SERVER_KEY_ID: u32 = 7;
/// When the fixture's sender certificates expire.
pub const EXPIRES: u64 = 2_000_000_000;
/// The fixture's current time.
pub const NOW: u64 = 1_700_000_000;

/// A server that certifies senders, and the trust store clients pin.
pub struct SealedServer {
    /// The server's signing key.
    pub server: IdentityKeyPair,
    /// The server key's certificate, signed by the root.
    pub server_cert: ServerCertificate,
    /// What every client trusts.
    pub trust: TrustStore,
}

impl SealedServer {
    /// The fixture server.
    pub fn new() -> Self {
        let root = IdentityKeyPair::from_seed(&[0x01; 32]);
        let server = IdentityKeyPair::from_seed(&[0x02; 32]);
        let server_cert =
            ServerCertificate::issue(ROOT_ID, &root, SERVER_KEY_ID, server.public_key());
        Self {
            trust: TrustStore::new(&[TrustRoot::new(ROOT_ID, *root.public_key())]).unwrap(),
            server,
            server_cert,
        }
    }

    /// A sender certificate for `address` with `identity`.
    pub fn certify(&self, address: &DeviceAddress, identity: &IdentityKey) -> SenderCertificate {
        SenderCertificate::issue(
            address.as_address(),
            identity,
            EXPIRES,
            &self.server,
            self.server_cert.clone(),
        )
        .unwrap()
    }

    /// A sender certificate for `device`.
    pub fn certificate_of<S: ProtocolStore>(
        &self,
        device: &SessionManager<S>,
    ) -> SenderCertificate {
        self.certify(
            &device.local().address(),
            device.local().identity.public_key(),
        )
    }
}

impl Default for SealedServer {
    fn default() -> Self {
        Self::new()
    }
}

/// Each account's delivery access key, derived from its id.
pub fn access_key(account_id: &[u8]) -> DeliveryAccessKey {
    let mut secret = [0x5a_u8; 32];
    for (i, b) in account_id.iter().enumerate() {
        secret[i % 32] = secret[i % 32].rotate_left(3) ^ b;
    }
    DeliveryAccessKey::derive(&secret)
}

/// The server's registry of access keys: every account is registered.
pub fn registry(account_id: &[u8]) -> Option<DeliveryAccessKey> {
    Some(access_key(account_id))
}

/// An owned copy of a wire address.
pub fn owned(address: Address<'_>) -> DeviceAddress {
    DeviceAddress::from_address(&address)
}
