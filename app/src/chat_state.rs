//! What the chat page knows: reactive state shared by its components and
//! written by the socket client. Plain data and merge rules, no I/O.

use leptos::prelude::*;

use crate::protocol::{ChatMessage, ErrorCode, ServerFrame, HISTORY_PAGE};
use crate::room::{self, RoomName, LOBBY};

/// The socket's state as the user sees it (and as `<body data-ws>` says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Open,
    Reconnecting,
}

impl Connection {
    /// The value of `<body data-ws=...>`, which tests wait on.
    pub fn as_attr(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Open => "open",
            Connection::Reconnecting => "reconnecting",
        }
    }
}

/// A message the user sent that the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub client_id: String,
    pub text: String,
    /// Written to the current socket and not answered yet (reset on every
    /// new connection, and by a `rate_limited` answer, so an unacknowledged
    /// message is sent again, under the same `client_id`).
    pub sent: bool,
    /// Why the server refused it, if it did.
    pub failed: Option<String>,
}

/// The chat page's state. `Copy`: every field is an arena handle.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// The room on screen. Fixed for the page's life: another room is
    /// another page load, with its own socket.
    pub room: StoredValue<String>,
    /// The rooms to offer: lobby first, then by name, each once.
    pub rooms: RwSignal<Vec<String>>,
    pub me: RwSignal<Option<String>>,
    pub online: RwSignal<Vec<String>>,
    /// Sorted by id, each id once.
    pub messages: RwSignal<Vec<ChatMessage>>,
    pub pending: RwSignal<Vec<Pending>>,
    pub connection: RwSignal<Connection>,
    /// Whether older messages may exist before the first one shown.
    pub has_older: RwSignal<bool>,
    /// A passing notice from the server (for example, "slow down").
    pub notice: RwSignal<Option<String>>,
}

impl ChatState {
    /// The state of the page of `room` (a name [`room::check`] accepts).
    /// The room list starts with the lobby and this room, so both are
    /// offered before the server's list arrives.
    pub fn new(room: String) -> Self {
        let mut rooms = Vec::new();
        merge_rooms(&mut rooms, [LOBBY.to_string(), room.clone()]);
        Self {
            room: StoredValue::new(room),
            rooms: RwSignal::new(rooms),
            me: RwSignal::new(None),
            online: RwSignal::new(Vec::new()),
            messages: RwSignal::new(Vec::new()),
            pending: RwSignal::new(Vec::new()),
            connection: RwSignal::new(Connection::Connecting),
            has_older: RwSignal::new(false),
            notice: RwSignal::new(None),
        }
    }

    /// The newest id shown: where a resume starts.
    pub fn last_id(&self) -> Option<i64> {
        self.messages
            .with_untracked(|messages| messages.last().map(|m| m.id))
    }

    /// The oldest id shown: where "load earlier" continues.
    pub fn first_id(&self) -> Option<i64> {
        self.messages
            .with_untracked(|messages| messages.first().map(|m| m.id))
    }

    /// Queues a message for sending; the socket client writes it out.
    pub fn queue(&self, client_id: String, text: String) {
        self.notice.set(None);
        self.pending.update(|pending| {
            pending.push(Pending {
                client_id,
                text,
                sent: false,
                failed: None,
            })
        });
    }

    /// Sends a refused message again (same `client_id`).
    pub fn retry(&self, client_id: &str) {
        self.pending.update(|pending| {
            if let Some(p) = pending.iter_mut().find(|p| p.client_id == client_id) {
                p.failed = None;
                p.sent = false;
            }
        });
    }

    /// Which pending message may be written to the socket now.
    ///
    /// Only the first one the server has not refused for good, and only once
    /// the one before it has been answered. The server numbers messages in
    /// the order they arrive, so with several on the wire a message refused
    /// for rate and sent again would land after a later one that got through.
    /// One at a time costs a round trip per message, which the rate limit
    /// (one message every 200 ms once the burst is spent) mostly hides.
    pub fn next_to_send(&self) -> NextSend {
        self.pending.with_untracked(
            |pending| match pending.iter().find(|p| p.failed.is_none()) {
                None => NextSend::Idle,
                Some(p) if p.sent => NextSend::Awaiting,
                Some(p) => NextSend::Send {
                    client_id: p.client_id.clone(),
                    text: p.text.clone(),
                },
            },
        )
    }

    /// Notes that a message was written to the current socket. Untracked:
    /// nothing on screen changes until the server answers.
    pub fn mark_sent(&self, client_id: &str) {
        self.pending.update_untracked(|pending| {
            if let Some(p) = pending.iter_mut().find(|p| p.client_id == client_id) {
                p.sent = true;
            }
        });
    }

