//! [`Stager`]: application rows that ride in the store's next transaction.

use std::fmt;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

/// Application rows staged for the next transaction of one store (see
/// [`SqliteStore::stage`](crate::SqliteStore::stage)); clones share the queue.
///
/// ```
/// # use ratchetbox_sqlite::Stager;
/// let stager = Stager::default();
/// stager.stage(b"outbox/1", b"ciphertext");
/// assert_eq!(stager.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Stager(Arc<Mutex<Vec<StagedRow>>>);

pub(crate) type StagedRow = (Vec<u8>, Option<Zeroizing<Vec<u8>>>);

impl Stager {
    /// Stages a row (see [`SqliteStore::stage`](crate::SqliteStore::stage)).
    pub fn stage(&self, name: &[u8], value: &[u8]) {
        self.lock()
            .push((name.to_vec(), Some(Zeroizing::new(value.to_vec()))));
    }

    /// Stages a row's deletion.
    pub fn stage_delete(&self, name: &[u8]) {
        self.lock().push((name.to_vec(), None));
    }

    /// How many rows are staged.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn take(&self) -> Vec<StagedRow> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StagedRow>> {
        // A panic while staging leaves a whole row or none: the queue is usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for Stager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stager({} rows)", self.len())
    }
}
