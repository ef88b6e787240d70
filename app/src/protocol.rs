//! The wire protocol: every JSON body and WebSocket frame that crosses between
//! the server and a client.
//!
//! Serde types only. The server and the WASM client both import this module,
//! so changing a frame means changing one enum here and letting the compiler
//! point at every place that must follow.

use serde::{Deserialize, Serialize};

/// Longest message, in Unicode scalar values (Rust `chars()`, JS `[...s]`).
pub const MAX_MESSAGE_CHARS: usize = 2_000;
/// Longest name a user may type, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest `client_id` a client may attach to a message.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Messages in a `welcome` that is not a resume, and the default page size.
pub const HISTORY_PAGE: usize = 50;
/// Largest page `/api/messages` hands out.
pub const MAX_HISTORY_PAGE: usize = 100;
/// Most messages replayed on a resume before `complete` turns false.
pub const MAX_RESUME: usize = 1_000;

/// A typing client sends `typing` at most this often while the user types.
pub const TYPING_EVERY_MS: u32 = 2_000;
/// "NAME is typing…" goes away this long after the last `typing` frame.
pub const TYPING_SHOWN_MS: u32 = 5_000;
/// Longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Most results one search answers with.
pub const SEARCH_RESULTS: usize = 50;
/// Unread counts stop here: the room list says "999+" beyond it.
pub const MAX_UNREAD: u64 = 1_000;

/// The close reason on every socket of a session that logged out: the client
/// goes back to the login page instead of reconnecting.
pub const SIGNED_OUT_REASON: &str = "logged out";

/// One stored chat message, as every client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Assigned by the store; increasing across rooms; the order of a room.
    pub id: i64,
    /// The room it was sent in (see [`crate::room`]).
    pub room: String,
    /// The sender's name, decided by the server from the session.
    pub username: String,
    /// An opaque tag of the sender's login, the same on all its messages;
    /// the `welcome` says which is the reader's own. Names are freed at
    /// logout and taken again, so this, not the name, says whose it is.
    #[serde(default)]
    pub author: String,
    /// The text, exactly as sent (rendered as text, never as HTML).
    pub message: String,
    /// RFC 3339 UTC with milliseconds, set by the server.
    pub sent_at: String,
    /// The sender's idempotency key, when the sender gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When the text was last edited (RFC 3339 UTC, like `sent_at`); absent
    /// for a message never edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
}

/// A frame the server sends down a WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Always the first frame of a connection.
    Welcome {
        /// The room this socket is in.
        room: String,
        username: String,
        /// The reader's own author tag (see [`ChatMessage::author`]).
        #[serde(default)]
        author: String,
        online_users: Vec<String>,
        history: Vec<ChatMessage>,
        /// False when a resume missed more than [`MAX_RESUME`] messages: the
        /// client should load the latest page instead.
        complete: bool,
    },
    Message(ChatMessage),
    UserJoined {
        username: String,
    },
    UserLeft {
        username: String,
    },
    /// Someone in the room is typing (not stored; passed on at most once a
    /// second per user and room, whatever a client sends).
    Typing {
        username: String,
    },
    /// A message was edited: `message` is it as it now is (`edited_at` set).
    /// `id` is the edit's own place in the id sequence: a client resumes
    /// after the highest id it has seen, message or change.
    Edited {
        id: i64,
        message: ChatMessage,
    },
    /// A message was deleted: its text is gone from every history and from
    /// search. `id` is the deletion's place in the id sequence.
    Deleted {
        id: i64,
        room: String,
        message_id: i64,
    },
    /// The message, edit or deletion with this `client_id` is stored under
    /// `id`.
    Ack {
        client_id: String,
        id: i64,
    },
    /// A refused frame. The socket stays open.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

/// A frame a client sends up a WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Any `username` field a client adds is ignored: the server knows who
    /// is speaking from the session.
    Message {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// The user is typing in this socket's room.
    Typing,
    /// The user has seen this room's messages up to `id`: unread counts
    /// start after it, on every device of the session.
    Read { id: i64 },
    /// Replaces the text of one's own message `id` in this socket's room.
    /// The same rules as a message apply to the text; the answer is an
    /// `edited` frame to the room and an `ack` (when it has a `client_id`),
    /// or an `error` frame. A `client_id` makes it idempotent like a
    /// message's: sent again, it is acked under the id it was stored with
    /// and not done twice.
    Edit {
        id: i64,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Deletes one's own message `id` in this socket's room: a `deleted`
    /// frame to the room and an `ack`, or an `error` frame.
    Delete {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

/// Why the server refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, an unknown `type`, a missing field, or a control character.
    BadFrame,
    /// Nothing left after trimming whitespace.
    Empty,
    /// Over [`MAX_MESSAGE_CHARS`].
    TooLong,
    /// Over the per-user rate; the message was not stored.
    RateLimited,
    /// An edit or deletion of someone else's message.
    Forbidden,
    /// An edit or deletion of a message that is not in this room (never
    /// was, or was deleted).
    NotFound,
    /// The server could not store it (its database did not answer); the
    /// client sends it again, under the same `client_id`, a moment later.
    Unavailable,
}

impl ErrorCode {
    /// Refuses the timing, not the message: the client sends it again,
    /// in its place, after a pause.
    pub fn is_retried(self) -> bool {
        matches!(self, Self::RateLimited | Self::Unavailable)
    }
}

/// `POST /api/login` as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
}

/// `POST /api/login` answered as JSON: the name the server gave out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub username: String,
}

