//! Alice (phone and desktop) and Bob (phone) through the session manager.
//!
//! Every device is a [`SessionManager`] over a [`MemoryStore`]. The "server"
//! certifies senders, keeps the device lists and prekey bundles, and validates
//! and splits sealed envelopes; it never holds a key that opens one. Each
//! message is one multi-recipient sealed envelope: one part per device of the
//! recipient plus one per other device of the sender, so Alice's devices stay
//! in sync. Every bundle carries a one-time prekey and a signed one-time
//! ML-KEM-768 prekey, so each session starts with the hybrid PQXDH handshake
//! and spends one of each.
//!
//! It walks through:
//! 1. Alice's phone links her desktop (link request, sealed identity,
//!    confirmation codes); the desktop picks its own device id and prekeys;
//! 2. Bob registers a phone;
//! 3. fan-out: Alice's phone writes (Bob's phone and Alice's desktop read it);
//!    Bob replies before he knows Alice's desktop (`DeviceListMismatch`: fetch
//!    its bundle, retry) and both of her devices read it; the desktop writes;
//! 4. safety numbers: both phones show the same digits, the scanned code
//!    matches, Alice marks Bob verified;
//! 5. Bob reinstalls with a new identity key: Alice's phone (verified) blocks
//!    until the user accepts the new key; her desktop (never verified) only
//!    reports the change;
//! 6. all state sealed at rest (each blob bound to its slot), restored,
//!    re-sealed under a new key, and used.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example devices
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::error::Error as StdError;

use ratchetbox::at_rest::{self, StateKind, StorageError, StorageKey};
use ratchetbox::devices::{
    Decrypted, DeviceError, LocalDevice, Sealing, SessionManager, SessionUse,
};
use ratchetbox::provisioning::{self, LinkRequest, ProvisioningError};
use ratchetbox::rand_core::{CryptoRng, Rng};
use ratchetbox::sealed::{
    self, DeliveryAccessKey, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot,
    TrustStore, ValidatedEnvelope,
};
use ratchetbox::store::MemoryStore;
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, IdentityChange, IdentityKey, IdentityKeyPair, PreKeyBundle,
    PreKeyStore, SafetyNumberMatch, TrustState,
};

type Result<T> = std::result::Result<T, Box<dyn StdError>>;

/// The fixed "current time" (2026-01-01T00:00:00Z), in seconds.
const NOW: u64 = 1_767_225_600;
const DAY: u64 = 24 * 60 * 60;
const ROOT_ID: u32 = 1;
const ONE_TIME_PREKEYS: usize = 4;

/// Returns an error naming the condition unless it holds.
macro_rules! check {
    ($condition:expr) => {
        if !$condition {
            return Err(concat!("check failed: ", stringify!($condition)).into());
        }
    };
}

/// The server: device lists, bundles, access keys, mailboxes. Nothing secret.
struct Server {
    key: IdentityKeyPair,
    certificate: ServerCertificate,
    /// Registered devices (the keys) and their unclaimed bundles, encoded.
    bundles: BTreeMap<DeviceAddress, VecDeque<Vec<u8>>>,
    access_keys: BTreeMap<Vec<u8>, DeliveryAccessKey>,
    mailboxes: BTreeMap<DeviceAddress, VecDeque<Vec<u8>>>,
}

impl Server {
    fn certify(&self, address: DeviceAddress, identity: &IdentityKey) -> Result<SenderCertificate> {
        let address = address.as_address();
        let server = self.certificate.clone();
        let certificate = SenderCertificate::issue(address, identity, NOW + DAY, &self.key, server);
        Ok(certificate?)
    }

    fn device_list(&self, account: &AccountId) -> Vec<DeviceId> {
        let devices = self.bundles.keys().filter(|a| a.account() == account);
        devices.map(DeviceAddress::device_id).collect()
    }

