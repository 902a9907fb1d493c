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

    /// Builds a configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if either limit exceeds [`LIMIT_CEILING`](Self::LIMIT_CEILING).
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
    /// receiving chain and the gap in the new one.
    pub const fn max_skip(&self) -> u32 {
        self.max_skip
    }

    /// Most skipped message keys kept in total; the oldest are evicted first.
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
