//! Alice and Bob chat, each keeping her or his state in a SQLite file; run it
//! again and the conversation continues where it stopped.
//!
//! ```text
//! cargo run --release -p ratchetbox-sqlite --example sqlite_chat [DIR]
//! ```
//!
//! DIR defaults to `target/sqlite-chat`. Delete it to start over.
//!
//! The database keys are kept in `DIR/*.key` so that the example can run
//! twice; a real app keeps them in the platform keystore (Keychain, Android
//! Keystore), never beside the database.

use std::error::Error;
use std::path::Path;

use ratchetbox::devices::{LocalDevice, SessionManager};
use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
use ratchetbox_sqlite::{DatabaseKey, SqliteStore};

type Device = SessionManager<SqliteStore>;

fn key(dir: &Path, name: &str) -> Result<DatabaseKey, Box<dyn Error>> {
    let path = dir.join(format!("{name}.key"));
    if let Ok(bytes) = std::fs::read(&path) {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "key file is not 32 bytes")?;
        return Ok(DatabaseKey::from_bytes(bytes));
    }
    let mut bytes = [0u8; 32];
    ratchetbox::rand_core::Rng::fill_bytes(&mut ratchetbox::os_rng(), &mut bytes);
    std::fs::write(&path, bytes)?;
    Ok(DatabaseKey::from_bytes(bytes))
}

/// Opens `name`'s database, creating the device on the first run.
fn open(dir: &Path, name: &str) -> Result<(Device, bool), Box<dyn Error>> {
    let key = key(dir, name)?;
    let path = dir.join(format!("{name}.db"));
    let created = !path.exists();
    if created {
        let mut rng = ratchetbox::os_rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let mut prekeys = PreKeyStore::generate(&mut rng, &identity, 1);
        prekeys.generate_one_time_prekeys(&mut rng, 10)?;
        let local = LocalDevice {
            account: AccountId::new(name.as_bytes())?,
            device_id: 1,
            identity,
        };
        SqliteStore::create(&path, &key, &local, prekeys)?;
    }
    let (local, store) = SqliteStore::open(&path, &key)?;
    Ok((SessionManager::new(local, store), created))
}

/// The number in the app row `count`.
fn count(device: &Device) -> Result<u64, Box<dyn Error>> {
    Ok(match device.store().app_value(b"count")? {
        Some(v) => u64::from_be_bytes(v[..].try_into()?),
        None => 0,
    })
}

/// `from` writes `text` to `to`, who reads it; the receiver's message count
/// commits in the same transaction as its ratchet step.
fn say(from: &mut Device, to: &mut Device, text: &str) -> Result<(), Box<dyn Error>> {
    let mut rng = ratchetbox::os_rng();
    let to_account = to.local().account;
    let out = from.encrypt(&mut rng, &to_account, text.as_bytes(), &[1], &[1])?;
    let n = count(to)? + 1;
    to.store_mut().stage(b"count", &n.to_be_bytes());
    let got = match to.decrypt(&from.local().address(), &out[0].message) {
        Ok(got) => got,
        Err(e) => {
            to.store_mut().clear_staged();
            return Err(e.into());
        }
    };
    println!(
        "{} -> {}: {}",
        String::from_utf8_lossy(from.local().account.as_bytes()),
        String::from_utf8_lossy(to_account.as_bytes()),
        String::from_utf8_lossy(&got.plaintext)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/sqlite-chat".to_string());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let (mut alice, new_alice) = open(dir, "alice")?;
    let (mut bob, _) = open(dir, "bob")?;

    if new_alice {
        // Alice fetches Bob's bundle (a server would hand it out).
        let mut rng = ratchetbox::os_rng();
        let bob_id = bob.local().account;
        let identity = IdentityKeyPair::decode(&bob.local().identity.encode())?;
        let bundle = bob.store_mut().update_prekeys(|p| {
            let id = p.one_time_prekey_ids().next();
            PreKeyBundle::from_store(identity.public_key(), p, id)
        })?;
        alice.process_bundle(&mut rng, &bob_id, bundle)?;
        println!("new conversation in {}", dir.display());
    } else {
        let so_far = count(&alice)? + count(&bob)?;
        println!("resumed: {so_far} messages so far");
    }
    let run = count(&bob)? + 1;
    say(&mut alice, &mut bob, &format!("hello Bob (run {run})"))?;
    say(
        &mut bob,
        &mut alice,
        &format!("hi Alice, got it (run {run})"),
    )?;
    println!(
        "{} messages so far; run again to continue",
        count(&alice)? + count(&bob)?
    );
    Ok(())
}
