//! Persistence behind one small trait: sessions, rooms and their messages.
//! SQLite is the default, PostgreSQL the store several servers share; the
//! trait is what the rest of the server sees.

mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use app::protocol::{ChatMessage, ServerFrame};
use async_trait::async_trait;

use crate::{names::fold, search::Plan};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the server is stopping")]
    Stopping,
    #[error("no free name found: too many taken at once")]
    NoFreeName,
    #[error("the database did not answer in time")]
    TimedOut,
    #[error("unsupported database URL (expected sqlite://... or postgres://...): {0}")]
    UnsupportedUrl(String),
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie token, hex.
    pub id: String,
    pub username: String,
    pub base_name: String,
}

/// A stored session and when it was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub row: SessionRow,
    /// Milliseconds since the Unix epoch (see [`now_ms`]).
    pub last_seen: i64,
    /// A socket of the session has opened (see [`Store::mark_connected`]).
    pub connected: bool,
}

/// Now, as the store keeps session times: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message on its way into the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The sender's session id: `client_id`s are unique per sender.
    pub author: String,
    pub room: String,
    pub username: String,
    pub body: String,
    pub sent_at: String,
    pub client_id: Option<String>,
}

/// An edit or deletion on its way into the store.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The session asking: only the message's own author may change it.
    pub author: String,
    /// The room of the socket asking: a message elsewhere is not found.
    pub room: String,
    pub username: String,
    /// The message to change.
    pub target: i64,
    /// The new text, or `None` to delete.
    pub edit: Option<String>,
    /// When (RFC 3339, set by the writer like a message's `sent_at`).
    pub at: String,
    /// The sender's idempotency key, shared with its messages: a change
    /// sent again under it is not done twice.
    pub client_id: Option<String>,
}

/// One write of the message log, in the order they were accepted.
#[derive(Debug, Clone)]
pub enum Write {
    Post(NewMessage),
    Change(NewChange),
}

impl Write {
    /// Who asked for it, and under which `client_id`.
    pub fn sender(&self) -> (&str, Option<&str>) {
        match self {
            Self::Post(new) => (&new.author, new.client_id.as_deref()),
            Self::Change(change) => (&change.author, change.client_id.as_deref()),
        }
    }
}

/// One entry of a room's log, in id order: a message as it now is, or a
/// change to an earlier one. Serialised as servers tell each other of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Message(ChatMessage),
    /// The edit `id`; `message` is the message as that edit left it (read
    /// from the store: as it is now).
    Edited {
        id: i64,
        message: ChatMessage,
    },
    /// The deletion `id` of `message_id` (read from the store, an edit of a
    /// message deleted since reads as its deletion).
    Deleted {
        id: i64,
        room: String,
        message_id: i64,
    },
}

impl Entry {
    /// Its place in the id sequence.
    pub fn id(&self) -> i64 {
        match self {
            Self::Message(message) => message.id,
            Self::Edited { id, .. } | Self::Deleted { id, .. } => *id,
        }
    }

    pub fn room(&self) -> &str {
        match self {
            Self::Message(message) | Self::Edited { message, .. } => &message.room,
            Self::Deleted { room, .. } => room,
        }
    }

    /// The message a change applies to (`None` for a message).
    pub fn target(&self) -> Option<i64> {
        match self {
            Self::Message(_) => None,
            Self::Edited { message, .. } => Some(message.id),
            Self::Deleted { message_id, .. } => Some(*message_id),
        }
    }

