//! The schema, its version table and the migrations to the current version.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::SqliteError;

/// The schema version this crate writes and the newest it reads.
pub const SCHEMA_VERSION: i64 = 1;

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1` (version 0 is
/// an empty file). A new version appends one entry; old files are carried
/// forward one step at a time in one transaction.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema. Row names are HMACs of account and group ids
    // (see the crate docs); every value column holds a sealed blob.
    "CREATE TABLE schema_version (version INTEGER NOT NULL);
     INSERT INTO schema_version (version) VALUES (0);
     CREATE TABLE device (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         local BLOB NOT NULL,
         prekeys BLOB NOT NULL,
         prekeys_gen INTEGER NOT NULL
     );
     CREATE TABLE trust (
         account BLOB PRIMARY KEY,
         record BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE sessions (
         account BLOB NOT NULL,
         device INTEGER NOT NULL,
         gen INTEGER NOT NULL,
         record BLOB NOT NULL,
         PRIMARY KEY (account, device)
     ) WITHOUT ROWID;
     CREATE TABLE groups (
         grp BLOB PRIMARY KEY,
         gen INTEGER NOT NULL,
         state BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE app (
         name BLOB PRIMARY KEY,
         value BLOB NOT NULL
     ) WITHOUT ROWID;",
];

/// The schema version of a database (0 for an empty one).
pub(crate) fn version(conn: &Connection) -> Result<i64, SqliteError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    Ok(conn.query_row("SELECT version FROM schema_version", [], |row| row.get(0))?)
}

/// Brings the database to [`SCHEMA_VERSION`] in one transaction.
///
/// # Errors
/// [`SqliteError::NewerSchema`] for a database of a newer version; SQLite errors.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(SqliteError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(migration)?;
        tx.execute("UPDATE schema_version SET version = ?1", [from as i64 + 1])?;
    }
    tx.commit()?;
    Ok(())
}
