//! The crash-test driver: three parties (alice, bob, carol), each with its
//! own SQLite file, hold a long conversation — 1:1 in every direction,
//! delivered out of order, and a sender-key group — while the test
//! (`tests/crash_safety.rs`) kills this process with SIGKILL at random points
//! and starts it again.
//!
//! Usage: `crash_driver init DIR`, `crash_driver run DIR STEPS`,
//! `crash_driver finish DIR`.
//!
//! # How the app keeps its own books in the store's transactions
//! Every app row lives in the party's own database and is committed in the
//! same transaction as the protocol state that justifies it
//! ([`SqliteStore::stage`]):
//! - **receiving**: the marker `in/<sender>/<seq>` (holding the plaintext) is
//!   staged before `decrypt` / the group decrypt, so the ratchet step and the
//!   marker commit together: a message is delivered exactly once, whatever
//!   the crash point;
//! - **sending 1:1**: `SessionManager::encrypt` commits before the app sees
//!   the ciphertext, so the app stages the *intent* `pend/<to>/<seq>` (the
//!   plaintext) with the ratchet step, then writes `out/<to>/<seq>` (the
//!   ciphertext: the "wire") and drops the intent in a second transaction. A
//!   crash between the two leaves an intent, which the next start encrypts
//!   again on a fresh message key (the burnt key is a gap the receiver skips);
//! - **sending to the group**: the ciphertext is produced inside `with_group`,
//!   whose apply follows, so the wire rows go through a [`Stager`] in the same
//!   transaction as the chain step;
//! - **group keys**: a distribution message decrypts into a pending row
//!   (`pdist/<sender>`, with the marker), then is processed into the group
//!   state with `dist/<sender>` in a second transaction; a start finishes any
//!   pending one.
//!
//! The receiver reads the sender's `out/` rows (the wire), which exist only
//! if the sender's state committed them. Stdout gets one `D sender receiver
//! seq` line per delivery, after its commit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::Path;
use std::process::exit;

use ratchetbox::devices::{LocalDevice, SessionManager};
use ratchetbox::group::GroupSession;
use ratchetbox::rand_core::Rng;
use ratchetbox::{AccountId, DeviceAddress, IdentityKeyPair, PreKeyBundle, PreKeyStore};
use ratchetbox_sqlite::{DatabaseKey, SqliteStore};

const PARTIES: [&str; 3] = ["alice", "bob", "carol"];
const GROUP: &[u8] = b"crew";
/// How far ahead of the oldest undelivered message a receiver may pick.
const WINDOW: usize = 4;

type Device = SessionManager<SqliteStore>;

fn key(name: &str) -> DatabaseKey {
    let mut bytes = [0u8; 32];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    DatabaseKey::from_bytes(bytes)
}

fn account(name: &str) -> AccountId {
    AccountId::new(name.as_bytes()).unwrap()
}

fn address(name: &str) -> DeviceAddress {
    DeviceAddress::new(account(name), 1)
}

fn index(name: &str) -> u32 {
    PARTIES.iter().position(|p| *p == name).unwrap() as u32
}

/// The one-time prekey id `responder` reserved for `initiator`'s bundle.
fn reserved_prekey(initiator: &str) -> u32 {
    1 + index(initiator)
}

fn open(dir: &Path, name: &str) -> Device {
    let (local, store) = SqliteStore::open(dir.join(format!("{name}.db")), &key(name))
        .unwrap_or_else(|e| fail(&format!("{name}: open: {e}")));
    SessionManager::new(local, store)
}

fn fail(message: &str) -> ! {
    eprintln!("DRIVER FAILURE: {message}");
    exit(2)
}

fn identity(name: &str) -> IdentityKeyPair {
    let mut seed = [9u8; 32];
    seed[..name.len()].copy_from_slice(name.as_bytes());
    IdentityKeyPair::from_seed(&seed)
}

