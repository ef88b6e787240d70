//! The default store: one SQLite file in WAL mode.

use std::{path::Path, str::FromStr, time::Duration};

use app::protocol::{ChatMessage, MAX_UNREAD};
use async_trait::async_trait;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqlitePool,
};

use super::{Appended, NewMessage, ReadMark, SessionRecord, SessionRow, Store, StoreError};
use crate::search::Plan;

/// Readers (history, sessions) run side by side; SQLite still writes one at a time.
const POOL_SIZE: u32 = 4;
/// How long a writer waits for the file lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged message survives a power cut, not only a
            // crash. Batching keeps this to one sync per batch.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        if let Some(parent) = Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }
}

const SELECT_MESSAGE: &str = "SELECT id, room, username, body, sent_at, client_id FROM messages";

fn message(row: &SqliteRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        id: row.try_get("id")?,
        room: row.try_get("room")?,
        username: row.try_get("username")?,
        message: row.try_get("body")?,
        sent_at: row.try_get("sent_at")?,
        client_id: row.try_get("client_id")?,
    })
}

fn messages(rows: &[SqliteRow]) -> Result<Vec<ChatMessage>, StoreError> {
    Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
}

/// Rows read newest first, as messages oldest first.
fn oldest_first(rows: &[SqliteRow]) -> Result<Vec<ChatMessage>, StoreError> {
    let mut page = messages(rows)?;
    page.reverse();
    Ok(page)
}

