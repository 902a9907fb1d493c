//! The native side of the FFI overhead benchmark
//! (`tests/bench_overhead.py` times the same work called from Python).

use std::hint::black_box;
use std::time::Instant;

use ratchetbox::devices::{LocalDevice, SessionManager};
use ratchetbox::store::MemoryStore;
use ratchetbox::{
    AccountId, IdentityKeyPair, PreKeyBundle, PreKeyMessage, PreKeyStore, Responder, Session,
    os_rng,
};

use crate::error::RatchetboxError;

fn manager(name: &[u8]) -> Result<SessionManager<MemoryStore>, RatchetboxError> {
    let rng = &mut os_rng();
    let identity = IdentityKeyPair::generate(rng);
    let prekeys = PreKeyStore::generate(rng, &identity, 1);
    let account = AccountId::new(name)?;
    let local = LocalDevice {
        account,
        device_id: 1,
        identity,
    };
    Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
}

/// Times `iterations` round trips natively: Alice's session manager encrypts
/// a `message_len`-byte message for Bob's only device and Bob's manager
/// decrypts it, both over in-memory stores, after a session was set up and
/// used once each way (so every timed message is a steady-state ratchet
/// message, as in the Python benchmark). Returns nanoseconds per round trip.
///
/// # Errors
/// Any protocol error (none is expected).
#[uniffi::export]
pub fn bench_rust_round_trips(iterations: u32, message_len: u32) -> Result<f64, RatchetboxError> {
    let rng = &mut os_rng();
    let mut alice = manager(b"alice")?;
    let mut bob = manager(b"bob")?;
    let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    let bundle = PreKeyBundle::from_store(
        bob.local().identity.public_key(),
        bob.store().prekeys(),
        None,
    );
    alice.process_bundle(rng, &bob_id, bundle)?;
    let first = alice.encrypt(rng, &bob_id, b"hello", &[1], &[])?;
    let from_alice = alice.local().address();
    for outgoing in &first {
        bob.decrypt(&from_alice, &outgoing.message)?;
    }
    let reply = bob.encrypt(rng, &alice_id, b"hi", &[1], &[])?;
    let from_bob = bob.local().address();
    for outgoing in &reply {
        alice.decrypt(&from_bob, &outgoing.message)?;
    }
    let plaintext = vec![0x42u8; message_len as usize];
    let start = Instant::now();
    for _ in 0..iterations {
        let outgoing = alice.encrypt(rng, &bob_id, &plaintext, &[1], &[])?;
        for message in &outgoing {
            black_box(bob.decrypt(&from_alice, &message.message)?);
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    Ok(elapsed / f64::from(iterations.max(1)))
}

/// Times `iterations` round trips natively over raw sessions (the work
/// `Session.encrypt` and `Session.decrypt` do from Python): Alice's session
/// encrypts a `message_len`-byte message and Bob's decrypts it, after one
/// message each way. Returns nanoseconds per round trip.
///
/// # Errors
/// Any protocol error (none is expected).
#[uniffi::export]
pub fn bench_rust_session_round_trips(
    iterations: u32,
    message_len: u32,
) -> Result<f64, RatchetboxError> {
    let rng = &mut os_rng();
    let alice = manager(b"alice")?;
    let mut bob = manager(b"bob")?;
    let bob_id = bob.local().account;
    let bundle = PreKeyBundle::from_store(
        bob.local().identity.public_key(),
        bob.store().prekeys(),
        None,
    )
    .verify()?;
    let mut alice_session = Session::initiate(rng, alice.local(), &bob_id, &bundle)?;
    let first = alice_session.encrypt(rng, b"hello")?;
    let bob_local = LocalDevice::decode(&bob.local().encode())?;
    let responder = Responder::new(&bob_local, bob.store_mut().prekeys_mut());
    let (mut bob_session, _) =
        responder.accept(&alice.local().address(), &PreKeyMessage::parse(&first)?)?;
    let reply = bob_session.encrypt(rng, b"hi")?;
    alice_session.decrypt(&reply)?;
    let plaintext = vec![0x42u8; message_len as usize];
    let start = Instant::now();
    for _ in 0..iterations {
        let message = alice_session.encrypt(rng, &plaintext)?;
        black_box(bob_session.decrypt(&message)?);
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    Ok(elapsed / f64::from(iterations.max(1)))
}