    /// Forgets a failed message the user dismissed.
    pub fn dismiss(&self, client_id: &str) {
        self.pending
            .update(|pending| pending.retain(|p| p.client_id != client_id));
    }

    /// Adds older messages fetched page by page.
    pub fn add_older(&self, mut page: Vec<ChatMessage>, page_size: usize) {
        self.has_older.set(page.len() >= page_size);
        page.retain(|m| self.is_here(m));
        self.messages.update(|messages| merge(messages, page));
    }

    /// Adds rooms the server knows of to the list. The list is only written
    /// (and redrawn) when a room is new to it.
    pub fn add_rooms(&self, names: impl IntoIterator<Item = String>) {
        let mut rooms = self.rooms.get_untracked();
        if merge_rooms(&mut rooms, names) {
            self.rooms.set(rooms);
        }
    }

    /// Whether a message belongs on this page. The server only sends a
    /// socket its own room's messages; one from elsewhere is not shown.
    fn is_here(&self, message: &ChatMessage) -> bool {
        self.room.with_value(|room| message.room == *room)
    }

    /// Applies one frame from the server. `resuming` says whether this
    /// connection asked for `?after=`.
    pub fn apply(&self, frame: ServerFrame, resuming: bool) -> Applied {
        match frame {
            ServerFrame::Welcome {
                // The room the page asked for; each message says its own.
                room: _,
                username,
                online_users,
                mut history,
                complete,
            } => {
                history.retain(|m| self.is_here(m));
                self.me.set(Some(username));
                self.online.set(online_users);
                // A message stored just before the drop, whose ack was lost,
                // comes back in the history: it is no longer pending.
                self.settle_where(|p| {
                    history
                        .iter()
                        .any(|m| m.client_id.as_deref() == Some(p.client_id.as_str()))
                });
                if !complete {
                    // Too much was missed: start again from the latest page.
                    self.messages.set(Vec::new());
                    return Applied::ReloadLatest;
                }
                if resuming {
                    self.messages.update(|messages| merge(messages, history));
                } else {
                    self.has_older.set(history.len() >= HISTORY_PAGE);
                    self.messages.set(history);
                }
                Applied::Welcomed
            }
            ServerFrame::Message(message) if !self.is_here(&message) => Applied::Nothing,
            ServerFrame::Message(message) => {
                if let Some(client_id) = &message.client_id {
                    self.settle_where(|p| p.client_id == *client_id);
                }
                self.messages
                    .update(|messages| merge(messages, vec![message]));
                Applied::Nothing
            }
            ServerFrame::Ack { client_id, .. } => {
                self.settle_where(|p| p.client_id == client_id);
                Applied::Nothing
            }
            ServerFrame::UserJoined { username } => {
                self.online.update(|online| {
                    if let Err(at) = online.binary_search(&username) {
                        online.insert(at, username);
                    }
                });
                Applied::Nothing
            }
            ServerFrame::UserLeft { username } => {
                self.online
                    .update(|online| online.retain(|u| *u != username));
                Applied::Nothing
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                // `rate_limited` refuses the timing, not the message: it goes
                // out again, in its place, once the client has slowed down.
                let rate_limited = code == ErrorCode::RateLimited;
                match client_id {
                    Some(client_id) => self.pending.update(|pending| {
                        if let Some(p) = pending.iter_mut().find(|p| p.client_id == client_id) {
                            if rate_limited {
                                p.sent = false;
                            } else {
                                p.failed = Some(message);
                            }
                        }
                    }),
                    None => self.notice.set(Some(message)),
                }
                if rate_limited {
                    Applied::RateLimited
                } else {
                    Applied::Nothing
                }
            }
        }
    }

    /// The server has these messages: they are no longer pending. The list
    /// is only written (and its watchers woken) when something goes.
    fn settle_where(&self, stored: impl Fn(&Pending) -> bool) {
        let any = self
            .pending
            .with_untracked(|pending| pending.iter().any(&stored));
        if any {
            self.pending
                .update(|pending| pending.retain(|p| !stored(p)));
        }
    }
}

/// What the socket client should do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Welcomed,
    ReloadLatest,
    /// The server refused a message for rate: send more slowly.
    RateLimited,
}

/// The answer of [`ChatState::next_to_send`].
#[derive(Debug, PartialEq, Eq)]
pub enum NextSend {
    /// Nothing is waiting to be sent.
    Idle,
    /// The first message is on the wire; the rest wait for its answer.
    Awaiting,
    /// This message may go out (as soon as the rate allows).
    Send { client_id: String, text: String },
}