/// Creates the three databases; alice → bob, bob → carol and carol → alice
/// fetch bundles (the first messages, and the other directions, happen under
/// fire); everyone creates the group.
fn init(dir: &Path) {
    let mut rng = ratchetbox::os_rng();
    let mut devices = Vec::new();
    for name in PARTIES {
        let identity = identity(name);
        let mut prekeys = PreKeyStore::generate(&mut rng, &identity, 1);
        // One reserved one-time prekey per possible initiator (ids 1..=3).
        let ids = prekeys.generate_one_time_prekeys(&mut rng, 3).unwrap();
        for (i, (id, _)) in ids.iter().enumerate() {
            assert_eq!(*id, 1 + i as u32, "one-time prekey ids start at 1");
        }
        let local = LocalDevice {
            account: account(name),
            device_id: 1,
            identity,
        };
        let path = dir.join(format!("{name}.db"));
        SqliteStore::create(&path, &key(name), &local, prekeys).unwrap();
        devices.push(open(dir, name));
    }
    for (from, to) in [(0usize, 1usize), (1, 2), (2, 0)] {
        let opk = reserved_prekey(PARTIES[from]);
        let bundle = devices[to]
            .store()
            .with_prekeys(|p| {
                PreKeyBundle::from_store(devices[to].local().identity.public_key(), p, Some(opk))
            })
            .unwrap();
        assert_eq!(bundle.one_time_prekey().map(|(id, _)| id), Some(opk));
        let to_account = account(PARTIES[to]);
        devices[from]
            .process_bundle(&mut rng, &to_account, bundle)
            .unwrap();
    }
    for device in &mut devices {
        device
            .save_group(GroupSession::create(&mut rng, GROUP).unwrap())
            .unwrap();
    }
}

fn app_u64(device: &Device, name: &str) -> u64 {
    device
        .store()
        .app_value(name.as_bytes())
        .unwrap()
        .map(|v| u64::from_be_bytes(v[..8].try_into().unwrap()))
        .unwrap_or(0)
}

fn has(device: &Device, name: &str) -> bool {
    device.store().app_value(name.as_bytes()).unwrap().is_some()
}

fn names(device: &Device, prefix: &str) -> Vec<String> {
    device
        .store()
        .app_names(prefix.as_bytes())
        .unwrap()
        .into_iter()
        .map(|n| String::from_utf8(n).unwrap())
        .collect()
}

/// An outbox row: kind ('M' 1:1, 'D' distribution, 'G' group), then the
/// plaintext's length and bytes, then the ciphertext.
fn wire_row(kind: u8, plaintext: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut row = vec![kind];
    row.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
    row.extend_from_slice(plaintext);
    row.extend_from_slice(ciphertext);
    row
}

fn parse_row(row: &[u8]) -> (u8, &[u8], &[u8]) {
    let len = u32::from_be_bytes(row[1..5].try_into().unwrap()) as usize;
    (row[0], &row[5..5 + len], &row[5 + len..])
}

/// Sends `plaintext` 1:1 (kind 'M' or 'D'): the intent commits with the
/// ratchet step, the wire row replaces it in a second transaction.
fn send_direct(device: &mut Device, to: &str, kind: u8, plaintext: &[u8]) {
    let seq = app_u64(device, &format!("next/{to}"));
    let mut intent = vec![kind];
    intent.extend_from_slice(plaintext);
    let store = device.store_mut();
    store.stage(format!("pend/{to}/{seq:08}").as_bytes(), &intent);
    store.stage(format!("next/{to}").as_bytes(), &(seq + 1).to_be_bytes());
    let ciphertext = encrypt(device, to, plaintext);
    write_wire(device, to, seq, kind, plaintext, &ciphertext);
}

fn encrypt(device: &mut Device, to: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut rng = ratchetbox::os_rng();
    match device.encrypt(&mut rng, &account(to), plaintext, &[1], &[1]) {
        Ok(out) => out.into_iter().next().unwrap().message,
        Err(e) => fail(&format!("{} encrypt to {to}: {e:?}", name_of(device))),
    }
}

