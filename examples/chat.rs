//! Alice and Bob chat end to end through an untrusted server.
//!
//! The "server" is two small in-memory structs: a prekey directory that stores
//! each device's published bundle parts and hands out one one-time prekey and
//! one one-time KEM prekey per request (the last-resort KEM prekey once those
//! run out), and a mailbox that queues opaque byte strings per recipient. Every
//! message is printed twice, side by side: what the server sees (recipient,
//! message kind, length, first bytes) and what the receiving endpoint reads.
//!
//! It walks through:
//! 1. bundle publication (identity, signed prekey, signed ML-KEM-768
//!    last-resort prekey, one-time prekeys and signed one-time KEM prekeys;
//!    the bundle travels in its wire form and Alice verifies both signatures);
//! 2. session setup with the hybrid PQXDH handshake (X25519 and ML-KEM-768:
//!    Alice's first message is a prekey message carrying a KEM ciphertext; Bob
//!    accepts it and spends the one-time prekey and one-time KEM prekey it
//!    names);
//! 3. a conversation in both directions (Double Ratchet);
//! 4. out-of-order delivery (3 messages delivered as 3, 1, 2);
//! 5. a tampered message rejected with a typed error, leaving the session
//!    byte-for-byte unchanged;
//! 6. saving and restoring Bob's session mid-conversation.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example chat
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::error::Error as StdError;

use ratchetbox::{
    AccountId, BundleKemPreKey, DeviceId, Error, HEADER_LEN, IdentityKey, IdentityKeyPair,
    KEM_PUBLIC_KEY_LEN, KemPreKey, KemPreKeyKind, LocalDevice, Message, PreKeyBundle, PreKeyId,
    PreKeyStore, PublicKey, Responder, Session,
};

type Result<T> = std::result::Result<T, Box<dyn StdError>>;

/// What a device uploads to the directory. All of it is public.
struct PublishedKeys {
    identity_key: IdentityKey,
    device_id: DeviceId,
    signed_prekey_id: PreKeyId,
    signed_prekey: PublicKey,
    signed_prekey_signature: [u8; 64],
    /// Used while no one-time KEM prekey is left.
    last_resort_kem_prekey: BundleKemPreKey,
    one_time_kem_prekeys: VecDeque<BundleKemPreKey>,
    one_time_prekeys: VecDeque<(PreKeyId, PublicKey)>,
}

/// The public part of a KEM prekey, as a device uploads it.
fn published_kem(key: &KemPreKey) -> BundleKemPreKey {
    BundleKemPreKey {
        id: key.id(),
        key: key.public_key().clone(),
        signature: *key.signature(),
    }
}

/// The server's prekey directory: one set of published keys per user.
#[derive(Default)]
struct Directory {
    users: BTreeMap<&'static str, PublishedKeys>,
}

impl Directory {
    fn publish(&mut self, user: &'static str, keys: PublishedKeys) {
        self.users.insert(user, keys);
    }

    /// An encoded bundle for `user`, with one one-time prekey and one one-time
    /// KEM prekey (each removed from the directory so that no one else gets
    /// it) while any are left, else the last-resort KEM prekey.
    fn fetch_bundle(&mut self, user: &str) -> Result<Vec<u8>> {
        let keys = self
            .users
            .get_mut(user)
            .ok_or_else(|| format!("no bundle published for {user}"))?;
        let bundle = PreKeyBundle::new(
            keys.identity_key,
            keys.device_id,
            keys.signed_prekey_id,
            keys.signed_prekey,
            keys.signed_prekey_signature,
            keys.one_time_kem_prekeys
                .pop_front()
                .unwrap_or_else(|| keys.last_resort_kem_prekey.clone()),
            keys.one_time_prekeys.pop_front(),
        );
        Ok(bundle.encode())
    }

    /// One-time prekeys and one-time KEM prekeys left for `user`.
    fn one_time_prekeys_left(&self, user: &str) -> (usize, usize) {
        self.users.get(user).map_or((0, 0), |keys| {
            (keys.one_time_prekeys.len(), keys.one_time_kem_prekeys.len())
        })
    }
}

/// The server's mailbox: opaque messages queued per recipient.
#[derive(Default)]
struct Mailbox {
    queues: BTreeMap<&'static str, VecDeque<Vec<u8>>>,
}

