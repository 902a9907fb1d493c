//! The cost of the C ABI: a 256-byte message encrypted and decrypted in a
//! steady-state session through the Rust API and through the `extern "C"`
//! functions (called from Rust, so the same compiler flags), in one run.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/targets/cabi cargo bench -p ratchetbox-ffi --bench ffi_overhead
//! ```

use std::hint::black_box;
use std::ptr;

use criterion::{Criterion, criterion_group, criterion_main};
use ratchetbox::{
    AccountId, IdentityKeyPair, LocalDevice, Message, PreKeyBundle, PreKeyStore, RatchetMessage,
    Responder, Session,
};
use ratchetbox_ffi::*;

const LEN: usize = 256;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Alice and Bob after one round trip: both sides send ratchet messages.
fn rust_pair() -> Result<(Session, Session)> {
    let mut rng = ratchetbox::os_rng();
    let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice> {
        Ok(LocalDevice {
            account: AccountId::new(name)?,
            device_id: 1,
            identity: IdentityKeyPair::generate(rng),
        })
    };
    let alice = device(&mut rng, b"alice")?;
    let bob = device(&mut rng, b"bob")?;
    let mut prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &prekeys, None).verify()?;
    let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    let first = alice_session.encrypt(&mut rng, b"hello")?;
    let Message::PreKey(first) = Message::parse(&first)? else {
        return Err("expected a prekey message".into());
    };
    let (mut bob_session, _) =
        Responder::new(&bob, &mut prekeys).accept(&alice.address(), &first)?;
    let reply = bob_session.encrypt(&mut rng, b"hi")?;
    alice_session.decrypt(&reply)?;
    Ok((alice_session, bob_session))
}

fn check(status: RbStatus) -> Result<()> {
    if status == RbStatus::RB_OK {
        Ok(())
    } else {
        Err(format!("{status:?}").into())
    }
}

/// The same pair through the C ABI.
struct FfiPair {
    devices: [*mut RbDevice; 2],
    alice: *mut RbSession,
    bob: *mut RbSession,
}

impl Drop for FfiPair {
    fn drop(&mut self) {
        // SAFETY: each handle is live or NULL and is not used after this.
        unsafe {
            rb_session_free(self.alice);
            rb_session_free(self.bob);
            self.devices.iter().for_each(|d| rb_device_free(*d));
        }
    }
}

fn ffi_pair() -> Result<FfiPair> {
    let mut pair = FfiPair {
        devices: [ptr::null_mut(); 2],
        alice: ptr::null_mut(),
        bob: ptr::null_mut(),
    };
    let mut bundle = vec![0u8; RB_BUNDLE_LEN];
    let mut wire = vec![0u8; 4096];
    let mut text = vec![0u8; 4096];
    let (mut len, mut text_len) = (0usize, 0usize);
    // SAFETY: every pointer is valid for the length passed with it, and every
    // out-pointer is a live local or field.
    unsafe {
        check(rb_device_new(b"alice".as_ptr(), 5, 1, &mut pair.devices[0]))?;
        check(rb_device_new(b"bob".as_ptr(), 3, 1, &mut pair.devices[1]))?;
        check(rb_device_new_bundle(
            pair.devices[1],
            bundle.as_mut_ptr(),
            bundle.len(),
            &mut len,
        ))?;
        check(rb_session_initiate(
            pair.devices[0],
            b"bob".as_ptr(),
            3,
            bundle.as_ptr(),
            len,
            &mut pair.alice,
        ))?;
        check(rb_session_encrypt(
            pair.alice,
            b"hello".as_ptr(),
            5,
            wire.as_mut_ptr(),
            wire.len(),
            &mut len,
        ))?;
        check(rb_session_accept(
            pair.devices[1],
            b"alice".as_ptr(),
            5,
            1,
            wire.as_ptr(),
            len,
            text.as_mut_ptr(),
            text.len(),
            &mut text_len,
            &mut pair.bob,
        ))?;
        check(rb_session_encrypt(
            pair.bob,
            b"hi".as_ptr(),
            2,
            wire.as_mut_ptr(),
            wire.len(),
            &mut len,
        ))?;
        check(rb_session_decrypt(
            pair.alice,
            wire.as_ptr(),
            len,
            text.as_mut_ptr(),
            text.len(),
            &mut text_len,
        ))?;
    }
    Ok(pair)
}

fn bench(c: &mut Criterion) -> Result<()> {
    let plaintext = [0x42u8; LEN];
    let mut group = c.benchmark_group("encrypt+decrypt 256 B");

    let (mut alice, mut bob) = rust_pair()?;
    let mut rng = ratchetbox::os_rng();
    let mut wire = vec![0u8; LEN + RB_RATCHET_MESSAGE_OVERHEAD];
    let mut out = vec![0u8; LEN];
    group.bench_function("rust (encrypt_into / decrypt_into)", |b| {
        b.iter(|| {
            let mut read = 0;
            if let Ok(n) = alice.encrypt_into(&mut rng, black_box(&plaintext), &mut wire)
                && let Ok(message) = RatchetMessage::parse(&wire[..n])
            {
                read = bob.decrypt_into(&message, &mut out).unwrap_or(0);
            }
            black_box(read)
        })
    });

    let (mut alice, mut bob) = rust_pair()?;
    group.bench_function("rust (encrypt / decrypt, Vec)", |b| {
        b.iter(|| {
            let wire = alice
                .encrypt(&mut rng, black_box(&plaintext))
                .unwrap_or_default();
            black_box(bob.decrypt(&wire).is_ok())
        })
    });

    let pair = ffi_pair()?;
    group.bench_function("C ABI (rb_session_encrypt / rb_session_decrypt)", |b| {
        b.iter(|| {
            let (mut n, mut m) = (0usize, 0usize);
            // SAFETY: live handles; buffers valid for the lengths passed.
            unsafe {
                let e = rb_session_encrypt(
                    pair.alice,
                    black_box(plaintext.as_ptr()),
                    LEN,
                    wire.as_mut_ptr(),
                    wire.len(),
                    &mut n,
                );
                let d = rb_session_decrypt(
                    pair.bob,
                    wire.as_ptr(),
                    n,
                    out.as_mut_ptr(),
                    out.len(),
                    &mut m,
                );
                black_box((e, d, m))
            }
        })
    });
    group.finish();
    Ok(())
}

fn benches(c: &mut Criterion) {
    if let Err(e) = bench(c) {
        eprintln!("ffi_overhead: {e}");
        std::process::exit(1);
    }
}

criterion_group!(ffi_overhead, benches);
criterion_main!(ffi_overhead);
