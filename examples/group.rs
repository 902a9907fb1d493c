//! A 50-member group chat with sender keys, in memory: 52 devices (one member
//! has three), a relay that fans sealed envelopes out, and the group layer on top.
//!
//! Every device has its own sending chain in a [`GroupSession`]. A chain is
//! handed to the other devices once, in a distribution message; after that a
//! group message is encrypted and signed once, whatever the group's size, and
//! the relay only copies bytes. The "server" holds a server key certified by a
//! trust root (pinned by every client), a directory of device identity keys, the
//! accounts' delivery access keys and one mailbox per device, as in the `relay`
//! example.
//!
//! It walks through:
//! 1. distribution: each of the 52 devices sends its chain to the 51 others, as
//!    per-device payloads of one multi-recipient sealed envelope; the server
//!    validates and splits it, and each device opens its part and records the
//!    chain under the certified sender's address;
//! 2. chatting: a few members send group messages (one `encrypt` each, read by
//!    all 51 other devices), with the size overhead;
//! 3. removal: one member is removed; every remaining device calls
//!    [`GroupSession::remove_member`] and sends its fresh chain to the remaining
//!    devices only;
//! 4. the removed member can no longer read (nor send): `NotAMember`;
//! 5. catch-up: a device that was offline reads a backlog of 500 messages with
//!    [`GroupSession::decrypt_batch`] (batch signature verification), timed
//!    against decrypting the same backlog one message at a time.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example group
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;
use std::time::{Duration, Instant};

use ratchetbox::group::{GroupSession, group_message_overhead};
use ratchetbox::rand_core::Rng;
use ratchetbox::sealed::{
    Address, ContentHint, DeliveryAccessKey, InnerKind, MultiRecipient, Opened, Recipient,
    SealedContent, SenderCertificate, ServerCertificate, ServerPolicy, TrustRoot, TrustStore,
    ValidatedEnvelope, open, seal_multi, validate,
};
use ratchetbox::{
    DeviceId, Error, IdentityKey, IdentityKeyPair, NONCE_LEN, SIGNATURE_LEN, TAG_LEN,
};

type Result<T> = std::result::Result<T, Box<dyn StdError>>;

/// The fixed "current time" (2026-01-01T00:00:00Z), in seconds.
const NOW: u64 = 1_767_225_600;
const DAY: u64 = 24 * 60 * 60;
const ROOT_ID: u32 = 1;
const SERVER_KEY_ID: u32 = 7;
const GROUP_ID: &[u8] = b"book-club";
/// Member accounts; the first one has [`ALICE_DEVICES`] devices.
const MEMBERS: usize = 50;
const ALICE_DEVICES: DeviceId = 3;
/// The member removed in step 3.
const REMOVED: &str = "erin";
const BACKLOG: usize = 500;

type DeviceKey = (Vec<u8>, DeviceId);

/// The relay: public directory, access keys, mailboxes. No key that opens anything.
struct Server {
    key: IdentityKeyPair,
    certificate: ServerCertificate,
    policy: ServerPolicy,
    directory: BTreeMap<DeviceKey, IdentityKey>,
    access_keys: BTreeMap<Vec<u8>, DeliveryAccessKey>,
    mailboxes: BTreeMap<DeviceKey, Vec<Vec<u8>>>,
}

/// What one fan-out cost the server.
struct Fanout {
    parts: usize,
    part_min: usize,
    part_max: usize,
}

impl Server {
    /// Registers a device and issues its sender certificate.
    fn register(
        &mut self,
        address: Address<'_>,
        identity_key: &IdentityKey,
    ) -> Result<SenderCertificate> {
        self.directory.insert(key_of(address), *identity_key);
        Ok(SenderCertificate::issue(
            address,
            identity_key,
            NOW + DAY,
            &self.key,
            self.certificate.clone(),
        )?)
    }

    /// The public directory lookup senders use to seal to a device.
    fn identity_key(&self, address: Address<'_>) -> Result<IdentityKey> {
        self.directory
            .get(&key_of(address))
            .copied()
            .ok_or_else(|| format!("{} is not registered", name(address)).into())
    }