    /// Hands out a bundle (and so a one-time prekey and a one-time KEM prekey)
    /// once.
    fn fetch_bundle(&mut self, address: &DeviceAddress) -> Result<PreKeyBundle> {
        let bundles = self.bundles.get_mut(address);
        let wire = bundles
            .and_then(VecDeque::pop_front)
            .ok_or("no bundle left")?;
        Ok(PreKeyBundle::decode(&wire)?)
    }

    /// Validates a multi-recipient envelope, splits it and queues the parts.
    fn submit(&mut self, envelope: &[u8]) -> Result<()> {
        let keys = |account: &[u8]| self.access_keys.get(account).cloned();
        let policy = ServerPolicy::default();
        let ValidatedEnvelope::Multi(multi) = sealed::validate(envelope, &policy, &keys)? else {
            return Err("expected a multi-recipient envelope".into());
        };
        let mut parts = Vec::new();
        for part in multi.parts() {
            let to = DeviceAddress::from_address(&part.recipient());
            check!(self.bundles.contains_key(&to));
            let mut bytes = vec![0; part.len()];
            part.write_to(&mut bytes)?;
            parts.push((to, bytes));
        }
        let list: Vec<String> = parts
            .iter()
            .map(|(to, b)| format!("{to}:{}", b.len()))
            .collect();
        let size = envelope.len();
        println!(
            "  server: {size} bytes, sender unknown, token ok -> {}",
            list.join(" ")
        );
        for (to, bytes) in parts {
            self.mailboxes.entry(to).or_default().push_back(bytes);
        }
        Ok(())
    }
}

struct Device {
    name: &'static str,
    manager: SessionManager<MemoryStore>,
    certificate: SenderCertificate,
}

impl Device {
    fn address(&self) -> DeviceAddress {
        self.manager.local().address()
    }

    fn identity_key(&self) -> IdentityKey {
        *self.manager.local().identity.public_key()
    }

    fn trust(&self, account: &AccountId) -> Result<TrustState> {
        let record = self.manager.trust_record(account)?;
        Ok(*record.ok_or("no trust record")?.state())
    }
}

/// The server, and what every app knows besides its own state: the pinned
/// root, and the delivery access keys contacts gave each other.
struct World<R> {
    rng: R,
    server: Server,
    trust: TrustStore,
    access_keys: BTreeMap<AccountId, DeliveryAccessKey>,
}

impl<R: CryptoRng> World<R> {
    /// A new device uploads one bundle per one-time prekey (each with a
    /// one-time KEM prekey of its own) and gets its sender certificate.
    fn register(
        &mut self,
        name: &'static str,
        account: AccountId,
        identity: IdentityKeyPair,
        prekeys: PreKeyStore,
    ) -> Result<Device> {
        let mut store = MemoryStore::new(prekeys);
        let prekeys = store.prekeys_mut();
        let one_time = prekeys.generate_one_time_prekeys(&mut self.rng, ONE_TIME_PREKEYS)?;
        let one_time_kem =
            prekeys.generate_one_time_kem_prekeys(&mut self.rng, &identity, ONE_TIME_PREKEYS)?;
        let bundle = |id, kem| {
            let prekeys = store.prekeys();
            PreKeyBundle::from_store_with_kem(identity.public_key(), prekeys, Some(id), Some(kem))
        };
        let pairs = one_time.iter().zip(&one_time_kem);
        let bundles = pairs.map(|((id, _), kem)| bundle(*id, *kem).encode());
        let device_id = store.prekeys().device_id();
        let address = DeviceAddress::new(account, device_id);
        self.server.bundles.insert(address, bundles.collect());
        let certificate = self.server.certify(address, identity.public_key())?;
        println!(
            "{name} registers as {address}, identity {:?}",
            identity.public_key()
        );
        let local = LocalDevice {
            account,
            device_id,
            identity,
        };
        let manager = SessionManager::new(local, store);
        Ok(Device {
            name,
            manager,
            certificate,
        })
    }

    /// A phone: a new identity, device id 1.
    fn new_phone(&mut self, name: &'static str, account: AccountId) -> Result<Device> {
        let identity = IdentityKeyPair::generate(&mut self.rng);
        let prekeys = PreKeyStore::generate(&mut self.rng, &identity, 1);
        self.register(name, account, identity, prekeys)
    }