fn write_wire(device: &mut Device, to: &str, seq: u64, kind: u8, plaintext: &[u8], ct: &[u8]) {
    let store = device.store_mut();
    store.stage(
        format!("out/{to}/{seq:08}").as_bytes(),
        &wire_row(kind, plaintext, ct),
    );
    store.stage_delete(format!("pend/{to}/{seq:08}").as_bytes());
    store.commit_staged().unwrap();
}

fn name_of(device: &Device) -> String {
    String::from_utf8(device.local().account.as_bytes().to_vec()).unwrap()
}

/// Finishes what a crash interrupted: intents without a wire row are
/// encrypted again; decrypted distributions are processed.
fn recover(device: &mut Device) {
    for name in names(device, "pend/") {
        let mut parts = name.split('/');
        let (to, seq) = (parts.nth(1).unwrap().to_string(), parts.next().unwrap());
        let seq: u64 = seq.parse().unwrap();
        let intent = device.store().app_value(name.as_bytes()).unwrap().unwrap();
        let (kind, plaintext) = (intent[0], intent[1..].to_vec());
        println!("R intent {} {name}", name_of(device));
        let ciphertext = encrypt(device, &to, &plaintext);
        write_wire(device, &to, seq, kind, &plaintext, &ciphertext);
    }
    for name in names(device, "pdist/") {
        let sender = name["pdist/".len()..].to_string();
        let distribution = device.store().app_value(name.as_bytes()).unwrap().unwrap();
        println!("R distribution {} {name}", name_of(device));
        process_distribution(device, &sender, &distribution);
    }
}

fn process_distribution(device: &mut Device, sender: &str, distribution: &[u8]) {
    let store = device.store_mut();
    store.stage(format!("dist/{sender}").as_bytes(), b"1");
    store.stage_delete(format!("pdist/{sender}").as_bytes());
    let from = address(sender);
    if let Err(e) = device.with_group(GROUP, |g| {
        g.process_distribution(from.as_address(), distribution)
    }) {
        fail(&format!(
            "{} distribution from {sender}: {e:?}",
            name_of(device)
        ));
    }
}

/// One party sends something: a distribution to a member that lacks it, a
/// group message once every member has it, or a 1:1 message.
fn send_step(devices: &mut [Device], me: usize, rng: &mut impl Rng) {
    let name = PARTIES[me];
    let others: Vec<&str> = PARTIES.iter().copied().filter(|p| *p != name).collect();
    let to = others[(rng.next_u32() % 2) as usize];
    let device = &mut devices[me];
    let has_session = !device.session_devices(&account(to)).unwrap().is_empty();
    if has_session && !has(device, &format!("dsent/{to}")) {
        let distribution = device
            .with_group(GROUP, |g| Ok(g.distribution().to_vec()))
            .unwrap();
        device
            .store_mut()
            .stage(format!("dsent/{to}").as_bytes(), b"1");
        send_direct(device, to, b'D', &distribution);
        return;
    }
    let everyone = others.iter().all(|o| has(device, &format!("dsent/{o}")));
    if everyone && rng.next_u32().is_multiple_of(3) {
        let gseq = app_u64(device, "gnext");
        let plaintext = format!("{name} to the group #{gseq}").into_bytes();
        let seqs: Vec<u64> = others
            .iter()
            .map(|o| app_u64(device, &format!("next/{o}")))
            .collect();
        let stager = device.store().stager();
        let mut grng = ratchetbox::os_rng();
        let result = device.with_group(GROUP, |g| {
            let ciphertext = g.encrypt(&mut grng, &plaintext)?;
            for (o, seq) in others.iter().zip(&seqs) {
                stager.stage(
                    format!("out/{o}/{seq:08}").as_bytes(),
                    &wire_row(b'G', &plaintext, &ciphertext),
                );
                stager.stage(format!("next/{o}").as_bytes(), &(seq + 1).to_be_bytes());
            }
            stager.stage(b"gnext", &(gseq + 1).to_be_bytes());
            Ok(())
        });
        if let Err(e) = result {
            fail(&format!("{name} group encrypt: {e:?}"));
        }
        return;
    }
    if has_session {
        let seq = app_u64(device, &format!("next/{to}"));
        let text = format!("{name} to {to} #{seq} {}", "x".repeat((seq % 40) as usize));
        send_direct(device, to, b'M', text.as_bytes());
    }
}

