//! The crate's error type and its mapping onto [`StoreError`].

use core::fmt;

use ratchetbox::DecodeError;
use ratchetbox::at_rest::StorageError;
use ratchetbox::store::StoreError;

/// Why the SQLite store could not open, read or write.
///
/// Trait methods of [`ProtocolStore`](ratchetbox::store::ProtocolStore)
/// return the coarser [`StoreError`]; the detailed error of the last failed
/// trait call is kept for [`SqliteStore::take_last_error`](crate::SqliteStore::take_last_error).
#[derive(Debug)]
#[non_exhaustive]
pub enum SqliteError {
    /// The key did not open the database: neither the device row nor the
    /// prekey row authenticated under it.
    WrongKey,
    /// The database was written by a newer version of this crate.
    NewerSchema {
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this crate reads.
        supported: i64,
    },
    /// A row did not open or decode (altered, truncated, or moved from
    /// another row). Nothing was written.
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// What was wrong with it.
        reason: StorageError,
    },
    /// The file is not a SQLite database, or SQLite found it malformed
    /// (a truncated or overwritten file).
    CorruptFile(rusqlite::Error),
    /// Another connection held the write lock longer than the busy timeout.
    /// Nothing was written; retry later.
    Busy,
    /// A change could not be applied: a one-time prekey already spent, a base
    /// key already accepted, or a session record changed by another
    /// connection since it was read. Nothing was written.
    Conflict,
    /// [`SqliteStore::create`](crate::SqliteStore::create) on a database that
    /// already holds a device.
    AlreadyInitialized,
    /// [`SqliteStore::open`](crate::SqliteStore::open) on a database that holds
    /// no device yet: create it first.
    NotInitialized,
    /// Any other SQLite failure (I/O, permissions, disk full).
    Sqlite(rusqlite::Error),
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongKey => f.write_str("the database key does not open this database"),
            Self::NewerSchema { found, supported } => write!(
                f,
                "database schema version {found} is newer than the newest this version reads ({supported})"
            ),
            Self::Corrupt { table, reason } => write!(f, "corrupt row in table {table}: {reason}"),
            Self::CorruptFile(e) => write!(f, "database file is corrupt or not a database: {e}"),
            Self::Busy => f.write_str("database is locked by another connection (busy timeout)"),
            Self::Conflict => f.write_str("store changed concurrently; nothing applied"),
            Self::AlreadyInitialized => f.write_str("database already holds a device"),
            Self::NotInitialized => f.write_str("database holds no device; create it first"),
            Self::Sqlite(e) => write!(f, "sqlite: {e}"),
        }
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) | Self::CorruptFile(e) => Some(e),
            Self::Corrupt { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Self::CorruptFile(e),
            _ => Self::Sqlite(e),
        }
    }
}

impl SqliteError {
    /// The [`StoreError`] a trait method reports for this error.
    pub fn to_store_error(&self) -> StoreError {
        match self {
            Self::Conflict => StoreError::Conflict,
            Self::Corrupt {
                reason: StorageError::Decode(e),
                ..
            } => StoreError::Corrupt(*e),
            Self::Corrupt { table, .. } => {
                StoreError::Corrupt(DecodeError::InvalidValue { field: table })
            }
            Self::CorruptFile(_) => StoreError::Corrupt(DecodeError::InvalidValue {
                field: "database file",
            }),
            _ => StoreError::Unavailable,
        }
    }
}
