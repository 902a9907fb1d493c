//! A member's view of one group: its own sending chain and the chains of the
//! other member devices.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::wire::{self, Distribution, GROUP_MESSAGE_TAG, GroupMessage, group_message_overhead};
use crate::account::DeviceAddress;
use crate::crypto::{self, KEY_LEN, NONCE_LEN, PublicKey, SIGNATURE_LEN, TAG_LEN};
use crate::error::Error;
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::ratchet::keys::MessageKey;
use crate::ratchet::skipped::{SkippedKey, SkippedKeys};
use crate::sealed::Address;

/// Limits on what other members can make this device derive and keep.
///
/// ```
/// use ratchetbox::group::{GroupConfig, GroupSession};
/// let mut rng = ratchetbox::os_rng();
/// // A device that keeps less for members far ahead of it.
/// let config = GroupConfig::new(200, 500, GroupConfig::DEFAULT_MAX_CHAINS_PER_SENDER)?;
/// let group = GroupSession::create_with_config(&mut rng, b"hiking club", config)?;
/// assert_eq!(config.max_forward_jump(), 200);
/// # let _ = group;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub(crate) max_forward_jump: u32,
    pub(crate) max_skipped_keys: u32,
    pub(crate) max_chains_per_sender: u32,
}

impl GroupConfig {
    /// Default [`max_forward_jump`](Self::max_forward_jump).
    pub const DEFAULT_MAX_FORWARD_JUMP: u32 = 1000;
    /// Default [`max_skipped_keys`](Self::max_skipped_keys), per sender chain.
    pub const DEFAULT_MAX_SKIPPED_KEYS: u32 = 2000;
    /// Default [`max_chains_per_sender`](Self::max_chains_per_sender): the current
    /// chain and three older ones, for messages still in flight across rotations.
    pub const DEFAULT_MAX_CHAINS_PER_SENDER: u32 = 4;
    /// Upper bound for the forward jump and skipped-key limits (a decoder trusts
    /// no stored limit above it).
    pub const LIMIT_CEILING: u32 = 1 << 16;
    /// Upper bound for chains per sender (stored in one byte).
    pub const MAX_CHAINS_CEILING: u32 = 255;

    /// Builds a configuration: the most iterations one message may jump ahead,
    /// the most skipped keys kept per chain, and the most chains kept per sender.
    ///
    /// ```
    /// use ratchetbox::Error;
    /// use ratchetbox::group::GroupConfig;
    /// let config = GroupConfig::new(1000, 2000, 4)?;
    /// assert_eq!(config, GroupConfig::default());
    /// assert!(matches!(GroupConfig::new(1000, 2000, 0), Err(Error::InvalidConfig { .. })));
    /// let too_far = GroupConfig::LIMIT_CEILING + 1;
    /// assert!(matches!(GroupConfig::new(too_far, 2000, 4), Err(Error::InvalidConfig { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a limit exceeds [`LIMIT_CEILING`](Self::LIMIT_CEILING),
    /// or `max_chains_per_sender` is 0 or above
    /// [`MAX_CHAINS_CEILING`](Self::MAX_CHAINS_CEILING). The limits are the
    /// app's constants: fix them.
    pub const fn new(
        max_forward_jump: u32,
        max_skipped_keys: u32,
        max_chains_per_sender: u32,
    ) -> Result<Self, Error> {
        if max_forward_jump > Self::LIMIT_CEILING || max_skipped_keys > Self::LIMIT_CEILING {
            return Err(Error::InvalidConfig {
                reason: "group limit above LIMIT_CEILING",
            });
        }
        if max_chains_per_sender > Self::MAX_CHAINS_CEILING {
            return Err(Error::InvalidConfig {
                reason: "max_chains_per_sender above MAX_CHAINS_CEILING",
            });
        }
        if max_chains_per_sender == 0 {
            return Err(Error::InvalidConfig {
                reason: "max_chains_per_sender must be at least 1",
            });
        }
        Ok(Self {
            max_forward_jump,
            max_skipped_keys,
            max_chains_per_sender,
        })
    }