    /// The frame that tells a client about it.
    pub fn frame(self) -> ServerFrame {
        match self {
            Self::Message(message) => ServerFrame::Message(message),
            Self::Edited { id, message } => ServerFrame::Edited { id, message },
            Self::Deleted {
                id,
                room,
                message_id,
            } => ServerFrame::Deleted {
                id,
                room,
                message_id,
            },
        }
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefused {
    /// No message with that id in that room (or it was deleted).
    NotFound,
    /// The message is someone else's.
    Forbidden,
    /// The sender used this `client_id` before for another write (a
    /// message, or a change of another kind or message).
    ClientIdTaken,
}

/// What became of one [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Posted(Appended),
    Changed(Entry),
    /// A change sent again: the one its `client_id` names was logged
    /// under this id before.
    ChangedBefore(i64),
    Refused(WriteRefused),
}

/// A claim of a name (see [`Store::claim_name`]).
#[derive(Debug, Clone)]
pub struct NameClaim<'a> {
    pub session: &'a str,
    pub preferred: Option<&'a str>,
    pub base: &'a str,
    /// Folded names to pass over besides those held in the database (held
    /// on the asking server by other sessions).
    pub taken: std::collections::HashSet<String>,
    pub token: i64,
    pub now: i64,
    pub until: i64,
}

/// A name a server holds for a session, as it renews it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub session: String,
    /// The name, folded.
    pub key: String,
    pub token: i64,
}

/// A claim gives up after this many names taken under its feet.
const CLAIM_ATTEMPTS: usize = 100;

impl NameClaim<'_> {
    /// The first name to try: `preferred`, then `base`, `base1`, ... not
    /// in `held` (folded names).
    fn first_free(&self, held: &std::collections::HashSet<String>) -> String {
        if let Some(preferred) = self.preferred {
            if !held.contains(&fold(preferred)) {
                return preferred.to_string();
            }
        }
        std::iter::once(self.base.to_string())
            .chain((1..).map(|n| format!("{}{n}", self.base)))
            .find(|name| !held.contains(&fold(name)))
            .unwrap_or_else(|| self.base.to_string())
    }

    /// For the query of the names held: the folded base, its length in
    /// characters, and the folded preferred name (empty without one).
    fn keys(&self) -> (String, i64, String) {
        let key = fold(self.base);
        let chars = i64::try_from(key.chars().count()).unwrap_or(i64::MAX);
        (key, chars, self.preferred.map(fold).unwrap_or_default())
    }
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The log's newest id before the batch (0 for an empty log).
    pub prev: i64,
    /// What became of each write, in order.
    pub written: Vec<Written>,
}

/// A session has read a room up to `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    pub session: String,
    pub room: String,
    pub id: i64,
}

