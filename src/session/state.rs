//! The stored form of a session (SPEC.md §6.3).
//!
//! Only this module sees both the live session and its bytes. Public keys are
//! recomputed from secrets on decode, never trusted from storage, and every
//! count is bounded before anything is allocated for it.

use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{
    HandshakePreKeys, MAX_PREVIOUS_RATCHET_KEYS, ReceivingChain, Role, Sending, SendingChain,
    Session, SessionConfig,
};
use crate::account::DeviceAddress;
use crate::codec::{Reader, Writer};
use crate::crypto::kem::{KEM_CIPHERTEXT_LEN, KemCiphertext};
use crate::crypto::{DhKeyPair, KEY_LEN, SecretKey32};
use crate::error::{DecodeError, Error};
use crate::identity::IdentityKey;
use crate::ratchet::keys::{ChainKey, RootKey};
use crate::ratchet::skipped::{SkippedKey, SkippedKeys};
use crate::sealed::Address;
use crate::x3dh;

const SESSION_STATE_TAG: u8 = 0x53;
const SESSION_STATE_VERSION: u8 = 2;

/// Size of a stored skipped key: ratchet key, number, message key.
const SKIPPED_ENTRY_LEN: usize = KEY_LEN + 4 + KEY_LEN;
/// Fixed part of a stored session before the variable-length lists, with
/// room for two addresses of the longest account id.
const FIXED_LEN: usize = 2
    + 8
    + 1
    + 3 * KEY_LEN
    + 2 * (5 + 64)
    + KEY_LEN
    + (2 * KEY_LEN + 4)
    + 4
    + 1
    + 14
    + 64
    + KEM_CIPHERTEXT_LEN;