/// SQL `LIMIT` from a page size.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, username, base_name, created_at, last_seen) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.id)
        .bind(&session.username)
        .bind(&session.base_name)
        .bind(crate::clock::now_rfc3339())
        .bind(super::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_session_record(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, base_name, last_seen, connected FROM sessions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|row| -> Result<SessionRecord, sqlx::Error> {
                Ok(SessionRecord {
                    row: SessionRow {
                        id: row.try_get("id")?,
                        username: row.try_get("username")?,
                        base_name: row.try_get("base_name")?,
                    },
                    last_seen: row.try_get("last_seen")?,
                    connected: row.try_get("connected")?,
                })
            })
            .transpose()?)
    }

    async fn touch_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE id = ?")
            .bind(super::now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_connected(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET connected = 1 WHERE id = ? AND connected = 0")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_sessions(
        &self,
        idle_before: i64,
        unclaimed_before: i64,
    ) -> Result<Vec<String>, StoreError> {
        // `created_at` is RFC 3339 UTC with milliseconds, always the same
        // width, so text order is time order.
        let created_before = chrono::DateTime::from_timestamp_millis(unclaimed_before)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows = sqlx::query(
            "DELETE FROM sessions WHERE last_seen < ? OR (connected = 0 AND created_at < ?) \
             RETURNING id",
        )
        .bind(idle_before)
        .bind(created_before)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    async fn rename_session(&self, id: &str, username: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET username = ? WHERE id = ?")
            .bind(username)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_reads(
        &self,
        visits: &[ReadMark],
        marks: &[ReadMark],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for visit in visits {
            // A session that ended meanwhile has no row to visit from.
            sqlx::query(
                "INSERT INTO visits (session_id, room, last_read) \
                 SELECT id, ?, ? FROM sessions WHERE id = ? \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&visit.room)
            .bind(visit.id)
            .bind(&visit.session)
            .execute(&mut *tx)
            .await?;
        }
        for mark in marks {
            sqlx::query(
                "UPDATE visits SET last_read = MAX(last_read, ?) WHERE session_id = ? AND room = ?",
            )
            .bind(mark.id)
            .bind(&mark.session)
            .bind(&mark.room)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rooms(&self, session: &str, n: usize) -> Result<Vec<(String, u64)>, StoreError> {
        // A room with nothing after the mark costs no count; a count stops
        // at MAX_UNREAD messages of others (one's own are passed over).
        let rows = sqlx::query(
            "SELECT v.room AS name, \
               CASE WHEN IFNULL(r.last_id, 0) <= v.last_read THEN 0 ELSE \
                 (SELECT COUNT(*) FROM (SELECT 1 FROM messages m \
                    WHERE m.room = v.room AND m.id > v.last_read AND m.author != v.session_id \
                    LIMIT ?)) END AS unread \
             FROM visits v LEFT JOIN rooms r ON r.name = v.room WHERE v.session_id = ? \
             UNION ALL \
             SELECT name, 0 FROM (SELECT name FROM rooms ORDER BY last_id DESC LIMIT ?) \
             WHERE name NOT IN (SELECT room FROM visits WHERE session_id = ?) \
             ORDER BY name",
        )
        .bind(limit(MAX_UNREAD as usize))
        .bind(session)
        .bind(limit(n))
        .bind(session)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let unread: i64 = row.try_get("unread")?;
                Ok((row.try_get("name")?, unread.unsigned_abs()))
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for new in batch {
            let inserted = sqlx::query(
                "INSERT INTO messages (author, room, username, body, sent_at, client_id) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (author, client_id) DO NOTHING RETURNING id",
            )
            .bind(&new.author)
            .bind(&new.room)
            .bind(&new.username)
            .bind(&new.body)
            .bind(&new.sent_at)
            .bind(&new.client_id)
            .fetch_optional(&mut *tx)
            .await?;
            let appended = match inserted {
                Some(row) => Appended {
                    message: ChatMessage {
                        id: row.try_get("id")?,
                        room: new.room.clone(),
                        username: new.username.clone(),
                        message: new.body.clone(),
                        sent_at: new.sent_at.clone(),
                        client_id: new.client_id.clone(),
                    },
                    fresh: true,
                },
                None => {
                    let row = sqlx::query(&format!(
                        "{SELECT_MESSAGE} WHERE author = ? AND client_id = ?"
                    ))
                    .bind(&new.author)
                    .bind(&new.client_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    Appended {
                        message: message(&row)?,
                        fresh: false,
                    }
                }
            };
            out.push(appended);
        }
        // Each room's newest id, once per room of the batch.
        let mut newest: Vec<(&str, i64)> = Vec::new();
        for appended in out.iter().filter(|a| a.fresh) {
            let message = &appended.message;
            match newest.iter_mut().find(|(room, _)| *room == message.room) {
                Some((_, id)) => *id = message.id,
                None => newest.push((&message.room, message.id)),
            }
        }
        for (room, id) in newest {
            sqlx::query(
                "INSERT INTO rooms (name, last_id) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
            )
            .bind(room)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn newest(&self, n: usize) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_MESSAGE} ORDER BY id DESC LIMIT ?"))
            .bind(limit(n))
            .fetch_all(&self.pool)
            .await?;
        oldest_first(&rows)
    }

    async fn latest(&self, room: &str, n: usize) -> Result<Vec<ChatMessage>, StoreError> {
        self.before(room, i64::MAX, n).await
    }

    async fn after(
        &self,
        room: &str,
        after: i64,
        n: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_MESSAGE} WHERE room = ? AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(room)
        .bind(after)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        messages(&rows)
    }

    async fn before(
        &self,
        room: &str,
        before: i64,
        n: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_MESSAGE} WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(room)
        .bind(before)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        oldest_first(&rows)
    }

    async fn search(
        &self,
        plan: &Plan,
        room: Option<&str>,
        n: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        // Only the shape of the statement varies; every value is bound. The
        // first index drives the query, newest rowid first, so a common
        // term stops at `n` matches instead of collecting all of them.
        let (first, first_query, words) = match (&plan.trigrams, &plan.words) {
            (Some(trigrams), words) => ("message_trigrams", trigrams, words.as_deref()),
            (None, Some(words)) => ("message_words", words, None),
            (None, None) => return Ok(Vec::new()),
        };
        let mut sql = format!(
            "SELECT m.id, m.room, m.username, m.body, m.sent_at, m.client_id \
             FROM {first} f JOIN messages m ON m.id = f.rowid WHERE {first} MATCH ?"
        );
        if words.is_some() {
            sql.push_str(
                " AND m.id IN (SELECT rowid FROM message_words WHERE message_words MATCH ?)",
            );
        }
        if room.is_some() {
            sql.push_str(" AND m.room = ?");
        }
        sql.push_str(" ORDER BY f.rowid DESC LIMIT ?");
        let mut query = sqlx::query(&sql).bind(first_query.as_str());
        for value in [words, room].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.bind(limit(n)).fetch_all(&self.pool).await?;
        messages(&rows)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
