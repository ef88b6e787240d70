//! Persistence behind one small trait: sessions, rooms and their messages.
//! SQLite is the default; the trait is what the rest of the server sees.

mod sqlite;

use std::sync::Arc;

use app::protocol::ChatMessage;
use async_trait::async_trait;

use crate::search::Plan;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the server is stopping")]
    Stopping,
    #[error("unsupported database URL (expected sqlite://...): {0}")]
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
    /// True when the session existed.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;

    /// Records first visits (`id`: what counts as read from then on; a
    /// room visited before keeps its mark), then moves read marks forward
    /// (never back), in one transaction.
    async fn record_reads(&self, visits: &[ReadMark], marks: &[ReadMark])
        -> Result<(), StoreError>;
    /// The rooms the session opened, with the messages of others after its
    /// read mark (at most `MAX_UNREAD`), and the `limit` rooms with the
    /// newest messages (unread 0 unless opened), by name, each once.
    async fn rooms(&self, session: &str, limit: usize) -> Result<Vec<(String, u64)>, StoreError>;

    /// Stores a batch in one transaction (one sync to disk), in order.
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;
    /// The newest `limit` messages of every room, oldest first.
    async fn newest(&self, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// The newest `limit` messages of a room, oldest first.
    async fn latest(&self, room: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// A room's messages with ids above `after`, oldest first, at most `limit`.
    async fn after(
        &self,
        room: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;
    /// A room's newest `limit` messages with ids below `before`, oldest first.
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

/// Opens the store the URL names, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