/// What became of one [`NewMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (the earlier one, for a repeated `client_id`).
    pub message: ChatMessage,
    /// False when the `client_id` was already stored: ack again, do not broadcast.
    pub fresh: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new session, used now and not yet connected.
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError>;
    /// The session and when it was last used, however long ago that was.
    async fn find_session_record(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The session, however long ago it was last used.
    async fn find_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self.find_session_record(id).await?.map(|record| record.row))
    }
    /// Records that the session was used now.
    async fn touch_session(&self, id: &str) -> Result<(), StoreError>;
    /// Records that a socket of the session opened. The hub calls it for
    /// every socket that opens; a session that never gets here is purged
    /// once its name is no longer held (see [`Store::purge_sessions`]).
    /// Cheap when the session was already marked.
    async fn mark_connected(&self, id: &str) -> Result<(), StoreError>;
    /// Deletes the sessions last used before `idle_before`, and those created
    /// before `unclaimed_before` that never opened a socket (both in
    /// milliseconds since the Unix epoch); returns their ids.
    async fn purge_sessions(
        &self,
        idle_before: i64,
        unclaimed_before: i64,
    ) -> Result<Vec<String>, StoreError>;
    async fn rename_session(&self, id: &str, username: &str) -> Result<(), StoreError>;
    /// True when the session existed. Its name is let go as well.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;

    /// Holds a name for `session` until `until` (milliseconds since the
    /// Unix epoch) under `token`: `preferred` unless another session holds
    /// it, else the first free of `base`, `base1`, `base2`, ... (case does
    /// not count; a hold that lapsed by `now` is free). Two sessions never
    /// hold one name, whichever servers ask; the session's other holds go.
    /// Returns the name and the token its hold is under: the claim's, or
    /// that of the session's hold of it from before.
    async fn claim_name(&self, claim: &NameClaim<'_>) -> Result<(String, i64), StoreError> {
        let mut held = self.names_held(claim).await?;
        held.extend(claim.taken.iter().cloned());
        for _ in 0..CLAIM_ATTEMPTS {
            let name = claim.first_free(&held);
            let key = fold(&name);
            if let Some(token) = self.hold_name(claim, &key).await? {
                return Ok((name, token));
            }
            // Another session took it since the names were read.
            held.insert(key);
        }
        Err(StoreError::NoFreeName)
    }
    /// The folded names that sessions other than the claim's hold now
    /// among those it may want (`preferred`, `base` and its suffixes).
    async fn names_held(
        &self,
        claim: &NameClaim<'_>,
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Holds the folded name `key` for the claim's session, unless another
    /// session holds it now (`None`); the session's other holds go. The
    /// token of the hold: the claim's, or the session's earlier one.
    async fn hold_name(&self, claim: &NameClaim<'_>, key: &str) -> Result<Option<i64>, StoreError>;
    /// Renews these holds until `until`, taking back one that lapsed or
    /// went while its name is free and its session still exists, and
    /// forgets the holds that lapsed before `now`. Returns the sessions
    /// whose hold stands, each with the token it stands under (one missing
    /// has ended, or lost its name).
    async fn renew_names(
        &self,
        holds: &[Hold],
        now: i64,
        until: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// Lets go of the session's name, if it is still held under `token`.
    async fn release_name(&self, session: &str, token: i64) -> Result<(), StoreError>;

    /// Records first visits (`id`: what counts as read from then on; a
    /// room visited before keeps its mark), then moves read marks forward
    /// (never back), in one transaction.
    async fn record_reads(&self, visits: &[ReadMark], marks: &[ReadMark])
        -> Result<(), StoreError>;
    /// The rooms the session opened, with the messages of others after its
    /// read mark (at most `MAX_UNREAD`), and the `limit` rooms with the
    /// newest messages (unread 0 unless opened), by name, each once.
    async fn rooms(&self, session: &str, limit: usize) -> Result<Vec<(String, u64)>, StoreError>;

    /// Stores a batch in one transaction (one sync to disk), in order: new
    /// messages, and edits and deletions of messages (each with a new id in
    /// the same sequence; the message itself is changed in place).
    /// Batches of several servers are stored one at a time, so ids are
    /// committed in increasing order: once a batch is stored, every id up
    /// to its `prev` can be read.
    async fn append(&self, batch: &[Write]) -> Result<Stored, StoreError>;
    /// Every room's entries with ids above `after`, oldest first, at most
    /// `limit`: what another server stored, read in id order.
    async fn since(&self, after: i64, limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The newest `limit` entries of every room, oldest first.
    async fn newest(&self, limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The newest `limit` messages of a room as they now are, oldest first.
    async fn latest(&self, room: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// A room's entries with ids above `after`, oldest first, at most `limit`.
    async fn after(&self, room: &str, after: i64, limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// A room's newest `limit` messages with ids below `before`, as they now
    /// are, oldest first.
    async fn before(
        &self,
        room: &str,
        before: i64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// The newest `limit` messages that match every part of `plan` (in
    /// `room`, or in any), newest first.
    async fn search(
        &self,
        plan: &Plan,
        room: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Answers when the database does (for `/healthz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Each room's newest new message id in a batch's results, once per room.
fn newest_per_room(written: &[Written]) -> Vec<(&str, i64)> {
    let mut newest: Vec<(&str, i64)> = Vec::new();
    for written in written {
        let Written::Posted(Appended {
            message,
            fresh: true,
        }) = written
        else {
            continue;
        };
        match newest.iter_mut().find(|(room, _)| *room == message.room) {
            Some((_, id)) => *id = message.id,
            None => newest.push((&message.room, message.id)),
        }
    }
    newest
}

/// Opens the store the URL names (`sqlite:…` or `postgres://…`), creating
/// and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
