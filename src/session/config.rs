//! Per-session limits on what a peer can make us derive and store.

use crate::error::Error;

/// Limits on skipped message keys, stored with the session.
///
/// ```
/// use ratchetbox::SessionConfig;
/// let strict = SessionConfig::new(100, 500)?;
/// assert_eq!(strict.max_skip(), 100);
/// assert_eq!(SessionConfig::default().max_skipped_keys(), 2000);
/// # Ok::<(), ratchetbox::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    max_skip: u32,
    max_skipped_keys: u32,
}

impl SessionConfig {
    /// Default for [`max_skip`](Self::max_skip): how far ahead of the next
    /// expected message one message may be (Signal's recommendation is of this order).
    pub const DEFAULT_MAX_SKIP: u32 = 1000;
    /// Default for [`max_skipped_keys`](Self::max_skipped_keys).
    pub const DEFAULT_MAX_SKIPPED_KEYS: u32 = 2000;
    /// Upper bound for both limits. A decoder trusts no stored limit above it,
    /// so a corrupted blob cannot make us allocate or loop without bound.
    pub const LIMIT_CEILING: u32 = 1 << 16;

    /// Builds a configuration, for
    /// [`Session::initiate_with_config`](crate::Session::initiate_with_config) or
    /// [`Responder::with_config`](crate::Responder::with_config).
    ///
    /// ```
    /// use ratchetbox::{Error, SessionConfig};
    /// let strict = SessionConfig::new(100, 500)?;
    /// assert_eq!((strict.max_skip(), strict.max_skipped_keys()), (100, 500));
    ///
    /// let too_big = SessionConfig::new(SessionConfig::LIMIT_CEILING + 1, 500);
    /// assert!(matches!(too_big, Err(Error::InvalidConfig { .. })));
    /// # Ok::<(), ratchetbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if either limit exceeds
    /// [`LIMIT_CEILING`](Self::LIMIT_CEILING): a programming error, choose smaller limits.
    pub const fn new(max_skip: u32, max_skipped_keys: u32) -> Result<Self, Error> {
        if max_skip > Self::LIMIT_CEILING {
            return Err(Error::InvalidConfig {
                reason: "max_skip above LIMIT_CEILING",
            });
        }
        if max_skipped_keys > Self::LIMIT_CEILING {
            return Err(Error::InvalidConfig {
                reason: "max_skipped_keys above LIMIT_CEILING",
            });
        }
        Ok(Self {
            max_skip,
            max_skipped_keys,
        })
    }

    /// Most message keys one incoming message may make us derive and store
    /// (MAX_SKIP in the Double Ratchet spec), counting both the rest of the old
    /// receiving chain and the gap in the new one. A message further ahead is
    /// refused with [`Error::TooManySkippedMessages`].
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
    /// let config = SessionConfig::new(1, 10)?;
    /// let mut alice_session =
    ///     Session::initiate_with_config(&mut rng, &alice, &bob.account, &bundle, config)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    ///
    /// bob_session.encrypt(&mut rng, b"0")?; // lost
    /// bob_session.encrypt(&mut rng, b"1")?; // late
    /// let third = bob_session.encrypt(&mut rng, b"2")?;
    /// let refused = alice_session.decrypt(&third);
    /// assert_eq!(refused, Err(Error::TooManySkippedMessages { requested: 2, max: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max_skip(&self) -> u32 {
        self.max_skip
    }

    /// Most skipped message keys kept in total; the oldest are evicted first, and
    /// a message whose key was evicted is refused as [`Error::DuplicateMessage`].
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
    /// let config = SessionConfig::new(10, 1)?;
    /// let mut alice_session =
    ///     Session::initiate_with_config(&mut rng, &alice, &bob.account, &bundle, config)?;
    /// # let first = alice_session.encrypt(&mut rng, b"hi Bob")?;
    /// # let first_message = PreKeyMessage::parse(&first)?;
    /// # let responder = Responder::new(&bob, &mut bob_prekeys);
    /// # let (mut bob_session, _) = responder.accept(&alice.address(), &first_message)?;
    ///
    /// let one = bob_session.encrypt(&mut rng, b"1")?;
    /// let two = bob_session.encrypt(&mut rng, b"2")?;
    /// let three = bob_session.encrypt(&mut rng, b"3")?;
    /// alice_session.decrypt(&three)?; // skips two keys, keeps one
    /// assert_eq!(alice_session.skipped_key_count(), 1);
    /// assert_eq!(alice_session.decrypt(&one), Err(Error::DuplicateMessage));
    /// assert_eq!(alice_session.decrypt(&two)?, b"2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max_skipped_keys(&self) -> u32 {
        self.max_skipped_keys
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_skip: Self::DEFAULT_MAX_SKIP,
            max_skipped_keys: Self::DEFAULT_MAX_SKIPPED_KEYS,
        }
    }
}
