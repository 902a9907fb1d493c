//! One remote device's sessions: the active one and a bounded archive.

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::identity::IdentityKey;
use crate::session::Session;

const SESSION_RECORD_TAG: u8 = 0x54;
const SESSION_RECORD_VERSION: u8 = 1;

/// Archived sessions kept per remote device unless the manager is configured
/// otherwise. An archived session still decrypts messages sent on it (a peer
/// that has not yet seen the newer session, a delayed message, two sessions
/// started at once); 8 covers those with room, and bounds what a peer who
/// keeps starting sessions can make us store.
pub const DEFAULT_MAX_ARCHIVED_SESSIONS: usize = 8;
/// The most archived sessions any configuration or stored record may hold.
pub const MAX_ARCHIVED_SESSIONS: usize = 40;

/// The sessions with one remote device: exactly one active session (used to
/// encrypt, tried first to decrypt) and up to [`MAX_ARCHIVED_SESSIONS`]
/// archived ones, most recent first.
///
/// The [`SessionManager`](crate::devices::SessionManager) keeps one per
/// remote device in its store:
///
/// ```
/// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
/// # use ratchetbox::devices::{LocalDevice, SessionManager};
/// # use ratchetbox::store::MemoryStore;
/// # let mut rng = ratchetbox::os_rng();
/// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
/// #     let identity = IdentityKeyPair::generate(rng);
/// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
/// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
/// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
/// # };
/// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
/// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
/// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
/// # let bob_key = *bob.local().identity.public_key();
/// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
/// use ratchetbox::store::SessionStore;
/// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
/// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
/// assert_eq!(record.active().remote_identity(), &bob_key);
/// assert!(record.archived().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionRecord {
    active: Session,
    archived: Vec<Session>,
}

impl SessionRecord {
    /// A record whose only session is `active`.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::Session;
    /// use ratchetbox::store::SessionRecord;
    /// let verified = bundle.verify()?;
    /// let session = Session::initiate(&mut rng, alice.local(), &bob_id, &verified)?;
    /// let record = SessionRecord::new(session);
    /// assert_eq!(record.active().remote_address(), &bob_addr);
    /// assert!(record.archived().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(active: Session) -> Self {
        Self {
            active,
            archived: Vec::new(),
        }
    }

    /// An independent deep copy, for a store that keeps live records.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            active: self.active.duplicate(),
            archived: self.archived.iter().map(Session::duplicate).collect(),
        }
    }

    /// The session messages are encrypted with.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::SessionStore;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
    /// assert!(record.active().is_awaiting_reply()); // Bob has not answered yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn active(&self) -> &Session {
        &self.active
    }

    pub(crate) fn active_mut(&mut self) -> &mut Session {
        &mut self.active
    }

    /// The archived sessions, most recent first. They still decrypt messages
    /// sent on them.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::SessionStore;
    /// let first = alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?; // a second session replaces it
    /// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
    /// assert_eq!(record.archived().len(), 1);
    /// assert_ne!(record.archived()[0].base_key(), record.active().base_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn archived(&self) -> &[Session] {
        &self.archived
    }

    /// The session in `slot` (which must come from [`position`](Self::position)
    /// or index the archive).
    pub(crate) fn session_mut(&mut self, slot: Slot) -> &mut Session {
        match slot {
            Slot::Active => &mut self.active,
            Slot::Archived(i) => &mut self.archived[i],
        }
    }

    /// Makes `session` active, archiving the previous active session and
    /// dropping the oldest archived ones beyond `max_archived`.
    pub(crate) fn install(&mut self, session: Session, max_archived: usize) {
        let previous = core::mem::replace(&mut self.active, session);
        self.archive(previous, max_archived);
    }

    /// Adds `session` to the archive as its most recent entry.
    pub(crate) fn archive(&mut self, session: Session, max_archived: usize) {
        self.archived.insert(0, session);
        self.archived
            .truncate(max_archived.min(MAX_ARCHIVED_SESSIONS));
    }

    /// Makes archived session `index` active, archiving the current one.
    pub(crate) fn promote(&mut self, index: usize) {
        if index < self.archived.len() {
            let promoted = self.archived.remove(index);
            let previous = core::mem::replace(&mut self.active, promoted);
            self.archived.insert(0, previous);
        }
    }

    /// Drops archived sessions with another remote identity than the active
    /// one (after an identity change they can only confuse).
    pub(crate) fn drop_foreign_archived(&mut self) {
        let identity = *self.active.remote_identity();
        self.archived.retain(|s| *s.remote_identity() == identity);
    }

    /// Keeps only the sessions with remote identity `keep`, most recent active;
    /// `None` if none is left.
    pub(crate) fn retain_identity(self, keep: &IdentityKey) -> Option<Self> {
        let mut sessions = core::iter::once(self.active)
            .chain(self.archived)
            .filter(|s| s.remote_identity() == keep);
        let active = sessions.next()?;
        Some(Self {
            active,
            archived: sessions.collect(),
        })
    }

    /// The session (active first, then archived in order) matching `predicate`.
    pub(crate) fn position(&self, predicate: impl Fn(&Session) -> bool) -> Option<Slot> {
        if predicate(&self.active) {
            return Some(Slot::Active);
        }
        self.archived.iter().position(predicate).map(Slot::Archived)
    }

    /// Encodes the record (SPEC.md §12.3). Holds secrets: store it sealed
    /// ([`at_rest::seal`](crate::at_rest::seal) does both).
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::{SessionRecord, SessionStore};
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let record = alice.store().session_record(&bob_addr)?.ok_or("no session")?;
    /// let bytes = record.encode();
    /// assert_eq!(&SessionRecord::decode(&bytes)?.encode()[..], &bytes[..]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let active = self.active.encode();
        let archived: Vec<_> = self.archived.iter().map(Session::encode).collect();
        let len = 3 + 4 + active.len() + archived.iter().map(|a| 4 + a.len()).sum::<usize>();
        let mut w = Writer::with_capacity(len);
        w.u8(SESSION_RECORD_TAG).u8(SESSION_RECORD_VERSION);
        w.u32(active.len() as u32).bytes(&active);
        w.u8(archived.len() as u8);
        for session in &archived {
            w.u32(session.len() as u32).bytes(session);
        }
        Zeroizing::new(w.into_vec())
    }

    /// Decodes what [`encode`](Self::encode) produced.
    ///
    /// ```
    /// # use ratchetbox::{AccountId, IdentityKeyPair, PreKeyBundle, PreKeyStore};
    /// # use ratchetbox::devices::{LocalDevice, SessionManager};
    /// # use ratchetbox::store::MemoryStore;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let device = |rng: &mut _, name: &[u8]| -> Result<_, ratchetbox::DecodeError> {
    /// #     let identity = IdentityKeyPair::generate(rng);
    /// #     let prekeys = PreKeyStore::generate(rng, &identity, 1);
    /// #     let local = LocalDevice { account: AccountId::new(name)?, device_id: 1, identity };
    /// #     Ok(SessionManager::new(local, MemoryStore::new(prekeys)))
    /// # };
    /// # let (mut alice, mut bob) = (device(&mut rng, b"alice")?, device(&mut rng, b"bob")?);
    /// # let (alice_id, bob_id) = (alice.local().account, bob.local().account);
    /// # let (alice_addr, bob_addr) = (alice.local().address(), bob.local().address());
    /// # let bob_key = *bob.local().identity.public_key();
    /// # let bundle = PreKeyBundle::from_store(&bob_key, bob.store().prekeys(), None);
    /// use ratchetbox::store::{SessionRecord, SessionStore};
    /// alice.process_bundle(&mut rng, &bob_id, &bundle)?;
    /// let bytes = alice.store().session_record(&bob_addr)?.ok_or("no session")?.encode();
    /// let record = SessionRecord::decode(&bytes)?;
    /// assert_eq!(record.active().remote_identity(), &bob_key);
    /// assert!(SessionRecord::decode(&bytes[1..]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`DecodeError`] for a malformed record or session, or more than
    /// [`MAX_ARCHIVED_SESSIONS`] archived sessions. The sessions are lost:
    /// delete the record and start a fresh session from a new bundle.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(SESSION_RECORD_TAG)?;
        let version = r.u8("version")?;
        if version != SESSION_RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let active = decode_session(&mut r)?;
        let count = usize::from(r.u8("archived session count")?);
        if count > MAX_ARCHIVED_SESSIONS {
            return Err(DecodeError::LimitExceeded {
                field: "archived sessions",
                max: MAX_ARCHIVED_SESSIONS as u64,
                found: count as u64,
            });
        }
        let mut archived = Vec::with_capacity(count);
        for _ in 0..count {
            archived.push(decode_session(&mut r)?);
        }
        r.finish()?;
        Ok(Self { active, archived })
    }
}

