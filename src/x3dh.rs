//! The hybrid key agreement: X3DH extended with ML-KEM-768 as the Signal
//! PQXDH specification does it (SPEC.md §5.1).
//!
//! Paired functions for the two sides, so the DH order cannot be swapped:
//! [`initiate`] for Alice (who holds a verified bundle) and [`respond`] for Bob
//! (who holds the prekeys the bundle named).

use rand_core::CryptoRng;

use crate::account::DeviceAddress;
use crate::bundle::VerifiedBundle;
use crate::crypto::kem::{self, KemCiphertext, KemSharedSecret};
use crate::crypto::{self, DhKeyPair, DhOutput, KEY_LEN, PublicKey, SecretKey32, labels};
use crate::error::Error;
use crate::identity::IdentityKey;
use crate::local::LocalDevice;
use crate::message::PreKeyMessage;
use crate::prekey::{KemPreKey, OneTimePreKey, PreKeyId, SignedPreKey};

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
    pub(crate) kem_prekey_id: PreKeyId,
    /// Sent in every prekey message until the responder replies.
    pub(crate) kem_ciphertext: KemCiphertext,
    pub(crate) kem_public_digest: [u8; 32],
    pub(crate) kem_ciphertext_digest: [u8; 32],
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
    pub(crate) kem_prekey_id: PreKeyId,
    /// `SHA-256(EncodeKEM(PQPK))`: which KEM key was encapsulated to.
    pub(crate) kem_public_digest: &'a [u8; 32],
    /// `SHA-256(CT)`: the ciphertext sent.
    pub(crate) kem_ciphertext_digest: &'a [u8; 32],
    pub(crate) one_time_prekey_id: Option<PreKeyId>,
}

/// `AD = SHA-256(SESSION_AD ‖ Encode(IK_A) ‖ Encode(IK_B) ‖ Address(A) ‖
/// Address(B) ‖ EK_A ‖ u32(SPK id) ‖ u32(KEM id) ‖ SHA-256(EncodeKEM(PQPK)) ‖
/// SHA-256(CT) ‖ flag ‖ u32(OPK id or 0))`, computed once per session (the
/// per-message AAD is `AD ‖ header`).
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
        &t.kem_prekey_id.to_be_bytes(),
        t.kem_public_digest,
        t.kem_ciphertext_digest,
        &[u8::from(t.one_time_prekey_id.is_some())],
        &t.one_time_prekey_id.unwrap_or(0).to_be_bytes(),
    ])
}

/// `SK = HKDF(salt = 0^32, IKM = 0xFF^32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS, info)`:
/// the KEM shared secret last, as PQXDH orders it.
fn derive_secret(
    dh1: &DhOutput,
    dh2: &DhOutput,
    dh3: &DhOutput,
    dh4: Option<&DhOutput>,
    kem: &KemSharedSecret,
) -> SharedSecret {
    let mut sk = [0u8; KEY_LEN];
    let prefix = labels::X3DH_PREFIX;
    let parts: [&[u8]; 6] = [
        &prefix,
        dh1.as_bytes(),
        dh2.as_bytes(),
        dh3.as_bytes(),
        dh4.map_or(&[][..], |d| d.as_bytes()),
        kem.as_bytes(),
    ];
    crypto::hkdf_sha256(&[0u8; KEY_LEN], &parts, labels::PQXDH_INFO, &mut sk);
    SharedSecret(SecretKey32::from_bytes(sk))
}