    /// Most iterations one message may jump ahead of the next expected one; a
    /// message further ahead gets [`Error::TooManySkippedMessages`].
    ///
    /// ```
    /// use ratchetbox::group::GroupConfig;
    /// let default = GroupConfig::default();
    /// assert_eq!(default.max_forward_jump(), GroupConfig::DEFAULT_MAX_FORWARD_JUMP);
    /// assert_eq!(GroupConfig::new(50, 100, 2)?.max_forward_jump(), 50);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub const fn max_forward_jump(&self) -> u32 {
        self.max_forward_jump
    }

    /// Most skipped message keys kept per sender chain (oldest evicted first).
    ///
    /// ```
    /// use ratchetbox::group::GroupConfig;
    /// let default = GroupConfig::default();
    /// assert_eq!(default.max_skipped_keys(), GroupConfig::DEFAULT_MAX_SKIPPED_KEYS);
    /// assert_eq!(GroupConfig::new(50, 100, 2)?.max_skipped_keys(), 100);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub const fn max_skipped_keys(&self) -> u32 {
        self.max_skipped_keys
    }

    /// Most chains kept per sender device (oldest dropped first).
    ///
    /// ```
    /// use ratchetbox::group::GroupConfig;
    /// let default = GroupConfig::default();
    /// assert_eq!(default.max_chains_per_sender(), GroupConfig::DEFAULT_MAX_CHAINS_PER_SENDER);
    /// assert_eq!(GroupConfig::new(50, 100, 2)?.max_chains_per_sender(), 2);
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    pub const fn max_chains_per_sender(&self) -> u32 {
        self.max_chains_per_sender
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_forward_jump: Self::DEFAULT_MAX_FORWARD_JUMP,
            max_skipped_keys: Self::DEFAULT_MAX_SKIPPED_KEYS,
            max_chains_per_sender: Self::DEFAULT_MAX_CHAINS_PER_SENDER,
        }
    }
}

/// Most member devices one group session tracks; bounds the stored state.
pub const MAX_GROUP_MEMBER_DEVICES: usize = 1 << 17;

/// A group chain key. Zeroized on drop.
pub(crate) struct GroupChainKey(crypto::SecretKey32);

impl GroupChainKey {
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(crypto::SecretKey32::from_bytes(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    fn duplicate(&self) -> Self {
        Self::from_bytes(*self.as_bytes())
    }

    fn step(&self) -> (MessageKey, GroupChainKey) {
        let (mk, next) = crypto::kdf_ck_group(self.0.as_bytes());
        (MessageKey::from_bytes(mk), GroupChainKey::from_bytes(next))
    }
}

/// This device's sending chain in the group.
pub(crate) struct OwnChain {
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    pub(crate) chain_key: GroupChainKey,
    pub(crate) signing: IdentityKeyPair,
}

impl OwnChain {
    fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        Self {
            chain_id: rng.next_u32(),
            iteration: 0,
            chain_key: GroupChainKey::from_bytes(*key),
            signing: IdentityKeyPair::generate(rng),
        }
    }
}

/// Another member device's chain, as learned from its distribution.
pub(crate) struct InboundChain {
    pub(crate) chain_id: u32,
    pub(crate) signing_key: IdentityKey,
    pub(crate) next_iteration: u32,
    pub(crate) chain_key: GroupChainKey,
    pub(crate) skipped: SkippedKeys,
}

impl InboundChain {
    /// The 32-byte tag skipped keys are filed under (the signing key's bytes).
    fn key_tag(&self) -> PublicKey {
        PublicKey::lookup_tag(self.signing_key.to_bytes())
    }
}

/// One device's view of one group: its own sending chain and the chains it
/// has received from other member devices.
///
/// ```
/// use ratchetbox::group::GroupSession;
/// use ratchetbox::sealed::Address;
/// let mut rng = ratchetbox::os_rng();
/// let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
/// let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
///
/// // Alice's distribution reaches Bob over their 1:1 session.
/// bob.process_distribution(Address::new(b"alice", 1)?, &alice.distribution())?;
///
/// let message = alice.encrypt(&mut rng, b"Saturday, 9am?")?;
/// assert_eq!(bob.decrypt(Address::new(b"alice", 1)?, &message)?, b"Saturday, 9am?");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GroupSession {
    pub(crate) group_id: Vec<u8>,
    pub(crate) config: GroupConfig,
    pub(crate) own: OwnChain,
    pub(crate) members: BTreeMap<DeviceAddress, Vec<InboundChain>>,
    /// Accounts removed from the group: their distributions are refused until
    /// [`readmit_member`](GroupSession::readmit_member).
    pub(crate) removed: BTreeSet<Vec<u8>>,
}

/// A message whose signature was verified, ready to decrypt.
struct Checked<'a> {
    message: GroupMessage<'a>,
}

