//! How the servers of one chat tell each other what happened: what they
//! stored, who logged out, who is typing. One server alone needs nothing
//! ([`LocalBus`]); several share Redis ([`RedisBus`]).
//!
//! The bus is a notification, never the record: what one server misses
//! (Redis restarting, a full queue) it reads from the store.

mod local;
mod redis;

pub use local::LocalBus;
pub use redis::RedisBus;

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::{peers::Seat, store::Entry};

/// Another server's snapshot of who it lists: at which of its changes,
/// and the seats; `None` when it has expired (the server is gone).
pub type Snapshot = Option<(u64, BTreeSet<Seat>)>;

#[derive(Debug, thiserror::Error)]
#[error("Redis: {0}")]
pub struct BusError(#[from] ::redis::RedisError);

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Tells the other servers of a batch this one stored: the log's
    /// newest id before it, and its entries.
    fn stored(&self, prev: i64, entries: &[Entry]);
    /// Passes an already serialised frame to the other servers' sockets in
    /// `room`.
    fn room(&self, room: &str, frame: &str);
    /// Tells the other servers a session ended: they close its sockets.
    fn logged_out(&self, session: &str);
    /// Tells the other servers this one now lists `name` in `room` (its
    /// change `seq`).
    fn joined(&self, seq: u64, room: &str, name: &str);
    /// Tells the other servers this one no longer lists `name` in `rooms`.
    fn left(&self, seq: u64, name: &str, rooms: &[String]);
    /// Writes this server's snapshot (its change `seq` and its seats) and
    /// reads the other servers', by server.
    async fn exchange(&self, seq: u64, seats: &[Seat])
        -> Result<Vec<(String, Snapshot)>, BusError>;
    /// Whether the other servers can be reached now; `None` when there are
    /// none to reach.
    fn reachable(&self) -> Option<bool>;
}

/// What another server said, for this one to act on (with the name of
/// the server that said it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Heard {
    /// A batch: the log's newest id before it, its last id, and its
    /// entries (none when they were too long to carry: read from the store).
    Stored {
        prev: i64,
        last: i64,
        entries: Vec<Entry>,
    },
    Room {
        room: String,
        frame: String,
    },
    LoggedOut {
        session: String,
    },
    Joined {
        seq: u64,
        room: String,
        name: String,
    },
    Left {
        seq: u64,
        name: String,
        rooms: Vec<String>,
    },
}