impl Mailbox {
    fn post(&mut self, to: &'static str, message: Vec<u8>) {
        self.queues.entry(to).or_default().push_back(message);
    }

    fn take_all(&mut self, to: &str) -> Vec<Vec<u8>> {
        self.queues
            .get_mut(to)
            .map(|queue| queue.drain(..).collect())
            .unwrap_or_default()
    }

    fn take_one(&mut self, to: &str) -> Result<Vec<u8>> {
        self.queues
            .get_mut(to)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| format!("mailbox of {to} is empty").into())
    }
}

/// The first `n` bytes in hex, with an ellipsis if there are more.
fn hex_prefix(bytes: &[u8], n: usize) -> String {
    let mut out: String = bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > n {
        out.push('…');
    }
    out
}

/// What the server can tell about a message: its kind and the cleartext header
/// (sender ratchet key and message number); the body is opaque.
fn server_view(wire: &[u8]) -> (&'static str, String) {
    match Message::parse(wire) {
        Ok(Message::PreKey(m)) => ("prekey", m.message().header().message_number.to_string()),
        Ok(Message::Ratchet(m)) => ("ratchet", m.header().message_number.to_string()),
        Err(_) => ("malformed", "?".to_string()),
    }
}

/// One line: the server's view on the left, the endpoint's on the right.
fn show(to: &str, wire: &[u8], endpoint_view: &str) {
    let (kind, number) = server_view(wire);
    println!(
        "  to={to:<5} kind={kind:<7} n={number} len={:<3} bytes={:<17} | {endpoint_view}",
        wire.len(),
        hex_prefix(wire, 8),
    );
}