    /// Fetches a device's bundle and starts a session with it.
    fn start_session(
        &mut self,
        device: &mut Device,
        to: DeviceAddress,
    ) -> Result<Option<IdentityChange>> {
        let bundle = self.server.fetch_bundle(&to)?;
        let started = device
            .manager
            .process_bundle(&mut self.rng, to.account(), bundle)?;
        println!(
            "  {} fetched the bundle of {to}: session started",
            device.name
        );
        Ok(started.identity_change)
    }

    /// Encrypts for every listed device of `to` and of the sender's account,
    /// in one envelope; the manager combines the tokens of the accounts in it.
    fn encrypt(
        &mut self,
        from: &mut Device,
        to: &AccountId,
        text: &str,
    ) -> std::result::Result<Vec<u8>, DeviceError> {
        let me = from.address();
        let to_devices = self.server.device_list(to);
        let own_devices = self.server.device_list(me.account());
        let access_keys = |account: &AccountId| self.access_keys.get(account).cloned();
        let sealing = Sealing {
            certificate: &from.certificate,
            access_keys: &access_keys,
        };
        from.manager.encrypt_sealed(
            &mut self.rng,
            to,
            text.as_bytes(),
            &to_devices,
            &own_devices,
            &sealing,
        )
    }

    /// `from` sends `text` as one envelope; the server splits it.
    fn send(&mut self, from: &mut Device, to: &AccountId, text: &str) -> Result<()> {
        println!("{} writes: {text:?}", from.name);
        let envelope = self.encrypt(from, to, text)?;
        self.server.submit(&envelope)
    }

    /// Each of `receivers` opens the one part waiting for it; the certified
    /// sender and the text are checked.
    fn deliver(
        &mut self,
        from: &Device,
        text: &str,
        receivers: &mut [&mut Device],
    ) -> Result<Vec<Decrypted>> {
        let mut received = Vec::new();
        for device in receivers {
            let mailbox = self.server.mailboxes.get_mut(&device.address());
            let part = mailbox.and_then(VecDeque::pop_front).ok_or("no part")?;
            let (sender, got) = device.manager.open_sealed(&part, &self.trust, NOW)?;
            let (name, session) = (device.name, got.session);
            println!("  {name:<15} <- {sender:<8} reads it ({session:?} session)");
            check!(sender == from.address() && got.plaintext == text.as_bytes());
            received.push(got);
        }
        Ok(received)
    }
}

fn lock(state: &TrustState) -> &'static str {
    match state {
        TrustState::Unverified => "grey lock (unverified)",
        TrustState::Verified => "green lock (verified)",
        TrustState::Changed {
            was_verified: true, ..
        } => "red lock (changed, blocked)",
        TrustState::Changed { .. } => "red lock (changed, notice only)",
    }
}

/// Where each blob is kept, bound into it when sealed: a blob opens only at
/// the slot it was sealed for, so the app cannot be fooled into reading one
/// blob in place of another.
const LOCAL_DEVICE_SLOT: &[u8] = b"local device";
const STORE_SLOT: &[u8] = b"device store";

/// A device's state at rest: two sealed blobs (the local device — account,
/// device id and identity — and the store, each in its own slot), and the
/// storage key (kept in the platform keystore).
struct Saved {
    name: &'static str,
    key: StorageKey,
    identity: Vec<u8>,
    store: Vec<u8>,
}

fn save(rng: &mut impl CryptoRng, device: Device) -> Saved {
    let (local, store) = device.manager.into_parts();
    let key = StorageKey::generate(rng);
    let identity = at_rest::seal(rng, &key, LOCAL_DEVICE_SLOT, &local);
    let sealed_store = at_rest::seal(rng, &key, STORE_SLOT, &store);
    let sessions = store.session_addresses().count();
    let prekeys = store.prekeys().one_time_prekey_count();
    let kem_prekeys = store.prekeys().one_time_kem_prekey_count();
    println!(
        "  {:<15} device {} bytes, store {} bytes ({sessions} sessions, {prekeys} one-time prekeys, \
         {kem_prekeys} one-time KEM prekeys)",
        device.name,
        identity.len(),
        sealed_store.len(),
    );
    Saved {
        name: device.name,
        key,
        identity,
        store: sealed_store,
    }
}

