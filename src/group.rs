//! Sender-key groups: one sending chain per member device, distributed to the
//! other members over 1:1 sessions, so a message to a group of any size is
//! encrypted and signed once (SPEC.md §10).
//!
//! - [`GroupSession::distribution`] / [`GroupSession::process_distribution`]:
//!   hand out and learn chains.
//! - [`GroupSession::encrypt`] / [`GroupSession::decrypt`]: every message is
//!   signed by the sender's group signing key (strictly verified), so members
//!   cannot forge each other; decryption is transactional.
//! - [`GroupSession::decrypt_batch`]: catch up a backlog with batch signature
//!   verification.
//! - [`GroupSession::remove_member`]: drop a member and rotate in one call.

mod session;
mod state;
mod wire;

pub use session::{GroupConfig, GroupSession, MAX_GROUP_MEMBER_DEVICES};
pub use wire::{MAX_GROUP_ID_LEN, group_message_overhead};
