//! What both stores read the same way: the log's row kinds, the statements
//! that read messages and entries, and rows turned into messages and
//! entries, for any sqlx database whose columns decode as `i64` and `String`.

use app::protocol::ChatMessage;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Entry, StoreError};
use crate::session;

/// Row kinds of the log (see the migrations).
pub const MESSAGE: i64 = 0;
pub const EDIT: i64 = 1;
pub const DELETION: i64 = 2;
pub const DELETED_MESSAGE: i64 = 3;

pub const SELECT_MESSAGE: &str =
    "SELECT id, author, room, username, body, sent_at, client_id, edited_at FROM messages";

/// A room's log: messages, and each change with the message it changed as
/// that message now is.
pub const SELECT_ENTRY: &str = "SELECT m.id, m.author, m.room, m.kind, m.target, m.username, \
     m.body, m.sent_at, m.client_id, m.edited_at, t.kind AS t_kind, t.username AS t_username, \
     t.body AS t_body, t.sent_at AS t_sent_at, t.client_id AS t_client_id, \
     t.edited_at AS t_edited_at \
     FROM messages m LEFT JOIN messages t ON t.id = m.target";

/// A row whose columns read as the log's types.
pub trait LogRow: Row
where
    for<'a> &'a str: ColumnIndex<Self>,
    for<'r> i64: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> String: Decode<'r, Self::Database> + Type<Self::Database>,
{
}

impl<R> LogRow for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
}

/// One row of [`SELECT_MESSAGE`].
pub fn message<R: LogRow>(row: &R) -> Result<ChatMessage, sqlx::Error>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let author: String = row.try_get("author")?;
    Ok(ChatMessage {
        id: row.try_get("id")?,
        room: row.try_get("room")?,
        username: row.try_get("username")?,
        author: session::author_tag(&author),
        message: row.try_get("body")?,
        sent_at: row.try_get("sent_at")?,
        client_id: row.try_get("client_id")?,
        edited_at: row.try_get("edited_at")?,
    })
}

pub fn messages<R: LogRow>(rows: &[R]) -> Result<Vec<ChatMessage>, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
}

/// Rows read newest first, as messages oldest first.
pub fn oldest_first<R: LogRow>(rows: &[R]) -> Result<Vec<ChatMessage>, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut page = messages(rows)?;
    page.reverse();
    Ok(page)
}

/// One row of [`SELECT_ENTRY`].
pub fn entry<R: LogRow>(row: &R) -> Result<Entry, sqlx::Error>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: i64 = row.try_get("kind")?;
    if kind == MESSAGE {
        return message(row).map(Entry::Message);
    }
    let id: i64 = row.try_get("id")?;
    let room: String = row.try_get("room")?;
    let target: Option<i64> = row.try_get("target")?;
    let target_kind: Option<i64> = row.try_get("t_kind")?;
    match (kind, target, target_kind) {
        (EDIT, Some(target), Some(MESSAGE)) => {
            // Only its author may edit a message: the edit's author is the
            // message's.
            let author: String = row.try_get("author")?;
            Ok(Entry::Edited {
                id,
                message: ChatMessage {
                    id: target,
                    room,
                    username: row.try_get("t_username")?,
                    author: session::author_tag(&author),
                    message: row.try_get("t_body")?,
                    sent_at: row.try_get("t_sent_at")?,
                    client_id: row.try_get("t_client_id")?,
                    edited_at: row.try_get("t_edited_at")?,
                },
            })
        }
        // An edit of a message deleted since tells of the deletion.
        (EDIT | DELETION, Some(target), _) => Ok(Entry::Deleted {
            id,
            room,
            message_id: target,
        }),
        _ => Err(sqlx::Error::Protocol(format!(
            "log row {id} has kind {kind} and target {target:?}"
        ))),
    }
}

pub fn entries<R: LogRow>(rows: &[R]) -> Result<Vec<Entry>, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
}

/// SQL `LIMIT` from a page size.
pub fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