    /// Validates a multi-recipient envelope and queues one part per device.
    fn submit(&mut self, envelope: &[u8]) -> Result<Fanout> {
        let keys = |account: &[u8]| self.access_keys.get(account).cloned();
        let ValidatedEnvelope::Multi(multi) = validate(envelope, &self.policy, &keys)? else {
            return Err("expected a multi-recipient envelope".into());
        };
        for part in multi.parts() {
            if !self.directory.contains_key(&key_of(part.recipient())) {
                return Err(format!("unknown device {}", name(part.recipient())).into());
            }
        }
        let mut fanout = Fanout {
            parts: 0,
            part_min: usize::MAX,
            part_max: 0,
        };
        for part in multi.parts() {
            let mut wire = vec![0u8; part.len()];
            part.write_to(&mut wire)?;
            fanout.parts += 1;
            fanout.part_min = fanout.part_min.min(wire.len());
            fanout.part_max = fanout.part_max.max(wire.len());
            self.mailboxes
                .entry(key_of(part.recipient()))
                .or_default()
                .push(wire);
        }
        Ok(fanout)
    }

    fn take(&mut self, device: &Device) -> Vec<Vec<u8>> {
        self.mailboxes
            .remove(&(device.account.as_bytes().to_vec(), device.id))
            .unwrap_or_default()
    }
}

/// A member device: identity (shared by the account's devices), certificate
/// and its view of the group.
struct Device {
    account: String,
    id: DeviceId,
    identity: IdentityKeyPair,
    certificate: SenderCertificate,
    group: GroupSession,
}

impl Device {
    fn address(&self) -> std::result::Result<Address<'_>, Error> {
        Ok(Address::new(self.account.as_bytes(), self.id)?)
    }

    fn is(&self, other: &Device) -> bool {
        self.account == other.account && self.id == other.id
    }

    fn open(&self, bytes: &[u8], trust: &TrustStore) -> std::result::Result<Opened, Error> {
        let me = Recipient {
            identity: &self.identity,
            address: self.address()?,
            trust,
            now: NOW,
        };
        open(bytes, &me)
    }
}

/// What the clients know: the access key of every member account (exchanged
/// between contacts inside their 1:1 sessions; given here directly).
type Contacts = BTreeMap<String, DeliveryAccessKey>;

/// Seals one envelope from `from` to every device in `to`: `message` is shared,
/// `payload` goes to each device under its own wrap.
fn seal_to(
    rng: &mut impl ratchetbox::rand_core::CryptoRng,
    server: &Server,
    contacts: &Contacts,
    from: &Device,
    to: &[&Device],
    message: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>> {
    let keys: Vec<IdentityKey> = to
        .iter()
        .map(|d| server.identity_key(d.address()?))
        .collect::<Result<_>>()?;
    let recipients: Vec<MultiRecipient<'_>> = to
        .iter()
        .zip(&keys)
        .map(|(d, identity_key)| {
            Ok(MultiRecipient {
                address: d.address()?,
                identity_key,
                payload,
            })
        })
        .collect::<Result<_>>()?;
    // One combined token: each recipient account's access key, once.
    let accounts: BTreeSet<&str> = to.iter().map(|d| d.account.as_str()).collect();
    let access: Vec<DeliveryAccessKey> = accounts
        .iter()
        .map(|a| contacts.get(*a).cloned().ok_or("no access key"))
        .collect::<std::result::Result<_, _>>()?;
    let content = SealedContent {
        kind: InnerKind::Opaque,
        hint: if message.is_empty() {
            ContentHint::Implicit
        } else {
            ContentHint::Resendable
        },
        message,
    };
    Ok(seal_multi(
        rng,
        &from.identity,
        &from.certificate,
        &recipients,
        content,
        Some(&DeliveryAccessKey::combine(&access)),
    )?)
}

fn key_of(address: Address<'_>) -> DeviceKey {
    (address.account_id().to_vec(), address.device_id())
}

fn name(address: Address<'_>) -> String {
    format!(
        "{}/{}",
        String::from_utf8_lossy(address.account_id()),
        address.device_id()
    )
}

fn find<'a>(devices: &'a [Device], account: &str, id: DeviceId) -> Result<&'a Device> {
    devices
        .iter()
        .find(|d| d.account == account && d.id == id)
        .ok_or_else(|| format!("no device {account}/{id}").into())
}

