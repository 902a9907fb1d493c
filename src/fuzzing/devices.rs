//! Fuzz entry points for trust, device management, linking and sealed state.

use alloc::vec::Vec;
use std::sync::OnceLock;

use super::rng;
use crate::account::{AccountId, DeviceAddress};
use crate::at_rest::{self, StateKind, StorageKey};
use crate::devices::{LocalDevice, SessionManager, SessionRecord};
use crate::provisioning::{self, LinkRequest, ProvisioningError};
use crate::safety::{SafetyNumber, SafetyNumberMatch};
use crate::store::MemoryStore;
use crate::trust::TrustRecord;
use crate::{IdentityKeyPair, OneTimePreKey, PreKeyBundle, PreKeyStore, SignedPreKey};

/// Stored trust records: decoding then encoding is the identity.
pub fn trust_record(data: &[u8]) {
    if let Ok(record) = TrustRecord::decode(data) {
        assert_eq!(
            record.encode(),
            data,
            "trust record encoding is not canonical"
        );
    }
}

/// Stored session records: decoding then encoding is the identity.
pub fn session_record(data: &[u8]) {
    if let Ok(record) = SessionRecord::decode(data) {
        assert_eq!(
            &record.encode()[..],
            data,
            "session record is not canonical"
        );
        assert!(record.archived().len() <= crate::devices::MAX_ARCHIVED_SESSIONS);
    }
}

/// Device store snapshots: decoding then encoding is the identity.
pub fn device_store(data: &[u8]) {
    if let Ok(store) = MemoryStore::decode(data) {
        assert_eq!(&store.encode()[..], data, "snapshot is not canonical");
    }
}

/// Prekeys stored one per row: decoding then encoding is the identity.
pub fn prekey_row(data: &[u8]) {
    if let Ok(key) = SignedPreKey::decode(data) {
        assert_eq!(&key.encode()[..], data);
    }
    if let Ok(key) = OneTimePreKey::decode(data) {
        assert_eq!(&key.encode()[..], data);
    }
}

/// KEM prekeys stored one per row: decoding then encoding is the identity,
/// and the key pair is the one the seed determines.
pub fn kem_prekey_row(data: &[u8]) {
    if let Ok(key) = crate::KemPreKey::decode(data) {
        assert_eq!(&key.encode()[..], data);
    }
}

fn storage_key() -> StorageKey {
    StorageKey::from_bytes([0x5C; 32])
}

/// The slot every fuzzed sealed blob is bound to.
const SLOT: &[u8] = b"fuzz slot";

/// Sealed state: arbitrary blobs never open under the fixture key unless they
/// were sealed with it; an opened blob is exactly 43 bytes longer than its object.
pub fn sealed_state(data: &[u8]) {
    let key = storage_key();
    for kind in [
        StateKind::Identity,
        StateKind::PreKeys,
        StateKind::Sessions,
        StateKind::Trust,
        StateKind::Group,
        StateKind::DeviceStore,
    ] {
        if let Ok(plaintext) = at_rest::open_bytes(&key, kind, SLOT, data) {
            assert_eq!(plaintext.len() + at_rest::SEALED_STATE_OVERHEAD, data.len());
            assert!(at_rest::open_bytes(&key, kind, b"another slot", data).is_err());
        }
    }
    let _ = at_rest::open::<IdentityKeyPair>(&key, SLOT, data);
    let _ = at_rest::open::<MemoryStore>(&key, SLOT, data);
}

struct LinkFixture {
    identity_seed: [u8; 32],
    payload: Vec<u8>,
}

fn link_fixture() -> Option<&'static LinkFixture> {
    static FIXTURE: OnceLock<Option<LinkFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let identity_seed = [0xD1; 32];
            let identity = IdentityKeyPair::from_seed(&identity_seed);
            let request = LinkRequest::new(&mut rng(7));
            let account = AccountId::new(b"alice").ok()?;
            let (payload, _) = provisioning::provision(
                &mut rng(8),
                &identity,
                &account,
                &[1, 2],
                &*request.code(),
            )
            .ok()?;
            Some(LinkFixture {
                identity_seed,
                payload,
            })
        })
        .as_ref()
}

