//! The server side of sealed envelopes allocates nothing: `validate` of a single
//! and of a 10-recipient multi-recipient envelope (and its rejections), iterating
//! `parts()`, `SplitPart::pieces()`/`len()` and `write_to` into a preallocated
//! buffer.
//!
//! A counting global allocator (dhat in testing mode) counts heap blocks around
//! the server path; the envelopes are sealed before counting starts. This test
//! has no libtest harness (`harness = false`), so no other thread can allocate
//! while it counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20::ChaCha20Rng;
use ratchetbox::IdentityKeyPair;
use ratchetbox::rand_core::SeedableRng;
use ratchetbox::sealed::{
    Address, ContentHint, DeliveryAccessKey, EnvelopeError, InnerKind, MultiRecipient,
    SealedContent, SenderCertificate, ServerCertificate, ServerPolicy, ValidatedEnvelope, seal,
    seal_multi, validate,
};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Registered accounts; account `i` has the access key `[0x10 + i; 16]`.
const ACCOUNTS: [&[u8]; 4] = [b"alice", b"bob", b"carol", b"dave"];

/// The server's registry: a lookup in a constant table, no allocation.
fn registry(account: &[u8]) -> Option<DeliveryAccessKey> {
    let i = ACCOUNTS.iter().position(|a| *a == account)?;
    Some(DeliveryAccessKey::from_bytes([0x10 + i as u8; 16]))
}

/// A registry where every account has the same (wrong) key.
fn wrong_registry(_: &[u8]) -> Option<DeliveryAccessKey> {
    Some(DeliveryAccessKey::from_bytes([0xAA; 16]))
}

const ROUNDS: usize = 20;
/// Recipient devices of the multi-recipient envelope: (account index, device).
const DEVICES: [(usize, u32); 10] = [
    (1, 1),
    (1, 2),
    (1, 3),
    (1, 4),
    (2, 1),
    (2, 2),
    (2, 9),
    (3, 1),
    (3, 5),
    (3, 6),
];

fn main() {
    server_path_does_not_allocate();
    println!(
        "zero_alloc_server: validate (single, multi of {} recipients, 8 rejections), \
         parts/pieces/len/write_to made 0 allocations in {ROUNDS} rounds",
        DEVICES.len()
    );
}

struct Envelopes {
    single: Vec<u8>,
    single_without_token: Vec<u8>,
    multi: Vec<u8>,
    multi_bad_padding: Vec<u8>,
}

fn envelopes() -> Envelopes {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let root = IdentityKeyPair::from_seed(&[1; 32]);
    let server = IdentityKeyPair::from_seed(&[2; 32]);
    let alice = IdentityKeyPair::from_seed(&[3; 32]);
    let recipients: Vec<IdentityKeyPair> = (0..ACCOUNTS.len())
        .map(|i| IdentityKeyPair::from_seed(&[0x40 + i as u8; 32]))
        .collect();
    let server_cert = ServerCertificate::issue(1, &root, 2, server.public_key());
    let cert = SenderCertificate::issue(
        Address::new(ACCOUNTS[0], 1).unwrap(),
        alice.public_key(),
        u64::MAX,
        &server,
        server_cert,
    )
    .unwrap();
    let content = SealedContent {
        kind: InnerKind::Ratchet,
        hint: ContentHint::Default,
        message: &[0x33; 700],
    };
    let bob1 = Address::new(ACCOUNTS[1], 1).unwrap();
    let bob_key = registry(ACCOUNTS[1]).unwrap();
    let single = seal(
        &mut rng,
        &alice,
        &cert,
        bob1,
        recipients[1].public_key(),
        content,
        Some(&bob_key),
    )
    .unwrap();
    let single_without_token = seal(
        &mut rng,
        &alice,
        &cert,
        bob1,
        recipients[1].public_key(),
        content,
        None,
    )
    .unwrap();
    let payload = [0x55u8; 100];
    let devices: Vec<MultiRecipient<'_>> = DEVICES
        .iter()
        .map(|&(account, device)| MultiRecipient {
            address: Address::new(ACCOUNTS[account], device).unwrap(),
            identity_key: recipients[account].public_key(),
            payload: if device % 2 == 0 { &payload } else { &[] },
        })
        .collect();
    let keys: Vec<DeliveryAccessKey> = (1..4).map(|i| registry(ACCOUNTS[i]).unwrap()).collect();
    let token = DeliveryAccessKey::combine(&keys);
    let multi = seal_multi(&mut rng, &alice, &cert, &devices, content, Some(&token)).unwrap();
    let mut multi_bad_padding = multi.clone();
    multi_bad_padding.push(0);
    Envelopes {
        single,
        single_without_token,
        multi,
        multi_bad_padding,
    }
}

