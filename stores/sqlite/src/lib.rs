//! A SQLite-backed [`ratchetbox::store::ProtocolStore`] (work in progress).