/// Alice's side: DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
/// DH4 = DH(EK_A, OPK_B), and an encapsulation to the bundle's KEM prekey
/// (its 32 random bytes drawn from `rng`). `peer` is the responder device's
/// address.
pub(crate) fn initiate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalDevice,
    peer: &DeviceAddress,
    bundle: &VerifiedBundle,
    ephemeral: EphemeralKeyPair,
) -> Result<InitiatorOutput, Error> {
    let identity = &local.identity;
    let (signed_prekey_id, signed_prekey) = bundle.signed_prekey();
    let (kem_prekey_id, kem_prekey) = bundle.kem_prekey();
    let ek = ephemeral.0;
    let dh1 = identity.dh_key_pair().dh(signed_prekey)?;
    let dh2 = ek.dh(bundle.identity_key().dh_public())?;
    let dh3 = ek.dh(signed_prekey)?;
    let (one_time_prekey_id, dh4) = match bundle.one_time_prekey() {
        Some((id, key)) => (Some(id), Some(ek.dh(key)?)),
        None => (None, None),
    };
    let (kem_ciphertext, kem_secret) = kem::encapsulate(rng, kem_prekey);
    let kem_ciphertext_digest = crypto::sha256(&[kem_ciphertext.as_bytes()]);
    let associated_data = associated_data(&Transcript {
        initiator: identity.public_key(),
        responder: bundle.identity_key(),
        initiator_address: &local.address(),
        responder_address: peer,
        base_key: ek.public(),
        signed_prekey_id,
        kem_prekey_id,
        kem_public_digest: bundle.kem_digest(),
        kem_ciphertext_digest: &kem_ciphertext_digest,
        one_time_prekey_id,
    });
    Ok(InitiatorOutput {
        secret: derive_secret(&dh1, &dh2, &dh3, dh4.as_ref(), &kem_secret),
        associated_data,
        base_key: *ek.public(),
        signed_prekey_id,
        kem_prekey_id,
        kem_ciphertext,
        kem_public_digest: *bundle.kem_digest(),
        kem_ciphertext_digest,
        one_time_prekey_id,
    })
}

/// What the responder's side of the handshake yields.
pub(crate) struct ResponderOutput {
    pub(crate) secret: SharedSecret,
    pub(crate) associated_data: [u8; AD_LEN],
    /// `SHA-256(CT)`, hashed once: the AD has it and the session keeps it.
    pub(crate) kem_ciphertext_digest: [u8; 32],
}

/// The prekeys a prekey message names, as the responder holds them.
pub(crate) struct ResponderPreKeys<'a> {
    pub(crate) signed: &'a SignedPreKey,
    pub(crate) kem: &'a KemPreKey,
    pub(crate) one_time: Option<&'a OneTimePreKey>,
}

