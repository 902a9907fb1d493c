//! The server side of sealed sender, in memory: a relay that routes envelopes
//! it cannot read.
//!
//! The "server" holds a server key certified by a trust root (which every
//! client pins), a registry of devices (account id, device id, identity key)
//! and of delivery access keys (one per account, derived by the account from a
//! secret of its own and handed to its contacts out of band), a
//! [`ServerPolicy`], and one mailbox per device. It issues sender
//! certificates, validates envelopes with [`validate`] and splits
//! multi-recipient envelopes into per-device parts, all without a secret key
//! that could open them. Each delivered envelope is printed as one row: what
//! the server saw | what the recipient device read.
//!
//! It walks through:
//! 1. setup: root → server certificate; Alice (2 devices, one identity), Bob
//!    (2 devices, one identity) and Carol register and get sender certificates;
//! 2. a single-recipient envelope from Alice to Bob's device 1 carrying the
//!    prekey message of a real [`Session`] (the hybrid PQXDH handshake, from a
//!    bundle with a one-time prekey and a one-time ML-KEM-768 prekey); Bob
//!    opens it, learns and checks the sender, accepts the session and replies
//!    the same way;
//! 3. forgeries: a wrong or missing token and truncated envelopes (rejected by
//!    the server); a flipped bit, a stolen certificate and an expired one
//!    (passed by the server, which cannot tell, and rejected by Bob);
//! 4. a multi-recipient envelope to Bob's two devices, Carol and Alice's other
//!    device: one shared group message, a payload per device, a combined token;
//!    the server splits it into a reused buffer, and a part delivered to the
//!    wrong device is refused.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example relay
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;

use ratchetbox::rand_core::Rng;
use ratchetbox::sealed::{
    Address, CertificateError, ContentHint, DeliveryAccessKey, DeliveryKeys, EnvelopeError,
    InnerKind, MultiRecipient, Opened, Recipient, SealedContent, SenderCertificate,
    ServerCertificate, ServerPolicy, TrustRoot, TrustStore, ValidatedEnvelope, VerifiedSender,
    open, seal, seal_multi, validate,
};
use ratchetbox::{
    AccountId, DeviceAddress, DeviceId, Error, IdentityKey, IdentityKeyPair, LocalDevice,
    PreKeyBundle, PreKeyMessage, PreKeyStore, Responder, Session,
};

type Result<T> = std::result::Result<T, Box<dyn StdError>>;

/// The fixed "current time" (2026-01-01T00:00:00Z), in seconds.
const NOW: u64 = 1_767_225_600;
const DAY: u64 = 24 * 60 * 60;
const ROOT_ID: u32 = 1;
const SERVER_KEY_ID: u32 = 7;

type DeviceKey = (Vec<u8>, DeviceId);

/// The server's registry. Everything in it is public or server-side routing data.
#[derive(Default)]
struct Registry {
    devices: BTreeMap<DeviceKey, IdentityKey>,
    access_keys: BTreeMap<Vec<u8>, DeliveryAccessKey>,
}

impl DeliveryKeys for Registry {
    fn access_key(&self, account_id: &[u8]) -> Option<DeliveryAccessKey> {
        self.access_keys.get(account_id).cloned()
    }
}

/// Why the server refused an envelope.
#[derive(Debug)]
enum Rejection {
    /// [`validate`] refused it.
    Envelope(EnvelopeError),
    /// It validated, but names a device that is not registered.
    UnknownDevice(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Envelope(e) => write!(f, "{e:?}"),
            Self::UnknownDevice(d) => write!(f, "unknown device {d}"),
        }
    }
}

/// A queued envelope and the server's log line about it.
struct Delivery {
    bytes: Vec<u8>,
    server_saw: String,
}

struct Server {
    key: IdentityKeyPair,
    certificate: ServerCertificate,
    policy: ServerPolicy,
    registry: Registry,
    mailboxes: BTreeMap<DeviceKey, VecDeque<Delivery>>,
    /// Reused for every split part (a socket write buffer, in real life).
    split_buffer: Vec<u8>,
}

impl Server {
    /// Registers a device and issues its first sender certificate.
    fn register_device(
        &mut self,
        account: &str,
        device: DeviceId,
        identity_key: &IdentityKey,
    ) -> Result<SenderCertificate> {
        self.registry
            .devices
            .insert((account.as_bytes().to_vec(), device), *identity_key);
        self.issue_certificate(account, device, NOW + DAY)
    }