/// Arbitrary payloads handed to a link request: only a payload sealed to it
/// opens, and then carries the primary's identity; after one success a replay is refused.
pub fn link_accept(data: &[u8]) {
    let Some(fixture) = link_fixture() else {
        return;
    };
    let mut request = LinkRequest::new(&mut rng(7));
    if let Ok(account) = request.accept(data) {
        let identity = IdentityKeyPair::from_seed(&fixture.identity_seed);
        assert_eq!(account.identity_key(), identity.public_key());
        assert_eq!(
            request.accept(data).err(),
            Some(ProvisioningError::AlreadyCompleted)
        );
    }
}

/// Arbitrary link request codes handed to the primary: a typed error or a payload.
pub fn link_request(data: &[u8]) {
    let identity = IdentityKeyPair::from_seed(&[0xD2; 32]);
    let Ok(account) = AccountId::new(b"alice") else {
        return;
    };
    if let Ok((payload, _)) = provisioning::provision(&mut rng(9), &identity, &account, &[1], data)
    {
        // The secret (the rest of the code) is never in the payload.
        assert_eq!(data.len(), provisioning::LINK_REQUEST_LEN);
        assert_eq!(
            &payload[1..33],
            &data[1..33],
            "payload names the request key"
        );
    }
}

fn safety_fixture() -> Option<&'static (SafetyNumber, [u8; crate::SCANNABLE_LEN])> {
    static FIXTURE: OnceLock<Option<(SafetyNumber, [u8; crate::SCANNABLE_LEN])>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let (a, b) = (
                IdentityKeyPair::from_seed(&[0xE1; 32]),
                IdentityKeyPair::from_seed(&[0xE2; 32]),
            );
            let (alice, bob) = (AccountId::new(b"alice").ok()?, AccountId::new(b"bob").ok()?);
            let on_alice = SafetyNumber::new(&alice, a.public_key(), &bob, b.public_key());
            let on_bob = SafetyNumber::new(&bob, b.public_key(), &alice, a.public_key());
            Some((on_alice, on_bob.scannable()))
        })
        .as_ref()
}

/// Scanned safety-number codes: only the counterpart's code matches.
pub fn safety_scannable(data: &[u8]) {
    let Some((on_alice, bobs)) = safety_fixture() else {
        return;
    };
    if on_alice.compare_scanned(data) == Ok(SafetyNumberMatch::Match) {
        assert_eq!(data, bobs);
    }
}

struct ManagerFixture {
    bob_seed: [u8; 32],
    alice: DeviceAddress,
    store: Vec<u8>,
    messages: Vec<Vec<u8>>,
    plaintexts: Vec<Vec<u8>>,
}

fn manager(
    seed: [u8; 32],
    account: &[u8],
    store: MemoryStore,
) -> Option<SessionManager<MemoryStore>> {
    let local = LocalDevice {
        account: AccountId::new(account).ok()?,
        device_id: 1,
        identity: IdentityKeyPair::from_seed(&seed),
    };
    Some(SessionManager::new(local, store))
}

/// Bob's device store after a conversation with Alice, with messages from her
/// that it has not read yet (one on the current session, one prekey message of
/// a second session from her other device's point of view).
fn manager_fixture() -> Option<&'static ManagerFixture> {
    static FIXTURE: OnceLock<Option<ManagerFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = rng(10);
            let (alice_seed, bob_seed) = ([0xF1; 32], [0xF2; 32]);
            let alice_identity = IdentityKeyPair::from_seed(&alice_seed);
            let bob_identity = IdentityKeyPair::from_seed(&bob_seed);
            let alice_store = MemoryStore::new(PreKeyStore::generate(&mut rng, &alice_identity, 1));
            let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob_identity, 1);
            let ids = bob_prekeys.generate_one_time_prekeys(&mut rng, 2).ok()?;
            // One one-time KEM prekey stays unused, for the row seeds.
            bob_prekeys
                .generate_one_time_kem_prekeys(&mut rng, &bob_identity, 1)
                .ok()?;
            let mut alice = manager(alice_seed, b"alice", alice_store)?;
            let mut bob = manager(bob_seed, b"bob", MemoryStore::new(bob_prekeys))?;
            let bob_account = bob.local().account;
            let alice_address = alice.local().address();
            let bundle = |bob: &SessionManager<MemoryStore>, id| {
                PreKeyBundle::from_store(
                    bob.local().identity.public_key(),
                    bob.store().prekeys(),
                    Some(id),
                )
            };
            alice
                .process_bundle(&mut rng, &bob_account, bundle(&bob, ids[0].0))
                .ok()?;
            let plaintexts: Vec<Vec<u8>> = (0..4u8)
                .map(|i| alloc::vec![i; 2 + usize::from(i)])
                .collect();
            let first = alice
                .encrypt(&mut rng, &bob_account, &plaintexts[0], &[1], &[1])
                .ok()?;
            bob.decrypt(&alice_address, &first[0].message).ok()?;
            let reply = bob
                .encrypt(
                    &mut rng,
                    &alice_address.account().clone(),
                    b"ok",
                    &[1],
                    &[1],
                )
                .ok()?;
            alice
                .decrypt(&bob.local().address(), &reply[0].message)
                .ok()?;
            let unread = alice
                .encrypt(&mut rng, &bob_account, &plaintexts[1], &[1], &[1])
                .ok()?;
            // A second session (as after a reinstall of Alice's session state).
            alice
                .process_bundle(&mut rng, &bob_account, bundle(&bob, ids[1].0))
                .ok()?;
            let fresh = alice
                .encrypt(&mut rng, &bob_account, &plaintexts[2], &[1], &[1])
                .ok()?;
            Some(ManagerFixture {
                bob_seed,
                alice: alice_address,
                store: bob.store().encode().to_vec(),
                messages: alloc::vec![unread[0].message.clone(), fresh[0].message.clone()],
                plaintexts,
            })
        })
        .as_ref()
}