impl GroupSession {
    /// An independent deep copy, for a store that keeps live group states.
    /// Deliberately not `Clone`: a copy must never be used to send.
    pub(crate) fn duplicate(&self) -> Self {
        let members = self
            .members
            .iter()
            .map(|(address, chains)| {
                let chains = chains
                    .iter()
                    .map(|c| InboundChain {
                        chain_id: c.chain_id,
                        signing_key: c.signing_key,
                        next_iteration: c.next_iteration,
                        chain_key: c.chain_key.duplicate(),
                        skipped: c.skipped.duplicate(),
                    })
                    .collect();
                (*address, chains)
            })
            .collect();
        Self {
            group_id: self.group_id.clone(),
            config: self.config,
            own: OwnChain {
                chain_id: self.own.chain_id,
                iteration: self.own.iteration,
                chain_key: self.own.chain_key.duplicate(),
                signing: self.own.signing.duplicate(),
            },
            members,
            removed: self.removed.clone(),
        }
    }

    /// Creates this device's session for a group, with a fresh sending chain.
    /// Every member device creates its own, under the same group id.
    ///
    /// ```
    /// use ratchetbox::Error;
    /// use ratchetbox::group::GroupSession;
    /// let mut rng = ratchetbox::os_rng();
    /// let group = GroupSession::create(&mut rng, b"hiking club")?;
    /// assert_eq!(group.group_id(), b"hiking club");
    /// assert!(matches!(GroupSession::create(&mut rng, b""), Err(Error::Decode(_))));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] if the group id is empty or longer than
    /// [`MAX_GROUP_ID_LEN`](super::MAX_GROUP_ID_LEN): a bug in how the app makes
    /// group ids (random 32 bytes, for example, always fit).
    pub fn create<R: CryptoRng + ?Sized>(rng: &mut R, group_id: &[u8]) -> Result<Self, Error> {
        Self::create_with_config(rng, group_id, GroupConfig::default())
    }