/// Where a session sits in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Active,
    Archived(usize),
}

fn decode_session(r: &mut Reader<'_>) -> Result<Session, DecodeError> {
    let len = r.u32("session length")? as usize;
    let bytes = r.take(len, "session")?;
    Session::decode(bytes).map_err(|e| match e {
        crate::Error::Decode(d) => d,
        _ => DecodeError::InvalidValue { field: "session" },
    })
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("active", &self.active)
            .field("archived", &self.archived.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccountId, IdentityKeyPair, LocalDevice, PreKeyBundle, PreKeyMessage, PreKeyStore,
        Responder, test_rng,
    };

    #[test]
    fn duplicates_are_faithful_and_archives_bounded() {
        let mut rng = test_rng(21);
        let device = |rng: &mut _, name: &[u8]| LocalDevice {
            account: AccountId::new(name).unwrap(),
            device_id: 1,
            identity: IdentityKeyPair::generate(rng),
        };
        let alice = device(&mut rng, b"alice");
        let bob = device(&mut rng, b"bob");
        let mut store = PreKeyStore::generate(&mut rng, &bob.identity, 1);
        let bundle = PreKeyBundle::from_store(bob.identity.public_key(), &store, None)
            .verify()
            .unwrap();
        let mut a = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
        let sent: Vec<_> = (0..4u8)
            .map(|i| a.encrypt(&mut rng, &[i]).unwrap())
            .collect();
        let (b, _) = Responder::new(&bob, &mut store)
            .accept(&alice.address(), &PreKeyMessage::parse(&sent[3]).unwrap())
            .unwrap();
        assert_eq!(b.skipped_key_count(), 3);
        let mut record = SessionRecord::new(b);
        for _ in 0..3 {
            let other = Session::initiate(&mut rng, &alice, &bob.account, &bundle).unwrap();
            record.install(other, 2);
        }
        assert_eq!(record.archived().len(), 2);
        let copy = record.duplicate();
        assert_eq!(&copy.encode()[..], &record.encode()[..]);
        assert_eq!(
            &SessionRecord::decode(&record.encode()).unwrap().encode()[..],
            &record.encode()[..]
        );
        // The copy is independent: advancing it leaves the original alone.
        let mut copy = copy;
        copy.active_mut().encrypt(&mut rng, b"x").unwrap();
        assert_ne!(&copy.encode()[..], &record.encode()[..]);
    }
}
