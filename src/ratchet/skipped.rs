//! The bounded store of skipped message keys, for messages that arrive out of
//! order or not at all.
//!
//! Keys are kept oldest first and evicted oldest first once the session's cap is
//! reached: a peer (or an attacker who can inject headers) can make us derive at
//! most `max_skip` keys per message, and can never make us keep more than
//! `max_skipped_keys` in total.
//!
//! Keys derived while decrypting a message are *staged* at the back of the
//! store ([`stage`](SkippedKeys::stage)), then either kept
//! ([`commit`](SkippedKeys::commit), which evicts the oldest beyond the cap) or
//! removed ([`rollback`](SkippedKeys::rollback)) if the message does not
//! authenticate, so a rejected message leaves the store exactly as it was,
//! without a copy through a temporary buffer.
//!
//! The store never leaves stale copies of keys in freed or spare heap memory:
//! entries are zeroized in place before they are popped (a pop moves the bytes
//! out and leaves the slot as it was), room for staged keys is reserved before
//! they are derived, and growth copies into a fresh buffer and then zeroizes the
//! old entries in place.

use alloc::collections::VecDeque;

use zeroize::Zeroize;

use crate::crypto::{KEY_LEN, PublicKey, SecretKey32};
use crate::ratchet::keys::MessageKey;

/// One skipped message key, addressed by (sender ratchet key, message number).
pub(crate) struct SkippedKey {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) number: u32,
    key: SecretKey32,
}

impl SkippedKey {
    pub(crate) fn new(ratchet_key: PublicKey, number: u32, key: MessageKey) -> Self {
        Self {
            ratchet_key,
            number,
            key: SecretKey32::from_bytes(*key.as_bytes()),
        }
    }

    pub(crate) fn from_parts(ratchet_key: PublicKey, number: u32, key: [u8; KEY_LEN]) -> Self {
        Self {
            ratchet_key,
            number,
            key: SecretKey32::from_bytes(key),
        }
    }

    pub(crate) fn key_bytes(&self) -> &[u8; KEY_LEN] {
        self.key.as_bytes()
    }

    fn duplicate(&self) -> Self {
        Self::from_parts(self.ratchet_key, self.number, *self.key.as_bytes())
    }
}

/// Skipped keys in arrival order (oldest first).
#[derive(Default)]
pub(crate) struct SkippedKeys {
    entries: VecDeque<SkippedKey>,
}

/// Where staging started: everything after it goes on rollback.
#[must_use]
pub(crate) struct StageMark(usize);

impl SkippedKeys {
    /// An independent copy, for a store handing out owned sessions.
    pub(crate) fn duplicate(&self) -> Self {
        let mut entries = VecDeque::with_capacity(self.entries.len());
        entries.extend(self.entries.iter().map(SkippedKey::duplicate));
        Self { entries }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &SkippedKey> {
        self.entries.iter()
    }

    /// Position of the key for (`ratchet_key`, `number`), if stored.
    pub(crate) fn find(&self, ratchet_key: &PublicKey, number: u32) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.number == number && e.ratchet_key == *ratchet_key)
    }

    /// A single-use copy of the key at `index`; the stored key stays until
    /// [`remove`](Self::remove) is called after a successful decryption.
    pub(crate) fn message_key(&self, index: usize) -> Option<MessageKey> {
        self.entries
            .get(index)
            .map(|e| MessageKey::from_bytes(*e.key.as_bytes()))
    }

    /// Deletes the key at `index`, keeping the order of the others.
    pub(crate) fn remove(&mut self, index: usize) {
        if index >= self.entries.len() {
            return;
        }
        // Swap it to the back step by step (no stale duplicate is left behind),
        // then drop it, which zeroizes it.
        for i in index..self.entries.len() - 1 {
            self.entries.swap(i, i + 1);
        }
        self.pop_back_zeroized();
    }

    fn pop_back_zeroized(&mut self) {
        if let Some(entry) = self.entries.back_mut() {
            entry.key.zeroize();
        }
        self.entries.pop_back();
    }

    fn pop_front_zeroized(&mut self) {
        if let Some(entry) = self.entries.front_mut() {
            entry.key.zeroize();
        }
        self.entries.pop_front();
    }

    /// Starts staging up to `additional` keys: reserves room for them (so
    /// staging never reallocates) and marks where they begin.
    pub(crate) fn stage(&mut self, additional: usize) -> StageMark {
        self.reserve_zeroizing(additional);
        StageMark(self.entries.len())
    }

    /// Adds a staged key at the back; [`stage`](Self::stage) reserved its room.
    pub(crate) fn push_staged(&mut self, key: SkippedKey) {
        self.entries.push_back(key);
    }

    /// Removes (and zeroizes) every key staged since `mark`.
    pub(crate) fn rollback(&mut self, mark: StageMark) {
        while self.entries.len() > mark.0 {
            self.pop_back_zeroized();
        }
    }

    /// Keeps the staged keys, evicting the oldest keys so that at most `cap` remain.
    pub(crate) fn commit(&mut self, mark: StageMark, cap: usize) {
        let _ = mark;
        while self.entries.len() > cap {
            self.pop_front_zeroized();
        }
    }

    /// Adds one key at the back; used by the state decoder, which bounds the count.
    pub(crate) fn push(&mut self, key: SkippedKey) {
        self.reserve_zeroizing(1);
        self.entries.push_back(key);
    }

    /// Ensures room for `additional` more entries without a reallocation that
    /// would leave key bytes in freed memory.
    fn reserve_zeroizing(&mut self, additional: usize) {
        let needed = self.entries.len() + additional;
        if needed <= self.entries.capacity() {
            return;
        }
        let capacity = needed.max(2 * self.entries.capacity()).max(16);
        let mut grown = VecDeque::with_capacity(capacity);
        grown.extend(self.entries.iter().map(SkippedKey::duplicate));
        // Dropping the old entries zeroizes them in place before the buffer is freed.
        self.entries = grown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn key(n: u32) -> SkippedKey {
        SkippedKey::from_parts(PublicKey::lookup_tag([1; 32]), n, [n as u8; 32])
    }

    fn append(s: &mut SkippedKeys, keys: impl ExactSizeIterator<Item = SkippedKey>, cap: usize) {
        let mark = s.stage(keys.len());
        for k in keys {
            s.push_staged(k);
        }
        s.commit(mark, cap);
    }

    #[test]
    fn evicts_oldest_first_and_keeps_order_on_remove() {
        let mut s = SkippedKeys::default();
        append(&mut s, (0..5).map(key), 4);
        assert_eq!(s.iter().map(|e| e.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
        s.remove(1);
        assert_eq!(s.iter().map(|e| e.number).collect::<Vec<_>>(), [1, 3, 4]);
        append(&mut s, (10..12).map(key), 4);
        assert_eq!(
            s.iter().map(|e| e.number).collect::<Vec<_>>(),
            [3, 4, 10, 11]
        );
        let pk = PublicKey::lookup_tag([1; 32]);
        assert_eq!(s.find(&pk, 10), Some(2));
        assert_eq!(s.find(&pk, 1), None);
        assert!(s.message_key(9).is_none());
    }

    #[test]
    fn zero_cap_keeps_nothing() {
        let mut s = SkippedKeys::default();
        append(&mut s, (0..3).map(key), 0);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn rollback_restores_the_store() {
        let mut s = SkippedKeys::default();
        append(&mut s, (0..3).map(key), 10);
        let mark = s.stage(4);
        for k in (3..7).map(key) {
            s.push_staged(k);
        }
        s.rollback(mark);
        assert_eq!(s.iter().map(|e| e.number).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
