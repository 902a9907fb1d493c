//! X3DH key agreement (Signal X3DH spec, with the inputs of SPEC.md §3).
//!
//! Paired functions for the two sides, so the DH order cannot be swapped:
//! [`initiate`] for Alice (who holds a verified bundle) and [`respond`] for Bob
//! (who holds the prekeys the bundle named).

use crate::bundle::VerifiedBundle;
use crate::crypto::{self, DhKeyPair, DhOutput, KEY_LEN, PublicKey, SecretKey32, labels};
use crate::error::Error;
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::prekey::{OneTimePreKey, PreKeyId, SignedPreKey};

/// Length of the X3DH associated data: `Encode(IK_A) ‖ Encode(IK_B)`.
pub(crate) const AD_LEN: usize = 2 * KEY_LEN;

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

/// `AD = Encode(IK_A) ‖ Encode(IK_B)`.
pub(crate) fn associated_data(initiator: &IdentityKey, responder: &IdentityKey) -> [u8; AD_LEN] {
    let mut ad = [0u8; AD_LEN];
    ad[..KEY_LEN].copy_from_slice(&initiator.to_bytes());
    ad[KEY_LEN..].copy_from_slice(&responder.to_bytes());
    ad
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
/// DH4 = DH(EK_A, OPK_B).
pub(crate) fn initiate(
    identity: &IdentityKeyPair,
    bundle: &VerifiedBundle,
    ephemeral: EphemeralKeyPair,
) -> Result<InitiatorOutput, Error> {
    let (signed_prekey_id, signed_prekey) = bundle.signed_prekey();
    let ek = ephemeral.0;
    let dh1 = identity.dh_key_pair().dh(signed_prekey)?;
    let dh2 = ek.dh(bundle.identity_key().dh_public())?;
    let dh3 = ek.dh(signed_prekey)?;
    let (one_time_prekey_id, dh4) = match bundle.one_time_prekey() {
        Some((id, key)) => (Some(id), Some(ek.dh(key)?)),
        None => (None, None),
    };
    Ok(InitiatorOutput {
        secret: derive_secret(&dh1, &dh2, &dh3, dh4.as_ref()),
        associated_data: associated_data(identity.public_key(), bundle.identity_key()),
        base_key: *ek.public(),
        signed_prekey_id,
        one_time_prekey_id,
    })
}

/// Bob's side, mirroring [`initiate`] with his secrets and Alice's public keys.
pub(crate) fn respond(
    identity: &IdentityKeyPair,
    signed_prekey: &SignedPreKey,
    one_time_prekey: Option<&OneTimePreKey>,
    initiator: &IdentityKey,
    base_key: &PublicKey,
) -> Result<(SharedSecret, [u8; AD_LEN]), Error> {
    let spk = signed_prekey.key_pair();
    let dh1 = spk.dh(initiator.dh_public())?;
    let dh2 = identity.dh_key_pair().dh(base_key)?;
    let dh3 = spk.dh(base_key)?;
    let dh4 = match one_time_prekey {
        Some(opk) => Some(opk.key_pair().dh(base_key)?),
        None => None,
    };
    Ok((
        derive_secret(&dh1, &dh2, &dh3, dh4.as_ref()),
        associated_data(initiator, identity.public_key()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::PreKeyBundle;
    use crate::prekey::PreKeyStore;
    use crate::test_rng;

    #[test]
    fn both_sides_agree_with_and_without_one_time_prekey() {
        let mut rng = test_rng(11);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let mut store = PreKeyStore::generate(&mut rng, &bob, 1);
        store.generate_one_time_prekeys(&mut rng, 1).expect("fits");
        for opk in [None, Some(1)] {
            let bundle = PreKeyBundle::from_store(bob.public_key(), &store, opk)
                .verify()
                .expect("valid");
            let out =
                initiate(&alice, &bundle, EphemeralKeyPair::generate(&mut rng)).expect("agrees");
            let (sk, ad) = respond(
                &bob,
                store.signed_prekey(),
                opk.and_then(|id| store.find_one_time_prekey(id)),
                alice.public_key(),
                &out.base_key,
            )
            .expect("agrees");
            assert_eq!(sk.as_bytes(), out.secret.as_bytes());
            assert_eq!(ad, out.associated_data);
            assert_eq!(out.one_time_prekey_id, opk);
        }
    }

    #[test]
    fn small_order_base_key_is_rejected() {
        let mut rng = test_rng(12);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let store = PreKeyStore::generate(&mut rng, &bob, 1);
        let zero = PublicKey::from_bytes([0; 32]);
        assert_eq!(
            respond(&bob, store.signed_prekey(), None, alice.public_key(), &zero).err(),
            Some(Error::NonContributoryDh)
        );
    }
}