/// One party receives one undelivered message from one sender, picked among
/// the oldest few (so they arrive out of order).
fn receive_step(devices: &mut [Device], me: usize, rng: &mut impl Rng) -> bool {
    let sender = (me + 1 + (rng.next_u32() % 2) as usize) % 3;
    receive_from(devices, me, sender, rng)
}

/// `me` receives one undelivered message from `s`, if there is one.
fn receive_from(devices: &mut [Device], me: usize, s: usize, rng: &mut impl Rng) -> bool {
    let (name, sender) = (PARTIES[me], PARTIES[s]);
    let wire = names(&devices[s], &format!("out/{name}/"));
    let delivered = names(&devices[me], &format!("in/{sender}/"));
    let delivered: std::collections::HashSet<&str> = delivered
        .iter()
        .map(|n| &n[n.rfind('/').unwrap() + 1..])
        .collect();
    let mut candidates = Vec::new();
    for row_name in &wire {
        let seq = &row_name[row_name.rfind('/').unwrap() + 1..];
        if delivered.contains(seq) {
            continue;
        }
        let row = devices[s]
            .store()
            .app_value(row_name.as_bytes())
            .unwrap()
            .unwrap();
        // A group message waits for its sender's distribution.
        if row[0] == b'G' && !has(&devices[me], &format!("dist/{sender}")) {
            continue;
        }
        candidates.push((seq.to_string(), row.to_vec()));
        if candidates.len() == WINDOW {
            break;
        }
    }
    if candidates.is_empty() {
        return false;
    }
    let (seq, row) = candidates.swap_remove(rng.next_u32() as usize % candidates.len());
    deliver(&mut devices[me], sender, &seq, &row);
    true
}

fn deliver(device: &mut Device, sender: &str, seq: &str, row: &[u8]) {
    let (kind, expected, ciphertext) = parse_row(row);
    let name = name_of(device);
    let from = address(sender);
    device
        .store_mut()
        .stage(format!("in/{sender}/{seq}").as_bytes(), expected);
    let plaintext = if kind == b'G' {
        device
            .with_group(GROUP, |g| g.decrypt(from.as_address(), ciphertext))
            .map(|p| p.to_vec())
    } else {
        if kind == b'D' {
            device
                .store_mut()
                .stage(format!("pdist/{sender}").as_bytes(), expected);
        }
        device
            .decrypt(&from, ciphertext)
            .map(|d| d.plaintext.to_vec())
    };
    match plaintext {
        Ok(p) if p == expected => {}
        Ok(_) => fail(&format!(
            "{name}: message {sender}/{seq} decrypted to other bytes"
        )),
        Err(e) => fail(&format!(
            "{name}: message {sender}/{seq} ({}): {e:?}",
            kind as char
        )),
    }
    println!("D {sender} {name} {seq}");
    let _ = std::io::stdout().flush();
    if kind == b'D' {
        process_distribution(device, sender, expected);
    }
}

fn run(dir: &Path, steps: u64) {
    let mut devices: Vec<Device> = PARTIES.iter().map(|p| open(dir, p)).collect();
    for device in &mut devices {
        recover(device);
    }
    let mut rng = ratchetbox::os_rng();
    for _ in 0..steps {
        let me = (rng.next_u32() % 3) as usize;
        if rng.next_u32().is_multiple_of(2) {
            send_step(&mut devices, me, &mut rng);
        } else {
            receive_step(&mut devices, me, &mut rng);
        }
    }
}