/// The recipient decrypts one message from its mailbox; prints both views.
fn deliver(session: &mut Session, wire: &[u8], to: &str) -> Result<()> {
    let plaintext = session.decrypt(wire)?;
    show(
        to,
        wire,
        &format!("{to} reads {:?}", String::from_utf8_lossy(&plaintext)),
    );
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut rng = ratchetbox::os_rng();
    let mut directory = Directory::default();
    let mut mailbox = Mailbox::default();
    println!("Message lines: what the server sees | what the recipient reads.");

    // ---------------------------------------------------------------------
    section("1. Bob publishes a prekey bundle");
    // Each device knows its account, device id and the account's identity:
    // every session is bound to both devices' addresses.
    let alice = LocalDevice {
        account: AccountId::new(b"alice")?,
        device_id: 1,
        identity: IdentityKeyPair::generate(&mut rng),
    };
    let bob_device: DeviceId = 1;
    let bob = LocalDevice {
        account: AccountId::new(b"bob")?,
        device_id: bob_device,
        identity: IdentityKeyPair::generate(&mut rng),
    };
    // The store holds the signed prekey and a signed last-resort ML-KEM-768
    // prekey; Bob adds one-time prekeys of both kinds (each KEM one signed).
    let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, bob_device);
    let one_time = bob_prekeys.generate_one_time_prekeys(&mut rng, 5)?;
    let one_time_kem = bob_prekeys.generate_one_time_kem_prekeys(&mut rng, &bob.identity, 5)?;
    let spk = bob_prekeys.signed_prekey();
    let last_resort = bob_prekeys.last_resort_kem_prekey();
    let mut one_time_kem_prekeys = VecDeque::new();
    for id in one_time_kem {
        let (key, _) = bob_prekeys
            .find_kem_prekey(id)
            .ok_or("a KEM prekey just generated")?;
        one_time_kem_prekeys.push_back(published_kem(key));
    }
    directory.publish(
        "bob",
        PublishedKeys {
            identity_key: *bob.identity.public_key(),
            device_id: bob_prekeys.device_id(),
            signed_prekey_id: spk.id(),
            signed_prekey: *spk.public_key(),
            signed_prekey_signature: *spk.signature(),
            last_resort_kem_prekey: published_kem(last_resort),
            one_time_kem_prekeys,
            one_time_prekeys: one_time.into_iter().collect(),
        },
    );
    let (left, kem_left) = directory.one_time_prekeys_left("bob");
    println!(
        "bob uploads identity {:?}, device {bob_device}, signed prekey #{}, last-resort KEM prekey #{}, \
         {left} one-time prekeys, {kem_left} one-time KEM prekeys ({KEM_PUBLIC_KEY_LEN}-byte ML-KEM-768 keys)",
        bob.identity.public_key(),
        spk.id(),
        last_resort.id(),
    );

    let wire_bundle = directory.fetch_bundle("bob")?;
    let (left, kem_left) = directory.one_time_prekeys_left("bob");
    println!(
        "server -> alice: bundle len={} bytes={} (left on server: {left} one-time prekeys, \
         {kem_left} one-time KEM prekeys)",
        wire_bundle.len(),
        hex_prefix(&wire_bundle, 8),
    );
    let bundle = PreKeyBundle::decode(&wire_bundle)?.verify()?;
    println!(
        "alice decodes and verifies it: identity {:?}, device {}, KEM prekey #{}, both signatures ok",
        bundle.identity_key(),
        bundle.device_id(),
        bundle.kem_prekey().0,
    );
    // A server that swaps in its own signed prekey or KEM prekey is caught by
    // the signatures.
    let mut swapped_signed = wire_bundle.clone();
    swapped_signed[1 + 32 + 4 + 4] ^= 0x01; // first byte of the signed prekey
    let mut swapped_kem = wire_bundle.clone();
    // The KEM key (from byte 141) ends with its 32-byte seed rho, which any
    // value fits: the altered key still decodes.
    swapped_kem[141 + KEM_PUBLIC_KEY_LEN - 32] ^= 0x01;
    for (what, forged) in [
        ("signed prekey", swapped_signed),
        ("KEM prekey", swapped_kem),
    ] {
        match PreKeyBundle::decode(&forged)?.verify() {
            Err(e @ Error::InvalidSignature) => println!("a bundle with a swapped {what}: {e}"),
            other => return Err(format!("forged bundle not rejected: {other:?}").into()),
        }
    }

    // ---------------------------------------------------------------------
    section("2. Alice starts a session (PQXDH: X25519 + ML-KEM-768); Bob accepts it");
    // Alice asked the directory for "bob": that is the peer account; the
    // bundle names the device.
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    let hello = "Hi Bob, it's Alice.";
    mailbox.post("bob", alice_session.encrypt(&mut rng, hello.as_bytes())?);
    println!(
        "alice sends {hello:?} (awaiting reply: {})",
        alice_session.is_awaiting_reply()
    );

    let wire = mailbox.take_one("bob")?;
    let Message::PreKey(first) = Message::parse(&wire)? else {
        return Err("expected a prekey message".into());
    };
    let kem_kind = bob_prekeys
        .find_kem_prekey(first.kem_prekey_id())
        .map(|(_, kind)| kind);
    let before = (
        bob_prekeys.one_time_prekey_count(),
        bob_prekeys.one_time_kem_prekey_count(),
    );
    // The server tells Bob which device the message came from.
    let (mut bob_session, plaintext) =
        Responder::new(&bob, &mut bob_prekeys).accept(&alice.address(), &first)?;
    show(
        "bob",
        &wire,
        &format!("bob reads {:?}", String::from_utf8_lossy(&plaintext)),
    );
    println!(
        "bob accepted it with signed prekey #{}, {} KEM prekey #{} (ciphertext {} bytes) and one-time prekey #{}",
        first.signed_prekey_id(),
        match kem_kind {
            Some(KemPreKeyKind::OneTime) => "one-time",
            Some(KemPreKeyKind::LastResort) => "last-resort",
            None => "unknown",
        },
        first.kem_prekey_id(),
        first.kem_ciphertext().len(),
        first
            .one_time_prekey_id()
            .map_or_else(|| "-".to_string(), |id| id.to_string()),
    );
    println!(
        "both are spent: his one-time prekeys {} -> {}, one-time KEM prekeys {} -> {} \
         (the last-resort KEM prekey #{} stays)",
        before.0,
        bob_prekeys.one_time_prekey_count(),
        before.1,
        bob_prekeys.one_time_kem_prekey_count(),
        bob_prekeys.last_resort_kem_prekey().id(),
    );
    println!(
        "bob's session names alice's identity as the peer: {}",
        bob_session.remote_identity() == alice.identity.public_key()
    );

    // ---------------------------------------------------------------------
    section("3. Conversation in both directions");
    mailbox.post(
        "alice",
        bob_session.encrypt(&mut rng, b"Hey Alice! Got your message.")?,
    );
    let awaiting_len = alice_session.encode().len();
    for wire in mailbox.take_all("alice") {
        deliver(&mut alice_session, &wire, "alice")?;
    }
    println!(
        "alice got a reply (awaiting reply: {}), so she now sends ratchet messages; her stored \
         session drops the KEM ciphertext it repeated: {awaiting_len} -> {} bytes",
        alice_session.is_awaiting_reply(),
        alice_session.encode().len(),
    );
    mailbox.post(
        "bob",
        alice_session.encrypt(&mut rng, b"Great. Lunch tomorrow?")?,
    );
    for wire in mailbox.take_all("bob") {
        deliver(&mut bob_session, &wire, "bob")?;
    }
    mailbox.post(
        "alice",
        bob_session.encrypt(&mut rng, b"Sure, noon works.")?,
    );
    for wire in mailbox.take_all("alice") {
        deliver(&mut alice_session, &wire, "alice")?;
    }

    // ---------------------------------------------------------------------
    section("4. Out-of-order delivery: sent 1,2,3, delivered 3,1,2");
    for text in [
        "(1) Where?",
        "(2) The usual place?",
        "(3) Bring the slides.",
    ] {
        mailbox.post("bob", alice_session.encrypt(&mut rng, text.as_bytes())?);
    }
    let mut queued = mailbox.take_all("bob");
    queued.rotate_right(1); // 1,2,3 -> 3,1,2
    for wire in &queued {
        deliver(&mut bob_session, wire, "bob")?;
        println!(
            "    bob holds {} skipped message key(s)",
            bob_session.skipped_key_count()
        );
    }

    // ---------------------------------------------------------------------
    section("5. A tampered message is rejected; the session is unaffected");
    mailbox.post("bob", alice_session.encrypt(&mut rng, b"See you at noon.")?);
    let genuine = mailbox.take_one("bob")?;
    let mut tampered = genuine.clone();
    tampered[HEADER_LEN] ^= 0x01; // first ciphertext byte of a ratchet message
    let state_before = bob_session.encode();
    match bob_session.decrypt(&tampered) {
        Err(e @ Error::DecryptionFailed) => {
            show(
                "bob",
                &tampered,
                &format!("bob rejects it: Error::{e:?} ({e})"),
            );
        }
        Ok(_) => return Err("tampered message was accepted".into()),
        Err(e) => return Err(e.into()),
    }
    let unchanged = *state_before == *bob_session.encode();
    println!(
        "Session::encode() before and after the failed decrypt is identical: {unchanged} ({} bytes)",
        state_before.len(),
    );
    if !unchanged {
        return Err("a failed decrypt changed the session".into());
    }
    deliver(&mut bob_session, &genuine, "bob")?;

    // ---------------------------------------------------------------------
    section("6. Bob saves and restores his session mid-conversation");
    mailbox.post(
        "bob",
        alice_session.encrypt(&mut rng, b"Did your phone restart?")?,
    );
    let saved = bob_session.encode(); // holds secrets: store it encrypted
    drop(bob_session);
    println!(
        "bob's app stores {} bytes of session state and restarts",
        saved.len()
    );
    let mut bob_session = Session::decode(&saved)?;
    println!(
        "restored: role {:?}, peer {:?}, re-encodes identically: {}",
        bob_session.role(),
        bob_session.remote_identity(),
        *bob_session.encode() == *saved,
    );
    for wire in mailbox.take_all("bob") {
        deliver(&mut bob_session, &wire, "bob")?;
    }
    mailbox.post(
        "alice",
        bob_session.encrypt(&mut rng, b"Yes, but I'm still here.")?,
    );
    for wire in mailbox.take_all("alice") {
        deliver(&mut alice_session, &wire, "alice")?;
    }
    mailbox.post("bob", alice_session.encrypt(&mut rng, b"Good. Bye!")?);
    for wire in mailbox.take_all("bob") {
        deliver(&mut bob_session, &wire, "bob")?;
    }
    Ok(())
}
