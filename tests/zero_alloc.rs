//! Steady-state encrypt and decrypt into caller buffers allocate nothing.
//!
//! A counting global allocator (dhat in testing mode) counts heap blocks around
//! the hot path. This test has no libtest harness (`harness = false`), so no other
//! thread can allocate while it counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::hazmat;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::{
    AccountId, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyMessage, PreKeyStore,
    RATCHET_MESSAGE_OVERHEAD, RatchetMessage, Responder, Session,
};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn main() {
    steady_state_encrypt_and_decrypt_do_not_allocate();
    println!("zero_alloc: steady-state encrypt_into/decrypt_into made 0 allocations in 96 rounds");
}

fn steady_state_encrypt_and_decrypt_do_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut rng = ChaCha20Rng::from_seed([42; 32]);
    let alice = LocalDevice {
        account: AccountId::new(b"alice").unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::generate(&mut rng),
    };
    // Bob's prekey store (and so his bundle) is for device 1.
    let bob = LocalDevice {
        account: AccountId::new(b"bob").unwrap(),
        device_id: 1,
        identity: IdentityKeyPair::generate(&mut rng),
    };
    let mut store = PreKeyStore::generate(&mut rng, &bob.identity, bob.device_id);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
        .verify()
        .unwrap();
    let mut a = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
    let first = a.encrypt(&mut rng, b"hello").unwrap();
    let (mut b, _) = Responder::new(&bob, &mut store)
        .accept(&alice.address(), &PreKeyMessage::parse(&first).unwrap())
        .unwrap();
    let reply = b.encrypt(&mut rng, b"hi").unwrap();
    a.decrypt(&reply).unwrap();

    let plaintext = [0x33u8; 1024];
    let mut wire = [0u8; 1024 + RATCHET_MESSAGE_OVERHEAD];
    let mut out = [0u8; 1024];
    let before = blocks();
    for round in 0..100 {
        // Both directions, many messages per chain: the steady state.
        let (sender, receiver) = if round % 50 < 25 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        if round % 25 == 0 {
            // The first message after a direction change is a DH ratchet step
            // (its sending half is deferred to this encrypt, its receiving
            // half is this decrypt): not the steady state, so it is left out
            // of the count.
            assert_eq!(hazmat::sending_chain_key(sender), None, "round {round}");
            let m = sender.encrypt(&mut rng, b"turn").unwrap();
            receiver.decrypt(&m).unwrap();
            assert!(hazmat::sending_chain_key(sender).is_some());
            assert_eq!(hazmat::sending_chain_key(receiver), None);
            continue;
        }
        let start = blocks();
        let len = sender
            .encrypt_into(&mut rng, &plaintext, &mut wire)
            .unwrap();
        let message = RatchetMessage::parse(&wire[..len]).unwrap();
        let n = receiver.decrypt_into(&message, &mut out).unwrap();
        assert_eq!(&out[..n], &plaintext[..]);
        assert_eq!(blocks(), start, "round {round} allocated");
    }
    // The Vec conveniences used for the ratchet steps do allocate: the counter is live.
    assert!(blocks() > before);
}
