//! The default store: one SQLite file in WAL mode.

use std::{path::Path, str::FromStr, time::Duration};

use app::protocol::{ChatMessage, MAX_UNREAD};
use async_trait::async_trait;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Row, SqlitePool,
};

use super::{
    rows::{
        entries, limit, message, messages, oldest_first, DELETED_MESSAGE, DELETION, EDIT, MESSAGE,
        SELECT_ENTRY, SELECT_MESSAGE,
    },
    Appended, Entry, Hold, NameClaim, NewChange, NewMessage, ReadMark, SessionRecord, SessionRow,
    Store, StoreError, Stored, Write, WriteRefused, Written,
};
use crate::{search::Plan, session};

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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
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
        // The session first, in one transaction with its name: a claim
        // for it afterwards finds no session to renew it for.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM held_names WHERE session_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn names_held(
        &self,
        claim: &NameClaim<'_>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let (base, chars, preferred) = claim.keys();
        let rows = sqlx::query(
            "SELECT name_key FROM held_names WHERE held_until > ? AND session_id <> ? \
             AND (name_key = ? OR substr(name_key, 1, ?) = ?)",
        )
        .bind(claim.now)
        .bind(claim.session)
        .bind(&preferred)
        .bind(chars)
        .bind(&base)
        .fetch_all(&self.pool)
        .await?;
        let held = rows
            .iter()
            .map(|row| row.try_get("name_key"))
            .collect::<Result<std::collections::HashSet<String>, _>>()?;
        Ok(held)
    }

    async fn hold_name(&self, claim: &NameClaim<'_>, key: &str) -> Result<Option<i64>, StoreError> {
        // One transaction: two claims for one session never leave it with
        // no hold, or two.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let token: Option<i64> = sqlx::query_scalar(
            "INSERT INTO held_names (name_key, session_id, token, held_until) \
             VALUES (?, ?, ?, ?) ON CONFLICT (name_key) DO UPDATE SET \
             token = CASE WHEN held_names.session_id = excluded.session_id \
               THEN held_names.token ELSE excluded.token END, \
             session_id = excluded.session_id, held_until = excluded.held_until \
             WHERE held_names.held_until <= ? OR held_names.session_id = excluded.session_id \
             RETURNING token",
        )
        .bind(key)
        .bind(claim.session)
        .bind(claim.token)
        .bind(claim.until)
        .bind(claim.now)
        .fetch_optional(&mut *tx)
        .await?;
        if token.is_some() {
            sqlx::query("DELETE FROM held_names WHERE session_id = ? AND name_key <> ?")
                .bind(claim.session)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(token)
    }

    async fn renew_names(
        &self,
        holds: &[Hold],
        now: i64,
        until: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let list = serde_json::to_string(holds).unwrap_or_else(|_| "[]".into());
        let renewed = sqlx::query_as(
            "INSERT INTO held_names (name_key, session_id, token, held_until) \
             SELECT json_extract(value, '$.key'), json_extract(value, '$.session'), \
               json_extract(value, '$.token'), ? FROM json_each(?) \
             WHERE EXISTS (SELECT 1 FROM sessions WHERE id = json_extract(value, '$.session')) \
             ON CONFLICT (name_key) DO UPDATE SET held_until = excluded.held_until, \
               token = CASE WHEN held_names.session_id = excluded.session_id \
                 THEN held_names.token ELSE excluded.token END, \
               session_id = excluded.session_id \
             WHERE held_names.session_id = excluded.session_id OR held_names.held_until <= ? \
             RETURNING session_id, token",
        )
        .bind(until)
        .bind(list)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        sqlx::query("DELETE FROM held_names WHERE held_until < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(renewed)
    }

    async fn release_name(&self, session: &str, token: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM held_names WHERE session_id = ? AND token = ?")
            .bind(session)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
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
                    WHERE m.room = v.room AND m.id > v.last_read AND m.kind = 0 \
                      AND m.author != v.session_id \
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

    async fn append(&self, batch: &[Write]) -> Result<Stored, StoreError> {
        // A write from the start: a transaction that begins with a read
        // and then writes fails at once if another wrote meanwhile,
        // instead of waiting for the lock.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let prev: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages")
            .fetch_one(&mut *tx)
            .await?;
        let mut out = Vec::with_capacity(batch.len());
        for write in batch {
            let written = match write {
                Write::Post(new) => post(&mut tx, new).await?,
                Write::Change(change) => change_message(&mut tx, change).await?,
            };
            out.push(written);
        }
        for (room, id) in super::newest_per_room(&out) {
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
        Ok(Stored { prev, written: out })
    }

    async fn since(&self, after: i64, n: usize) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_ENTRY} WHERE m.id > ? \
             AND m.kind IN ({MESSAGE}, {EDIT}, {DELETION}) ORDER BY m.id LIMIT ?"
        ))
        .bind(after)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        entries(&rows)
    }

    async fn newest(&self, n: usize) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_ENTRY} WHERE m.kind IN ({MESSAGE}, {EDIT}, {DELETION}) \
             ORDER BY m.id DESC LIMIT ?"
        ))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        let mut newest = entries(&rows)?;
        newest.reverse();
        Ok(newest)
    }

    async fn latest(&self, room: &str, n: usize) -> Result<Vec<ChatMessage>, StoreError> {
        self.before(room, i64::MAX, n).await
    }

    async fn after(&self, room: &str, after: i64, n: usize) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_ENTRY} WHERE m.room = ? AND m.id > ? \
             AND m.kind IN ({MESSAGE}, {EDIT}, {DELETION}) ORDER BY m.id LIMIT ?"
        ))
        .bind(room)
        .bind(after)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await?;
        entries(&rows)
    }

    async fn before(
        &self,
        room: &str,
        before: i64,
        n: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_MESSAGE} WHERE room = ? AND id < ? AND kind = {MESSAGE} \
             ORDER BY id DESC LIMIT ?"
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
        let (first, first_query, words) = match (plan.trigram_query(), plan.word_query()) {
            (Some(trigrams), words) => ("message_trigrams", trigrams, words),
            (None, Some(words)) => ("message_words", words, None),
            (None, None) => return Ok(Vec::new()),
        };
        let mut sql = format!(
            "SELECT m.id, m.author, m.room, m.username, m.body, m.sent_at, m.client_id, m.edited_at \
             FROM {first} f JOIN messages m ON m.id = f.rowid \
             WHERE {first} MATCH ? AND m.kind = {MESSAGE}"
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
        let mut query = sqlx::query(&sql).bind(first_query);
        for value in [words.as_deref(), room].into_iter().flatten() {
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

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Stores one new message, or finds the one its `client_id` already stored.
async fn post(tx: &mut Tx, new: &NewMessage) -> Result<Written, StoreError> {
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
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = inserted {
        return Ok(Written::Posted(Appended {
            message: ChatMessage {
                id: row.try_get("id")?,
                room: new.room.clone(),
                author: session::author_tag(&new.author),
                username: new.username.clone(),
                message: new.body.clone(),
                sent_at: new.sent_at.clone(),
                client_id: new.client_id.clone(),
                edited_at: None,
            },
            fresh: true,
        }));
    }
    // Stored before (and perhaps edited or deleted since): acked again
    // under its id, not stored twice. A change's key is not a message's.
    let row = sqlx::query(&format!(
        "{SELECT_MESSAGE} WHERE author = ? AND client_id = ? AND kind IN ({MESSAGE}, {DELETED_MESSAGE})"
    ))
    .bind(&new.author)
    .bind(&new.client_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(row) => Written::Posted(Appended {
            message: message(&row)?,
            fresh: false,
        }),
        None => Written::Refused(WriteRefused::ClientIdTaken),
    })
}

/// Edits or deletes one message in place and logs the change under a new
/// id, if the message is the author's and in the room and the change's
/// `client_id` is new.
async fn change_message(tx: &mut Tx, change: &NewChange) -> Result<Written, StoreError> {
    if change.client_id.is_some() {
        // Sent again (after a drop, say): done before, and perhaps changed
        // by a later edit since, which must not be undone.
        let before =
            sqlx::query("SELECT id, kind, target FROM messages WHERE author = ? AND client_id = ?")
                .bind(&change.author)
                .bind(&change.client_id)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(row) = before {
            let kind: i64 = row.try_get("kind")?;
            let target: Option<i64> = row.try_get("target")?;
            let same_kind = if change.edit.is_some() {
                EDIT
            } else {
                DELETION
            };
            return Ok(if kind == same_kind && target == Some(change.target) {
                Written::ChangedBefore(row.try_get("id")?)
            } else {
                Written::Refused(WriteRefused::ClientIdTaken)
            });
        }
    }
    let found = sqlx::query("SELECT author, room, kind FROM messages WHERE id = ?")
        .bind(change.target)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(found) = found else {
        return Ok(Written::Refused(WriteRefused::NotFound));
    };
    let kind: i64 = found.try_get("kind")?;
    let room: String = found.try_get("room")?;
    if kind != MESSAGE || room != change.room {
        return Ok(Written::Refused(WriteRefused::NotFound));
    }
    let author: String = found.try_get("author")?;
    if author != change.author {
        return Ok(Written::Refused(WriteRefused::Forbidden));
    }
    let edited = match &change.edit {
        Some(body) => {
            let row = sqlx::query(
                "UPDATE messages SET body = ?, edited_at = ? WHERE id = ? \
                 RETURNING id, author, room, username, body, sent_at, client_id, edited_at",
            )
            .bind(body)
            .bind(&change.at)
            .bind(change.target)
            .fetch_one(&mut **tx)
            .await?;
            Some(message(&row)?)
        }
        None => {
            sqlx::query("UPDATE messages SET body = '', kind = ? WHERE id = ?")
                .bind(DELETED_MESSAGE)
                .bind(change.target)
                .execute(&mut **tx)
                .await?;
            None
        }
    };
    let logged = sqlx::query(
        "INSERT INTO messages (author, room, username, body, sent_at, kind, target, client_id) \
         VALUES (?, ?, ?, '', ?, ?, ?, ?) RETURNING id",
    )
    .bind(&change.author)
    .bind(&change.room)
    .bind(&change.username)
    .bind(&change.at)
    .bind(if edited.is_some() { EDIT } else { DELETION })
    .bind(change.target)
    .bind(&change.client_id)
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = logged.try_get("id")?;
    Ok(Written::Changed(match edited {
        Some(message) => Entry::Edited { id, message },
        None => Entry::Deleted {
            id,
            room: change.room.clone(),
            message_id: change.target,
        },
    }))
}
