//! What the chat page knows: reactive state shared by its components and
//! written by the socket client. Plain data and merge rules, no I/O.

use leptos::prelude::*;

use crate::protocol::{ChatMessage, ServerFrame, HISTORY_PAGE};

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
    /// Written to the current socket (reset on every new connection, so an
    /// unacknowledged message is sent again, under the same `client_id`).
    pub sent: bool,
    /// Why the server refused it, if it did.
    pub failed: Option<String>,
}

/// The chat page's state. `Copy`: every field is an arena handle.
#[derive(Clone, Copy)]
pub struct ChatState {
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

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatState {
    pub fn new() -> Self {
        Self {
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

    /// Forgets a failed message the user dismissed.
    pub fn dismiss(&self, client_id: &str) {
        self.pending
            .update(|pending| pending.retain(|p| p.client_id != client_id));
    }

    /// Adds older messages fetched page by page.
    pub fn add_older(&self, page: Vec<ChatMessage>, page_size: usize) {
        self.has_older.set(page.len() >= page_size);
        self.messages.update(|messages| merge(messages, page));
    }

    /// Applies one frame from the server. `resuming` says whether this
    /// connection asked for `?after=`.
    pub fn apply(&self, frame: ServerFrame, resuming: bool) -> Applied {
        match frame {
            ServerFrame::Welcome {
                username,
                online_users,
                history,
                complete,
            } => {
                self.me.set(Some(username));
                self.online.set(online_users);
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
            ServerFrame::Message(message) => {
                if let Some(client_id) = &message.client_id {
                    self.settle(client_id);
                }
                self.messages
                    .update(|messages| merge(messages, vec![message]));
                Applied::Nothing
            }
            ServerFrame::Ack { client_id, .. } => {
                self.settle(&client_id);
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
                message, client_id, ..
            } => {
                match client_id {
                    Some(client_id) => self.pending.update(|pending| {
                        if let Some(p) = pending.iter_mut().find(|p| p.client_id == client_id) {
                            p.failed = Some(message);
                        }
                    }),
                    None => self.notice.set(Some(message)),
                }
                Applied::Nothing
            }
        }
    }

    /// The server has the message with this `client_id`: it is no longer pending.
    fn settle(&self, client_id: &str) {
        let known = self
            .pending
            .with_untracked(|pending| pending.iter().any(|p| p.client_id == client_id));
        if known {
            self.pending
                .update(|pending| pending.retain(|p| p.client_id != client_id));
        }
    }
}

/// What the socket client should do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Welcomed,
    ReloadLatest,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64) -> ChatMessage {
        ChatMessage {
            id,
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
            let chat = ChatState::new();
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

    #[test]
    fn a_resume_merges_instead_of_replacing() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new();
            chat.messages.set(vec![message(1), message(2)]);
            let welcome = ServerFrame::Welcome {
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
}