/// Bob's side, mirroring [`initiate`] with his secrets and Alice's public keys
/// and ciphertext; `from` is the initiator device's address as the transport
/// reported it. A ciphertext not made for this KEM prekey decapsulates to an
/// unrelated secret (implicit rejection), so the first message then fails to
/// decrypt.
pub(crate) fn respond(
    local: &LocalDevice,
    from: &DeviceAddress,
    prekeys: &ResponderPreKeys<'_>,
    message: &PreKeyMessage<'_>,
) -> Result<ResponderOutput, Error> {
    let identity = &local.identity;
    let (initiator, base_key) = (message.identity_key(), message.base_key());
    let spk = prekeys.signed.key_pair();
    let dh1 = spk.dh(initiator.dh_public())?;
    let dh2 = identity.dh_key_pair().dh(base_key)?;
    let dh3 = spk.dh(base_key)?;
    let dh4 = match prekeys.one_time {
        Some(opk) => Some(opk.key_pair().dh(base_key)?),
        None => None,
    };
    let kem_secret = prekeys.kem.key_pair().decapsulate(message.kem_ciphertext());
    let kem_ciphertext_digest = crypto::sha256(&[message.kem_ciphertext()]);
    let associated_data = associated_data(&Transcript {
        initiator,
        responder: identity.public_key(),
        initiator_address: from,
        responder_address: &local.address(),
        base_key,
        signed_prekey_id: prekeys.signed.id(),
        kem_prekey_id: prekeys.kem.id(),
        kem_public_digest: prekeys.kem.key_pair().public_digest(),
        kem_ciphertext_digest: &kem_ciphertext_digest,
        one_time_prekey_id: prekeys.one_time.map(OneTimePreKey::id),
    });
    Ok(ResponderOutput {
        secret: derive_secret(&dh1, &dh2, &dh3, dh4.as_ref(), &kem_secret),
        associated_data,
        kem_ciphertext_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountId;
    use crate::bundle::PreKeyBundle;
    use crate::identity::IdentityKeyPair;
    use crate::message::{PREKEY_PREFIX_LEN, PreKeyPrefix, RATCHET_MESSAGE_OVERHEAD};
    use crate::prekey::PreKeyStore;
    use crate::test_rng;

    fn device(seed: u8, name: &[u8], device_id: u32) -> LocalDevice {
        LocalDevice {
            account: AccountId::new(name).expect("valid"),
            device_id,
            identity: IdentityKeyPair::generate(&mut test_rng(seed)),
        }
    }

    /// The prekey message bytes Alice would send for `out` (with an empty,
    /// never decrypted ratchet message: only the prefix matters here).
    fn wire(alice: &LocalDevice, out: &InitiatorOutput) -> alloc::vec::Vec<u8> {
        let mut bytes = alloc::vec![0u8; PREKEY_PREFIX_LEN + RATCHET_MESSAGE_OVERHEAD];
        PreKeyPrefix {
            identity_key: alice.identity.public_key(),
            base_key: &out.base_key,
            signed_prekey_id: out.signed_prekey_id,
            kem_prekey_id: out.kem_prekey_id,
            kem_ciphertext: out.kem_ciphertext.as_bytes(),
            one_time_prekey_id: out.one_time_prekey_id,
        }
        .encode_into(&mut bytes);
        bytes[PREKEY_PREFIX_LEN] = 0x04;
        bytes[PREKEY_PREFIX_LEN + 1] = 9;
        bytes
    }

    #[test]
    fn both_sides_agree_with_and_without_one_time_prekeys() {
        let mut rng = test_rng(11);
        let alice = device(1, b"alice", 1);
        let bob = device(2, b"bob", 1);
        let mut store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
        store.generate_one_time_prekeys(&mut rng, 1).expect("fits");
        let kem_ids = store
            .generate_one_time_kem_prekeys(&mut rng, &bob.identity, 1)
            .expect("fits");
        for (opk, kem) in [(None, None), (Some(1), Some(kem_ids[0]))] {
            let bundle =
                PreKeyBundle::from_store_with_kem(bob.identity.public_key(), &store, opk, kem)
                    .verify()
                    .expect("valid");
            let ephemeral = EphemeralKeyPair::generate(&mut rng);
            let out =
                initiate(&mut rng, &alice, &bob.address(), &bundle, ephemeral).expect("agrees");
            let bytes = wire(&alice, &out);
            let message = PreKeyMessage::parse(&bytes).expect("parses");
            fn prekeys<'s>(
                store: &'s PreKeyStore,
                kem: PreKeyId,
                opk: Option<PreKeyId>,
            ) -> ResponderPreKeys<'s> {
                ResponderPreKeys {
                    signed: store.signed_prekey(),
                    kem: store.find_kem_prekey(kem).expect("held").0,
                    one_time: opk.and_then(|id| store.find_one_time_prekey(id)),
                }
            }
            let kem_id = message.kem_prekey_id();
            let responder = respond(
                &bob,
                &alice.address(),
                &prekeys(&store, kem_id, opk),
                &message,
            )
            .expect("agrees");
            let ad = responder.associated_data;
            assert_eq!(responder.secret.as_bytes(), out.secret.as_bytes());
            assert_eq!(ad, out.associated_data);
            assert_eq!(responder.kem_ciphertext_digest, out.kem_ciphertext_digest);
            assert_eq!(out.one_time_prekey_id, opk);
            // Another claimed sender address gives another AD.
            let mallory = DeviceAddress::new(AccountId::new(b"mallory").expect("valid"), 1);
            let relabelled =
                respond(&bob, &mallory, &prekeys(&store, kem_id, opk), &message).expect("same DH");
            assert_ne!(relabelled.associated_data, ad);
            // A ciphertext for another key decapsulates to another secret.
            let mut other = bytes.clone();
            other[73] ^= 1;
            let message = PreKeyMessage::parse(&other).expect("parses");
            let rejected = respond(
                &bob,
                &alice.address(),
                &prekeys(&store, kem_id, opk),
                &message,
            )
            .expect("implicit");
            assert_ne!(rejected.secret.as_bytes(), out.secret.as_bytes());
        }
    }

    #[test]
    fn small_order_base_key_is_rejected() {
        let mut rng = test_rng(12);
        let alice = device(3, b"alice", 1);
        let bob = device(4, b"bob", 1);
        let store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
        let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
            .verify()
            .expect("valid");
        let ephemeral = EphemeralKeyPair::generate(&mut rng);
        let out =
            initiate(&mut rng, &alice, &bob.address(), &bundle, ephemeral).expect("initiates");
        let mut bytes = wire(&alice, &out);
        bytes[33..65].fill(0); // the base key: u = 0, of small order
        let message = PreKeyMessage::parse(&bytes).expect("canonical");
        let prekeys = ResponderPreKeys {
            signed: store.signed_prekey(),
            kem: store.last_resort_kem_prekey(),
            one_time: None,
        };
        assert_eq!(
            respond(&bob, &alice.address(), &prekeys, &message).err(),
            Some(Error::NonContributoryDh)
        );
    }
}
