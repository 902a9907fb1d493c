#![doc = include_str!("../README.md")]

mod cache;
mod error;
mod keys;
mod schema;
mod stager;
mod store;

pub use cache::{CacheStats, MAX_CACHED_RECORDS};
pub use error::SqliteError;
pub use keys::DatabaseKey;
pub use schema::SCHEMA_VERSION;
pub use stager::Stager;
pub use store::{Durability, Options, SqliteStore};
