//! X3DH key agreement (Signal X3DH spec, with the inputs of SPEC.md §3).
//!
//! Paired functions for the two sides, so the DH order cannot be swapped:
//! [`initiate`] for Alice (who holds a verified bundle) and [`respond`] for Bob
//! (who holds the prekeys the bundle named).

use crate::account::DeviceAddress;
use crate::bundle::VerifiedBundle;
use crate::crypto::{self, DhKeyPair, DhOutput, KEY_LEN, PublicKey, SecretKey32, labels};
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::local::LocalDevice;
use crate::prekey::{OneTimePreKey, PreKeyId, SignedPreKey};

/// Length of the session associated data: a SHA-256 hash (SPEC.md §5.1).
pub(crate) const AD_LEN: usize = 32;

/// The X3DH output SK. Consumed by value when it becomes the first root key.
pub(crate) struct SharedSecret(SecretKey32);

impl SharedSecret {
    pub(crate) fn into_bytes(self) -> SecretKey32 {
        self.0
    }

    #[cfg(any(test, feature = "hazmat"))]
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }
}

/// The initiator's single-use X3DH ephemeral key. [`initiate`] takes it by
/// value, so it cannot be used for a second handshake.
pub(crate) struct EphemeralKeyPair(DhKeyPair);

impl EphemeralKeyPair {
    pub(crate) fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(DhKeyPair::generate(rng))
    }
}

/// What the initiator keeps from the handshake.
pub(crate) struct InitiatorOutput {
    pub(crate) secret: SharedSecret,
    pub(crate) associated_data: [u8; AD_LEN],
    pub(crate) base_key: PublicKey,
    pub(crate) signed_prekey_id: PreKeyId,
    pub(crate) one_time_prekey_id: Option<PreKeyId>,
}

/// Everything a session is bound to. Every field of a prekey message's prefix
/// is here, so altering any of them makes the embedded message fail to
/// decrypt, whatever a byte-wise comparison would have said.
pub(crate) struct Transcript<'a> {
    pub(crate) initiator: &'a IdentityKey,
    pub(crate) responder: &'a IdentityKey,
    pub(crate) initiator_address: &'a DeviceAddress,
    pub(crate) responder_address: &'a DeviceAddress,
    pub(crate) base_key: &'a PublicKey,
    pub(crate) signed_prekey_id: PreKeyId,
    pub(crate) one_time_prekey_id: Option<PreKeyId>,
}

/// `AD = SHA-256(SESSION_AD ‖ Encode(IK_A) ‖ Encode(IK_B) ‖ Address(A) ‖
/// Address(B) ‖ EK_A ‖ u32(SPK id) ‖ flag ‖ u32(OPK id or 0))`, computed once
/// per session (the per-message AAD is `AD ‖ header`).
pub(crate) fn associated_data(t: &Transcript<'_>) -> [u8; AD_LEN] {
    let (a, b) = (t.initiator_address, t.responder_address);
    let a_account = a.account().as_bytes();
    let b_account = b.account().as_bytes();
    crypto::sha256(&[
        labels::SESSION_AD,
        &t.initiator.to_bytes(),
        &t.responder.to_bytes(),
        &[a_account.len() as u8],
        a_account,
        &a.device_id().to_be_bytes(),
        &[b_account.len() as u8],
        b_account,
        &b.device_id().to_be_bytes(),
        t.base_key.as_bytes(),
        &t.signed_prekey_id.to_be_bytes(),
        &[u8::from(t.one_time_prekey_id.is_some())],
        &t.one_time_prekey_id.unwrap_or(0).to_be_bytes(),
    ])
}

/// `SK = HKDF(salt = 0^32, IKM = 0xFF^32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], info)`.
fn derive_secret(
    dh1: &DhOutput,
    dh2: &DhOutput,
    dh3: &DhOutput,
    dh4: Option<&DhOutput>,
) -> SharedSecret {
    let mut sk = [0u8; KEY_LEN];
    let prefix = labels::X3DH_PREFIX;
    let parts: [&[u8]; 5] = [
        &prefix,
        dh1.as_bytes(),
        dh2.as_bytes(),
        dh3.as_bytes(),
        dh4.map_or(&[][..], |d| d.as_bytes()),
    ];
    crypto::hkdf_sha256(&[0u8; KEY_LEN], &parts, labels::X3DH_INFO, &mut sk);
    SharedSecret(SecretKey32::from_bytes(sk))
}