    /// Signs a sender certificate for a registered device.
    fn issue_certificate(
        &self,
        account: &str,
        device: DeviceId,
        expires: u64,
    ) -> Result<SenderCertificate> {
        let identity_key = self.identity_key(account, device)?;
        let address = Address::new(account.as_bytes(), device)?;
        Ok(SenderCertificate::issue(
            address,
            &identity_key,
            expires,
            &self.key,
            self.certificate.clone(),
        )?)
    }

    /// The public directory lookup senders use to seal to a device.
    fn identity_key(&self, account: &str, device: DeviceId) -> Result<IdentityKey> {
        self.registry
            .devices
            .get(&(account.as_bytes().to_vec(), device))
            .copied()
            .ok_or_else(|| format!("{account}/{device} is not registered").into())
    }

    fn register_access_key(&mut self, account: &str, key: DeliveryAccessKey) {
        self.registry
            .access_keys
            .insert(account.as_bytes().to_vec(), key);
    }

    fn check_device(&self, to: Address<'_>) -> std::result::Result<(), Rejection> {
        let key = (to.account_id().to_vec(), to.device_id());
        if self.registry.devices.contains_key(&key) {
            Ok(())
        } else {
            Err(Rejection::UnknownDevice(name(to)))
        }
    }

    fn enqueue(&mut self, to: Address<'_>, bytes: Vec<u8>, server_saw: String) {
        self.mailboxes
            .entry((to.account_id().to_vec(), to.device_id()))
            .or_default()
            .push_back(Delivery { bytes, server_saw });
    }

    /// Validates an envelope and queues it (or its parts) for delivery.
    fn submit(&mut self, bytes: &[u8]) -> std::result::Result<(), Rejection> {
        match validate(bytes, &self.policy, &self.registry).map_err(Rejection::Envelope)? {
            ValidatedEnvelope::Single(single) => {
                let to = single.recipient();
                self.check_device(to)?;
                let saw = server_line(single.bytes(), Some(to), "token=ok");
                self.enqueue(to, single.bytes().to_vec(), saw);
            }
            ValidatedEnvelope::Multi(multi) => {
                // All or nothing: check every device before queueing any part.
                for part in multi.parts() {
                    self.check_device(part.recipient())?;
                }
                let list: Vec<String> = multi.parts().map(|p| name(p.recipient())).collect();
                println!(
                    "server: 0x{:02x} multi, {} bytes, {} devices [{}], combined token ok",
                    bytes[0],
                    bytes.len(),
                    multi.recipient_count(),
                    list.join(" "),
                );
                for part in multi.parts() {
                    if self.split_buffer.len() < part.len() {
                        self.split_buffer.resize(part.len(), 0);
                    }
                    let len = part
                        .write_to(&mut self.split_buffer)
                        .map_err(Rejection::Envelope)?;
                    let wire = self.split_buffer[..len].to_vec();
                    let saw = server_line(&wire, Some(part.recipient()), "split");
                    self.enqueue(part.recipient(), wire, saw);
                }
                println!(
                    "server: split into {} parts through one {}-byte buffer",
                    multi.recipient_count(),
                    self.split_buffer.len(),
                );
            }
        }
        Ok(())
    }

    fn take_one(&mut self, device: &Device) -> Result<Delivery> {
        self.mailboxes
            .get_mut(&(device.account.as_bytes().to_vec(), device.id))
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| format!("mailbox of {} is empty", device.name()).into())
    }
}

/// A client device: its identity (shared by the account's devices) and certificate.
struct Device {
    account: &'static str,
    id: DeviceId,
    identity: IdentityKeyPair,
    certificate: SenderCertificate,
}

impl Device {
    fn address(&self) -> std::result::Result<Address<'_>, Error> {
        Ok(Address::new(self.account.as_bytes(), self.id)?)
    }

    fn name(&self) -> String {
        format!("{}/{}", self.account, self.id)
    }

    /// This device as the session layer knows it: sessions are bound to both
    /// devices' addresses, so they take the account and device id along with
    /// the identity (a copy of it, through its encoding).
    fn local(&self) -> Result<LocalDevice> {
        Ok(LocalDevice {
            account: AccountId::new(self.account.as_bytes())?,
            device_id: self.id,
            identity: IdentityKeyPair::decode(&self.identity.encode())?,
        })
    }

    /// Opens an envelope delivered to this device.
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

fn name(address: Address<'_>) -> String {
    format!(
        "{}/{}",
        String::from_utf8_lossy(address.account_id()),
        address.device_id()
    )
}

