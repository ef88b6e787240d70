//! What the chat page knows: reactive state shared by its components and
//! written by the socket client. Plain data and merge rules, no I/O.

use std::collections::VecDeque;

use leptos::prelude::*;

use crate::protocol::{
    ChatMessage, ClientFrame, ErrorCode, RoomSummary, ServerFrame, HISTORY_PAGE, TYPING_EVERY_MS,
    TYPING_SHOWN_MS,
};
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

/// What the user asked of one of their own messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New text for message `id`, trimmed and within the message limits.
    Edit {
        id: i64,
        text: String,
    },
    Delete {
        id: i64,
    },
}

impl Change {
    /// The message it is about.
    pub fn target(&self) -> i64 {
        match self {
            Change::Edit { id, .. } | Change::Delete { id } => *id,
        }
    }
}

/// A change the server has not answered yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChange {
    pub change: Change,
    /// Its idempotency key: sent again after a drop, a change the server
    /// already made is acked, not made twice (which could undo a later
    /// edit from another tab).
    pub client_id: String,
    /// Written to the current socket and not answered yet (reset on every
    /// new connection, and by a `rate_limited` answer, so that it goes out
    /// again).
    pub sent: bool,
}

impl PendingChange {
    /// The frame that asks the server for it.
    pub fn frame(&self) -> ClientFrame {
        let client_id = Some(self.client_id.clone());
        match &self.change {
            Change::Edit { id, text } => ClientFrame::Edit {
                id: *id,
                message: text.clone(),
                client_id,
            },
            Change::Delete { id } => ClientFrame::Delete { id: *id, client_id },
        }
    }

    /// Whether `frame` is the frame that asks for it.
    fn is_asked_by(&self, frame: &ClientFrame) -> bool {
        match frame {
            ClientFrame::Edit { client_id, .. } | ClientFrame::Delete { client_id, .. } => {
                client_id.as_deref() == Some(self.client_id.as_str())
            }
            _ => false,
        }
    }
}

/// A fresh idempotency key for one outgoing message or change: random, so
/// that it never names an earlier write of the session, even one made
/// before a reload.
#[cfg(feature = "hydrate")]
pub fn new_client_id() -> String {
    let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{:x}-{a:x}-{b:x}", js_sys::Date::now() as u64)
}

/// Outside a browser nothing is sent (the server only renders the pages),
/// and a key unique to this process serves the tests.
#[cfg(not(feature = "hydrate"))]
pub fn new_client_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("local-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An edit or deletion that arrived, as it bears on the messages shown.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SeenChange {
    /// The message as the edit left it.
    Edited(ChatMessage),
    /// The id of the message deleted.
    Deleted(i64),
}

/// How many of the latest changes a page fetched over HTTP is brought up
/// to date with: far more than can arrive during one request.
const SEEN_CHANGES: usize = 100;

impl SeenChange {
    fn target(&self) -> i64 {
        match self {
            SeenChange::Edited(message) => message.id,
            SeenChange::Deleted(id) => *id,
        }
    }

    fn applies_to(&self, messages: &[ChatMessage]) -> bool {
        messages
            .binary_search_by_key(&self.target(), |m| m.id)
            .is_ok()
    }

    /// Shows it in `messages` (sorted by id), if its message is there.
    fn apply(&self, messages: &mut Vec<ChatMessage>) {
        let Ok(at) = messages.binary_search_by_key(&self.target(), |m| m.id) else {
            return;
        };
        match self {
            SeenChange::Edited(edited) => {
                messages[at].message.clone_from(&edited.message);
                messages[at].edited_at.clone_from(&edited.edited_at);
            }
            SeenChange::Deleted(_) => {
                messages.remove(at);
            }
        }
    }
}

/// What a change asked for while the socket is down says.
pub const OFFLINE_NOTICE: &str = "You are offline: try again when connected.";

/// A room in the room list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEntry {
    pub name: String,
    /// Others' messages there that this session has not seen (the server's
    /// count, capped at [`crate::protocol::MAX_UNREAD`]).
    pub unread: u64,
}

impl RoomEntry {
    fn new(name: String) -> Self {
        Self { name, unread: 0 }
    }
}

/// Someone typing in this room, shown until `until` (milliseconds since
/// 1970, the browser's clock).
#[derive(Clone, Debug, PartialEq)]
pub struct Typist {
    pub name: String,
    pub until: f64,
}

/// The chat page's state. `Copy`: every field is an arena handle.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// The room on screen. Fixed for the page's life: another room is
    /// another page load, with its own socket.
    pub room: StoredValue<String>,
    /// The rooms to offer: lobby first, then by name, each once.
    pub rooms: RwSignal<Vec<RoomEntry>>,
    pub me: RwSignal<Option<String>>,
    /// The user's author tag: their messages carry it (see
    /// [`ChatMessage::author`]).
    pub my_author: RwSignal<Option<String>>,
    pub online: RwSignal<Vec<String>>,
    /// Sorted by id, each id once, each as the server last said it is.
    pub messages: RwSignal<Vec<ChatMessage>>,
    pub pending: RwSignal<Vec<Pending>>,
    /// Edits and deletions of the user's messages on their way, in the
    /// order asked for.
    pub changes: RwSignal<Vec<PendingChange>>,
    /// The id of the newest edit or deletion applied here. Changes take
    /// their ids from the same sequence as messages, so one may be newer
    /// than every message shown, and a resume must start after it.
    last_change: StoredValue<Option<i64>>,
    /// The latest changes that arrived, oldest first (at most
    /// [`SEEN_CHANGES`]).
    seen_changes: StoredValue<VecDeque<SeenChange>>,
    pub connection: RwSignal<Connection>,
    /// Whether older messages may exist before the first one shown.
    pub has_older: RwSignal<bool>,
    /// A passing notice from the server (for example, "slow down").
    pub notice: RwSignal<Option<String>>,
    /// Who else is typing here, in the order they started.
    pub typing: RwSignal<Vec<Typist>>,
    /// The user typed in the message box (the socket client decides whether
    /// that is worth telling the room).
    pub typed: Trigger,
    /// Whether the tab is on screen (`document.visibilityState`).
    pub visible: RwSignal<bool>,
    /// Whether the message list shows its newest end.
    pub at_bottom: RwSignal<bool>,
    /// Messages from others that arrived here while the tab was hidden.
    pub missed_while_hidden: RwSignal<u64>,
}