/// Alice's side: DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
/// DH4 = DH(EK_A, OPK_B). `peer` is the responder device's address.
pub(crate) fn initiate(
    local: &LocalDevice,
    peer: &DeviceAddress,
    bundle: &VerifiedBundle,
    ephemeral: EphemeralKeyPair,
) -> Result<InitiatorOutput, Error> {
    let identity = &local.identity;
    let (signed_prekey_id, signed_prekey) = bundle.signed_prekey();
    let ek = ephemeral.0;
    let dh1 = identity.dh_key_pair().dh(signed_prekey)?;
    let dh2 = ek.dh(bundle.identity_key().dh_public())?;
    let dh3 = ek.dh(signed_prekey)?;
    let (one_time_prekey_id, dh4) = match bundle.one_time_prekey() {
        Some((id, key)) => (Some(id), Some(ek.dh(key)?)),
        None => (None, None),
    };
    let associated_data = associated_data(&Transcript {
        initiator: identity.public_key(),
        responder: bundle.identity_key(),
        initiator_address: &local.address(),
        responder_address: peer,
        base_key: ek.public(),
        signed_prekey_id,
        one_time_prekey_id,
    });
    Ok(InitiatorOutput {
        secret: derive_secret(&dh1, &dh2, &dh3, dh4.as_ref()),
        associated_data,
        base_key: *ek.public(),
        signed_prekey_id,
        one_time_prekey_id,
    })
}

/// Bob's side, mirroring [`initiate`] with his secrets and Alice's public keys;
/// `from` is the initiator device's address as the transport reported it.
pub(crate) fn respond(
    local: &LocalDevice,
    from: &DeviceAddress,
    signed_prekey: &SignedPreKey,
    one_time_prekey: Option<&OneTimePreKey>,
    initiator: &IdentityKey,
    base_key: &PublicKey,
) -> Result<(SharedSecret, [u8; AD_LEN]), Error> {
    let identity = &local.identity;
    let spk = signed_prekey.key_pair();
    let dh1 = spk.dh(initiator.dh_public())?;
    let dh2 = identity.dh_key_pair().dh(base_key)?;
    let dh3 = spk.dh(base_key)?;
    let dh4 = match one_time_prekey {
        Some(opk) => Some(opk.key_pair().dh(base_key)?),
        None => None,
    };
    let associated_data = associated_data(&Transcript {
        initiator,
        responder: identity.public_key(),
        initiator_address: from,
        responder_address: &local.address(),
        base_key,
        signed_prekey_id: signed_prekey.id(),
        one_time_prekey_id: one_time_prekey.map(OneTimePreKey::id),
    });
    Ok((
        derive_secret(&dh1, &dh2, &dh3, dh4.as_ref()),
        associated_data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountId;
    use crate::bundle::PreKeyBundle;
    use crate::identity::IdentityKeyPair;
    use crate::prekey::PreKeyStore;
    use crate::test_rng;

    fn device(seed: u8, name: &[u8], device_id: u32) -> LocalDevice {
        LocalDevice {
            account: AccountId::new(name).expect("valid"),
            device_id,
            identity: IdentityKeyPair::generate(&mut test_rng(seed)),
        }
    }

    #[test]
    fn both_sides_agree_with_and_without_one_time_prekey() {
        let mut rng = test_rng(11);
        let alice = device(1, b"alice", 1);
        let bob = device(2, b"bob", 1);
        let mut store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
        store.generate_one_time_prekeys(&mut rng, 1).expect("fits");
        for opk in [None, Some(1)] {
            let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, opk)
                .verify()
                .expect("valid");
            let out = initiate(
                &alice,
                &bob.address(),
                &bundle,
                EphemeralKeyPair::generate(&mut rng),
            )
            .expect("agrees");
            let (sk, ad) = respond(
                &bob,
                &alice.address(),
                store.signed_prekey(),
                opk.and_then(|id| store.find_one_time_prekey(id)),
                alice.identity.public_key(),
                &out.base_key,
            )
            .expect("agrees");
            assert_eq!(sk.as_bytes(), out.secret.as_bytes());
            assert_eq!(ad, out.associated_data);
            assert_eq!(out.one_time_prekey_id, opk);
            // Another claimed sender address gives another AD.
            let (_, relabelled) = respond(
                &bob,
                &DeviceAddress::new(AccountId::new(b"mallory").expect("valid"), 1),
                store.signed_prekey(),
                opk.and_then(|id| store.find_one_time_prekey(id)),
                alice.identity.public_key(),
                &out.base_key,
            )
            .expect("same DH");
            assert_ne!(relabelled, ad);
        }
    }

    #[test]
    fn small_order_base_key_is_rejected() {
        let mut rng = test_rng(12);
        let alice = device(3, b"alice", 1);
        let bob = device(4, b"bob", 1);
        let store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
        let zero = PublicKey::from_bytes([0; 32]).expect("canonical");
        assert_eq!(
            respond(
                &bob,
                &alice.address(),
                store.signed_prekey(),
                None,
                alice.identity.public_key(),
                &zero
            )
            .err(),
            Some(Error::NonContributoryDh)
        );
    }
}