fn position(devices: &[Device], account: &str, id: DeviceId) -> Result<usize> {
    devices
        .iter()
        .position(|d| d.account == account && d.id == id)
        .ok_or_else(|| format!("no device {account}/{id}").into())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() -> Result<()> {
    let mut rng = ratchetbox::os_rng();

    // ---------------------------------------------------------------------
    section("0. Setup: trust root, server, 50 accounts / 52 devices");
    let root = IdentityKeyPair::generate(&mut rng);
    let trust = TrustStore::new(&[TrustRoot::new(ROOT_ID, *root.public_key())])?;
    let server_key = IdentityKeyPair::generate(&mut rng);
    let certificate =
        ServerCertificate::issue(ROOT_ID, &root, SERVER_KEY_ID, server_key.public_key());
    let mut server = Server {
        key: server_key,
        certificate,
        policy: ServerPolicy::default(),
        directory: BTreeMap::new(),
        access_keys: BTreeMap::new(),
        mailboxes: BTreeMap::new(),
    };

    let mut accounts: Vec<String> = ["alice", "bob", "carol", "dave", REMOVED]
        .iter()
        .map(|s| s.to_string())
        .collect();
    accounts.extend((accounts.len()..MEMBERS).map(|i| format!("m{i:02}")));
    let mut contacts = Contacts::new();
    let mut devices = Vec::new();
    for account in &accounts {
        let identity = IdentityKeyPair::generate(&mut rng);
        let count = if account == "alice" { ALICE_DEVICES } else { 1 };
        for id in 1..=count {
            let certificate =
                server.register(Address::new(account.as_bytes(), id)?, identity.public_key())?;
            devices.push(Device {
                account: account.clone(),
                id,
                // Every device of an account holds the account's identity.
                identity: IdentityKeyPair::decode(&identity.encode())?,
                certificate,
                group: GroupSession::create(&mut rng, GROUP_ID)?,
            });
        }
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let key = DeliveryAccessKey::derive(&secret);
        server
            .access_keys
            .insert(account.as_bytes().to_vec(), key.clone());
        contacts.insert(account.clone(), key);
    }
    println!(
        "root #{ROOT_ID} -> server key #{SERVER_KEY_ID} -> {} sender certificates; \
         {} accounts, {} devices (alice has {ALICE_DEVICES})",
        devices.len(),
        accounts.len(),
        devices.len(),
    );
    println!(
        "group {:?}: every device creates its own GroupSession (own chain + signing key)",
        String::from_utf8_lossy(GROUP_ID)
    );

    // ---------------------------------------------------------------------
    section("1. Distribution: every device sends its chain to the 51 others");
    // In a real app each payload is the recipient's 1:1 ratchet message carrying
    // the distribution (which holds the chain key), for forward secrecy and
    // replay protection. Here the distribution bytes are the payload itself:
    // acceptable only because the envelope layer encrypts each payload to its
    // device and authenticates the sender to it.
    let start = Instant::now();
    let (mut envelopes, mut parts, mut envelope_len) = (0, 0, 0);
    let (mut uploaded, mut downloaded) = (0, 0);
    let (mut part_min, mut part_max) = (usize::MAX, 0);
    let distribution_len = devices[0].group.distribution().len();
    for sender in &devices {
        let to: Vec<&Device> = devices.iter().filter(|d| !d.is(sender)).collect();
        let distribution = sender.group.distribution();
        let envelope = seal_to(
            &mut rng,
            &server,
            &contacts,
            sender,
            &to,
            b"",
            &distribution,
        )?;
        let fanout = server.submit(&envelope)?;
        uploaded += envelope.len();
        envelopes += 1;
        parts += fanout.parts;
        envelope_len = envelope_len.max(envelope.len());
        part_min = part_min.min(fanout.part_min);
        part_max = part_max.max(fanout.part_max);
    }
    let mut processed = 0;
    let mut sample = String::new();
    for device in &mut devices {
        for part in server.take(device) {
            downloaded += part.len();
            let opened = device.open(&part, &trust)?;
            // File the chain under the address the certificate vouches for.
            let sender = Address::new(&opened.sender.account_id, opened.sender.device_id)?;
            device.group.process_distribution(sender, &opened.payload)?;
            processed += 1;
            if sample.is_empty() && device.account == "alice" && device.id == 3 {
                sample = format!(
                    "alice/3 opens its {}-byte part: sender {} (certificate -> server #{SERVER_KEY_ID} \
                     -> root #{ROOT_ID}), payload {} bytes -> process_distribution({})",
                    part.len(),
                    name(sender),
                    opened.payload.len(),
                    name(sender),
                );
            }
        }
    }
    let complete = devices
        .iter()
        .filter(|d| d.group.member_devices().count() == devices.len() - 1)
        .count();
    println!(
        "distribution message: {distribution_len} bytes (74 + {}-byte group id)",
        GROUP_ID.len()
    );
    println!(
        "per sender: one envelope of {envelope_len} bytes for {} devices, combined token of {} accounts",
        devices.len() - 1,
        accounts.len(),
    );
    println!(
        "server: validates it, splits it into parts of {part_min}-{part_max} bytes; \
         sees recipients and padded sizes, not the sender or the chain"
    );
    println!("{sample}");
    println!(
        "{envelopes} envelopes -> {parts} parts -> {processed} chains recorded; \
         {complete}/{} devices know all {} others ({})",
        devices.len(),
        devices.len() - 1,
        ms(start.elapsed()),
    );
    println!(
        "traffic: {} KiB uploaded by clients, {} KiB downloaded (every device once per sender)",
        uploaded / 1024,
        downloaded / 1024,
    );

    // ---------------------------------------------------------------------
    section("2. Chatting: one encrypt per message, whatever the group size");
    let overhead = group_message_overhead(GROUP_ID.len());
    println!(
        "overhead: {overhead} bytes = {}-byte header (tag, group id, chain id, iteration, \
         {NONCE_LEN}-byte random nonce) + {TAG_LEN} AEAD tag + {SIGNATURE_LEN} signature",
        overhead - TAG_LEN - SIGNATURE_LEN
    );
    let lines: [(&str, DeviceId, &str); 3] = [
        ("bob", 1, "Finished chapter 3. That ending!"),
        (
            "alice",
            2,
            "No spoilers please, I'm on my laptop at chapter 2.",
        ),
        ("m17", 1, "Same time next Thursday?"),
    ];
    for (account, id, text) in lines {
        let s = position(&devices, account, id)?;
        let message = devices[s].group.encrypt(&mut rng, text.as_bytes())?;
        let sender = &devices[s];
        let to: Vec<&Device> = devices.iter().filter(|d| !d.is(sender)).collect();
        let envelope = seal_to(&mut rng, &server, &contacts, sender, &to, &message, b"")?;
        server.submit(&envelope)?;
        let mut read = 0;
        let mut shown = String::new();
        for device in &mut devices {
            for part in server.take(device) {
                let opened = device.open(&part, &trust)?;
                let from = Address::new(&opened.sender.account_id, opened.sender.device_id)?;
                let plaintext = device.group.decrypt(from, &opened.message)?;
                read += 1;
                if device.account == "alice" && device.id == 3 {
                    shown = format!(
                        "  alice/3 reads {}: {:?}",
                        name(from),
                        String::from_utf8_lossy(&plaintext)
                    );
                }
            }
        }
        println!(
            "{account}/{id}: {} -> {} bytes (+{}, {:.0}%); envelope {} bytes; read by {read}/{}",
            text.len(),
            message.len(),
            message.len() - text.len(),
            100.0 * (message.len() - text.len()) as f64 / text.len() as f64,
            envelope.len(),
            devices.len() - 1,
        );
        println!("{shown}");
    }

    // ---------------------------------------------------------------------
    section("3. Removing erin: every remaining device drops her and rotates");
    let removed = position(&devices, REMOVED, 1)?;
    let erin = devices.remove(removed);
    let start = Instant::now();
    let fresh: Vec<_> = devices
        .iter_mut()
        .map(|d| d.group.remove_member(&mut rng, REMOVED.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (mut parts, mut uploaded) = (0, 0);
    for (sender, distribution) in devices.iter().zip(&fresh) {
        // The remaining devices only: erin is no longer in `devices`.
        let to: Vec<&Device> = devices.iter().filter(|d| !d.is(sender)).collect();
        let envelope = seal_to(&mut rng, &server, &contacts, sender, &to, b"", distribution)?;
        parts += server.submit(&envelope)?.parts;
        uploaded += envelope.len();
    }
    for device in &mut devices {
        for part in server.take(device) {
            let opened = device.open(&part, &trust)?;
            let sender = Address::new(&opened.sender.account_id, opened.sender.device_id)?;
            device.group.process_distribution(sender, &opened.payload)?;
        }
    }
    let n = devices.len();
    println!(
        "{n} devices x remove_member = {n} rotations, {n} envelopes, {parts} distributions \
         (n*(n-1) = {}), 0 to erin",
        n * (n - 1),
    );
    println!(
        "cost: {} KiB of envelopes uploaded, {} seals + {parts} opens ({})",
        uploaded / 1024,
        n,
        ms(start.elapsed()),
    );
    let complete = devices
        .iter()
        .filter(|d| d.group.member_devices().count() == n - 1)
        .count();
    println!(
        "{complete}/{n} devices hold chains for exactly the {} others; a message still costs one encrypt",
        n - 1
    );

    // ---------------------------------------------------------------------
    section("4. Erin, removed, can neither read nor be read");
    let b = position(&devices, "bob", 1)?;
    let after = devices[b]
        .group
        .encrypt(&mut rng, b"Welcome to the new club, without erin.")?;
    let bob = Address::new(b"bob", 1)?;
    let mut erin_group = erin.group;
    // Erin obtains the bytes anyway (from a leaky server, say): her session only
    // has bob's old chain.
    match erin_group.decrypt(bob, &after) {
        Err(e @ Error::NotAMember) => println!("erin/1 decrypts bob/1's new message: {e:?} ({e})"),
        other => return Err(format!("removed member was not refused: {other:?}").into()),
    }
    let from_erin = erin_group.encrypt(&mut rng, b"hello?")?;
    let c = position(&devices, "carol", 1)?;
    match devices[c]
        .group
        .decrypt(Address::new(REMOVED.as_bytes(), 1)?, &from_erin)
    {
        Err(e @ Error::NotAMember) => println!("carol/1 decrypts a message from erin/1: {e:?}"),
        other => return Err(format!("removed member's message accepted: {other:?}").into()),
    }
    let read = devices[c].group.decrypt(bob, &after)?;
    println!(
        "carol/1 reads bob/1's new message: {:?}",
        String::from_utf8_lossy(&read)
    );

    // ---------------------------------------------------------------------
    section("5. Catch-up: alice/3 was offline for 500 messages from 5 senders");
    // Envelope opening (the same work either way) is left out: the group layer only.
    let senders = [
        ("bob", 1),
        ("carol", 1),
        ("alice", 1),
        ("m17", 1),
        ("m42", 1),
    ];
    let offline = find(&devices, "alice", 3)?;
    let snapshot = offline.group.encode();
    let mut backlog: Vec<(usize, Vec<u8>)> = Vec::with_capacity(BACKLOG);
    for i in 0..BACKLOG {
        let (account, id) = senders[i % senders.len()];
        let s = position(&devices, account, id)?;
        let text = format!("backlog #{i:03} from {account}/{id}: page {} noted", i * 3);
        backlog.push((s, devices[s].group.encrypt(&mut rng, text.as_bytes())?));
    }
    let bytes: usize = backlog.iter().map(|(_, m)| m.len()).sum();
    println!(
        "backlog: {BACKLOG} group messages, {} KiB, round-robin from {}",
        bytes / 1024,
        senders.map(|(a, i)| format!("{a}/{i}")).join(" ")
    );
    let batch: Vec<(Address<'_>, &[u8])> = backlog
        .iter()
        .map(|(s, m)| Ok((devices[*s].address()?, m.as_slice())))
        .collect::<Result<_>>()?;
    // Two identical restored copies, so both runs start from the same state.
    let mut one_by_one = GroupSession::decode(&snapshot)?;
    let mut batched = GroupSession::decode(&snapshot)?;
    println!("stored session: {} bytes, restored twice", snapshot.len());

    let start = Instant::now();
    let singles: Vec<Vec<u8>> = batch
        .iter()
        .map(|(from, m)| one_by_one.decrypt(*from, m))
        .collect::<std::result::Result<_, _>>()?;
    let single_time = start.elapsed();

    let start = Instant::now();
    let results = batched.decrypt_batch(&batch);
    let batch_time = start.elapsed();
    let together: Vec<Vec<u8>> = results.into_iter().collect::<std::result::Result<_, _>>()?;

    if singles != together || *one_by_one.encode() != *batched.encode() {
        return Err("batch and one-by-one decryption disagree".into());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / BACKLOG as f64;
    println!(
        "one at a time : {:>9} ({:.1} us/message, strict verification each)",
        ms(single_time),
        per(single_time)
    );
    println!(
        "decrypt_batch : {:>9} ({:.1} us/message, one batch verification)",
        ms(batch_time),
        per(batch_time)
    );
    println!(
        "speedup x{:.2}; same {} plaintexts, same final state; last: {:?}",
        single_time.as_secs_f64() / batch_time.as_secs_f64(),
        together.len(),
        together
            .last()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    );
    println!(
        "(rough single-run wall-clock timing; the reference is the criterion bench \
         group/backlog_500/{{batch,one_at_a_time}} in benches/protocol.rs)"
    );
    Ok(())
}