/// Delivers everything on the wire, in windowed random order per sender.
fn drain(devices: &mut [Device], rng: &mut impl Rng) {
    loop {
        let mut progressed = false;
        for me in 0..3 {
            for s in 0..3 {
                while s != me && receive_from(devices, me, s, rng) {
                    progressed = true;
                }
            }
        }
        if !progressed {
            break;
        }
    }
}

/// Delivers everything still on the wire, then checks every invariant.
fn finish(dir: &Path) {
    let mut devices: Vec<Device> = PARTIES.iter().map(|p| open(dir, p)).collect();
    for device in &mut devices {
        recover(device);
    }
    let mut rng = ratchetbox::os_rng();
    drain(&mut devices, &mut rng);
    let mut total = 0;
    for (r, receiver) in PARTIES.iter().enumerate() {
        for (s, sender) in PARTIES.iter().enumerate() {
            if r == s {
                continue;
            }
            // Nothing the sender committed as sent is lost, and every
            // delivery matches what was sent.
            for row_name in names(&devices[s], &format!("out/{receiver}/")) {
                let seq = &row_name[row_name.rfind('/').unwrap() + 1..];
                let row = devices[s]
                    .store()
                    .app_value(row_name.as_bytes())
                    .unwrap()
                    .unwrap();
                let got = devices[r]
                    .store()
                    .app_value(format!("in/{sender}/{seq}").as_bytes())
                    .unwrap()
                    .unwrap_or_else(|| fail(&format!("{sender}->{receiver} #{seq} lost")));
                if &got[..] != parse_row(&row).1 {
                    fail(&format!("{sender}->{receiver} #{seq} differs"));
                }
                total += 1;
            }
            // Nothing delivered that was not sent.
            let sent = names(&devices[s], &format!("out/{receiver}/")).len();
            let delivered = names(&devices[r], &format!("in/{sender}/")).len();
            if sent != delivered {
                fail(&format!(
                    "{sender}->{receiver}: {sent} sent, {delivered} delivered"
                ));
            }
            // The reserved one-time prekey is spent once the session exists.
            if !devices[r]
                .session_devices(&account(sender))
                .unwrap()
                .is_empty()
            {
                let opk = reserved_prekey(sender);
                let left = devices[r]
                    .store()
                    .with_prekeys(|p| p.find_one_time_prekey(opk).is_some())
                    .unwrap();
                let initiated = [(0, 1), (1, 2), (2, 0)].contains(&(s, r));
                if initiated && left {
                    fail(&format!(
                        "{receiver} still holds {sender}'s one-time prekey"
                    ));
                }
            }
        }
        if !names(&devices[r], "pend/").is_empty() || !names(&devices[r], "pdist/").is_empty() {
            fail(&format!("{receiver} has unfinished work"));
        }
    }
    // The sessions still work in every direction after all that.
    for me in 0..3 {
        for to in PARTIES {
            if to != PARTIES[me]
                && !devices[me]
                    .session_devices(&account(to))
                    .unwrap()
                    .is_empty()
            {
                send_direct(&mut devices[me], to, b'M', b"final check");
            }
        }
    }
    drain(&mut devices, &mut rng);
    for device in &devices {
        device
            .store()
            .integrity_check()
            .unwrap_or_else(|e| fail(&format!("integrity: {e}")));
    }
    println!("OK {total}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(command), Some(dir)) = (args.get(1), args.get(2)) else {
        fail("usage: crash_driver init|run|finish DIR [STEPS]");
    };
    let dir = Path::new(dir);
    match command.as_str() {
        "init" => init(dir),
        "run" => run(dir, args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200)),
        "finish" => finish(dir),
        _ => fail("unknown command"),
    }
}
