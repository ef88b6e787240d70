//! Persistence behind one small trait: sessions and the room's messages.
//! SQLite is the default; the trait is what the rest of the server sees.

mod sqlite;

use std::sync::Arc;

use app::protocol::ChatMessage;
use async_trait::async_trait;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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

/// A message on its way into the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The sender's session id: `client_id`s are unique per sender.
    pub author: String,
    pub username: String,
    pub body: String,
    pub sent_at: String,
    pub client_id: Option<String>,
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
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError>;
    async fn find_session(&self, id: &str) -> Result<Option<SessionRow>, StoreError>;
    async fn rename_session(&self, id: &str, username: &str) -> Result<(), StoreError>;
    /// True when the session existed.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;

    /// Stores a batch in one transaction (one sync to disk), in order.
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;
    /// The newest `limit` messages, oldest first.
    async fn latest(&self, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// Messages with ids above `after`, oldest first, at most `limit`.
    async fn after(&self, after: i64, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// The newest `limit` messages with ids below `before`, oldest first.
    async fn before(&self, before: i64, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;

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