/// Arbitrary bytes handed to a device's session manager as a message from a
/// contact's device: a plaintext that was sent comes out, or every store is
/// exactly as it was (no session, prekey or trust change on failure).
pub fn manager_decrypt(data: &[u8]) {
    let Some(f) = manager_fixture() else {
        return;
    };
    let Ok(store) = MemoryStore::decode(&f.store) else {
        return;
    };
    let Some(mut bob) = manager(f.bob_seed, b"bob", store) else {
        return;
    };
    match bob.decrypt(&f.alice, data) {
        Ok(decrypted) => assert!(f.plaintexts.iter().any(|p| decrypted.plaintext == *p)),
        Err(_) => assert_eq!(
            &bob.store().encode()[..],
            &f.store[..],
            "a rejected message changed the store"
        ),
    }
}

/// Seeds for the targets above.
pub(super) fn seeds(seeds: &mut Vec<(&'static str, Vec<u8>)>) {
    let identity = IdentityKeyPair::from_seed(&[0xC1; 32]);
    let other = IdentityKeyPair::from_seed(&[0xC2; 32]);
    let mut record = TrustRecord::first_seen(*identity.public_key());
    seeds.push(("trust_record", record.encode()));
    record.observe(other.public_key());
    seeds.push(("trust_record", record.encode()));
    if let Some(f) = manager_fixture() {
        seeds.push(("device_store", f.store.clone()));
        if let Ok(store) = MemoryStore::decode(&f.store) {
            for address in store.session_addresses() {
                if let Ok(Some(record)) =
                    crate::store::SessionStore::session_record(&store, address)
                {
                    seeds.push(("session_record", record.encode().to_vec()));
                }
            }
            let key = storage_key();
            seeds.push((
                "sealed_state",
                at_rest::seal(&mut rng(12), &key, SLOT, &store),
            ));
            let prekeys = store.prekeys();
            seeds.push(("prekey_row", prekeys.signed_prekey().encode().to_vec()));
            if let Some(id) = prekeys.one_time_prekey_ids().next()
                && let Some(key) = prekeys.find_one_time_prekey(id)
            {
                seeds.push(("prekey_row", key.encode().to_vec()));
            }
            let last_resort = prekeys.last_resort_kem_prekey();
            seeds.push(("kem_prekey_row", last_resort.encode().to_vec()));
            if let Some(id) = prekeys.one_time_kem_prekey_ids().next()
                && let Some((key, _)) = prekeys.find_kem_prekey(id)
            {
                seeds.push(("kem_prekey_row", key.encode().to_vec()));
            }
        }
        for m in &f.messages {
            seeds.push(("manager_decrypt", m.clone()));
        }
    }
    seeds.push((
        "sealed_state",
        at_rest::seal(&mut rng(13), &storage_key(), SLOT, &identity),
    ));
    if let Some(f) = link_fixture() {
        seeds.push(("link_accept", f.payload.clone()));
    }
    seeds.push((
        "link_request",
        LinkRequest::new(&mut rng(14)).code().to_vec(),
    ));
    if let Some((_, bobs)) = safety_fixture() {
        seeds.push(("safety_scannable", bobs.to_vec()));
    }
}