fn restore(server: &Server, saved: &Saved) -> Result<Device> {
    let local: LocalDevice = at_rest::open(&saved.key, LOCAL_DEVICE_SLOT, &saved.identity)?;
    let store: MemoryStore = at_rest::open(&saved.key, STORE_SLOT, &saved.store)?;
    let certificate = server.certify(local.address(), local.identity.public_key())?;
    println!("  {:<15} restored as {}", saved.name, local.address());
    let manager = SessionManager::new(local, store);
    Ok(Device {
        name: saved.name,
        manager,
        certificate,
    })
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() -> Result<()> {
    let mut rng = ratchetbox::os_rng();
    let root = IdentityKeyPair::generate(&mut rng);
    let key = IdentityKeyPair::generate(&mut rng);
    let certificate = ServerCertificate::issue(ROOT_ID, &root, 7, key.public_key());
    let server = Server {
        key,
        certificate,
        bundles: BTreeMap::new(),
        access_keys: BTreeMap::new(),
        mailboxes: BTreeMap::new(),
    };
    let trust = TrustStore::new(&[TrustRoot::new(ROOT_ID, *root.public_key())])?;
    let mut w = World {
        rng,
        server,
        trust,
        access_keys: BTreeMap::new(),
    };
    let (alice, bob) = (AccountId::new(b"alice")?, AccountId::new(b"bob")?);

    // ---------------------------------------------------------------------
    section("1. Alice's phone links her desktop");
    let mut phone = w.new_phone("alice's phone", alice)?;
    let mut request = LinkRequest::new(&mut w.rng);
    let code = request.code();
    let len = code.len();
    println!("the desktop shows a QR code: {len} bytes (its link key and link secret)");
    let identity = &phone.manager.local().identity;
    let (payload, on_phone) = provisioning::provision(&mut w.rng, identity, &alice, &[1], &*code)?;
    let len = payload.len();
    println!("the phone scans it and seals the identity to it: {len} bytes");
    let provisioned = request.accept(&payload)?;
    let on_desktop = *provisioned.confirmation_code();
    println!("confirmation codes: phone shows {on_phone}, desktop shows {on_desktop}");
    check!(on_phone == on_desktop && provisioned.identity_key() == identity.public_key());
    let replay = request.accept(&payload).err();
    println!("the same payload again: {replay:?}");
    check!(replay == Some(ProvisioningError::AlreadyCompleted));
    let linked = provisioned.into_device(&mut w.rng);
    let name = "alice's desktop";
    let mut desktop = w.register(name, linked.account, linked.identity, linked.prekeys)?;
    check!(desktop.identity_key() == phone.identity_key());

    // ---------------------------------------------------------------------
    section("2. Bob registers a phone");
    let mut bob_phone = w.new_phone("bob's phone", bob)?;
    for account in [alice, bob] {
        let mut secret = [0u8; 32];
        w.rng.fill_bytes(&mut secret);
        let key = DeliveryAccessKey::derive(&secret);
        let id = account.as_bytes().to_vec();
        w.server.access_keys.insert(id, key.clone());
        w.access_keys.insert(account, key);
    }
    let (alice_list, bob_list) = (w.server.device_list(&alice), w.server.device_list(&bob));
    println!("server device lists: alice {alice_list:?}, bob {bob_list:?}");
    println!("alice and bob registered delivery access keys and gave them to each other");

    // ---------------------------------------------------------------------
    section("3. One sealed envelope per message, fanned out to every device");
    let bob1 = bob_phone.address();
    w.start_session(&mut phone, bob1)?;
    w.start_session(&mut phone, desktop.address())?;
    let text = "Hi Bob! Writing from my phone.";
    w.send(&mut phone, &bob, text)?;
    w.deliver(&phone, text, &mut [&mut bob_phone, &mut desktop])?;

    println!("bob's phone knows alice/1 (from her message); the server also lists her desktop");
    let text = "Hi Alice, on both of your screens!";
    let missing = match w.encrypt(&mut bob_phone, &alice, text) {
        Err(DeviceError::DeviceListMismatch { missing, stale }) => {
            let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
            let names = names.join(" ");
            println!("  refused: DeviceListMismatch, missing [{names}], stale {stale:?}");
            check!(missing == [desktop.address()] && stale.is_empty());
            missing
        }
        other => return Err(format!("expected a device-list mismatch, got {other:?}").into()),
    };
    for address in missing {
        w.start_session(&mut bob_phone, address)?;
    }
    w.send(&mut bob_phone, &alice, text)?;
    w.deliver(&bob_phone, text, &mut [&mut phone, &mut desktop])?;
    let text = "And this is my desktop.";
    w.send(&mut desktop, &bob, text)?;
    w.deliver(&desktop, text, &mut [&mut bob_phone, &mut phone])?;
    let devices = bob_phone.manager.session_devices(&alice)?;
    println!("bob's phone has sessions with alice's devices {devices:?}");

    // ---------------------------------------------------------------------
    section("4. Safety numbers: Alice verifies Bob");
    let on_alice = phone.manager.safety_number(&bob)?;
    let on_bob = bob_phone.manager.safety_number(&alice)?;
    println!("alice's phone shows {on_alice}");
    println!("bob's phone shows   {on_bob}");
    check!(on_alice.digits() == on_bob.digits());
    let scanned = on_alice.compare_scanned(&on_bob.scannable())?;
    println!("alice scans the code on bob's screen: {scanned:?}");
    check!(scanned == SafetyNumberMatch::Match);
    println!("alice's phone showed a {}", lock(&phone.trust(&bob)?));
    let old_key = bob_phone.identity_key();
    phone.manager.mark_verified(&bob, &old_key)?;
    let state = phone.trust(&bob)?;
    println!("alice marks bob verified: a {}", lock(&state));
    check!(state == TrustState::Verified);
    let state = desktop.trust(&bob)?;
    println!(
        "her desktop keeps its own trust records: a {}",
        lock(&state)
    );
    check!(state == TrustState::Unverified);

    // ---------------------------------------------------------------------
    section("5. Bob reinstalls: new identity key");
    drop(bob_phone);
    let mut bob_phone = w.new_phone("bob's phone", bob)?;
    let new_key = bob_phone.identity_key();
    println!("(was {old_key:?}); his contacts are told to fetch his bundle");
    let bundle = w.server.fetch_bundle(&bob1)?;
    let rng = &mut w.rng;
    match phone.manager.process_bundle(rng, &bob, bundle.clone()) {
        Err(e @ DeviceError::UntrustedIdentity { .. }) => println!("alice's phone: {e}"),
        other => return Err(format!("expected UntrustedIdentity, got {other:?}").into()),
    }
    let state = phone.trust(&bob)?;
    println!("  {state:?}: a {}", lock(&state));
    let blocking = TrustState::Changed {
        previous: old_key,
        was_verified: true,
    };
    check!(state == blocking);
    match w.encrypt(&mut phone, &bob, "Bob?") {
        Err(e @ DeviceError::UntrustedIdentity { .. }) => println!("  sending is blocked: {e}"),
        other => return Err(format!("expected sending to be blocked, got {other:?}").into()),
    }
    let new_number = phone.manager.safety_number(&bob)?;
    println!("  the app shows the new safety number {new_number}");
    check!(new_number.digits() != on_alice.digits());
    phone.manager.accept_identity(&bob, &new_key)?;
    let state = phone.trust(&bob)?;
    println!("  alice accepts the new key: a {}", lock(&state));
    check!(state == TrustState::Unverified);
    let started = phone.manager.process_bundle(&mut w.rng, &bob, bundle)?;
    let address = started.address;
    println!("  the same bundle now starts a session with {address}");

    println!("alice's desktop (it never verified bob) fetches his new bundle too:");
    let change = w.start_session(&mut desktop, bob1)?;
    let change = change.ok_or("no identity change reported")?;
    let (from, to) = (change.previous, change.new);
    println!("  not blocked; identity_change {from:?} -> {to:?}, was_verified false");
    check!(from == old_key && to == new_key && !change.was_verified);
    println!("  her desktop shows a {}", lock(&desktop.trust(&bob)?));

    let text = "Welcome back, Bob.";
    w.send(&mut phone, &bob, text)?;
    let got = w.deliver(&phone, text, &mut [&mut bob_phone, &mut desktop])?;
    check!(got[0].session == SessionUse::Created && got[0].identity_change.is_none());
    let text = "New key noted here too.";
    w.send(&mut desktop, &bob, text)?;
    w.deliver(&desktop, text, &mut [&mut bob_phone, &mut phone])?;
    desktop.manager.accept_identity(&bob, &new_key)?;
    println!(
        "her desktop dismisses the notice: a {}",
        lock(&desktop.trust(&bob)?)
    );

    // ---------------------------------------------------------------------
    section("6. State sealed at rest, restored, re-sealed under a new key");
    let rng = &mut w.rng;
    let mut saved = [save(rng, phone), save(rng, desktop), save(rng, bob_phone)];
    println!("the apps stop: only the blobs (and the keystore's storage keys) remain");
    let first = &saved[0];
    let wrong_key = StorageKey::generate(rng);
    let wrong = at_rest::open::<LocalDevice>(&wrong_key, LOCAL_DEVICE_SLOT, &first.identity);
    let wrong = wrong.err();
    println!("  a device blob under a wrong key: {wrong:?}");
    check!(wrong == Some(StorageError::WrongKeyOrCorrupted));
    let swapped = at_rest::open::<LocalDevice>(&first.key, LOCAL_DEVICE_SLOT, &first.store).err();
    println!("  a store blob opened as a device: {swapped:?}");
    let found = StateKind::DeviceStore.to_byte();
    let expected = StateKind::LocalDevice;
    check!(swapped == Some(StorageError::WrongKind { expected, found }));
    let moved = at_rest::open::<MemoryStore>(&first.key, b"", &first.store).err();
    println!("  a store blob opened without its slot: {moved:?}");
    check!(moved == Some(StorageError::WrongKeyOrCorrupted));
    for s in &mut saved {
        let new_key = StorageKey::generate(rng);
        s.identity = at_rest::reseal(rng, &s.key, &new_key, LOCAL_DEVICE_SLOT, &s.identity)?;
        s.store = at_rest::reseal(rng, &s.key, &new_key, STORE_SLOT, &s.store)?;
        let old = at_rest::open::<MemoryStore>(&s.key, STORE_SLOT, &s.store).err();
        check!(old == Some(StorageError::WrongKeyOrCorrupted));
        s.key = new_key;
    }
    println!("  every blob re-sealed under a new storage key; the old keys open nothing");
    let mut phone = restore(&w.server, &saved[0])?;
    let mut desktop = restore(&w.server, &saved[1])?;
    let mut bob_phone = restore(&w.server, &saved[2])?;
    let text = "Still there after the restart?";
    w.send(&mut bob_phone, &alice, text)?;
    let got = w.deliver(&bob_phone, text, &mut [&mut phone, &mut desktop])?;
    check!(got.iter().all(|d| d.session == SessionUse::Active));
    let text = "Yes, all of us.";
    w.send(&mut desktop, &bob, text)?;
    w.deliver(&desktop, text, &mut [&mut bob_phone, &mut phone])?;
    check!(w.server.mailboxes.values().all(VecDeque::is_empty));
    println!("\nevery part was delivered and every check passed");
    Ok(())
}