fn sender_name(sender: &VerifiedSender) -> String {
    format!(
        "{}/{}",
        String::from_utf8_lossy(&sender.account_id),
        sender.device_id
    )
}

/// What the server can say about an envelope: format tag, recipient, length.
fn server_line(bytes: &[u8], to: Option<Address<'_>>, note: &str) -> String {
    let tag = bytes.first().copied().unwrap_or_default();
    let to = to.map_or_else(|| "?".to_string(), name);
    format!(
        "0x{tag:02x} to={to:<7} len={:<4} {note:<8} sender=? content=?",
        bytes.len()
    )
}

/// One table row: the server's view | the recipient's view.
fn row(server: &str, recipient: &str) {
    println!("  {server:<60} | {recipient}");
}

fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The server refuses `bytes`; prints the row and checks the reason.
fn expect_rejected(
    server: &mut Server,
    bytes: &[u8],
    what: &str,
    expected: EnvelopeError,
) -> Result<()> {
    match server.submit(bytes) {
        Err(Rejection::Envelope(e)) if e == expected => {
            let tag = bytes.first().copied().unwrap_or_default();
            row(
                &format!("0x{tag:02x} len={:<4} REJECTED {e:?}", bytes.len()),
                &format!("({what}: never delivered)"),
            );
            Ok(())
        }
        Err(other) => Err(format!("{what}: expected {expected:?}, got {other}").into()),
        Ok(()) => Err(format!("{what}: accepted by the server").into()),
    }
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() -> Result<()> {
    let mut rng = ratchetbox::os_rng();

    // ---------------------------------------------------------------------
    section("1. Setup: trust root, server certificate, registrations");
    let root = IdentityKeyPair::generate(&mut rng);
    let trust = TrustStore::new(&[TrustRoot::new(ROOT_ID, *root.public_key())])?;
    let server_key = IdentityKeyPair::generate(&mut rng);
    let server_certificate =
        ServerCertificate::issue(ROOT_ID, &root, SERVER_KEY_ID, server_key.public_key());
    println!(
        "root #{ROOT_ID} {:?} (pinned by every client) certifies server key #{} {:?} ({} bytes)",
        root.public_key(),
        server_certificate.key_id(),
        server_key.public_key(),
        server_certificate.encode().len(),
    );
    let policy = ServerPolicy::default();
    println!(
        "policy: single={} multi={} max {} bytes, max {} recipients, token required={}; now={NOW}",
        policy.allow_single,
        policy.allow_multi,
        policy.max_size,
        policy.max_recipients,
        policy.require_token
    );
    let mut server = Server {
        key: server_key,
        certificate: server_certificate,
        policy,
        registry: Registry::default(),
        mailboxes: BTreeMap::new(),
        split_buffer: Vec::new(),
    };

    // One identity per account; a second device gets it through its encoding.
    let alice_identity = IdentityKeyPair::generate(&mut rng);
    let bob_identity = IdentityKeyPair::generate(&mut rng);
    let carol_identity = IdentityKeyPair::generate(&mut rng);
    let mut devices = Vec::new();
    for (account, identity, count) in [
        ("alice", &alice_identity, 2),
        ("bob", &bob_identity, 2),
        ("carol", &carol_identity, 1),
    ] {
        for id in 1..=count {
            let certificate = server.register_device(account, id, identity.public_key())?;
            let device = Device {
                account,
                id,
                identity: IdentityKeyPair::decode(&identity.encode())?,
                certificate,
            };
            println!(
                "registered {:<7} identity {:?}  certificate {} bytes, expires now+{}s",
                device.name(),
                device.identity.public_key(),
                device.certificate.encode().len(),
                device.certificate.expires() - NOW,
            );
            devices.push(device);
        }
    }
    let [alice1, alice2, bob1, bob2, carol1] = <[Device; 5]>::try_from(devices)
        .map_err(|d| format!("expected 5 devices, got {}", d.len()))?;
    // What every recipient will check: certificate -> server certificate -> pinned root.
    let checked = SenderCertificate::decode(&alice1.certificate.encode())?.validate(&trust, NOW)?;
    println!(
        "chain check: alice/1's certificate -> server key #{SERVER_KEY_ID} -> root #{ROOT_ID}: valid, names {}",
        sender_name(&checked)
    );

    // Each account derives its access key from a secret it keeps (a profile
    // key, say), registers it, and gives it to its contacts inside their E2EE
    // sessions (out of band here).
    let mut access_key = BTreeMap::new();
    for account in ["alice", "bob", "carol"] {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let key = DeliveryAccessKey::derive(&secret);
        server.register_access_key(account, key.clone());
        access_key.insert(account, key);
    }
    let key_of = |account: &str| {
        access_key
            .get(account)
            .cloned()
            .ok_or_else(|| format!("no access key for {account}"))
    };
    println!("alice, bob and carol registered delivery access keys and swapped them as contacts");

    // ---------------------------------------------------------------------
    section("2. Alice -> bob/1: one sealed envelope carrying a session message");
    let mut bob1_prekeys = PreKeyStore::generate(&mut rng, &bob1.identity, bob1.id);
    let one_time = bob1_prekeys.generate_one_time_prekeys(&mut rng, 1)?;
    let one_time_kem = bob1_prekeys.generate_one_time_kem_prekeys(&mut rng, &bob1.identity, 1)?;
    let bundle = PreKeyBundle::from_store_with_kem(
        bob1.identity.public_key(),
        &bob1_prekeys,
        one_time.first().map(|(id, _)| *id),
        one_time_kem.first().copied(),
    );
    // Alice checks the bundle against the identity the directory lists for bob/1.
    let bundle = PreKeyBundle::decode(&bundle.encode())?
        .verify_for(&server.identity_key("bob", bob1.id)?)?;
    // The session is bound to alice/1 and to bob's device the bundle names.
    let alice1_local = alice1.local()?;
    let mut alice_session =
        Session::initiate(&mut rng, &alice1_local, &AccountId::new(b"bob")?, &bundle)?;
    let hello = "Hi Bob, it's Alice. Sealed, so the server can't tell.";
    let inner = alice_session.encrypt(&mut rng, hello.as_bytes())?;
    let sealed = seal(
        &mut rng,
        &alice1.identity,
        &alice1.certificate,
        bob1.address()?,
        &server.identity_key("bob", bob1.id)?,
        SealedContent {
            kind: InnerKind::PreKey,
            hint: ContentHint::Resendable,
            message: &inner,
        },
        Some(&key_of("bob")?),
    )?;
    println!(
        "alice/1 seals a {}-byte prekey message into a {}-byte envelope with bob's token",
        inner.len(),
        sealed.len(),
    );
    server.submit(&sealed).map_err(|e| e.to_string())?;
    println!(
        "server sees: recipient bob/1, tag 0x{:02x} (single, v2), {} bytes, token matches bob's key;",
        sealed[0],
        sealed.len(),
    );
    println!("             not the sender (encrypted) nor the content (encrypted, padded)");

    let delivery = server.take_one(&bob1)?;
    let opened = bob1.open(&delivery.bytes, &trust)?;
    println!(
        "bob/1 opens it: sender {} {:?}, certificate chains to root #{ROOT_ID}, kind {:?}, hint {:?}",
        sender_name(&opened.sender),
        opened.sender.identity_key,
        opened.kind,
        opened.hint,
    );
    // The identity inside the prekey message must be the one the certificate
    // names, and the session is bound to the device the certificate names.
    let first = PreKeyMessage::parse(&opened.message)?;
    let from = DeviceAddress::from_address(&opened.sender.address());
    let bob1_local = bob1.local()?;
    let (mut bob_session, plaintext) = Responder::new(&bob1_local, &mut bob1_prekeys)
        .expect_initiator(&opened.sender.identity_key)
        .accept(&from, &first)?;
    println!(
        "bob/1 accepts the session (PQXDH with ML-KEM-768 prekey #{}; one-time prekeys left: {}, \
         one-time KEM prekeys left: {})",
        first.kem_prekey_id(),
        bob1_prekeys.one_time_prekey_count(),
        bob1_prekeys.one_time_kem_prekey_count()
    );
    println!("  {:<60} | recipient sees", "server sees");
    row(
        &delivery.server_saw,
        &format!(
            "bob/1 <- {} PreKey {}",
            sender_name(&opened.sender),
            text(&plaintext)
        ),
    );

    // Bob replies the same way, to the device the certificate named.
    let reply = bob_session.encrypt(&mut rng, b"Hi Alice! Saturday works.")?;
    let back = seal(
        &mut rng,
        &bob1.identity,
        &bob1.certificate,
        Address::new(&opened.sender.account_id, opened.sender.device_id)?,
        &opened.sender.identity_key,
        SealedContent {
            kind: InnerKind::Ratchet,
            hint: ContentHint::Resendable,
            message: &reply,
        },
        Some(&key_of("alice")?),
    )?;
    server.submit(&back).map_err(|e| e.to_string())?;
    let delivery = server.take_one(&alice1)?;
    let opened = alice1.open(&delivery.bytes, &trust)?;
    if opened.sender.identity_key != *alice_session.remote_identity()
        || DeviceAddress::from_address(&opened.sender.address()) != *alice_session.remote_address()
    {
        return Err("reply is not from the session's peer".into());
    }
    let plaintext = alice_session.decrypt(&opened.message)?;
    row(
        &delivery.server_saw,
        &format!(
            "alice/1 <- {} {:?} {}",
            sender_name(&opened.sender),
            opened.kind,
            text(&plaintext)
        ),
    );

    // ---------------------------------------------------------------------
    section("3. Forgeries: rejected by the server, or by the recipient");
    let mallory = IdentityKeyPair::generate(&mut rng);
    let junk = SealedContent {
        kind: InnerKind::Opaque,
        hint: ContentHint::Implicit,
        message: b"click here",
    };
    // Mallory has no access key for bob: she guesses one.
    let mut guess = [0u8; 32];
    rng.fill_bytes(&mut guess);
    let bob1_key = server.identity_key("bob", bob1.id)?;
    let spam = seal(
        &mut rng,
        &mallory,
        &alice1.certificate,
        bob1.address()?,
        &bob1_key,
        junk,
        Some(&DeliveryAccessKey::derive(&guess)),
    )?;
    expect_rejected(
        &mut server,
        &spam,
        "guessed token",
        EnvelopeError::WrongToken,
    )?;
    let tokenless = seal(
        &mut rng,
        &mallory,
        &alice1.certificate,
        bob1.address()?,
        &bob1_key,
        junk,
        None,
    )?;
    expect_rejected(
        &mut server,
        &tokenless,
        "no token",
        EnvelopeError::MissingToken,
    )?;
    expect_rejected(
        &mut server,
        &sealed[..40],
        "cut at 40 bytes",
        EnvelopeError::Truncated {
            field: "ephemeral key",
        },
    )?;
    expect_rejected(
        &mut server,
        &sealed[..sealed.len() - 1],
        "last byte cut",
        EnvelopeError::InvalidPadding,
    )?;

    // Mallory gets bob's access key (contacts share it), and signs as Alice with
    // Alice's certificate (certificates are not secret). The server cannot tell.
    let forged = seal(
        &mut rng,
        &mallory,
        &alice1.certificate,
        bob1.address()?,
        &bob1_key,
        junk,
        Some(&key_of("bob")?),
    )?;
    // Carol's app still holds yesterday's certificate.
    let stale = server.issue_certificate("carol", carol1.id, NOW - 60)?;
    let late = seal(
        &mut rng,
        &carol1.identity,
        &stale,
        bob1.address()?,
        &bob1_key,
        SealedContent {
            kind: InnerKind::Opaque,
            hint: ContentHint::Default,
            message: b"sorry I'm late",
        },
        Some(&key_of("bob")?),
    )?;
    // A device the registry does not know: the token is fine, the route is not.
    let nowhere = seal(
        &mut rng,
        &alice1.identity,
        &alice1.certificate,
        Address::new(b"bob", 3)?,
        &bob1_key,
        junk,
        Some(&key_of("bob")?),
    )?;
    match server.submit(&nowhere) {
        Err(e @ Rejection::UnknownDevice(_)) => row(
            &format!("0x{:02x} len={:<4} REJECTED {e}", nowhere[0], nowhere.len()),
            "(bob/3: never delivered)",
        ),
        other => return Err(format!("unknown device not refused: {other:?}").into()),
    }
    // A flipped ciphertext bit: structurally fine, so only the recipient notices.
    let mut flipped = sealed.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 0x01;
    }
    for envelope in [&flipped, &forged, &late] {
        server.submit(envelope).map_err(|e| e.to_string())?;
        let delivery = server.take_one(&bob1)?;
        let verdict = match bob1.open(&delivery.bytes, &trust) {
            Err(e @ (Error::DecryptionFailed | Error::SenderIdentityMismatch)) => {
                format!("bob/1 refuses: {e:?}")
            }
            Err(Error::Certificate(e @ CertificateError::Expired { .. })) => {
                format!("bob/1 refuses: Certificate({e:?})")
            }
            Ok(o) => return Err(format!("forgery accepted from {}", sender_name(&o.sender)).into()),
            Err(e) => return Err(e.into()),
        };
        row(&delivery.server_saw, &verdict);
    }

    // ---------------------------------------------------------------------
    section("4. Alice -> bob/1, bob/2, carol/1, alice/2: one multi-recipient envelope");
    // bob/1 gets the next message of its 1:1 session; carol and Alice's own
    // device get small per-device payloads; everyone shares the group message.
    // Payloads are padded (Padmé): the server sees only their padded sizes.
    let to_bob1 = alice_session.encrypt(&mut rng, b"(1:1) Bring the rope?")?;
    let (bob2_key, carol1_key, alice2_key) = (
        server.identity_key("bob", bob2.id)?,
        server.identity_key("carol", carol1.id)?,
        server.identity_key("alice", alice2.id)?,
    );
    let recipients = [
        MultiRecipient {
            address: bob1.address()?,
            identity_key: &bob1_key,
            payload: &to_bob1,
        },
        MultiRecipient {
            address: bob2.address()?,
            identity_key: &bob2_key,
            payload: b"",
        },
        MultiRecipient {
            address: carol1.address()?,
            identity_key: &carol1_key,
            payload: b"welcome to #hike",
        },
        MultiRecipient {
            address: alice2.address()?,
            identity_key: &alice2_key,
            payload: b"sync: sent to #hike",
        },
    ];
    let group = SealedContent {
        kind: InnerKind::Opaque,
        hint: ContentHint::Resendable,
        message: b"[#hike] Saturday, 9am at the trailhead?",
    };
    // One token for the distinct accounts (alice's own included, for alice/2).
    let token = DeliveryAccessKey::combine([&key_of("alice")?, &key_of("bob")?, &key_of("carol")?]);
    let multi = seal_multi(
        &mut rng,
        &alice1.identity,
        &alice1.certificate,
        &recipients,
        group,
        Some(&token),
    )?;
    // A key per *device* counts bob twice, and XOR cancels his key out.
    let per_device = DeliveryAccessKey::combine([
        &key_of("alice")?,
        &key_of("bob")?,
        &key_of("bob")?,
        &key_of("carol")?,
    ]);
    let bad = seal_multi(
        &mut rng,
        &alice1.identity,
        &alice1.certificate,
        &recipients,
        group,
        Some(&per_device),
    )?;
    expect_rejected(
        &mut server,
        &bad,
        "token per device",
        EnvelopeError::WrongToken,
    )?;
    server.submit(&multi).map_err(|e| e.to_string())?;

    let mut misrouted = None;
    let mut sizes = Vec::new();
    for device in [&bob1, &bob2, &carol1, &alice2] {
        let delivery = server.take_one(device)?;
        sizes.push(format!("{}={}", device.name(), delivery.bytes.len()));
        let opened = device.open(&delivery.bytes, &trust)?;
        let payload = if device.name() == "bob/1" {
            // The payload is the 1:1 session's next message: a ratchet
            // message now, since Alice has had Bob's reply.
            format!("+ session {}", text(&bob_session.decrypt(&opened.payload)?))
        } else if opened.payload.is_empty() {
            "(no payload)".to_string()
        } else {
            format!("+ {}", text(&opened.payload))
        };
        row(
            &delivery.server_saw,
            &format!(
                "{} <- {} {:?} {}",
                device.name(),
                sender_name(&opened.sender),
                opened.kind,
                text(&opened.message)
            ),
        );
        println!("  {:<60} |   {payload}", "");
        if device.name() == "bob/1" {
            misrouted = Some(delivery);
        }
    }
    // A buggy (or curious) server hands bob/1's part to bob/2, same identity key.
    let misrouted = misrouted.ok_or("bob/1 got no part")?;
    match bob2.open(&misrouted.bytes, &trust) {
        Err(e @ Error::WrongRecipient) => row(
            &server_line(&misrouted.bytes, Some(bob2.address()?), "MISROUTE"),
            &format!("bob/2 refuses bob/1's part: {e:?}"),
        ),
        other => return Err(format!("misrouted part not refused: {other:?}").into()),
    }
    let payloads: Vec<String> = recipients
        .iter()
        .map(|r| format!("{}={} bytes", name(r.address), r.payload.len()))
        .collect();
    println!(
        "\nserver learned: 4 devices of 3 accounts, part sizes {}",
        sizes.join(" ")
    );
    println!(
        "  payloads are padded (Padmé): the server cannot tell the real lengths ({})",
        payloads.join(" ")
    );
    let left: usize = server.mailboxes.values().map(VecDeque::len).sum();
    println!("mailboxes left: {left} envelope(s); the server never held a key that opens one");
    Ok(())
}
