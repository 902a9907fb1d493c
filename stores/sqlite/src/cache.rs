//! What a store keeps in memory between operations.

use std::collections::HashMap;

use ratchetbox::group::GroupSession;
use ratchetbox::store::SessionRecord;
use ratchetbox::{AccountId, DeviceAddress, PreKeyStore, TrustRecord};

/// How often reads were served from memory and how often a row was opened
/// and decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Session records and group states handed out from memory.
    pub hits: u64,
    /// Session records and group states opened and decoded from a row.
    pub decodes: u64,
}

/// Most decoded session records (and group states) kept in memory. A busy
/// messenger talks to a few dozen devices at a time; beyond the bound the
/// cache is emptied and refilled by use, so an attacker who makes us open
/// sessions with many devices grows nothing without bound.
pub const MAX_CACHED_RECORDS: usize = 256;

/// What is kept in memory between operations.
///
/// Session records and group states cannot be copied outside the core, so
/// they are *handed out*: a read takes the decoded object out of the cache,
/// and the change set that writes it back puts it back, after its commit. A
/// read that is not followed by a write (a failed decrypt) therefore costs
/// one decode next time, never a stale answer.
#[derive(Default)]
pub(crate) struct Cache {
    /// `PRAGMA data_version` when the cache was last known to match the file;
    /// it changes when another connection commits, and the cache is dropped.
    pub(crate) data_version: i64,
    /// The live prekey store; `None` after a failed write or another
    /// connection's commit (reloaded on the next read).
    pub(crate) prekeys: Option<PreKeyStore>,
    pub(crate) prekeys_gen: i64,
    pub(crate) trust: HashMap<AccountId, Option<TrustRecord>>,
    pub(crate) sessions: HashMap<DeviceAddress, (i64, SessionRecord)>,
    pub(crate) groups: HashMap<Vec<u8>, (i64, GroupSession)>,
    /// The generation of each session row as last read, checked when the
    /// record is written back (0: absent), so a write based on a read that
    /// another connection has overtaken is refused.
    pub(crate) read_gens: HashMap<DeviceAddress, i64>,
    /// The same for group states, by group id.
    pub(crate) group_read_gens: HashMap<Vec<u8>, i64>,
    pub(crate) stats: CacheStats,
}

impl Cache {
    pub(crate) fn clear(&mut self) {
        self.prekeys = None;
        self.trust.clear();
        self.sessions.clear();
        self.groups.clear();
    }
}

/// Empties a cache map that reached [`MAX_CACHED_RECORDS`].
pub(crate) fn make_room<K, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_CACHED_RECORDS {
        map.clear();
    }
}
