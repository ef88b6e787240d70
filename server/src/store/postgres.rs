//! The store for several servers: PostgreSQL, shared by every node.
//!
//! The same log as SQLite's (see `rows`), with PostgreSQL's own search: a
//! trigram index over each message folded to lower case without accents.

use std::str::FromStr;

use app::protocol::{ChatMessage, MAX_UNREAD};
use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Row,
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

/// Connections per node: the writer, the readers of history and sessions.
const POOL_SIZE: u32 = 8;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Opens `url` (`postgres://…`; a `search_path` in its `options` puts the
    /// tables in a schema of their own) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await?;
        create_extensions(&pool).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// The extensions search needs, in `public`, where every schema finds them.
/// Two servers starting at once may both try: the loser finds it made.
async fn create_extensions(pool: &PgPool) -> Result<(), StoreError> {
    for extension in ["pg_trgm", "unaccent"] {
        let create = format!("CREATE EXTENSION IF NOT EXISTS {extension} WITH SCHEMA public");
        if let Err(error) = sqlx::query(&create).execute(pool).await {
            let made_meanwhile = sqlx::query("SELECT 1 FROM pg_extension WHERE extname = $1")
                .bind(extension)
                .fetch_optional(pool)
                .await?
                .is_some();
            if !made_meanwhile {
                return Err(error.into());
            }
        }
    }
    Ok(())
}

/// `term` as a `LIKE` pattern's literal part (`\` escapes).
fn like_literal(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 4);
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `term` as a literal inside a regular expression.
fn regex_literal(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 4);
    for c in term.chars() {
        if c.is_ascii_punctuation() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, username, base_name, created_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5)",
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
            "SELECT id, username, base_name, last_seen, connected FROM sessions WHERE id = $1",
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
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id = $2")
            .bind(super::now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_connected(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET connected = TRUE WHERE id = $1 AND NOT connected")
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
        // width, so text order (byte order, "C") is time order.
        let created_before = chrono::DateTime::from_timestamp_millis(unclaimed_before)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows = sqlx::query(
            "DELETE FROM sessions \
             WHERE last_seen < $1 OR (NOT connected AND created_at COLLATE \"C\" < $2) \
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
        sqlx::query("UPDATE sessions SET username = $1 WHERE id = $2")
            .bind(username)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        // The session first, in one transaction with its name: a claim
        // for it afterwards finds no session to renew it for.
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM held_names WHERE session_id = $1")
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
            "SELECT name_key FROM held_names WHERE held_until > $1 AND session_id <> $2 \
             AND (name_key = $3 OR substr(name_key, 1, $4::int) = $5)",
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
        let mut tx = self.pool.begin().await?;
        let token: Option<i64> = sqlx::query_scalar(
            "INSERT INTO held_names (name_key, session_id, token, held_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name_key) DO UPDATE SET \
             token = CASE WHEN held_names.session_id = excluded.session_id \
               THEN held_names.token ELSE excluded.token END, \
             session_id = excluded.session_id, held_until = excluded.held_until \
             WHERE held_names.held_until <= $5 OR held_names.session_id = excluded.session_id \
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
            sqlx::query("DELETE FROM held_names WHERE session_id = $1 AND name_key <> $2")
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
        let keys: Vec<&str> = holds.iter().map(|hold| hold.key.as_str()).collect();
        let sessions: Vec<&str> = holds.iter().map(|hold| hold.session.as_str()).collect();
        let tokens: Vec<i64> = holds.iter().map(|hold| hold.token).collect();
        let renewed = sqlx::query_as(
            "INSERT INTO held_names (name_key, session_id, token, held_until) \
             SELECT u.k, u.s, u.t, $1 FROM unnest($2::text[], $3::text[], $4::bigint[]) \
               AS u(k, s, t) \
             WHERE EXISTS (SELECT 1 FROM sessions WHERE id = u.s FOR SHARE) \
             ON CONFLICT (name_key) DO UPDATE SET held_until = excluded.held_until, \
               token = CASE WHEN held_names.session_id = excluded.session_id \
                 THEN held_names.token ELSE excluded.token END, \
               session_id = excluded.session_id \
             WHERE held_names.session_id = excluded.session_id OR held_names.held_until <= $5 \
             RETURNING session_id, token",
        )
        .bind(until)
        .bind(&keys)
        .bind(&sessions)
        .bind(&tokens)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        sqlx::query("DELETE FROM held_names WHERE held_until < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(renewed)
    }

    async fn release_name(&self, session: &str, token: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM held_names WHERE session_id = $1 AND token = $2")
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
                 SELECT id, $1, $2 FROM sessions WHERE id = $3 \
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
                "UPDATE visits SET last_read = GREATEST(last_read, $1) \
                 WHERE session_id = $2 AND room = $3",
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
        // As SQLite's: a room with nothing after the mark costs no count; a
        // count stops at MAX_UNREAD messages of others. Names in byte order.
        let rows = sqlx::query(
            "SELECT name, unread FROM (\
             SELECT v.room AS name, \
               CASE WHEN COALESCE(r.last_id, 0) <= v.last_read THEN 0 ELSE \
                 (SELECT COUNT(*) FROM (SELECT 1 FROM messages m \
                    WHERE m.room = v.room AND m.id > v.last_read AND m.kind = 0 \
                      AND m.author <> v.session_id \
                    LIMIT $1) AS counted) END AS unread \
             FROM visits v LEFT JOIN rooms r ON r.name = v.room WHERE v.session_id = $2 \
             UNION ALL \
             SELECT name, 0 FROM (SELECT name FROM rooms ORDER BY last_id DESC LIMIT $3) AS newest \
             WHERE name NOT IN (SELECT room FROM visits WHERE session_id = $4)\
             ) AS listed ORDER BY name COLLATE \"C\"",
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
        let mut tx = self.pool.begin().await?;
        // One batch at a time across every server: ids are taken under the
        // lock, so they are committed in increasing order and a reader
        // never sees an id before a smaller one still to come.
        // A server stuck while holding it makes the others fail (and
        // retry, then tell their senders) rather than wait for ever.
        // and one that stops talking mid-way is cut off by PostgreSQL.
        sqlx::query(
            "SELECT set_config('lock_timeout', '5s', true), \
             set_config('statement_timeout', '10s', true), \
             set_config('idle_in_transaction_session_timeout', '10s', true)",
        )
        .execute(&mut *tx)
        .await?;
        // (Keyed by the schema: chats in other schemas do not wait.)
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('chat append ' || current_schema()))")
            .execute(&mut *tx)
            .await?;
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
                "INSERT INTO rooms (name, last_id) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET last_id = GREATEST(rooms.last_id, excluded.last_id)",
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
            "{SELECT_ENTRY} WHERE m.id > $1 \
             AND m.kind IN ({MESSAGE}, {EDIT}, {DELETION}) ORDER BY m.id LIMIT $2"
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
             ORDER BY m.id DESC LIMIT $1"
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
            "{SELECT_ENTRY} WHERE m.room = $1 AND m.id > $2 \
             AND m.kind IN ({MESSAGE}, {EDIT}, {DELETION}) ORDER BY m.id LIMIT $3"
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
            "{SELECT_MESSAGE} WHERE room = $1 AND id < $2 AND kind = {MESSAGE} \
             ORDER BY id DESC LIMIT $3"
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
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        // Only the shape of the statement varies; every value is bound, as
        // an escaped pattern. Long terms anywhere (the trigram index), short
        // ones at the start of a word; both folded like the index.
        let mut sql = format!("{SELECT_MESSAGE} WHERE kind = {MESSAGE}");
        let mut values: Vec<String> = Vec::new();
        for term in &plan.anywhere {
            values.push(format!("%{}%", like_literal(term)));
            sql.push_str(&format!(
                " AND chat_fold(body) LIKE chat_fold(${}) ESCAPE '\\'",
                values.len()
            ));
        }
        for term in &plan.word_starts {
            values.push(format!("(^|[^[:alnum:]]){}", regex_literal(term)));
            sql.push_str(&format!(
                " AND chat_fold(body) ~ chat_fold(${})",
                values.len()
            ));
        }
        if let Some(room) = room {
            values.push(room.to_string());
            sql.push_str(&format!(" AND room = ${}", values.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit(n)));
        let mut query = sqlx::query(&sql);
        for value in values {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        messages(&rows)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Stores one new message, or finds the one its `client_id` already stored.
async fn post(tx: &mut Tx, new: &NewMessage) -> Result<Written, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO messages (author, room, username, body, sent_at, client_id) \
         VALUES ($1, $2, $3, $4, $5, $6) \
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
        "{SELECT_MESSAGE} WHERE author = $1 AND client_id = $2 \
         AND kind IN ({MESSAGE}, {DELETED_MESSAGE})"
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
/// `client_id` is new (the rules of the SQLite store's own).
async fn change_message(tx: &mut Tx, change: &NewChange) -> Result<Written, StoreError> {
    if change.client_id.is_some() {
        let before = sqlx::query(
            "SELECT id, kind, target FROM messages WHERE author = $1 AND client_id = $2",
        )
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
    // Locked until the change commits: two nodes changing one message take
    // turns.
    let found = sqlx::query("SELECT author, room, kind FROM messages WHERE id = $1 FOR UPDATE")
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
                "UPDATE messages SET body = $1, edited_at = $2 WHERE id = $3 \
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
            sqlx::query("UPDATE messages SET body = '', kind = $1 WHERE id = $2")
                .bind(DELETED_MESSAGE)
                .bind(change.target)
                .execute(&mut **tx)
                .await?;
            None
        }
    };
    let logged = sqlx::query(
        "INSERT INTO messages (author, room, username, body, sent_at, kind, target, client_id) \
         VALUES ($1, $2, $3, '', $4, $5, $6, $7) RETURNING id",
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