impl ChatState {
    /// The state of the page of `room` (a name [`room::check`] accepts).
    /// The room list starts with the lobby and this room, so both are
    /// offered before the server's list arrives.
    pub fn new(room: String) -> Self {
        let mut rooms = Vec::new();
        merge_rooms(
            &mut rooms,
            [LOBBY.to_string(), room.clone()].map(|name| RoomSummary { name, unread: 0 }),
        );
        Self {
            room: StoredValue::new(room),
            rooms: RwSignal::new(rooms),
            me: RwSignal::new(None),
            my_author: RwSignal::new(None),
            online: RwSignal::new(Vec::new()),
            messages: RwSignal::new(Vec::new()),
            pending: RwSignal::new(Vec::new()),
            changes: RwSignal::new(Vec::new()),
            last_change: StoredValue::new(None),
            seen_changes: StoredValue::new(VecDeque::new()),
            connection: RwSignal::new(Connection::Connecting),
            has_older: RwSignal::new(false),
            notice: RwSignal::new(None),
            typing: RwSignal::new(Vec::new()),
            typed: Trigger::new(),
            visible: RwSignal::new(true),
            at_bottom: RwSignal::new(true),
            missed_while_hidden: RwSignal::new(0),
        }
    }

    /// The newest id seen, of a message or of a change to one: where a
    /// resume starts. The server sends a socket its room's frames in id
    /// order, so everything before it has been seen too.
    pub fn last_id(&self) -> Option<i64> {
        let newest_message = self
            .messages
            .with_untracked(|messages| messages.last().map(|m| m.id));
        newest_message.max(self.last_change.get_value())
    }

    /// The oldest id shown: where "load earlier" continues.
    pub fn first_id(&self) -> Option<i64> {
        self.messages
            .with_untracked(|messages| messages.first().map(|m| m.id))
    }