impl Session {
    /// Encodes the whole session, skipped keys included. The result holds
    /// secrets (zeroized when dropped): store it encrypted.
    ///
    /// A decoded copy is a second sender with the same chain state: each
    /// message's random nonce keeps the two from ever reusing a (key, nonce),
    /// but the peer accepts only one message per position, so do not keep
    /// sending on both.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let identity = IdentityKeyPair::generate(&mut rng);
    /// # let alice = LocalDevice { account: AccountId::new(b"alice")?, device_id: 1, identity };
    /// # let bob = IdentityKeyPair::generate(&mut rng);
    /// # let store = PreKeyStore::generate(&mut rng, &bob, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.public_key(), &store, None).verify()?;
    /// # let bob_account = AccountId::new(b"bob")?;
    /// let session = Session::initiate(&mut rng, &alice, &bob_account, &bundle)?;
    /// let saved = session.encode();
    /// let restored = Session::decode(&saved)?;
    /// assert_eq!(*restored.encode(), *saved);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let capacity = FIXED_LEN
            + 1
            + KEY_LEN * self.previous_ratchet_keys.len()
            + 4
            + SKIPPED_ENTRY_LEN * self.skipped.len();
        let mut w = Writer::with_capacity(capacity);
        w.u8(SESSION_STATE_TAG)
            .u8(SESSION_STATE_VERSION)
            .u32(self.config.max_skip())
            .u32(self.config.max_skipped_keys())
            .u8(match self.role {
                Role::Initiator => 0,
                Role::Responder => 1,
            })
            .bytes(&self.local_identity.to_bytes())
            .bytes(&self.remote_identity.to_bytes());
        for address in [&self.local_address, &self.remote_address] {
            let account = address.account().as_bytes();
            w.u8(account.len() as u8)
                .bytes(account)
                .u32(address.device_id());
        }
        w.bytes(self.base_key.as_bytes())
            .bytes(self.root.as_bytes());
        match &self.sending {
            Sending::Ready(sending) => {
                w.flag(true)
                    .bytes(sending.ratchet.secret_bytes())
                    .bytes(sending.chain.as_bytes())
                    .u32(sending.next_number);
            }
            Sending::Due => {
                w.flag(false);
            }
        }
        w.u32(self.previous_chain_length);
        match &self.receiving {
            Some(r) => {
                w.flag(true)
                    .bytes(r.ratchet_key.as_bytes())
                    .bytes(r.chain.as_bytes())
                    .u32(r.next_number);
            }
            None => {
                w.flag(false);
            }
        }
        w.u8(self.previous_ratchet_keys.len() as u8);
        for key in &self.previous_ratchet_keys {
            w.bytes(key.as_bytes());
        }
        let prekeys = &self.handshake_prekeys;
        w.u32(prekeys.signed_prekey_id)
            .u32(prekeys.kem_prekey_id)
            .flag(prekeys.one_time_prekey_id.is_some())
            .u32(prekeys.one_time_prekey_id.unwrap_or(0))
            .bytes(&prekeys.kem_public_digest)
            .bytes(&prekeys.kem_ciphertext_digest);
        match &self.pending_prekey {
            Some(kem_ciphertext) => {
                w.flag(true).bytes(kem_ciphertext.as_bytes());
            }
            None => {
                w.flag(false);
            }
        }
        w.u32(self.skipped.len() as u32);
        for entry in self.skipped.iter() {
            w.bytes(entry.ratchet_key.as_bytes())
                .u32(entry.number)
                .bytes(entry.key_bytes());
        }
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<LocalDevice, DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     Ok(LocalDevice { account: AccountId::new(name)?, device_id: 1, identity })
    /// # };
    /// # let (alice, bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let mut bob_prekeys = PreKeyStore::generate(&mut rng, &bob.identity, 1);
    /// # let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &bob_prekeys, None);
    /// # let bundle = bundle.verify()?;
    /// # let mut alice_session = Session::initiate(&mut rng, &alice, &bob.account, &bundle)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    /// let saved = alice_session.encode();
    /// let mut restored = Session::decode(&saved)?;
    /// assert!(restored.is_awaiting_reply());
    /// let reply = bob_session.encrypt(&mut rng, b"hi Alice")?;
    /// assert_eq!(restored.decrypt(&reply)?, b"hi Alice");
    ///
    /// let cut = Session::decode(&saved[..saved.len() - 1]);
    /// assert!(matches!(cut, Err(Error::Decode(DecodeError::Truncated { .. }))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] for a wrong tag, unknown version, truncation, trailing
    /// bytes, an invalid identity key, address or flag, a non-canonical public
    /// key, or a count above the stored limits; [`Error::InvalidConfig`] if the
    /// stored limits are out of range. Both mean the stored bytes are corrupt or
    /// not a session. A session that does not decode is lost: delete it and start a
    /// fresh one with a new bundle.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        r.tag(SESSION_STATE_TAG)?;
        let version = r.u8("version")?;
        if version != SESSION_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version }.into());
        }
        let config = SessionConfig::new(r.u32("max skip")?, r.u32("max skipped keys")?)?;
        let role = match r.u8("role")? {
            0 => Role::Initiator,
            1 => Role::Responder,
            _ => return Err(DecodeError::InvalidValue { field: "role" }.into()),
        };
        let local_identity = IdentityKey::from_bytes(&r.array("local identity")?)?;
        let remote_identity = IdentityKey::from_bytes(&r.array("remote identity")?)?;
        let local_address = DeviceAddress::from_address(&Address::parse(&mut r)?);
        let remote_address = DeviceAddress::from_address(&Address::parse(&mut r)?);
        let base_key = r.public_key("base key")?;
        let root = RootKey::new(SecretKey32::from_bytes(r.array("root key")?));
        let sending = if r.flag("sending chain flag")? {
            let ratchet_secret = Zeroizing::new(r.array::<KEY_LEN>("sending ratchet secret")?);
            Sending::Ready(SendingChain {
                ratchet: DhKeyPair::from_stored_secret(*ratchet_secret).ok_or(
                    DecodeError::InvalidValue {
                        field: "sending ratchet secret",
                    },
                )?,
                chain: ChainKey::from_bytes(r.array("sending chain key")?),
                next_number: r.u32("sending counter")?,
            })
        } else {
            Sending::Due
        };
        let previous_chain_length = r.u32("previous chain length")?;
        let receiving = if r.flag("receiving chain flag")? {
            Some(ReceivingChain {
                ratchet_key: r.public_key("receiving ratchet key")?,
                chain: ChainKey::from_bytes(r.array("receiving chain key")?),
                next_number: r.u32("receiving counter")?,
            })
        } else {
            None
        };
        // A due sending step is against the receiving chain's ratchet key.
        if matches!(sending, Sending::Due) && receiving.is_none() {
            return Err(DecodeError::InvalidValue {
                field: "sending chain flag",
            }
            .into());
        }
        let previous_count = usize::from(r.u8("previous ratchet key count")?);
        if previous_count > MAX_PREVIOUS_RATCHET_KEYS {
            return Err(DecodeError::LimitExceeded {
                field: "previous ratchet keys",
                max: MAX_PREVIOUS_RATCHET_KEYS as u64,
                found: previous_count as u64,
            }
            .into());
        }
        let mut previous_ratchet_keys = Vec::with_capacity(MAX_PREVIOUS_RATCHET_KEYS);
        for _ in 0..previous_count {
            previous_ratchet_keys.push(r.public_key("previous ratchet key")?);
        }
        let signed_prekey_id = r.u32("handshake signed prekey id")?;
        let kem_prekey_id = r.u32("handshake KEM prekey id")?;
        let has_one_time = r.flag("handshake one-time prekey flag")?;
        let one_time_id = r.u32("handshake one-time prekey id")?;
        if !has_one_time && one_time_id != 0 {
            return Err(DecodeError::InvalidFlag {
                field: "handshake one-time prekey id",
            }
            .into());
        }
        let handshake_prekeys = HandshakePreKeys {
            signed_prekey_id,
            kem_prekey_id,
            one_time_prekey_id: has_one_time.then_some(one_time_id),
            kem_public_digest: r.array("KEM prekey digest")?,
            kem_ciphertext_digest: r.array("KEM ciphertext digest")?,
        };
        let pending_prekey = if r.flag("awaiting reply flag")? {
            // Only an initiator that has decrypted nothing yet awaits a reply.
            if role != Role::Initiator || receiving.is_some() {
                return Err(DecodeError::InvalidValue {
                    field: "awaiting reply flag",
                }
                .into());
            }
            let ciphertext = KemCiphertext::from_bytes(&r.array("KEM ciphertext")?);
            // The ciphertext is the one the AD was computed over.
            if !crate::crypto::ct_eq(
                &crate::crypto::sha256(&[ciphertext.as_bytes()]),
                &handshake_prekeys.kem_ciphertext_digest,
            ) {
                return Err(DecodeError::InvalidValue {
                    field: "KEM ciphertext",
                }
                .into());
            }
            Some(ciphertext)
        } else {
            None
        };
        let skipped_count = r.count_u32("skipped key count", config.max_skipped_keys() as usize)?;
        let mut skipped = SkippedKeys::default();
        for _ in 0..skipped_count {
            let ratchet_key = r.public_key("skipped ratchet key")?;
            let number = r.u32("skipped message number")?;
            let key = Zeroizing::new(r.array::<KEY_LEN>("skipped message key")?);
            skipped.push(SkippedKey::from_parts(ratchet_key, number, *key));
        }
        r.finish()?;

        let (initiator, responder, initiator_address, responder_address) = match role {
            Role::Initiator => (
                &local_identity,
                &remote_identity,
                &local_address,
                &remote_address,
            ),
            Role::Responder => (
                &remote_identity,
                &local_identity,
                &remote_address,
                &local_address,
            ),
        };
        let associated_data = x3dh::associated_data(&x3dh::Transcript {
            initiator,
            responder,
            initiator_address,
            responder_address,
            base_key: &base_key,
            signed_prekey_id: handshake_prekeys.signed_prekey_id,
            kem_prekey_id: handshake_prekeys.kem_prekey_id,
            kem_public_digest: &handshake_prekeys.kem_public_digest,
            kem_ciphertext_digest: &handshake_prekeys.kem_ciphertext_digest,
            one_time_prekey_id: handshake_prekeys.one_time_prekey_id,
        });
        Ok(Self {
            config,
            role,
            local_identity,
            remote_identity,
            local_address,
            remote_address,
            base_key,
            associated_data,
            root,
            sending,
            previous_chain_length,
            receiving,
            previous_ratchet_keys,
            handshake_prekeys,
            pending_prekey,
            skipped,
        })
    }
}
