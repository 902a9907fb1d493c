//! The stored form of a group session (SPEC.md §10.5).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::session::{
    GroupChainKey, GroupConfig, GroupSession, InboundChain, MAX_GROUP_MEMBER_DEVICES, OwnChain,
};
use super::wire;
use crate::account::DeviceAddress;
use crate::codec::{Reader, Writer};
use crate::crypto::{KEY_LEN, PublicKey};
use crate::error::{DecodeError, Error};
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::ratchet::skipped::{SkippedKey, SkippedKeys};
use crate::sealed::Address;

const GROUP_STATE_TAG: u8 = 0x47;
const GROUP_STATE_VERSION: u8 = 1;

impl GroupSession {
    /// Encodes the session, every member chain and skipped key included. Holds
    /// secrets: store it encrypted (see [`at_rest`](crate::at_rest)), and store
    /// it again after every call that changes the session.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let alice1 = Address::new(b"alice", 1)?;
    /// # bob.process_distribution(alice1, &alice.distribution())?;
    /// let message = alice.encrypt(&mut rng, b"Saturday, 9am?")?;
    /// let stored = bob.encode();
    /// let mut restored = GroupSession::decode(&stored)?;
    /// assert_eq!(restored.decrypt(alice1, &message)?, b"Saturday, 9am?");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(256);
        w.u8(GROUP_STATE_TAG)
            .u8(GROUP_STATE_VERSION)
            .u32(self.config.max_forward_jump)
            .u32(self.config.max_skipped_keys)
            .u32(self.config.max_chains_per_sender)
            .u8(self.group_id.len() as u8)
            .bytes(&self.group_id)
            .u32(self.own.chain_id)
            .u32(self.own.iteration)
            .bytes(self.own.chain_key.as_bytes())
            .bytes(self.own.signing.seed())
            .u32(self.members.len() as u32);
        for (id, chains) in &self.members {
            let address = id.as_address();
            w.u8(address.account_id().len() as u8)
                .bytes(address.account_id())
                .u32(address.device_id())
                .u8(chains.len() as u8);
            for chain in chains {
                w.u32(chain.chain_id)
                    .bytes(&chain.signing_key.to_bytes())
                    .u32(chain.next_iteration)
                    .bytes(chain.chain_key.as_bytes())
                    .u32(chain.skipped.len() as u32);
                for entry in chain.skipped.iter() {
                    w.u32(entry.number).bytes(entry.key_bytes());
                }
            }
        }
        w.u32(self.removed.len() as u32);
        for account in &self.removed {
            w.u8(account.len() as u8).bytes(account);
        }
        Zeroizing::new(w.into_vec())
    }

    /// [`decode`](Self::decode) for stores, whose errors are [`DecodeError`]s:
    /// an invalid stored configuration is an invalid value.
    pub(crate) fn decode_record(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(bytes).map_err(|e| match e {
            Error::Decode(d) => d,
            _ => DecodeError::InvalidValue {
                field: "group state",
            },
        })
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// use ratchetbox::Error;
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let alice1 = Address::new(b"alice", 1)?;
    /// # bob.process_distribution(alice1, &alice.distribution())?;
    /// let stored = bob.encode();
    /// let restored = GroupSession::decode(&stored)?;
    /// assert_eq!(*restored.encode(), *stored);
    /// assert!(matches!(GroupSession::decode(&stored[..20]), Err(Error::Decode(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] for malformed, truncated, over-limit or unordered
    /// state; [`Error::InvalidConfig`] for stored limits out of range. Either
    /// way the stored state is corrupt or from an unknown version: treat the
    /// group session as lost. Create a new one, send its distribution to every
    /// member, and ask them for theirs; what they sent before is unreadable.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        r.tag(GROUP_STATE_TAG)?;
        let version = r.u8("version")?;
        if version != GROUP_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version }.into());
        }
        let config = GroupConfig::new(
            r.u32("max forward jump")?,
            r.u32("max skipped keys")?,
            r.u32("max chains per sender")?,
        )?;
        let group_id = wire::group_id(&mut r)?.to_vec();
        let chain_id = r.u32("own chain id")?;
        let iteration = r.u32("own iteration")?;
        let chain_key = GroupChainKey::from_bytes(r.array("own chain key")?);
        let seed = Zeroizing::new(r.array::<KEY_LEN>("own signing seed")?);
        let own = OwnChain {
            chain_id,
            iteration,
            chain_key,
            signing: IdentityKeyPair::from_seed(&seed),
        };
        let member_count = r.count_u32("member devices", MAX_GROUP_MEMBER_DEVICES)?;
        let mut members = BTreeMap::new();
        let mut previous: Option<DeviceAddress> = None;
        for _ in 0..member_count {
            let address = Address::parse(&mut r)?;
            let id = DeviceAddress::from_address(&address);
            if previous.is_some_and(|p| p >= id) {
                return Err(DecodeError::InvalidValue {
                    field: "member order",
                }
                .into());
            }
            let chain_count = usize::from(r.u8("chain count")?);
            if chain_count == 0 || chain_count > config.max_chains_per_sender as usize {
                return Err(DecodeError::InvalidValue {
                    field: "chain count",
                }
                .into());
            }
            let mut chains = Vec::with_capacity(chain_count);
            for _ in 0..chain_count {
                let chain_id = r.u32("chain id")?;
                let signing_key = IdentityKey::from_bytes(&r.array("signing key")?)?;
                let next_iteration = r.u32("next iteration")?;
                let chain_key = GroupChainKey::from_bytes(r.array("chain key")?);
                let skipped_count =
                    r.count_u32("skipped key count", config.max_skipped_keys as usize)?;
                let tag = PublicKey::lookup_tag(signing_key.to_bytes());
                let mut skipped = SkippedKeys::default();
                for _ in 0..skipped_count {
                    let number = r.u32("skipped iteration")?;
                    let key = Zeroizing::new(r.array::<KEY_LEN>("skipped key")?);
                    skipped.push(SkippedKey::from_parts(tag, number, *key));
                }
                chains.push(InboundChain {
                    chain_id,
                    signing_key,
                    next_iteration,
                    chain_key,
                    skipped,
                });
            }
            previous = Some(id);
            members.insert(id, chains);
        }
        let removed_count = r.count_u32("removed accounts", MAX_GROUP_MEMBER_DEVICES)?;
        let mut removed = BTreeSet::new();
        let mut previous: Option<Vec<u8>> = None;
        for _ in 0..removed_count {
            let len = usize::from(r.u8("removed account length")?);
            let account = r.take(len, "removed account")?.to_vec();
            Address::new(&account, 0)?;
            if previous.as_ref().is_some_and(|p| *p >= account) {
                return Err(DecodeError::InvalidValue {
                    field: "removed account order",
                }
                .into());
            }
            previous = Some(account.clone());
            removed.insert(account);
        }
        r.finish()?;
        Ok(Self {
            group_id,
            config,
            own,
            members,
            removed,
        })
    }
}