    /// [`create`](Self::create) with explicit limits.
    ///
    /// ```
    /// use ratchetbox::group::{GroupConfig, GroupSession};
    /// let mut rng = ratchetbox::os_rng();
    /// let config = GroupConfig::new(100, 200, 2)?;
    /// let group = GroupSession::create_with_config(&mut rng, b"hiking club", config)?;
    /// assert_eq!(group.group_id(), b"hiking club");
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`create`](Self::create): a bad group id.
    pub fn create_with_config<R: CryptoRng + ?Sized>(
        rng: &mut R,
        group_id: &[u8],
        config: GroupConfig,
    ) -> Result<Self, Error> {
        wire::check_group_id(group_id)?;
        Ok(Self {
            group_id: group_id.to_vec(),
            config,
            own: OwnChain::generate(rng),
            members: BTreeMap::new(),
            removed: BTreeSet::new(),
        })
    }

    /// The group id.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// let group = GroupSession::create(&mut rng, b"hiking club")?;
    /// assert_eq!(group.group_id(), b"hiking club");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_id(&self) -> &[u8] {
        &self.group_id
    }

    /// The distribution message for this device's current chain, at its current
    /// iteration: send it to every member device over 1:1 sessions. It holds the
    /// chain key, so it must only travel encrypted. A member who receives it can
    /// read this device's messages from that iteration on, and none before.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// let alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// // Alice sends this to bob/1 inside their 1:1 session; Bob records it.
    /// let distribution = alice.distribution();
    /// bob.process_distribution(Address::new(b"alice", 1)?, &distribution)?;
    /// assert_eq!(bob.member_devices().collect::<Vec<_>>(), [Address::new(b"alice", 1)?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn distribution(&self) -> Zeroizing<Vec<u8>> {
        Distribution {
            group_id: &self.group_id,
            chain_id: self.own.chain_id,
            iteration: self.own.iteration,
            chain_key: *self.own.chain_key.as_bytes(),
            signing_key: *self.own.signing.public_key(),
        }
        .encode()
    }

    /// Records another member device's distribution. A distribution for a chain
    /// already known is ignored, so a replayed or older distribution can neither
    /// make this device forget keys nor accept old messages again. Beyond
    /// [`GroupConfig::max_chains_per_sender`] chains for one device, the oldest
    /// is dropped.
    ///
    /// `sender` must be the device the 1:1 session that carried the bytes is
    /// with, never an address read from the bytes.
    ///
    /// ```
    /// use ratchetbox::Error;
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// let alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// let alice1 = Address::new(b"alice", 1)?;
    /// bob.process_distribution(alice1, &alice.distribution())?;
    /// bob.process_distribution(alice1, &alice.distribution())?; // a repeat is ignored
    /// let other = GroupSession::create(&mut rng, b"book club")?;
    /// assert_eq!(bob.process_distribution(alice1, &other.distribution()), Err(Error::WrongGroup));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::Decode`] for malformed bytes: drop them;
    /// - [`Error::WrongGroup`] for another group's distribution: hand it to that
    ///   group's session (or drop it if this device is not in that group);
    /// - [`Error::NotAMember`] for a removed account: drop it, unless the app's
    ///   membership list says the account is back, then
    ///   [`readmit_member`](Self::readmit_member) and process it again;
    /// - [`Error::InvalidConfig`] if the group already has
    ///   [`MAX_GROUP_MEMBER_DEVICES`] devices: drop it.
    pub fn process_distribution(&mut self, sender: Address<'_>, bytes: &[u8]) -> Result<(), Error> {
        let distribution = Distribution::parse(bytes)?;
        if distribution.group_id != self.group_id.as_slice() {
            return Err(Error::WrongGroup);
        }
        if self.removed.contains(sender.account_id()) {
            return Err(Error::NotAMember);
        }
        let id = DeviceAddress::from_address(&sender);
        if !self.members.contains_key(&id) && self.members.len() >= MAX_GROUP_MEMBER_DEVICES {
            return Err(Error::InvalidConfig {
                reason: "group has MAX_GROUP_MEMBER_DEVICES devices",
            });
        }
        let chains = self.members.entry(id).or_default();
        if chains.iter().any(|c| c.chain_id == distribution.chain_id) {
            return Ok(());
        }
        if chains.len() >= self.config.max_chains_per_sender as usize {
            chains.remove(0);
        }
        chains.push(InboundChain {
            chain_id: distribution.chain_id,
            signing_key: distribution.signing_key,
            next_iteration: distribution.iteration,
            chain_key: GroupChainKey::from_bytes(distribution.chain_key),
            skipped: SkippedKeys::default(),
        });
        Ok(())
    }

    /// Bytes [`encrypt_into`](Self::encrypt_into) writes for `plaintext_len` bytes.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// let mut group = GroupSession::create(&mut rng, b"hiking club")?;
    /// let message = group.encrypt(&mut rng, b"Saturday, 9am?")?;
    /// assert_eq!(message.len(), group.encrypted_len(b"Saturday, 9am?".len()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encrypted_len(&self, plaintext_len: usize) -> usize {
        group_message_overhead(self.group_id.len()) + plaintext_len
    }

    /// Encrypts and signs a message for the whole group into `out`. `rng`
    /// supplies the message's random nonce, so that a restored copy of this
    /// state never encrypts under a message key and nonce already used.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let alice1 = Address::new(b"alice", 1)?;
    /// # bob.process_distribution(alice1, &alice.distribution())?;
    /// let mut buf = [0u8; 512];
    /// let len = alice.encrypt_into(&mut rng, b"Saturday, 9am?", &mut buf)?;
    /// assert_eq!(len, alice.encrypted_len(14));
    /// assert_eq!(bob.decrypt(alice1, &buf[..len])?, b"Saturday, 9am?");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::BufferTooSmall`] if `out` is shorter than
    ///   [`encrypted_len`](Self::encrypted_len): size it with that and call again;
    /// - [`Error::CounterExhausted`] after 2^32 − 1 messages on one chain:
    ///   [`rotate`](Self::rotate), send the new distribution to every member, and
    ///   encrypt again.
    pub fn encrypt_into<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let needed = self.encrypted_len(plaintext.len());
        crate::error::check_buffer(needed, out)?;
        let iteration = self.own.iteration;
        if iteration == u32::MAX {
            return Err(Error::CounterExhausted);
        }
        let header_len = 2 + self.group_id.len() + 8 + NONCE_LEN;
        let out = &mut out[..needed];
        out[0] = GROUP_MESSAGE_TAG;
        out[1] = self.group_id.len() as u8;
        out[2..2 + self.group_id.len()].copy_from_slice(&self.group_id);
        let at = 2 + self.group_id.len();
        out[at..at + 4].copy_from_slice(&self.own.chain_id.to_be_bytes());
        out[at + 4..at + 8].copy_from_slice(&iteration.to_be_bytes());
        let nonce = crypto::random_nonce(rng);
        out[at + 8..at + 8 + NONCE_LEN].copy_from_slice(&nonce);
        let (header, body) = out.split_at_mut(header_len);
        let (ciphertext, rest) = body.split_at_mut(plaintext.len());
        let (message_key, next) = self.own.chain_key.step();
        let tag = message_key.seal(&nonce, header, plaintext, ciphertext)?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        let signed_len = needed - SIGNATURE_LEN;
        let signature = self.own.signing.sign(&out[..signed_len]);
        out[signed_len..].copy_from_slice(&signature);
        self.own.chain_key = next;
        self.own.iteration = iteration + 1;
        Ok(needed)
    }

    /// [`encrypt_into`](Self::encrypt_into) returning a new `Vec`. Send the result
    /// to every member device, for example in one multi-recipient sealed envelope.
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
    /// assert_eq!(bob.decrypt(alice1, &message)?, b"Saturday, 9am?");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::CounterExhausted`] after 2^32 − 1 messages on one chain, as for
    /// [`encrypt_into`](Self::encrypt_into) (the buffer is always large enough).
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; self.encrypted_len(plaintext.len())];
        self.encrypt_into(rng, plaintext, &mut out)?;
        Ok(out)
    }

    /// Finds the sender's chain and checks the signature strictly.
    fn check<'a>(&self, sender: &Address<'_>, bytes: &'a [u8]) -> Result<Checked<'a>, Error> {
        let message = self.locate(sender, bytes)?;
        let chain = self.chain(sender, message.chain_id)?;
        chain
            .signing_key
            .verify(message.signed, &message.signature)?;
        Ok(Checked { message })
    }

    fn locate<'a>(&self, sender: &Address<'_>, bytes: &'a [u8]) -> Result<GroupMessage<'a>, Error> {
        let message = GroupMessage::parse(bytes)?;
        if message.group_id != self.group_id.as_slice() {
            return Err(Error::WrongGroup);
        }
        self.chain(sender, message.chain_id)?;
        Ok(message)
    }

    fn chain(&self, sender: &Address<'_>, chain_id: u32) -> Result<&InboundChain, Error> {
        self.members
            .get(&DeviceAddress::from_address(sender))
            .and_then(|chains| chains.iter().find(|c| c.chain_id == chain_id))
            .ok_or(Error::NotAMember)
    }

    /// Verifies and decrypts a group message from `sender` (the address the
    /// envelope layer authenticated). On any error the session is unchanged.
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
    /// let message = alice.encrypt(&mut rng, b"Saturday, 9am?")?;
    /// assert_eq!(bob.decrypt(alice1, &message)?, b"Saturday, 9am?");
    /// assert_eq!(bob.decrypt(alice1, &message), Err(Error::DuplicateMessage));
    /// // Nobody distributed a chain as carol/1.
    /// assert_eq!(bob.decrypt(Address::new(b"carol", 1)?, &message), Err(Error::NotAMember));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`Error::Decode`] for malformed bytes: drop the message;
    ///   [`Error::WrongGroup`]: hand it to the session of the group it names;
    /// - [`Error::NotAMember`] if the sender or its chain is unknown: the
    ///   sender's distribution has not arrived yet (keep the message a while and
    ///   decrypt it again once the distribution is processed; if none comes, ask
    ///   the sender for one, which covers only its later messages), or the sender
    ///   was removed (drop it);
    /// - [`Error::InvalidSignature`] if the signature fails strict verification:
    ///   forged or corrupted, drop it;
    /// - [`Error::DuplicateMessage`]: already read (or its key was evicted), drop
    ///   it silently;
    /// - [`Error::TooManySkippedMessages`]: the message is further ahead than
    ///   [`GroupConfig::max_forward_jump`] allows. Drop it; a distribution of the
    ///   same chain is ignored, so ask the sender to [`rotate`](Self::rotate);
    /// - [`Error::CounterExhausted`], [`Error::DecryptionFailed`]: validly signed
    ///   by the sender but unusable, a bug on its side; drop the message.
    pub fn decrypt(&mut self, sender: Address<'_>, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let checked = self.check(&sender, bytes)?;
        self.decrypt_checked(&sender, checked)
    }

    fn decrypt_checked(
        &mut self,
        sender: &Address<'_>,
        checked: Checked<'_>,
    ) -> Result<Vec<u8>, Error> {
        let message = checked.message;
        let max_jump = self.config.max_forward_jump;
        let cap = self.config.max_skipped_keys as usize;
        let chain = self
            .members
            .get_mut(&DeviceAddress::from_address(sender))
            .and_then(|chains| chains.iter_mut().find(|c| c.chain_id == message.chain_id))
            .ok_or(Error::NotAMember)?;
        let mut out = vec![0u8; message.ciphertext.len()];
        let tag = chain.key_tag();
        let iteration = message.iteration;
        if iteration < chain.next_iteration {
            let index = chain
                .skipped
                .find(&tag, iteration)
                .ok_or(Error::DuplicateMessage)?;
            let key = chain
                .skipped
                .message_key(index)
                .ok_or(Error::DuplicateMessage)?;
            key.open(
                &message.nonce,
                message.header,
                message.ciphertext,
                &message.tag,
                &mut out,
            )?;
            chain.skipped.remove(index);
            return Ok(out);
        }
        if iteration == u32::MAX {
            return Err(Error::CounterExhausted);
        }
        let gap = iteration - chain.next_iteration;
        if gap > max_jump {
            return Err(Error::TooManySkippedMessages {
                requested: u64::from(gap),
                max: max_jump,
            });
        }
        let mark = chain.skipped.stage(gap as usize);
        let (mut message_key, mut next) = chain.chain_key.step();
        for skipped in chain.next_iteration..iteration {
            chain
                .skipped
                .push_staged(SkippedKey::new(tag, skipped, message_key));
            (message_key, next) = next.step();
        }
        if let Err(e) = message_key.open(
            &message.nonce,
            message.header,
            message.ciphertext,
            &message.tag,
            &mut out,
        ) {
            chain.skipped.rollback(mark);
            return Err(e);
        }
        chain.skipped.commit(mark, cap);
        chain.chain_key = next;
        chain.next_iteration = iteration + 1;
        Ok(out)
    }

    /// Decrypts a backlog. All signatures are first verified together (batch
    /// verification); if that fails, each is verified on its own, so one bad
    /// message cannot hide the good ones. Results are in input order; each
    /// message succeeds or fails as [`decrypt`](Self::decrypt) would.
    ///
    /// Batch verification is randomized and cofactorless: a signature that
    /// strict verification rejects only because its `R` carries a small-torsion
    /// component can pass it with probability up to 1/2. Only the sender's own
    /// signing key can make such a signature, so this lets a member's device
    /// accept what another member's device rejects, never a forgery by anyone else.
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
    /// let backlog: Vec<Vec<u8>> = (0..3u8)
    ///     .map(|i| alice.encrypt(&mut rng, &[i]))
    ///     .collect::<Result<_, _>>()?;
    /// let mut batch: Vec<(Address<'_>, &[u8])> =
    ///     backlog.iter().map(|m| (alice1, &m[..])).collect();
    /// batch.push((alice1, &backlog[0])); // a duplicate
    /// let results = bob.decrypt_batch(&batch);
    /// assert_eq!(results[..3], [Ok(vec![0]), Ok(vec![1]), Ok(vec![2])]);
    /// assert_eq!(results[3], Err(Error::DuplicateMessage));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decrypt_batch(
        &mut self,
        messages: &[(Address<'_>, &[u8])],
    ) -> Vec<Result<Vec<u8>, Error>> {
        let located: Vec<Result<GroupMessage<'_>, Error>> = messages
            .iter()
            .map(|(sender, bytes)| self.locate(sender, bytes))
            .collect();
        let mut signed: Vec<&[u8]> = Vec::new();
        let mut signatures: Vec<[u8; SIGNATURE_LEN]> = Vec::new();
        let mut keys = Vec::new();
        for ((sender, _), message) in messages.iter().zip(&located) {
            let Ok(m) = message else { continue };
            if let Ok(chain) = self.chain(sender, m.chain_id) {
                signed.push(m.signed);
                signatures.push(m.signature);
                keys.push(*chain.signing_key.verifying_key());
            }
        }
        let all_valid = crypto::verify_batch(&signed, &signatures, &keys);
        messages
            .iter()
            .zip(located)
            .map(|((sender, bytes), message)| {
                let message = message?;
                let checked = if all_valid {
                    Checked { message }
                } else {
                    self.check(sender, bytes)?
                };
                self.decrypt_checked(sender, checked)
            })
            .collect()
    }

    /// Starts a fresh sending chain (new chain id, key and signing key) and
    /// returns its distribution. Members that do not receive it cannot read
    /// anything sent after it.
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
    /// let distribution = alice.rotate(&mut rng);
    /// let message = alice.encrypt(&mut rng, b"new chain")?;
    /// assert_eq!(bob.decrypt(alice1, &message), Err(Error::NotAMember));
    /// bob.process_distribution(alice1, &distribution)?;
    /// assert_eq!(bob.decrypt(alice1, &message)?, b"new chain");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Zeroizing<Vec<u8>> {
        self.own = OwnChain::generate(rng);
        self.distribution()
    }

    /// Removes every device of `account_id` from the group and rotates this
    /// device's chain, returning the distribution to send to the remaining
    /// members. Every remaining member must do the same (each calls this on
    /// its own session), so the removed member can read nothing sent afterwards,
    /// and its later messages are refused with [`Error::NotAMember`]. The account
    /// stays removed: its distributions are refused with [`Error::NotAMember`]
    /// until [`readmit_member`](Self::readmit_member).
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
    /// # let mut carol = GroupSession::create(&mut rng, b"hiking club")?;
    /// # carol.process_distribution(alice1, &alice.distribution())?;
    /// // Bob leaves. Every remaining member removes him; Alice sends her new chain to Carol.
    /// let distribution = alice.remove_member(&mut rng, b"bob")?;
    /// carol.process_distribution(alice1, &distribution)?;
    /// let message = alice.encrypt(&mut rng, b"without Bob")?;
    /// assert_eq!(carol.decrypt(alice1, &message)?, b"without Bob");
    /// assert_eq!(bob.decrypt(alice1, &message), Err(Error::NotAMember));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if [`MAX_GROUP_MEMBER_DEVICES`] accounts are
    /// already recorded as removed (nothing changes): the group has outgrown its
    /// session; start a new group id.
    pub fn remove_member<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        account_id: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if !self.removed.contains(account_id) && self.removed.len() >= MAX_GROUP_MEMBER_DEVICES {
            return Err(Error::InvalidConfig {
                reason: "MAX_GROUP_MEMBER_DEVICES accounts already removed",
            });
        }
        self.members
            .retain(|id, _| id.as_address().account_id() != account_id);
        self.removed.insert(account_id.to_vec());
        Ok(self.rotate(rng))
    }

    /// Lets a removed account back in: its next distribution is accepted again.
    /// It reads only what is sent after that distribution's chain starts.
    ///
    /// ```
    /// use ratchetbox::Error;
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let bob1 = Address::new(b"bob", 1)?;
    /// alice.remove_member(&mut rng, b"bob")?;
    /// assert_eq!(alice.process_distribution(bob1, &bob.rotate(&mut rng)), Err(Error::NotAMember));
    /// // Bob is added back: his new chain is accepted again.
    /// alice.readmit_member(b"bob");
    /// alice.process_distribution(bob1, &bob.rotate(&mut rng))?;
    /// assert_eq!(alice.member_devices().count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn readmit_member(&mut self, account_id: &[u8]) {
        self.removed.remove(account_id);
    }

    /// Member devices whose chains this session holds.
    ///
    /// ```
    /// # use ratchetbox::group::GroupSession;
    /// # use ratchetbox::sealed::Address;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let mut alice = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let mut bob = GroupSession::create(&mut rng, b"hiking club")?;
    /// # let alice1 = Address::new(b"alice", 1)?;
    /// # bob.process_distribution(alice1, &alice.distribution())?;
    /// let devices: Vec<Address<'_>> = bob.member_devices().collect();
    /// assert_eq!(devices, [alice1]);
    /// assert_eq!(alice.member_devices().count(), 0); // nobody has distributed to Alice
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn member_devices(&self) -> impl Iterator<Item = Address<'_>> {
        self.members.keys().map(DeviceAddress::as_address)
    }
}

