//! The raw session: one Double Ratchet session with one remote device, for
//! the hot path. One call (one FFI crossing) per message each way.
//!
//! This is the core's [`ratchetbox::Session`] with none of the manager's
//! bookkeeping: no trust records (no identity-change policy, no
//! blocking), no device lists, no store. The app checks
//! [`remote_identity`](Session::remote_identity) against what it trusts,
//! persists the session ([`seal`](Session::seal)) after every message, and
//! never uses an older copy to send.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ratchetbox::at_rest;
use ratchetbox::store::SessionRecord;
use ratchetbox::{PreKeyBundle, os_rng};

use crate::device::{Device, StorageKey};
use crate::error::RatchetboxError;
use crate::records;

/// The slot a sealed raw session is bound to.
const SESSION_SLOT: &[u8] = b"raw session";

/// One Double Ratchet session with one remote device, used directly: the raw
/// API, without the manager's trust checks, device lists or store.
///
/// Start it with [`initiate`](Self::initiate) from the peer device's bundle;
/// the peer's manager accepts the first message with
/// `SessionManager.accept_session`. Each [`encrypt`](Self::encrypt) and
/// [`decrypt`](Self::decrypt) is a single call taking and returning bytes.
///
/// Thread-safe: calls on one session are serialized by a lock.
#[derive(uniffi::Object)]
pub struct Session {
    inner: Mutex<ratchetbox::Session>,
}

/// A session created from a peer's first (prekey) message, and that message's
/// plaintext.
#[derive(uniffi::Record)]
pub struct AcceptedSession {
    /// The new session (reply on it).
    pub session: Arc<Session>,
    /// The first message's plaintext.
    pub plaintext: Vec<u8>,
}

impl Session {
    /// Wraps a core session.
    pub(crate) fn wrap(session: ratchetbox::Session) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(session),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ratchetbox::Session> {
        // The core changes a session only once an operation has succeeded, so
        // a panic mid-operation leaves it consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[uniffi::export]
impl Session {
    /// Starts a session as the initiator, from a bundle of a device of
    /// `peer_account` (as `SessionManager.new_bundle` makes). The bundle's
    /// signatures are checked; its identity key is not compared with any
    /// trust record: check [`remote_identity`](Self::remote_identity).
    /// Messages are prekey messages until the peer replies.
    ///
    /// # Errors
    /// `InvalidInput` for a bad account id; `Decode` for a malformed bundle;
    /// `InvalidSignature` for a forged or corrupted one; `Protocol` for an
    /// unusable key in it (fetch another bundle).
    #[uniffi::constructor]
    pub fn initiate(
        device: &Device,
        peer_account: &[u8],
        bundle: &[u8],
    ) -> Result<Arc<Self>, RatchetboxError> {
        let peer = records::account(peer_account)?;
        let bundle = PreKeyBundle::decode(bundle)?.verify()?;
        let session = ratchetbox::Session::initiate(&mut os_rng(), device.local(), &peer, &bundle)?;
        Ok(Self::wrap(session))
    }

    /// Opens a session sealed by [`seal`](Self::seal).
    ///
    /// # Errors
    /// `StorageWrongKey` for a wrong key or an altered blob; `StorageCorrupt`
    /// for anything that is not a sealed session.
    #[uniffi::constructor]
    pub fn open(key: &StorageKey, sealed: &[u8]) -> Result<Arc<Self>, RatchetboxError> {
        let record: SessionRecord = at_rest::open(&key.key, SESSION_SLOT, sealed)?;
        let session = ratchetbox::Session::decode(&record.active().encode())?;
        Ok(Self::wrap(session))
    }

    /// The session sealed under `key`. Seal it again after every encrypt and
    /// decrypt: an older copy can fail on newer messages, accept old ones
    /// again, and must never be used to send.
    ///
    /// # Errors
    /// Only if the session cannot be copied (it always can).
    pub fn seal(&self, key: &StorageKey) -> Result<Vec<u8>, RatchetboxError> {
        let copy = ratchetbox::Session::decode(&self.lock().encode())?;
        let record = SessionRecord::new(copy);
        Ok(at_rest::seal(
            &mut os_rng(),
            &key.key,
            SESSION_SLOT,
            &record,
        ))
    }

    /// Encrypts `plaintext` for the peer device: the message to send.
    ///
    /// # Errors
    /// `Protocol` if the sending chain is exhausted or the plaintext too large.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, RatchetboxError> {
        Ok(self.lock().encrypt(&mut os_rng(), plaintext)?)
    }

    /// Decrypts a message from the peer device. On any error the session is
    /// unchanged.
    ///
    /// # Errors
    /// `Decode` for malformed bytes; `DecryptionFailed` for a forged, altered
    /// or misdirected message; `DuplicateMessage`; `TooManySkippedMessages`;
    /// `WrongSession` for the prekey message of another session.
    pub fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>, RatchetboxError> {
        Ok(self.lock().decrypt(message)?)
    }

    /// The peer's account id.
    pub fn remote_account(&self) -> Vec<u8> {
        self.lock().remote_address().account().as_bytes().to_vec()
    }

    /// The peer's device id.
    pub fn remote_device_id(&self) -> u32 {
        self.lock().remote_address().device_id()
    }

    /// The peer's identity key (32 bytes): compare it with the one the app
    /// trusts (or show the safety number) before relying on the session.
    pub fn remote_identity(&self) -> Vec<u8> {
        self.lock().remote_identity().to_bytes().to_vec()
    }

    /// Whether this side started the session and has not yet decrypted a
    /// reply (its messages still carry the handshake).
    pub fn is_awaiting_reply(&self) -> bool {
        self.lock().is_awaiting_reply()
    }
}