fn server_path_does_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let e = envelopes();
    let keys: fn(&[u8]) -> Option<DeliveryAccessKey> = registry;
    let wrong: fn(&[u8]) -> Option<DeliveryAccessKey> = wrong_registry;
    let policy = ServerPolicy::default();
    let small = ServerPolicy {
        max_size: 100,
        max_recipients: 5,
        ..policy
    };
    let few = ServerPolicy {
        max_recipients: 5,
        ..policy
    };
    let mut buffer = vec![0u8; e.multi.len()];
    // Expected recipients, in wire order (already sorted above).
    let expected: Vec<Address<'_>> = DEVICES
        .iter()
        .map(|&(account, device)| Address::new(ACCOUNTS[account], device).unwrap())
        .collect();

    let before = blocks();
    let mut written = 0usize;
    for round in 0..ROUNDS {
        let start = blocks();

        let ValidatedEnvelope::Single(single) = validate(&e.single, &policy, &keys).unwrap() else {
            panic!("single");
        };
        assert_eq!(single.bytes().len(), e.single.len());
        assert_eq!(single.recipient(), expected[0]);

        let ValidatedEnvelope::Multi(multi) = validate(&e.multi, &policy, &keys).unwrap() else {
            panic!("multi");
        };
        assert_eq!(multi.recipient_count(), DEVICES.len());
        let mut count = 0;
        for (part, address) in multi.parts().zip(&expected) {
            assert_eq!(part.recipient(), *address);
            let pieces = part.pieces();
            let len = part.len();
            assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), len);
            let n = part.write_to(&mut buffer).unwrap();
            assert_eq!(n, len);
            assert_eq!(&buffer[..pieces[0].len()], pieces[0]);
            assert_eq!(
                part.write_to(&mut buffer[..len - 1]),
                Err(EnvelopeError::BufferTooSmall { needed: len })
            );
            // A part is not an envelope the server accepts.
            assert_eq!(
                validate(&buffer[..n], &policy, &keys).err(),
                Some(EnvelopeError::UnknownVersion { found: 0x26 })
            );
            written += n;
            count += 1;
        }
        assert_eq!(count, DEVICES.len());

        // Rejections allocate nothing either.
        assert_eq!(
            validate(&e.single, &policy, &wrong).err(),
            Some(EnvelopeError::WrongToken)
        );
        assert_eq!(
            validate(&e.multi, &policy, &wrong).err(),
            Some(EnvelopeError::WrongToken)
        );
        assert_eq!(
            validate(&e.single_without_token, &policy, &keys).err(),
            Some(EnvelopeError::MissingToken)
        );
        assert_eq!(
            validate(&e.multi_bad_padding, &policy, &keys).err(),
            Some(EnvelopeError::InvalidPadding)
        );
        assert_eq!(
            validate(&e.multi[..37], &policy, &keys).err(),
            Some(EnvelopeError::Truncated {
                field: "account id"
            })
        );
        assert!(matches!(
            validate(&e.multi, &small, &keys),
            Err(EnvelopeError::Oversize { .. })
        ));
        assert_eq!(
            validate(&e.multi, &few, &keys).err(),
            Some(EnvelopeError::TooManyRecipients { count: 10, max: 5 })
        );
        assert_eq!(
            validate(&[0x7f], &policy, &keys).err(),
            Some(EnvelopeError::UnknownVersion { found: 0x7f })
        );

        assert_eq!(blocks(), start, "round {round} allocated");
    }
    assert_eq!(blocks(), before);
    assert!(written > 0);

    // Sealing allocates: the counter is live.
    let again = envelopes();
    assert!(blocks() > before);
    assert_eq!(again.multi.len(), e.multi.len());
}