impl core::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupSession")
            .field("group_id_len", &self.group_id.len())
            .field("chain_id", &self.own.chain_id)
            .field("iteration", &self.own.iteration)
            .field("member_devices", &self.members.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn addr(name: &'static [u8]) -> Address<'static> {
        Address::from_parts(name, 1)
    }

    fn pair() -> (GroupSession, GroupSession) {
        let mut rng = test_rng(21);
        let alice = GroupSession::create(&mut rng, b"g").expect("valid");
        let mut bob = GroupSession::create(&mut rng, b"g").expect("valid");
        bob.process_distribution(addr(b"alice"), &alice.distribution())
            .expect("valid");
        (alice, bob)
    }

    #[test]
    fn duplicate_is_faithful_and_independent() {
        let (mut alice, mut bob) = pair();
        let mut rng = test_rng(30);
        let m: Vec<Vec<u8>> = (0..3u8)
            .map(|i| alice.encrypt(&mut rng, &[i]).expect("fits"))
            .collect();
        bob.decrypt(addr(b"alice"), &m[2]).expect("ok");
        let copy = bob.duplicate();
        assert_eq!(&copy.encode()[..], &bob.encode()[..]);
        let mut copy = copy;
        assert_eq!(copy.decrypt(addr(b"alice"), &m[0]).expect("ok"), [0]);
        assert_ne!(&copy.encode()[..], &bob.encode()[..]);
        assert_eq!(
            bob.decrypt(addr(b"alice"), &m[0]).expect("still there"),
            [0]
        );
    }

    #[test]
    fn out_of_order_duplicates_and_bounds() {
        let (mut alice, mut bob) = pair();
        let mut rng = test_rng(31);
        let m: Vec<Vec<u8>> = (0..4u8)
            .map(|i| alice.encrypt(&mut rng, &[i]).expect("fits"))
            .collect();
        assert_eq!(bob.decrypt(addr(b"alice"), &m[2]).expect("ok"), [2]);
        assert_eq!(bob.decrypt(addr(b"alice"), &m[0]).expect("ok"), [0]);
        assert_eq!(
            bob.decrypt(addr(b"alice"), &m[0]),
            Err(Error::DuplicateMessage)
        );
        let before = bob.encode();
        let mut forged = m[3].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            bob.decrypt(addr(b"alice"), &forged),
            Err(Error::InvalidSignature)
        );
        assert_eq!(bob.decrypt(addr(b"carol"), &m[3]), Err(Error::NotAMember));
        assert_eq!(*bob.encode(), *before);
        assert_eq!(bob.decrypt(addr(b"alice"), &m[1]).expect("ok"), [1]);
        assert_eq!(bob.decrypt(addr(b"alice"), &m[3]).expect("ok"), [3]);
        let restored = GroupSession::decode(&bob.encode()).expect("decodes");
        assert_eq!(*restored.encode(), *bob.encode());
    }

    #[test]
    fn removal_rotates_and_late_joiner_reads_nothing_earlier() {
        let mut rng = test_rng(22);
        let (mut alice, mut bob) = pair();
        let old = alice.encrypt(&mut rng, b"before").expect("fits");
        let mut carol = GroupSession::create(&mut rng, b"g").expect("valid");
        carol
            .process_distribution(addr(b"alice"), &alice.distribution())
            .expect("valid");
        assert_eq!(
            carol.decrypt(addr(b"alice"), &old),
            Err(Error::DuplicateMessage)
        );
        let fresh = alice.remove_member(&mut rng, b"bob").expect("room");
        carol
            .process_distribution(addr(b"alice"), &fresh)
            .expect("valid");
        let after = alice.encrypt(&mut rng, b"after").expect("fits");
        assert_eq!(carol.decrypt(addr(b"alice"), &after).expect("ok"), b"after");
        assert_eq!(bob.decrypt(addr(b"alice"), &after), Err(Error::NotAMember));
    }

    #[test]
    fn batch_decrypt_falls_back_to_single_verification() {
        let (mut alice, mut bob) = pair();
        let mut rng = test_rng(32);
        let mut m: Vec<Vec<u8>> = (0..5u8)
            .map(|i| alice.encrypt(&mut rng, &[i]).expect("fits"))
            .collect();
        let last = m[2].len() - 1;
        m[2][last] ^= 1;
        let batch: Vec<(Address<'_>, &[u8])> =
            m.iter().map(|x| (addr(b"alice"), x.as_slice())).collect();
        let results = bob.decrypt_batch(&batch);
        assert_eq!(results[2], Err(Error::InvalidSignature));
        for i in [0usize, 1, 3, 4] {
            assert_eq!(results[i].as_deref(), Ok(&[i as u8][..]));
        }
    }

    #[test]
    fn removed_account_cannot_redistribute_and_replays_are_ignored() {
        let mut rng = test_rng(24);
        let (mut alice, mut bob) = pair();
        let first = alice.distribution();
        let m0 = alice.encrypt(&mut rng, b"zero").expect("fits");
        assert_eq!(bob.decrypt(addr(b"alice"), &m0).expect("ok"), b"zero");
        // A replayed distribution does not re-open message 0.
        bob.process_distribution(addr(b"alice"), &first)
            .expect("ignored");
        assert_eq!(
            bob.decrypt(addr(b"alice"), &m0),
            Err(Error::DuplicateMessage)
        );
        // Once removed, Alice's new chains are refused until readmitted.
        bob.remove_member(&mut rng, b"alice").expect("room");
        let fresh = alice.rotate(&mut rng);
        assert_eq!(
            bob.process_distribution(addr(b"alice"), &fresh),
            Err(Error::NotAMember)
        );
        let restored = GroupSession::decode(&bob.encode()).expect("decodes");
        assert_eq!(*restored.encode(), *bob.encode());
        bob.readmit_member(b"alice");
        bob.process_distribution(addr(b"alice"), &fresh)
            .expect("accepted");
        let m = alice.encrypt(&mut rng, b"back").expect("fits");
        assert_eq!(bob.decrypt(addr(b"alice"), &m).expect("ok"), b"back");
    }

    #[test]
    fn forward_jump_limit() {
        let mut rng = test_rng(23);
        let config = GroupConfig::new(3, 10, 2).expect("valid");
        let mut alice = GroupSession::create(&mut rng, b"g").expect("valid");
        let mut bob = GroupSession::create_with_config(&mut rng, b"g", config).expect("valid");
        bob.process_distribution(addr(b"alice"), &alice.distribution())
            .expect("valid");
        let m: Vec<Vec<u8>> = (0..6u8)
            .map(|i| alice.encrypt(&mut rng, &[i]).expect("fits"))
            .collect();
        assert!(matches!(
            bob.decrypt(addr(b"alice"), &m[4]),
            Err(Error::TooManySkippedMessages {
                requested: 4,
                max: 3
            })
        ));
        assert_eq!(bob.decrypt(addr(b"alice"), &m[3]).expect("ok"), [3]);
    }
}