/// `GET /get_online_users/`: sorted, one entry per user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUsers {
    pub online_users: Vec<String>,
}

/// `GET /api/messages`: a page of older history, newest last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<ChatMessage>,
}

/// `GET /api/rooms`: the rooms this session has visited and the rooms with
/// messages, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomSummary>,
}

/// One room in a [`RoomList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    /// Messages after the last one this session read there (at most
    /// [`MAX_UNREAD`]); 0 in a room it never opened.
    pub unread: u64,
}

/// `GET /api/search?q=TEXT[&room=ROOM]`: matching messages, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub results: Vec<ChatMessage>,
}

/// Every JSON error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_the_documented_json() {
        let frame = ServerFrame::Message(ChatMessage {
            id: 43,
            room: "lobby".into(),
            username: "John1".into(),
            author: "tag".into(),
            message: "Hello".into(),
            sent_at: "2026-11-24T17:04:00.123Z".into(),
            client_id: None,
            edited_at: None,
        });
        assert_eq!(
            serde_json::to_string(&frame).unwrap(),
            r#"{"type":"message","id":43,"room":"lobby","username":"John1","author":"tag","message":"Hello","sent_at":"2026-11-24T17:04:00.123Z"}"#
        );
        let joined = ServerFrame::UserJoined {
            username: "A".into(),
        };
        assert_eq!(
            serde_json::to_string(&joined).unwrap(),
            r#"{"type":"user_joined","username":"A"}"#
        );
        let error = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "Slow down".into(),
            client_id: None,
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"type":"error","code":"rate_limited","message":"Slow down"}"#
        );
    }

    #[test]
    fn a_client_frame_ignores_a_username_field() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"message","message":"hi","username":"Mallory","client_id":"c1"}"#,
        )
        .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Message {
                message: "hi".into(),
                client_id: Some("c1".into()),
            }
        );
    }

    #[test]
    fn typing_and_read_frames_are_small() {
        assert_eq!(
            serde_json::to_string(&ClientFrame::Typing).unwrap(),
            r#"{"type":"typing"}"#
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"read","id":7}"#).unwrap(),
            ClientFrame::Read { id: 7 }
        );
        assert_eq!(
            serde_json::to_string(&ServerFrame::Typing {
                username: "Ann".into()
            })
            .unwrap(),
            r#"{"type":"typing","username":"Ann"}"#
        );
    }

    #[test]
    fn edits_and_deletions_match_the_documented_json() {
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"edit","id":43,"message":"Hi"}"#)
                .unwrap(),
            ClientFrame::Edit {
                id: 43,
                message: "Hi".into(),
                client_id: None,
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"delete","id":43}"#).unwrap(),
            ClientFrame::Delete {
                id: 43,
                client_id: None
            }
        );
        let delete = ClientFrame::Delete {
            id: 43,
            client_id: Some("c-9".into()),
        };
        assert_eq!(
            serde_json::to_string(&delete).unwrap(),
            r#"{"type":"delete","id":43,"client_id":"c-9"}"#
        );
        let edited = ServerFrame::Edited {
            id: 57,
            message: ChatMessage {
                id: 43,
                room: "lobby".into(),
                username: "John1".into(),
                author: "tag".into(),
                message: "Hi".into(),
                sent_at: "2026-11-24T17:04:00.123Z".into(),
                client_id: None,
                edited_at: Some("2026-11-24T17:05:00.000Z".into()),
            },
        };
        assert_eq!(
            serde_json::to_string(&edited).unwrap(),
            r#"{"type":"edited","id":57,"message":{"id":43,"room":"lobby","username":"John1","author":"tag","message":"Hi","sent_at":"2026-11-24T17:04:00.123Z","edited_at":"2026-11-24T17:05:00.000Z"}}"#
        );
        let deleted = ServerFrame::Deleted {
            id: 58,
            room: "lobby".into(),
            message_id: 43,
        };
        assert_eq!(
            serde_json::to_string(&deleted).unwrap(),
            r#"{"type":"deleted","id":58,"room":"lobby","message_id":43}"#
        );
        assert_eq!(
            serde_json::to_string(&ErrorCode::NotFound).unwrap(),
            r#""not_found""#
        );
    }

    #[test]
    fn an_unknown_type_does_not_decode() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout","message":"x"}"#).is_err());
    }
}