/// Merges `incoming` into `messages`, keeping them sorted by id and unique.
pub fn merge(messages: &mut Vec<ChatMessage>, incoming: Vec<ChatMessage>) {
    for message in incoming {
        // The common case, a new message at the end, is O(1).
        match messages.last() {
            None => messages.push(message),
            Some(last) if last.id < message.id => messages.push(message),
            Some(_) => {
                if let Err(at) = messages.binary_search_by_key(&message.id, |m| m.id) {
                    messages.insert(at, message);
                }
            }
        }
    }
}

/// Merges `incoming` room names into `rooms`, keeping the lobby first and
/// the rest sorted by name, each once. A name outside the room rule is
/// skipped: it could only lead to a page that does not exist. Says whether
/// anything was added.
pub fn merge_rooms(rooms: &mut Vec<String>, incoming: impl IntoIterator<Item = String>) -> bool {
    fn order(name: &str) -> (bool, &str) {
        (name != LOBBY, name)
    }
    let mut added = false;
    for name in incoming {
        if !matches!(room::check(&name), RoomName::Valid(_)) {
            continue;
        }
        if let Err(at) = rooms.binary_search_by(|known| order(known).cmp(&order(&name))) {
            rooms.insert(at, name);
            added = true;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64) -> ChatMessage {
        ChatMessage {
            id,
            room: LOBBY.into(),
            username: "A".into(),
            message: format!("m{id}"),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            client_id: None,
        }
    }

    #[test]
    fn merge_keeps_order_and_drops_repeats() {
        let mut shown = vec![message(1), message(3)];
        merge(
            &mut shown,
            vec![message(3), message(2), message(5), message(4), message(1)],
        );
        let ids: Vec<i64> = shown.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn an_ack_settles_the_pending_message() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.queue("c1".into(), "hello".into());
            chat.apply(
                ServerFrame::Ack {
                    client_id: "c1".into(),
                    id: 7,
                },
                false,
            );
            assert!(chat.pending.get_untracked().is_empty());
        });
    }

    fn welcome(history: Vec<ChatMessage>) -> ServerFrame {
        ServerFrame::Welcome {
            room: LOBBY.into(),
            username: "A".into(),
            online_users: vec!["A".into()],
            history,
            complete: true,
        }
    }

    fn stored(id: i64, client_id: &str) -> ChatMessage {
        ChatMessage {
            client_id: Some(client_id.into()),
            ..message(id)
        }
    }

    fn refusal(code: ErrorCode, client_id: &str) -> ServerFrame {
        ServerFrame::Error {
            code,
            message: "refused".into(),
            client_id: Some(client_id.into()),
        }
    }

    fn pending_ids(chat: &ChatState) -> Vec<String> {
        chat.pending
            .get_untracked()
            .into_iter()
            .map(|p| p.client_id)
            .collect()
    }

    #[test]
    fn a_welcome_settles_pending_messages_it_already_holds() {
        let owner = Owner::new();
        owner.with(|| {
            for resuming in [false, true] {
                let chat = ChatState::new(LOBBY.into());
                chat.queue("c1".into(), "stored before the drop".into());
                chat.queue("c2".into(), "never arrived".into());
                chat.mark_sent("c1");
                chat.apply(welcome(vec![message(1), stored(2, "c1")]), resuming);
                assert_eq!(pending_ids(&chat), ["c2"], "resuming: {resuming}");
            }
        });
    }

    #[test]
    fn an_incomplete_resume_still_settles_what_it_holds() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.queue("c1".into(), "hello".into());
            let frame = ServerFrame::Welcome {
                room: LOBBY.into(),
                username: "A".into(),
                online_users: vec!["A".into()],
                history: vec![stored(5, "c1")],
                complete: false,
            };
            assert_eq!(chat.apply(frame, true), Applied::ReloadLatest);
            assert!(chat.pending.get_untracked().is_empty());
        });
    }

    #[test]
    fn rate_limited_puts_the_message_back_in_line_instead_of_failing_it() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.queue("c1".into(), "one".into());
            chat.queue("c2".into(), "two".into());
            chat.mark_sent("c1");
            let applied = chat.apply(refusal(ErrorCode::RateLimited, "c1"), false);
            assert_eq!(applied, Applied::RateLimited);
            let pending = chat.pending.get_untracked();
            assert_eq!(pending.len(), 2);
            assert_eq!(pending[0].failed, None);
            assert!(!pending[0].sent);
            // Sent again before the message typed after it.
            assert_eq!(
                chat.next_to_send(),
                NextSend::Send {
                    client_id: "c1".into(),
                    text: "one".into()
                }
            );
        });
    }

    #[test]
    fn a_refusal_for_good_marks_the_message_not_sent() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.queue("c1".into(), "x".repeat(3_000));
            chat.mark_sent("c1");
            let applied = chat.apply(refusal(ErrorCode::TooLong, "c1"), false);
            assert_eq!(applied, Applied::Nothing);
            let pending = chat.pending.get_untracked();
            assert_eq!(pending[0].failed.as_deref(), Some("refused"));
        });
    }

    #[test]
    fn pending_messages_go_out_one_at_a_time_in_order() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            assert_eq!(chat.next_to_send(), NextSend::Idle);
            for id in ["c1", "c2", "c3"] {
                chat.queue(id.into(), format!("text of {id}"));
            }
            let send = |id: &str| NextSend::Send {
                client_id: id.into(),
                text: format!("text of {id}"),
            };
            assert_eq!(chat.next_to_send(), send("c1"));
            chat.mark_sent("c1");
            assert_eq!(chat.next_to_send(), NextSend::Awaiting);
            chat.apply(
                ServerFrame::Ack {
                    client_id: "c1".into(),
                    id: 1,
                },
                false,
            );
            assert_eq!(chat.next_to_send(), send("c2"));
            chat.mark_sent("c2");
            // Refused for good: the line moves on without it.
            chat.apply(refusal(ErrorCode::BadFrame, "c2"), false);
            assert_eq!(chat.next_to_send(), send("c3"));
            chat.mark_sent("c3");
            chat.apply(ServerFrame::Message(stored(2, "c3")), false);
            assert_eq!(chat.next_to_send(), NextSend::Idle);
            assert_eq!(pending_ids(&chat), ["c2"]);
        });
    }

    #[test]
    fn a_resume_merges_instead_of_replacing() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.messages.set(vec![message(1), message(2)]);
            let welcome = ServerFrame::Welcome {
                room: LOBBY.into(),
                username: "A".into(),
                online_users: vec!["A".into()],
                history: vec![message(2), message(3)],
                complete: true,
            };
            assert_eq!(chat.apply(welcome, true), Applied::Welcomed);
            let ids: Vec<i64> = chat.messages.get_untracked().iter().map(|m| m.id).collect();
            assert_eq!(ids, [1, 2, 3]);
        });
    }

    fn in_room(id: i64, room: &str) -> ChatMessage {
        ChatMessage {
            room: room.into(),
            ..message(id)
        }
    }

    fn shown_ids(chat: &ChatState) -> Vec<i64> {
        chat.messages.get_untracked().iter().map(|m| m.id).collect()
    }

    #[test]
    fn a_message_from_another_room_is_not_shown() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new("rust".into());
            chat.apply(
                ServerFrame::Welcome {
                    room: "rust".into(),
                    username: "A".into(),
                    online_users: vec!["A".into()],
                    history: vec![in_room(1, "rust"), in_room(2, LOBBY), in_room(3, "rust")],
                    complete: true,
                },
                false,
            );
            assert_eq!(shown_ids(&chat), [1, 3]);
            chat.apply(ServerFrame::Message(in_room(4, "go")), false);
            chat.apply(ServerFrame::Message(in_room(5, "rust")), false);
            assert_eq!(shown_ids(&chat), [1, 3, 5]);
            chat.add_older(vec![in_room(-1, "rust"), in_room(0, LOBBY)], 2);
            assert_eq!(shown_ids(&chat), [-1, 1, 3, 5]);
        });
    }

    #[test]
    fn the_room_list_starts_with_the_lobby_and_the_room_on_screen() {
        let owner = Owner::new();
        owner.with(|| {
            assert_eq!(ChatState::new(LOBBY.into()).rooms.get_untracked(), [LOBBY]);
            let chat = ChatState::new("rust".into());
            assert_eq!(chat.rooms.get_untracked(), [LOBBY, "rust"]);
            chat.add_rooms(["zed", "go-team", LOBBY, "rust", "Bad", "a b"].map(String::from));
            assert_eq!(
                chat.rooms.get_untracked(),
                [LOBBY, "go-team", "rust", "zed"]
            );
        });
    }

    #[test]
    fn merging_rooms_says_whether_anything_was_added() {
        let mut rooms = vec![LOBBY.to_string(), "rust".to_string()];
        assert!(!merge_rooms(
            &mut rooms,
            ["rust".to_string(), LOBBY.to_string()]
        ));
        assert!(merge_rooms(&mut rooms, ["a".to_string()]));
        assert_eq!(rooms, [LOBBY, "a", "rust"]);
    }
}