    /// Puts messages typed before this page (kept in the outbox) in line
    /// ahead of anything typed since, in their order; one already waiting
    /// is not queued twice.
    pub fn requeue(&self, kept: impl IntoIterator<Item = (String, String)>) {
        self.pending.update(|pending| {
            let mut ahead: Vec<Pending> = kept
                .into_iter()
                .filter(|(client_id, _)| pending.iter().all(|p| p.client_id != *client_id))
                .map(|(client_id, text)| Pending {
                    client_id,
                    text,
                    sent: false,
                    failed: None,
                })
                .collect();
            ahead.append(pending);
            *pending = ahead;
        });
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

    /// Asks the server for `change` (see [`ChatState::next_change`] for how
    /// it goes out). Only while connected: an edit is made against the
    /// message as the user last saw it, and offline nothing would show that
    /// the change is waiting, so instead the notice says to try again, and
    /// this answers false (an edit box stays open, its text kept). A change
    /// asked for just before a drop is not lost: it goes out on the next
    /// socket.
    pub fn change(&self, client_id: String, change: Change) -> bool {
        if self.connection.get_untracked() != Connection::Open {
            self.notice.set(Some(OFFLINE_NOTICE.into()));
            return false;
        }
        self.notice.set(None);
        self.changes.update(|changes| {
            changes.push(PendingChange {
                change,
                client_id,
                sent: false,
            })
        });
        true
    }

    /// What the user asked of message `id` that the server has not done
    /// yet: the newest change waiting for it. Tracked.
    pub fn change_waiting(&self, id: i64) -> Option<Change> {
        self.changes.track();
        self.change_waiting_untracked(id)
    }

    fn change_waiting_untracked(&self, id: i64) -> Option<Change> {
        self.changes.with_untracked(|changes| {
            changes
                .iter()
                .rev()
                .find(|c| c.change.target() == id)
                .map(|c| c.change.clone())
        })
    }

    /// The user's newest message here and its text as shown (with an edit
    /// on its way): what Up arrow in the empty message box edits. None
    /// while a message of theirs is still on its way (the newest is not
    /// stored yet), or when it is being deleted.
    pub fn last_own_message(&self) -> Option<(i64, String)> {
        let mine = self.my_author.get_untracked()?;
        if self.pending.with_untracked(|pending| !pending.is_empty()) {
            return None;
        }
        let (id, text) = self.messages.with_untracked(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.author == mine)
                .map(|m| (m.id, m.message.clone()))
        })?;
        match self.change_waiting_untracked(id) {
            Some(Change::Edit { text, .. }) => Some((id, text)),
            Some(Change::Delete { .. }) => None,
            None => Some((id, text)),
        }
    }

    /// Which change may be written to the socket now: one at a time, in
    /// the order asked for, so that a later edit of a message is made
    /// after an earlier one.
    pub fn next_change(&self) -> NextChange {
        self.changes
            .with_untracked(|changes| match changes.first() {
                None => NextChange::Idle,
                Some(c) if c.sent => NextChange::Awaiting,
                Some(c) => NextChange::Send(c.frame()),
            })
    }

    /// Notes that `frame` was written to the current socket. Untracked:
    /// nothing on screen changes until the server answers.
    pub fn change_written(&self, frame: &ClientFrame) {
        self.changes.update_untracked(|changes| {
            if let Some(c) = changes.iter_mut().find(|c| !c.sent && c.is_asked_by(frame)) {
                c.sent = true;
            }
        });
    }

    /// The server answered, or made moot, these changes: they are no
    /// longer waiting. Written (and its watchers woken) only when one goes.
    fn settle_changes(&self, answered: impl Fn(&PendingChange) -> bool) {
        if self
            .changes
            .with_untracked(|changes| changes.iter().any(&answered))
        {
            self.changes
                .update(|changes| changes.retain(|c| !answered(c)));
        }
    }

    /// The change `id` arrived: shown if its message is (one older than
    /// the pages loaded is not fetched for it), kept for the pages still
    /// to come, and where a resume starts (see [`ChatState::last_id`]).
    fn change_seen(&self, id: i64, change: SeenChange) {
        if self
            .last_change
            .get_value()
            .is_none_or(|newest| id > newest)
        {
            self.last_change.set_value(Some(id));
        }
        if self
            .messages
            .with_untracked(|messages| change.applies_to(messages))
        {
            self.messages.update(|messages| change.apply(messages));
        }
        self.seen_changes.update_value(|seen| {
            if seen.len() == SEEN_CHANGES {
                seen.pop_front();
            }
            seen.push_back(change);
        });
    }

    /// An `error` frame naming the change `client_id`, if one waits under
    /// it. Says whether the user should be told.
    fn change_refused(&self, code: ErrorCode, client_id: &str) -> bool {
        let Some(at) = self
            .changes
            .with_untracked(|changes| changes.iter().position(|c| c.client_id == client_id))
        else {
            return false;
        };
        if code.is_retried() {
            // Refused for timing only: it goes out again, in its place.
            self.changes
                .update_untracked(|changes| changes[at].sent = false);
            return false;
        }
        let refused = self.changes.try_update(|changes| changes.remove(at));
        // Deleting a message that is already gone did what the user wanted
        // (deleted from another tab, say).
        !(code == ErrorCode::NotFound
            && matches!(refused.map(|c| c.change), Some(Change::Delete { .. })))
    }

    /// Forgets a failed message the user dismissed.
    pub fn dismiss(&self, client_id: &str) {
        self.pending
            .update(|pending| pending.retain(|p| p.client_id != client_id));
    }

    /// Adds older messages fetched page by page.
    /// A page is read over HTTP while the socket goes on: it may have been
    /// read before a change that has arrived since, so the changes seen
    /// lately are applied to it again.
    pub fn add_older(&self, mut page: Vec<ChatMessage>, page_size: usize) {
        self.has_older.set(page.len() >= page_size);
        page.retain(|m| self.is_here(m));
        self.seen_changes.with_value(|seen| {
            for change in seen {
                change.apply(&mut page);
            }
        });
        self.messages.update(|messages| merge(messages, page));
    }

    /// Takes the server's room list: new rooms are added, known ones get
    /// their unread count. The room on screen counts nothing: it is being
    /// read (what arrives while the tab is hidden is counted apart). The
    /// list is only written (and redrawn) when something changed.
    pub fn update_rooms(&self, summaries: impl IntoIterator<Item = RoomSummary>) {
        let summaries = summaries.into_iter().map(|mut summary| {
            if self.is_current(&summary.name) {
                summary.unread = 0;
            }
            summary
        });
        let mut rooms = self.rooms.get_untracked();
        if merge_rooms(&mut rooms, summaries) {
            self.rooms.set(rooms);
        }
    }

    /// The unread count of the room `name` in the list (0 if it is not
    /// there). Tracked.
    pub fn unread_in(&self, name: &str) -> u64 {
        self.rooms.with(|rooms| {
            rooms
                .binary_search_by(|known| room_order(&known.name).cmp(&room_order(name)))
                .map_or(0, |at| rooms[at].unread)
        })
    }

    /// Whether `name` is the room on screen.
    pub fn is_current(&self, name: &str) -> bool {
        self.room.with_value(|room| room == name)
    }

    /// The number a hidden tab shows in its title: the unread messages of
    /// the other rooms, as the server last counted them, and those that
    /// arrived here while hidden. 0 while the tab is on screen. Tracked.
    pub fn hidden_unread(&self) -> u64 {
        if self.visible.get() {
            return 0;
        }
        self.unread_elsewhere() + self.missed_while_hidden.get()
    }

    /// Messages waiting in the other rooms, as the server last counted
    /// them (the room on screen counts none). Tracked.
    pub fn unread_elsewhere(&self) -> u64 {
        self.rooms
            .with(|rooms| rooms.iter().map(|r| r.unread).sum())
    }

    /// The tab was hidden or shown again. Back on screen, what arrived
    /// meanwhile counts as seen.
    pub fn set_visible(&self, visible: bool) {
        if self.visible.get_untracked() != visible {
            self.visible.set(visible);
        }
        if visible && self.missed_while_hidden.get_untracked() != 0 {
            self.missed_while_hidden.set(0);
        }
    }

    /// The id to report as read: the newest shown, when the reader can see
    /// it (tab on screen, list at its newest end).
    pub fn read_mark(&self) -> Option<i64> {
        if self.visible.get_untracked() && self.at_bottom.get_untracked() {
            self.last_id()
        } else {
            None
        }
    }

    /// `name` is typing (a `typing` frame at `now`): shown for
    /// [`TYPING_SHOWN_MS`]. One's own name is not shown.
    pub fn typing_seen(&self, name: String, now: f64) {
        if self
            .me
            .with_untracked(|me| me.as_deref() == Some(name.as_str()))
        {
            return;
        }
        let until = now + f64::from(TYPING_SHOWN_MS);
        self.typing
            .update(|typing| match typing.iter_mut().find(|t| t.name == name) {
                Some(typist) => typist.until = until,
                None => typing.push(Typist { name, until }),
            });
    }

    /// Forgets whoever has not typed for [`TYPING_SHOWN_MS`] by `now`.
    pub fn typing_expire(&self, now: f64) {
        self.typing_remove(|t| t.until <= now);
    }

    fn typing_remove(&self, gone: impl Fn(&Typist) -> bool) {
        if self
            .typing
            .with_untracked(|typing| typing.iter().any(&gone))
        {
            self.typing.update(|typing| typing.retain(|t| !gone(t)));
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
                author,
                online_users,
                mut history,
                complete,
            } => {
                history.retain(|m| self.is_here(m));
                if self
                    .my_author
                    .with_untracked(|mine| mine.as_ref().is_some_and(|mine| *mine != author))
                {
                    // Another login in this browser since the page opened:
                    // what waits here was someone else's to send.
                    self.pending.set(Vec::new());
                    self.changes.set(Vec::new());
                }
                self.me.set(Some(username));
                self.my_author.set(Some(author));
                self.online.set(online_users);
                // A message stored just before the drop, whose ack was lost,
                // comes back in the history: it is no longer pending.
                self.settle_where(|p| {
                    history
                        .iter()
                        .any(|m| m.client_id.as_deref() == Some(p.client_id.as_str()))
                });
                if !complete || !resuming {
                    // The pages to come are read after these changes, and
                    // may hold newer text than they do.
                    self.seen_changes.update_value(VecDeque::clear);
                }
                if !complete {
                    // Too much was missed: start again from the latest page,
                    // and from the changes that come after it.
                    self.messages.set(Vec::new());
                    self.last_change.set_value(None);
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
                // Their message is what they were typing.
                self.typing_remove(|t| t.name == message.username);
                let new = self.messages.with_untracked(|messages| {
                    messages
                        .binary_search_by_key(&message.id, |m| m.id)
                        .is_err()
                });
                if new
                    && !self.visible.get_untracked()
                    && self
                        .me
                        .with_untracked(|me| me.as_deref() != Some(message.username.as_str()))
                {
                    self.missed_while_hidden.update(|n| *n += 1);
                }
                self.messages
                    .update(|messages| merge(messages, vec![message]));
                Applied::Nothing
            }
            ServerFrame::Edited { message, .. } if !self.is_here(&message) => Applied::Nothing,
            ServerFrame::Edited { id, message } => {
                // An edit of this message not yet on the current socket gives
                // way to one already made (from another tab, while this one
                // was away): sent now, it would undo a newer text.
                self.settle_changes(|c| {
                    !c.sent
                        && matches!(&c.change, Change::Edit { id, text }
                            if *id == message.id && *text != message.message)
                });
                self.change_seen(id, SeenChange::Edited(message));
                Applied::Nothing
            }
            ServerFrame::Deleted { room, .. } if !self.is_current(&room) => Applied::Nothing,
            ServerFrame::Deleted { id, message_id, .. } => {
                // Whatever else was asked of it is moot now.
                self.settle_changes(|c| c.change.target() == message_id);
                self.change_seen(id, SeenChange::Deleted(message_id));
                Applied::Nothing
            }
            ServerFrame::Typing { username } => Applied::Typing(username),
            ServerFrame::Ack { client_id, .. } => {
                self.settle_where(|p| p.client_id == client_id);
                self.settle_changes(|c| c.client_id == client_id);
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
                // Gone from the room: no longer typing in it either.
                self.typing_remove(|t| t.name == username);
                Applied::Nothing
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                // `rate_limited` and `unavailable` refuse the timing, not the
                // message: it goes out again, in its place, a moment later.
                let rate_limited = code.is_retried();
                if code == ErrorCode::Unavailable {
                    self.notice.set(Some(message.clone()));
                }
                let is_change = client_id.as_deref().is_some_and(|client_id| {
                    self.changes
                        .with_untracked(|changes| changes.iter().any(|c| c.client_id == client_id))
                });
                match client_id {
                    Some(client_id) if is_change => {
                        if self.change_refused(code, &client_id) {
                            self.notice.set(Some(message));
                        }
                    }
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
    /// This person is typing (see [`ChatState::typing_seen`]).
    Typing(String),
}

/// The answer of [`ChatState::next_change`].
#[derive(Debug, PartialEq, Eq)]
pub enum NextChange {
    Idle,
    /// The first change is on the wire; the rest wait for its answer.
    Awaiting,
    /// This frame may go out (as soon as the rate allows).
    Send(ClientFrame),
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

/// At most one `read` frame this often: a busy room moves the mark along
/// every two seconds, not with every message.
pub const READ_EVERY_MS: f64 = 2_000.0;

/// When the socket client may write the two small frames, `typing` and
/// `read`: each at most once per its interval ([`TYPING_EVERY_MS`],
/// [`READ_EVERY_MS`]), counted across connections.
///
/// The server gives these frames a small allowance of their own, apart from
/// the user's message rate, so they wait for no message and no message
/// waits for them. A mark counts as told only once it is written to a
/// socket, and only to that socket: a new connection starts with nothing
/// told, so the newest mark goes out again after its `welcome`. Times are
/// milliseconds from `Date.now()`.
#[derive(Debug)]
pub struct SmallFrames {
    typing_at: f64,
    read_at: f64,
    /// The newest mark written to the current socket.
    read_told: Option<i64>,
}

/// What [`SmallFrames::read`] says about the read mark.
#[derive(Debug, PartialEq)]
pub enum ReadStep {
    /// Nothing to tell: no mark, or none newer than the one told.
    Idle,
    /// A newer mark, due this many milliseconds from now.
    Wait(f64),
    /// Send `read` with this id now.
    Send(i64),
}

impl Default for SmallFrames {
    fn default() -> Self {
        Self::new()
    }
}

impl SmallFrames {
    pub fn new() -> Self {
        Self {
            typing_at: f64::NEG_INFINITY,
            read_at: f64::NEG_INFINITY,
            read_told: None,
        }
    }

    /// A new socket: nothing has been told on it yet.
    pub fn connected(&mut self) {
        self.read_told = None;
    }

    /// Whether a `typing` frame may go out at `now`.
    pub fn typing_due(&self, now: f64) -> bool {
        now - self.typing_at >= f64::from(TYPING_EVERY_MS)
    }

    /// A `typing` frame was written to the socket at `now`.
    pub fn typing_written(&mut self, now: f64) {
        self.typing_at = now;
    }

    /// What to do about `mark` (see [`ChatState::read_mark`]) at `now`.
    pub fn read(&self, mark: Option<i64>, now: f64) -> ReadStep {
        match mark {
            Some(id) if self.read_told.is_none_or(|told| id > told) => {
                let due = self.read_at + READ_EVERY_MS;
                if now < due {
                    ReadStep::Wait(due - now)
                } else {
                    ReadStep::Send(id)
                }
            }
            _ => ReadStep::Idle,
        }
    }

    /// `read` with `id` was written to the socket at `now`.
    pub fn read_written(&mut self, id: i64, now: f64) {
        self.read_told = Some(id);
        self.read_at = now;
    }
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

/// The room list's order: the lobby first, then by name.
fn room_order(name: &str) -> (bool, &str) {
    (name != LOBBY, name)
}

/// Merges the server's `incoming` rooms into `rooms`, keeping the lobby
/// first and the rest sorted by name, each once, with the server's unread
/// count. A name outside the room rule is skipped: it could only lead to a
/// page that does not exist. A room the server no longer lists stays. Says
/// whether anything changed.
pub fn merge_rooms(
    rooms: &mut Vec<RoomEntry>,
    incoming: impl IntoIterator<Item = RoomSummary>,
) -> bool {
    let mut changed = false;
    for RoomSummary { name, unread } in incoming {
        if !matches!(room::check(&name), RoomName::Valid(_)) {
            continue;
        }
        match rooms.binary_search_by(|known| room_order(&known.name).cmp(&room_order(&name))) {
            Ok(at) if rooms[at].unread == unread => {}
            Ok(at) => {
                rooms[at].unread = unread;
                changed = true;
            }
            Err(at) => {
                rooms.insert(
                    at,
                    RoomEntry {
                        unread,
                        ..RoomEntry::new(name)
                    },
                );
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64) -> ChatMessage {
        ChatMessage {
            id,
            room: LOBBY.into(),
            username: "A".into(),
            author: "tag".into(),
            message: format!("m{id}"),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            client_id: None,
            edited_at: None,
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
            author: "tag".into(),
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
    fn messages_kept_for_one_login_are_not_sent_under_another() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(Vec::new()), false);
            // Typed before a reload, put back in line ahead of a new one.
            chat.queue("new".into(), "typed now".into());
            chat.requeue([
                ("old1".to_string(), "one".to_string()),
                ("new".to_string(), "twice".to_string()),
                ("old2".to_string(), "two".to_string()),
            ]);
            assert_eq!(pending_ids(&chat), ["old1", "old2", "new"]);

            // The same login comes back: they wait on.
            chat.apply(welcome(Vec::new()), true);
            assert_eq!(pending_ids(&chat), ["old1", "old2", "new"]);
            // Another login in this browser meanwhile: none of it is theirs.
            chat.apply(
                ServerFrame::Welcome {
                    room: LOBBY.into(),
                    username: "B".into(),
                    author: "other".into(),
                    online_users: Vec::new(),
                    history: Vec::new(),
                    complete: true,
                },
                true,
            );
            assert!(pending_ids(&chat).is_empty());
        });
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
                author: "tag".into(),
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
    fn unavailable_keeps_the_message_in_line_and_says_why() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.queue("c1".into(), "one".into());
            chat.mark_sent("c1");
            let applied = chat.apply(refusal(ErrorCode::Unavailable, "c1"), false);
            assert_eq!(applied, Applied::RateLimited, "sent again after a pause");
            let pending = chat.pending.get_untracked();
            assert_eq!(pending[0].failed, None);
            assert!(!pending[0].sent);
            assert!(chat.notice.get_untracked().is_some(), "the user is told");
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
                author: "tag".into(),
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
                    author: "tag".into(),
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

    fn summary(name: &str, unread: u64) -> RoomSummary {
        RoomSummary {
            name: name.into(),
            unread,
        }
    }

    fn room_names(chat: &ChatState) -> Vec<String> {
        chat.rooms
            .get_untracked()
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn the_room_list_starts_with_the_lobby_and_the_room_on_screen() {
        let owner = Owner::new();
        owner.with(|| {
            assert_eq!(room_names(&ChatState::new(LOBBY.into())), [LOBBY]);
            let chat = ChatState::new("rust".into());
            assert_eq!(room_names(&chat), [LOBBY, "rust"]);
            chat.update_rooms(
                ["zed", "go-team", LOBBY, "rust", "Bad", "a b"].map(|name| summary(name, 0)),
            );
            assert_eq!(room_names(&chat), [LOBBY, "go-team", "rust", "zed"]);
        });
    }

    #[test]
    fn merging_rooms_says_whether_anything_changed() {
        let mut rooms = vec![
            RoomEntry::new(LOBBY.to_string()),
            RoomEntry::new("rust".to_string()),
        ];
        assert!(!merge_rooms(
            &mut rooms,
            [summary("rust", 0), summary(LOBBY, 0)]
        ));
        assert!(merge_rooms(&mut rooms, [summary("a", 0)]));
        assert!(merge_rooms(&mut rooms, [summary("rust", 3)]));
        assert!(!merge_rooms(&mut rooms, [summary("rust", 3)]));
        let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [LOBBY, "a", "rust"]);
        assert_eq!(rooms[2].unread, 3);
        // A room the server stops listing keeps its place.
        assert!(!merge_rooms(&mut rooms, []));
        assert_eq!(rooms.len(), 3);
    }

    fn from(id: i64, username: &str) -> ChatMessage {
        ChatMessage {
            username: username.into(),
            ..message(id)
        }
    }

    #[test]
    fn a_hidden_tab_counts_the_others_unread_messages() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(vec![message(1)]), false);
            chat.update_rooms([summary(LOBBY, 7), summary("rust", 2), summary("go", 1)]);
            // On screen: no count at all.
            assert_eq!(chat.hidden_unread(), 0);
            chat.apply(ServerFrame::Message(from(2, "B")), false);
            assert_eq!(chat.hidden_unread(), 0);

            chat.set_visible(false);
            // Other rooms as the server counts them; this room's own count
            // is left out (it is on the page, counted below).
            assert_eq!(chat.hidden_unread(), 3);
            assert_eq!(chat.rooms.get_untracked()[0].unread, 0);
            chat.apply(ServerFrame::Message(from(3, "B")), false);
            // One's own message and a repeat are not news.
            chat.apply(ServerFrame::Message(from(4, "A")), false);
            chat.apply(ServerFrame::Message(from(3, "B")), false);
            assert_eq!(chat.hidden_unread(), 4);

            chat.set_visible(true);
            assert_eq!(chat.hidden_unread(), 0);
            chat.set_visible(false);
            assert_eq!(chat.hidden_unread(), 3);
        });
    }

    #[test]
    fn the_read_mark_is_the_newest_message_when_it_can_be_seen() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            assert_eq!(chat.read_mark(), None);
            chat.apply(welcome(vec![message(1), message(4)]), false);
            assert_eq!(chat.read_mark(), Some(4));
            chat.at_bottom.set(false);
            assert_eq!(chat.read_mark(), None);
            chat.at_bottom.set(true);
            chat.set_visible(false);
            assert_eq!(chat.read_mark(), None);
        });
    }

    fn typists(chat: &ChatState) -> Vec<String> {
        chat.typing
            .get_untracked()
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    #[test]
    fn typing_shows_others_until_they_stop_or_their_message_arrives() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(Vec::new()), false);
            let typing = |name: &str| ServerFrame::Typing {
                username: name.into(),
            };
            assert_eq!(chat.apply(typing("B"), false), Applied::Typing("B".into()));
            chat.typing_seen("B".into(), 0.0);
            chat.typing_seen("A".into(), 0.0);
            chat.typing_seen("C".into(), 1_000.0);
            // Oneself ("A") is not shown.
            assert_eq!(typists(&chat), ["B", "C"]);
            // B types again: kept in place, for longer.
            chat.typing_seen("B".into(), 2_000.0);
            let shown = f64::from(TYPING_SHOWN_MS);
            chat.typing_expire(1_000.0 + shown - 1.0);
            assert_eq!(typists(&chat), ["B", "C"]);
            chat.typing_expire(1_000.0 + shown);
            assert_eq!(typists(&chat), ["B"]);
            // B's message ends B's typing at once.
            chat.apply(ServerFrame::Message(from(1, "B")), false);
            assert_eq!(typists(&chat), Vec::<String>::new());
        });
    }

    #[test]
    fn someone_who_leaves_stops_typing() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(Vec::new()), false);
            chat.typing_seen("B".into(), 0.0);
            chat.typing_seen("C".into(), 0.0);
            chat.apply(
                ServerFrame::UserLeft {
                    username: "B".into(),
                },
                false,
            );
            assert_eq!(typists(&chat), ["C"]);
        });
    }

    #[test]
    fn typing_goes_out_at_most_every_two_seconds() {
        let mut small = SmallFrames::new();
        assert!(small.typing_due(0.0));
        small.typing_written(0.0);
        let every = f64::from(TYPING_EVERY_MS);
        assert!(!small.typing_due(every - 1.0));
        // A new socket does not shorten the wait.
        small.connected();
        assert!(!small.typing_due(every - 1.0));
        assert!(small.typing_due(every));
    }

    #[test]
    fn a_read_mark_goes_out_once_per_socket_and_at_most_every_two_seconds() {
        let mut small = SmallFrames::new();
        assert_eq!(small.read(None, 0.0), ReadStep::Idle);
        assert_eq!(small.read(Some(4), 0.0), ReadStep::Send(4));
        small.read_written(4, 0.0);
        assert_eq!(small.read(Some(4), 10_000.0), ReadStep::Idle);
        // A newer message seen soon after waits for its turn.
        assert_eq!(
            small.read(Some(5), 500.0),
            ReadStep::Wait(READ_EVERY_MS - 500.0)
        );
        assert_eq!(small.read(Some(5), READ_EVERY_MS), ReadStep::Send(5));
    }

    #[test]
    fn a_read_mark_not_written_is_offered_again() {
        let mut small = SmallFrames::new();
        // Offered, but the socket closed before it was written.
        assert_eq!(small.read(Some(4), 0.0), ReadStep::Send(4));
        small.connected();
        assert_eq!(small.read(Some(4), 1.0), ReadStep::Send(4));
        // Written to one socket: the next socket is told again after its
        // welcome, once the interval allows.
        small.read_written(4, 1.0);
        small.connected();
        assert_eq!(
            small.read(Some(4), 2.0),
            ReadStep::Wait(READ_EVERY_MS - 1.0)
        );
        assert_eq!(small.read(Some(4), 1.0 + READ_EVERY_MS), ReadStep::Send(4));
    }

    fn edited(change_id: i64, id: i64, text: &str) -> ServerFrame {
        ServerFrame::Edited {
            id: change_id,
            message: ChatMessage {
                message: text.into(),
                edited_at: Some("2026-01-01T00:05:00.000Z".into()),
                ..message(id)
            },
        }
    }

    fn deleted(change_id: i64, room: &str, id: i64) -> ServerFrame {
        ServerFrame::Deleted {
            id: change_id,
            room: room.into(),
            message_id: id,
        }
    }

    fn texts(chat: &ChatState) -> Vec<String> {
        chat.messages
            .get_untracked()
            .into_iter()
            .map(|m| m.message)
            .collect()
    }

    #[test]
    fn an_edit_replaces_the_text_in_place() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(vec![message(1), message(2), message(3)]), false);
            chat.apply(edited(10, 2, "fixed"), false);
            assert_eq!(shown_ids(&chat), [1, 2, 3]);
            assert_eq!(texts(&chat), ["m1", "fixed", "m3"]);
            let second = &chat.messages.get_untracked()[1];
            assert_eq!(
                second.edited_at.as_deref(),
                Some("2026-01-01T00:05:00.000Z")
            );
            // The others are untouched.
            assert_eq!(chat.messages.get_untracked()[0].edited_at, None);
            // An edit of a message not shown (older than the pages loaded)
            // adds nothing.
            chat.apply(edited(11, 0, "unseen"), false);
            assert_eq!(shown_ids(&chat), [1, 2, 3]);
        });
    }

    #[test]
    fn a_deletion_removes_the_message() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(vec![message(1), message(2), message(3)]), false);
            chat.apply(deleted(10, LOBBY, 2), false);
            assert_eq!(shown_ids(&chat), [1, 3]);
            // Again, or of a message never shown: nothing more goes.
            chat.apply(deleted(11, LOBBY, 2), false);
            chat.apply(deleted(12, LOBBY, 0), false);
            assert_eq!(shown_ids(&chat), [1, 3]);
            chat.apply(deleted(13, LOBBY, 3), false);
            chat.apply(deleted(14, LOBBY, 1), false);
            assert_eq!(shown_ids(&chat), Vec::<i64>::new());
        });
    }

    #[test]
    fn a_resume_starts_after_the_newest_message_or_change() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(vec![message(1), message(4)]), false);
            assert_eq!(chat.last_id(), Some(4));
            chat.apply(edited(7, 1, "later"), false);
            assert_eq!(chat.last_id(), Some(7));
            // Counted even when the message edited is not shown.
            chat.apply(edited(9, 0, "unseen"), false);
            assert_eq!(chat.last_id(), Some(9));
            chat.apply(ServerFrame::Message(message(10)), false);
            assert_eq!(chat.last_id(), Some(10));
            chat.apply(deleted(12, LOBBY, 10), false);
            assert_eq!(chat.last_id(), Some(12));
            // A replayed older change does not move it back.
            chat.apply(deleted(8, LOBBY, 4), false);
            assert_eq!(chat.last_id(), Some(12));
            assert_eq!(shown_ids(&chat), [1]);
            // The read mark is the same id.
            assert_eq!(chat.read_mark(), Some(12));
            // Every message deleted: a resume still starts after the changes.
            chat.apply(deleted(13, LOBBY, 1), false);
            assert_eq!(chat.last_id(), Some(13));
        });
    }

    #[test]
    fn changes_in_another_room_are_ignored() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new("rust".into());
            chat.apply(
                ServerFrame::Welcome {
                    room: "rust".into(),
                    username: "A".into(),
                    author: "tag".into(),
                    online_users: vec!["A".into()],
                    history: vec![in_room(1, "rust"), in_room(2, "rust")],
                    complete: true,
                },
                false,
            );
            chat.apply(
                ServerFrame::Edited {
                    id: 20,
                    message: ChatMessage {
                        message: "elsewhere".into(),
                        edited_at: Some("2026-01-01T00:05:00.000Z".into()),
                        ..in_room(1, "go")
                    },
                },
                false,
            );
            chat.apply(deleted(21, "go", 2), false);
            assert_eq!(shown_ids(&chat), [1, 2]);
            assert_eq!(texts(&chat), ["m1", "m2"]);
            assert_eq!(chat.last_id(), Some(2));
        });
    }

    #[test]
    fn an_incomplete_resume_forgets_the_changes_seen() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.apply(welcome(vec![message(1)]), false);
            chat.apply(edited(5, 1, "edited"), false);
            assert_eq!(chat.last_id(), Some(5));
            let frame = ServerFrame::Welcome {
                room: LOBBY.into(),
                username: "A".into(),
                author: "tag".into(),
                online_users: vec!["A".into()],
                history: vec![message(2_000)],
                complete: false,
            };
            assert_eq!(chat.apply(frame, true), Applied::ReloadLatest);
            assert_eq!(chat.last_id(), None);
            // The latest page starts the count again.
            chat.add_older(vec![message(2_990), message(3_000)], HISTORY_PAGE);
            assert_eq!(chat.last_id(), Some(3_000));
        });
    }

    /// A page of `ids` by "A", who is signed in, on an open socket.
    fn connected_with(ids: &[i64]) -> ChatState {
        let chat = ChatState::new(LOBBY.into());
        chat.apply(welcome(ids.iter().map(|&id| message(id)).collect()), false);
        chat.connection.set(Connection::Open);
        chat
    }

    fn edit(id: i64, text: &str) -> Change {
        Change::Edit {
            id,
            text: text.into(),
        }
    }

    fn error(code: ErrorCode, client_id: Option<&str>) -> ServerFrame {
        ServerFrame::Error {
            code,
            message: "refused".into(),
            client_id: client_id.map(str::to_string),
        }
    }

    fn ack(client_id: &str, id: i64) -> ServerFrame {
        ServerFrame::Ack {
            client_id: client_id.into(),
            id,
        }
    }

    /// The frame of the next change, noted as written.
    fn write_next_change(chat: &ChatState) -> ClientFrame {
        let NextChange::Send(frame) = chat.next_change() else {
            panic!("no change to send: {:?}", chat.next_change());
        };
        chat.change_written(&frame);
        frame
    }

    #[test]
    fn changes_go_out_one_at_a_time_until_acked() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[1, 2]);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert!(chat.change("e1".into(), edit(1, "one")));
            assert!(chat.change("d2".into(), Change::Delete { id: 2 }));
            assert_eq!(
                write_next_change(&chat),
                ClientFrame::Edit {
                    id: 1,
                    message: "one".into(),
                    client_id: Some("e1".into()),
                }
            );
            assert_eq!(chat.next_change(), NextChange::Awaiting);
            // The edit shows as waiting until the server has it.
            assert_eq!(chat.change_waiting(1), Some(edit(1, "one")));
            chat.apply(edited(3, 1, "one"), false);
            chat.apply(ack("e1", 3), false);
            assert_eq!(chat.change_waiting(1), None);
            assert_eq!(texts(&chat), ["one", "m2"]);
            assert_eq!(
                write_next_change(&chat),
                ClientFrame::Delete {
                    id: 2,
                    client_id: Some("d2".into())
                }
            );
            chat.apply(deleted(4, LOBBY, 2), false);
            chat.apply(ack("d2", 4), false);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(chat.notice.get_untracked(), None);
        });
    }

    #[test]
    fn an_edit_on_the_wire_waits_for_its_answer_and_one_held_back_gives_way() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[1]);
            chat.change("mine".into(), edit(1, "x"));
            let frame = write_next_change(&chat);
            // Another tab's edit of the same message while this one is on
            // the wire: the server puts them in order, so this one waits
            // for its answer.
            chat.apply(edited(5, 1, "from the other tab"), false);
            assert_eq!(chat.change_waiting(1), Some(edit(1, "x")));
            // The socket drops before the answer. Whether or not the server
            // had "x", the resume says another tab changed the message
            // since: the held-back edit gives way instead of undoing it.
            chat.changes
                .update_untracked(|changes| changes.iter_mut().for_each(|c| c.sent = false));
            chat.apply(welcome(vec![]), true);
            chat.apply(edited(6, 1, "newer, from the other tab"), false);
            assert_eq!(chat.change_waiting(1), None);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(texts(&chat), ["newer, from the other tab"]);
            // A resend of one the server made is acked, not made again: a
            // replay of its own text does not drop it.
            chat.change("again".into(), edit(1, "y"));
            let again = write_next_change(&chat);
            chat.changes
                .update_untracked(|changes| changes.iter_mut().for_each(|c| c.sent = false));
            chat.apply(welcome(vec![]), true);
            chat.apply(edited(7, 1, "y"), false);
            assert_eq!(write_next_change(&chat), again);
            chat.apply(ack("again", 7), false);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(texts(&chat), ["y"]);
            assert_ne!(frame, again);
        });
    }

    #[test]
    fn a_change_asked_for_offline_is_refused_with_a_notice() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[1]);
            chat.connection.set(Connection::Reconnecting);
            assert!(!chat.change("d1".into(), Change::Delete { id: 1 }));
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(chat.notice.get_untracked().as_deref(), Some(OFFLINE_NOTICE));
            // Back online, it is taken, and the notice goes.
            chat.connection.set(Connection::Open);
            assert!(chat.change("d1".into(), Change::Delete { id: 1 }));
            assert_eq!(chat.notice.get_untracked(), None);
        });
    }

    #[test]
    fn a_refused_change_is_dropped_and_said_unless_only_its_timing_was() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[1, 2]);
            chat.change("fast".into(), edit(1, "too fast"));
            let frame = write_next_change(&chat);
            // Refused for rate: back in line, not told.
            assert_eq!(
                chat.apply(error(ErrorCode::RateLimited, Some("fast")), false),
                Applied::RateLimited
            );
            assert_eq!(chat.next_change(), NextChange::Send(frame.clone()));
            assert_eq!(chat.notice.get_untracked(), None);
            // An error naming something else leaves it alone.
            chat.change_written(&frame);
            chat.apply(error(ErrorCode::Forbidden, Some("other")), false);
            assert_eq!(chat.next_change(), NextChange::Awaiting);
            // Refused for good: gone, the server's text is back, and told.
            chat.apply(error(ErrorCode::Forbidden, Some("fast")), false);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(chat.change_waiting(1), None);
            assert_eq!(texts(&chat), ["m1", "m2"]);
            assert_eq!(chat.notice.get_untracked().as_deref(), Some("refused"));
            // Deleting a message already gone did what was asked.
            chat.notice.set(None);
            chat.change("gone".into(), Change::Delete { id: 2 });
            write_next_change(&chat);
            chat.apply(error(ErrorCode::NotFound, Some("gone")), false);
            assert_eq!(chat.next_change(), NextChange::Idle);
            assert_eq!(chat.notice.get_untracked(), None);
            // An error that names nothing is simply told.
            chat.apply(error(ErrorCode::BadFrame, None), false);
            assert_eq!(chat.notice.get_untracked().as_deref(), Some("refused"));
        });
    }

    #[test]
    fn a_deletion_settles_every_change_waiting_for_that_message() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[1, 2]);
            chat.change("a".into(), edit(1, "first"));
            chat.change("b".into(), edit(2, "other"));
            chat.change("c".into(), edit(1, "second"));
            // Deleted from another tab: its edits are moot.
            chat.apply(deleted(5, LOBBY, 1), false);
            assert_eq!(chat.change_waiting(1), None);
            assert_eq!(chat.change_waiting(2), Some(edit(2, "other")));
            assert_eq!(shown_ids(&chat), [2]);
        });
    }

    #[test]
    fn a_page_read_before_a_change_arrived_shows_the_change() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = connected_with(&[5]);
            // While "load earlier" is on its way, 2 is edited and 3 deleted.
            chat.apply(edited(10, 2, "new text"), false);
            chat.apply(deleted(11, LOBBY, 3), false);
            chat.add_older(vec![message(1), message(2), message(3), message(4)], 4);
            assert_eq!(shown_ids(&chat), [1, 2, 4, 5]);
            assert_eq!(texts(&chat), ["m1", "new text", "m4", "m5"]);
            assert_eq!(chat.last_id(), Some(11));
        });
    }

    #[test]
    fn up_arrow_finds_the_users_newest_message_as_shown() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            assert_eq!(chat.last_own_message(), None);
            let by = |id: i64, author: &str| ChatMessage {
                author: author.into(),
                ..message(id)
            };
            chat.apply(
                welcome(vec![by(1, "tag"), by(2, "tag"), by(3, "other")]),
                false,
            );
            // The welcome says whose tag is the reader's ("tag").
            assert_eq!(chat.last_own_message(), Some((2, "m2".into())));
            chat.connection.set(Connection::Open);
            chat.change("e".into(), edit(2, "on its way"));
            assert_eq!(chat.last_own_message(), Some((2, "on its way".into())));
            // Not while a newer one is being sent, nor one being deleted.
            chat.queue("c".into(), "newer".into());
            assert_eq!(chat.last_own_message(), None);
            chat.pending.set(Vec::new());
            chat.change("d".into(), Change::Delete { id: 2 });
            assert_eq!(chat.last_own_message(), None);
        });
    }

    #[test]
    fn a_rooms_count_is_found_by_its_name() {
        let owner = Owner::new();
        owner.with(|| {
            let chat = ChatState::new(LOBBY.into());
            chat.update_rooms([summary("rust", 2), summary("go", 1), summary(LOBBY, 4)]);
            assert_eq!(chat.unread_in("rust"), 2);
            assert_eq!(chat.unread_in("go"), 1);
            // The room on screen counts nothing; an unknown room, nothing.
            assert_eq!(chat.unread_in(LOBBY), 0);
            assert_eq!(chat.unread_in("zig"), 0);
        });
    }
}
