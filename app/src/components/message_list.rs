use std::collections::HashMap;
use std::sync::Arc;

use leptos::either::Either;
use leptos::prelude::*;

use crate::chat_state::{Change, ChatState, Pending};
use crate::components::linkify::{pieces, Piece};
use crate::components::message_editor::{Editor, MessageEditor};
use crate::components::timestamp::{self, Local};
use crate::protocol::ChatMessage;

/// How close to the bottom (in pixels) still counts as "reading the newest".
const NEAR_BOTTOM_PX: i32 = 80;
/// Messages from one person this close together form one group, under one
/// name.
const GROUP_WITHIN_MS: i64 = 5 * 60 * 1_000;

/// The room's messages, oldest first, then the user's own pending ones.
/// One's own messages have "Edit" and "Delete" buttons (shown on hover and
/// on focus; always on screens without hover).
///
/// While the reader is at the newest end, new messages keep it there. A
/// reader who scrolled up to older ones stays where they are, and a "New
/// messages" button at the bottom says that more came and takes them down.
#[component]
pub fn MessageList() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let list = NodeRef::<leptos::html::Div>::new();
    let unseen = RwSignal::new(false);

    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            let at_bottom = gap < NEAR_BOTTOM_PX;
            if chat.at_bottom.get_untracked() != at_bottom {
                chat.at_bottom.set(at_bottom);
            }
            if at_bottom && unseen.get_untracked() {
                unseen.set(false);
            }
        }
    };
    let scroll_down = move || {
        request_animation_frame(move || {
            if let Some(el) = list.get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    };

    // The newest id and the number of pending messages, as last seen.
    let seen = StoredValue::new((None::<i64>, 0usize));
    Effect::new(move |_| {
        let newest = chat.messages.with(|messages| messages.last().map(|m| m.id));
        let pending = chat.pending.with(Vec::len);
        let (was_newest, was_pending) = seen.get_value();
        seen.set_value((newest, pending));
        // Sending a message brings the reader to it; otherwise the list
        // follows only a reader at the bottom.
        if pending > was_pending || chat.at_bottom.get_untracked() {
            scroll_down();
            if unseen.get_untracked() {
                unseen.set(false);
            }
        } else if newest > was_newest {
            unseen.set(true);
        }
    });

    let load_earlier = move |_| {
        #[cfg(feature = "hydrate")]
        crate::ws_client::load_earlier(chat);
    };

    // Each message is laid out once, when it arrives; a change of the list
    // hands `<For>` the rows (shared, not copied) to match by key. Times are
    // read as UTC until the reader's clock is known (as the server drew
    // them), then once more on that clock.
    let now = follow_now();
    let zone_known = Memo::new(move |_| now.with(Option::is_some));
    let layout = StoredValue::new(Layout::default());
    let zoned = StoredValue::new(false);
    let rows = move || {
        let zone_known = zone_known.get();
        let read = if zone_known {
            timestamp::local
        } else {
            timestamp::utc
        };
        chat.messages.with(|messages| {
            layout.update_value(|layout| {
                if zoned.get_value() != zone_known {
                    zoned.set_value(zone_known);
                    layout.reread(read);
                }
                layout.update(messages, read);
            });
        });
        layout.with_value(|layout| layout.rows.clone())
    };
    let editor = expect_context::<Editor>();

    view! {
        <div class="message-pane">
            // Focusable from script and the "Skip to messages" link only
            // (`tabindex="-1"`): a deleted message's buttons hand the focus to
            // the list rather than the page's top.
            <div
                class="card shadow-sm flex-grow-1 overflow-auto message-scroller"
                id="message-scroller"
                tabindex="-1"
                node_ref=list
                on:scroll=on_scroll
            >
                <div class="card-body">
                    <Show when=move || chat.has_older.get()>
                        <div class="text-center mb-3">
                            <button type="button" class="btn btn-link btn-sm" id="load-earlier" on:click=load_earlier>
                                "Load earlier messages"
                            </button>
                        </div>
                    </Show>
                    <Show when=move || chat.messages.with(Vec::is_empty) && chat.pending.with(Vec::is_empty)>
                        <p class="text-body-secondary text-center my-5" id="empty-room">"No messages yet: say hello."</p>
                    </Show>
                    // A log: a screen reader reads out what is added to it, once:
                    // one's own messages on their way are not in it, so
                    // they are not read out again when the server has them.
                    <div role="log" aria-label="Messages" aria-live="polite">
                        <ol class="list-unstyled mb-0" id="messages">
                            <For each=rows key=|row| (row.message.id, row.new_day, row.head) let:row>
                                <MessageItem row now editor list/>
                            </For>
                        </ol>
                    </div>
                    <ol class="list-unstyled mb-0" id="pending" aria-label="Sending">
                        <For each=move || chat.pending.get() key=|p| (p.client_id.clone(), p.failed.clone()) let:pending>
                            <PendingItem pending/>
                        </For>
                    </ol>
                </div>
            </div>
            <Show when=move || unseen.get()>
                <button
                    type="button"
                    class="btn btn-primary btn-sm rounded-pill shadow new-messages"
                    id="new-messages"
                    on:click=move |_| {
                        unseen.set(false);
                        scroll_down();
                    }
                >
                    "New messages"
                </button>
            </Show>
        </div>
    }
    .into_any()
}

/// The reader's "now", looked at again every 30 seconds, so that "now"
/// turns into "1 min" and "Today" into "Yesterday" without waiting for a
/// message. Unknown on the server and while the page hydrates (so both
/// draw the same page); known from the first moment after.
fn follow_now() -> ReadSignal<Option<Local>> {
    let now = RwSignal::new(None);
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| now.set(timestamp::now()));
        let look = move || now.set(timestamp::now());
        if let Ok(handle) = set_interval_with_handle(look, std::time::Duration::from_secs(30)) {
            on_cleanup(move || handle.clear());
        }
    }
    now.read_only()
}

/// A message with what its place in the list says about it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    /// The message as laid out. Shared with the layout: handing the rows
    /// over copies no text.
    message: Arc<ChatMessage>,
    /// The same message, for its view. An edit sets it again, so that the
    /// row changes in place (keeping the focus and an open edit box)
    /// instead of being drawn anew.
    shown: ArcRwSignal<Arc<ChatMessage>>,
    /// When it was sent (read as UTC until the reader's clock is known), if
    /// the time reads.
    at: Option<Local>,
    /// The same time, for its view: set again when the reader's clock
    /// becomes known.
    when: ArcRwSignal<Option<Local>>,
    /// Whether it is the first of its day (and has a heading above it).
    new_day: bool,
    /// Whether it starts a group (and shows its author's name).
    head: bool,
}

/// The messages laid out: a day heading before the first message of each
/// day, and each person's run of messages (none more than
/// [`GROUP_WITHIN_MS`] after the one before, on one day) under one name.
///
/// Kept from one change of the list to the next. While the rows are still
/// the first messages of the list, one for one and each as it was, only
/// new messages at the end, the common case, are laid out (comparing is
/// cheap next to reading a time or drawing a row). Anything else (an older
/// page, a deletion, an edit, a fresh start) is laid out again from the
/// top, without reading any known message's time again; an edited message
/// keeps its row, and its view is handed the new text.
#[derive(Debug, Default)]
struct Layout {
    rows: Vec<Row>,
    /// The time of the latest message whose time reads.
    last_at: Option<Local>,
}

impl Layout {
    /// Brings the rows in line with `messages` (sorted by id, each once),
    /// reading new messages' times with `local`.
    fn update(&mut self, messages: &[ChatMessage], local: impl Fn(&str) -> Option<Local>) {
        let kept = self.rows.len();
        let in_place = kept <= messages.len()
            && self
                .rows
                .iter()
                .zip(messages)
                .all(|(row, message)| *row.message == *message);
        if in_place {
            for message in &messages[kept..] {
                self.push(Arc::new(message.clone()), local(&message.sent_at), None);
            }
            return;
        }
        let mut known: HashMap<i64, Row> = std::mem::take(&mut self.rows)
            .into_iter()
            .map(|row| (row.message.id, row))
            .collect();
        self.last_at = None;
        self.rows.reserve(messages.len());
        for message in messages {
            match known.remove(&message.id) {
                Some(row) if *row.message == *message => {
                    let at = row.at;
                    self.push(row.message.clone(), at, Some(row))
                }
                Some(row) => {
                    // Edited: the same place and time, new text.
                    let edited = Arc::new(message.clone());
                    row.shown.set(edited.clone());
                    let at = row.at;
                    self.push(edited, at, Some(row));
                }
                None => self.push(Arc::new(message.clone()), local(&message.sent_at), None),
            }
        }
    }

    /// Reads every message's time again with `local` (the reader's clock
    /// became known) and lays the list out again; the rows keep their
    /// views, which are handed the new times.
    fn reread(&mut self, local: impl Fn(&str) -> Option<Local>) {
        self.last_at = None;
        for row in std::mem::take(&mut self.rows) {
            let at = local(&row.message.sent_at);
            self.push(row.message.clone(), at, Some(row));
        }
    }

    /// Lays out the next message, sent `at`, whose views are those of the
    /// row it had (new ones for a message not laid out before).
    fn push(&mut self, message: Arc<ChatMessage>, at: Option<Local>, had: Option<Row>) {
        let (shown, when) = match had {
            Some(row) => {
                if row.when.with_untracked(|when| *when != at) {
                    row.when.set(at);
                }
                (row.shown, row.when)
            }
            None => (ArcRwSignal::new(message.clone()), ArcRwSignal::new(at)),
        };
        let new_day = at.is_some_and(|at| self.last_at.is_none_or(|before| !at.same_day(&before)));
        let head = new_day
            || match (self.rows.last(), at) {
                (Some(previous), Some(at)) => {
                    previous.message.username != message.username
                        || previous
                            .at
                            .is_none_or(|before| at.epoch_ms - before.epoch_ms > GROUP_WITHIN_MS)
                }
                _ => true,
            };
        self.last_at = at.or(self.last_at);
        self.rows.push(Row {
            message,
            shown,
            at,
            when,
            new_day,
            head,
        });
    }
}

/// Whether `text` names `@name` (any case), as a word of its own: "@bob,"
/// and "hi @Bob" do, "@bobby", "@bob_x" and "bill@bob.example" do not.
fn mentions(text: &str, name: &str) -> bool {
    fn is_word(c: char) -> bool {
        c.is_alphanumeric() || c == '_'
    }
    // The name goes on ("@bob-x", "@bob.x"); a sentence's "." or "-" alone does not.
    fn goes_on(rest: &str) -> bool {
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if is_word(c) => true,
            Some('-' | '.') => chars.next().is_some_and(is_word),
            _ => false,
        }
    }
    if name.is_empty() || !text.contains('@') {
        return false;
    }
    let text = text.to_lowercase();
    let name = name.to_lowercase();
    text.match_indices('@').any(|(at, _)| {
        let starts_word = text[..at].chars().next_back().is_none_or(|c| !is_word(c));
        let rest = &text[at + 1..];
        starts_word && rest.starts_with(&name) && !goes_on(&rest[name.len()..])
    })
}

/// A message's text: words as text nodes, addresses as links that open in a
/// new tab and tell the site nothing about the chat.
fn message_body(text: &str) -> impl IntoView {
    pieces(text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Either::Left(text.to_string()),
            Piece::Link(address) => Either::Right(view! {
                <a href=address.to_string() target="_blank" rel="noopener noreferrer">{address.to_string()}</a>
            }),
        })
        .collect::<Vec<_>>()
}

#[component]
fn MessageItem(
    row: Row,
    /// The reader's now (see [`follow_now`]).
    now: ReadSignal<Option<Local>>,
    editor: Editor,
    /// The scrolling list: where the focus goes from a message deleted.
    list: NodeRef<leptos::html::Div>,
) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let Row {
        message,
        shown,
        when,
        new_day,
        head,
        ..
    } = row;
    let id = message.id;
    let username = message.username.clone();
    let sent_at = message.sent_at.clone();
    let day = new_day.then(|| {
        let when = when.clone();
        move || {
            when.get()
                .map(|at| now.with(|now| at.day_heading(now.as_ref())))
        }
    });
    // "5 min" at a glance (nothing until the reader's clock is known); the
    // whole moment on hover, and beside it while the message has the focus.
    let ago = {
        let when = when.clone();
        move || now.with(|now| Some(when.get()?.ago(now.as_ref()?)))
    };
    let exact = move || when.get().map(|at| at.exact());
    let author = message.author.clone();
    let mine = Memo::new(move |_| {
        chat.my_author
            .with(|mine| mine.as_deref() == Some(author.as_str()))
    });
    // What the user asked of it that the server has not done yet.
    let waiting = Memo::new(move |_| chat.change_waiting(id));
    // The server's text, or the text an edit on its way will give it. A
    // refused edit leaves the waiting list, and the server's text is back.
    let server = shown.clone();
    let text = Memo::new(move |_| match waiting.get() {
        Some(Change::Edit { text, .. }) => text,
        _ => server.with(|message| message.message.clone()),
    });
    let edited_at = Memo::new(move |_| shown.with(|message| message.edited_at.clone()));
    let mentioned = move || {
        chat.me.with(|me| {
            me.as_deref()
                .is_some_and(|me| text.with(|text| mentions(text, me)))
        })
    };
    // Read out as "name: text", without the time.
    let name = if head {
        let avatar = Avatar::of(&username);
        Either::Left(view! {
            <span class=format!("avatar avatar-{}", avatar.colour) aria-hidden="true">{avatar.initials}</span>
            <span class="message-author">{username}</span>
            <span class="visually-hidden">": "</span>
        })
    } else {
        // Shown once for the group; still read out for each message.
        Either::Right(view! { <span class="visually-hidden">{username} ": "</span> })
    };

    let edit_button = NodeRef::<leptos::html::Button>::new();
    let delete = move |_| {
        if chat.change(crate::chat_state::new_client_id(), Change::Delete { id }) {
            editor.close(id);
            // Its buttons go with it once the server confirms: the list
            // keeps the focus, not the page's top.
            if let Some(list) = list.get_untracked() {
                let _ = list.focus();
            }
        }
    };
    let actions = move || {
        view! {
            <span class="message-actions">
                <button
                    type="button"
                    class="btn btn-sm btn-link message-action"
                    node_ref=edit_button
                    on:click=move |_| editor.open(id, text.get_untracked())
                >
                    "Edit"
                </button>
                <button type="button" class="btn btn-sm btn-link message-action message-delete" on:click=delete>
                    "Delete"
                </button>
            </span>
        }
    };
    let edited = move || {
        edited_at.get().map(|at| {
            let read = if now.with(Option::is_some) {
                timestamp::local
            } else {
                timestamp::utc
            };
            let title = match read(&at) {
                Some(local) => format!("Edited {}", local.exact()),
                None => format!("Edited {at}"),
            };
            view! { <time class="message-edited" datetime=at title=title>"edited"</time> }
        })
    };
    let progress = move || {
        waiting.get().map(|change| match change {
            Change::Edit { .. } => "saving…",
            Change::Delete { .. } => "deleting…",
        })
    };

    view! {
        // Seen, not read out: the log says "name: text" and no more.
        {day.map(|day| view! { <li class="day-separator" aria-hidden="true"><span>{day}</span></li> })}
        <li
            class="message"
            class:mine=move || mine.get()
            class:continued=!head
            class:mention=mentioned
            data-id=id
        >
            <div class="message-meta">
                {name}
                <time class="message-time" datetime=sent_at title=exact.clone() aria-hidden="true">
                    {ago}
                </time>
                <span class="message-exact" aria-hidden="true">{exact}</span>
                {edited}
                {move || progress().map(|what| view! { <span class="message-progress">{what}</span> })}
                {move || mentioned().then(|| view! { <span class="visually-hidden">"Mentions you"</span> })}
                <Show when=move || mine.get()>{actions}</Show>
            </div>
            <Show
                when=move || editor.editing.get() == Some(id)
                fallback=move || view! { <div class="message-text">{move || text.with(|text| message_body(text))}</div> }
            >
                <MessageEditor id shown=text editor back=edit_button/>
            </Show>
        </li>
    }
    .into_any()
}

/// A name's badge: its initials on one of [`AVATAR_COLOURS`] colours, the
/// same for a name everywhere (each passes 4.5:1 with white text, in both
/// colour modes; see `.avatar-N` in the style sheet).
#[derive(Debug, PartialEq, Eq)]
struct Avatar {
    initials: String,
    colour: u32,
}

const AVATAR_COLOURS: u32 = 8;

impl Avatar {
    fn of(name: &str) -> Self {
        // FNV-1a: stable across builds and platforms, unlike `Hash`.
        let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        let initials = name
            .split([' ', '.', '-', '_'])
            .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
            .take(2)
            .flat_map(char::to_uppercase)
            .collect();
        Self {
            initials,
            colour: hash % AVATAR_COLOURS,
        }
    }
}

#[component]
fn PendingItem(pending: Pending) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let client_id = pending.client_id.clone();
    let failed = pending.failed.clone();
    let is_failed = failed.is_some();
    view! {
        <li class="message mine pending" class:failed=is_failed data-client-id=pending.client_id>
            <div class="message-meta">
                <span class="message-author">{move || chat.me.get().unwrap_or_default()}</span>
                <span class="message-time">
                    {if is_failed { "not sent" } else { "sending…" }}
                </span>
            </div>
            <div class="message-text">{message_body(&pending.text)}</div>
            {failed.map(|why| {
                let retry_id = client_id.clone();
                let dismiss_id = client_id.clone();
                view! {
                    // Read out at once: this message will not go without the user.
                    <div class="small text-danger" role="alert">
                        {why} " "
                        <button type="button" class="btn btn-link btn-sm p-0 align-baseline"
                            on:click=move |_| chat.retry(&retry_id)>
                            "Retry"
                        </button>
                        " · "
                        <button type="button" class="btn btn-link btn-sm p-0 align-baseline"
                            on:click=move |_| chat.dismiss(&dismiss_id)>
                            "Dismiss"
                        </button>
                    </div>
                }
            })}
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(id: i64, username: &str, sent_at: &str) -> ChatMessage {
        ChatMessage {
            id,
            room: "lobby".into(),
            username: username.into(),
            author: "tag".into(),
            message: format!("m{id}"),
            sent_at: sent_at.into(),
            client_id: None,
            edited_at: None,
        }
    }

    /// (id, day heading, starts a group) of each row, seen on `today`.
    fn headings(layout: &Layout, today: &str) -> Vec<(i64, Option<String>, bool)> {
        let today = timestamp::local(today);
        layout
            .rows
            .iter()
            .map(|row| {
                let day = row
                    .at
                    .filter(|_| row.new_day)
                    .map(|at| at.day_heading(today.as_ref()));
                (row.message.id, day, row.head)
            })
            .collect()
    }

    /// `messages` laid out in one go, read as UTC.
    fn laid_out(messages: &[ChatMessage], today: &str) -> Vec<(i64, Option<String>, bool)> {
        let mut layout = Layout::default();
        layout.update(messages, timestamp::local);
        headings(&layout, today)
    }

    #[test]
    fn days_get_headings_and_runs_of_one_person_share_a_name() {
        let messages = [
            said(1, "Ann", "2026-11-29T23:58:00.000Z"),
            said(2, "Ann", "2026-11-30T00:01:00.000Z"),
            said(3, "Ann", "2026-11-30T00:05:00.000Z"),
            said(4, "Ann", "2026-11-30T00:10:00.000Z"),
            said(5, "Ann", "2026-11-30T00:15:01.000Z"),
            said(6, "Bob", "2026-11-30T00:15:30.000Z"),
            said(7, "Ann", "2026-11-30T00:16:00.000Z"),
            said(8, "Ann", "2026-12-02T09:00:00.000Z"),
        ];
        let today = "2026-11-30T12:00:00.000Z";
        let heading = |day: &str| Some(day.to_string());
        assert_eq!(
            laid_out(&messages, today),
            [
                (1, heading("Yesterday"), true),
                // A new day starts a new group, however close in time.
                (2, heading("Today"), true),
                (3, None, false),
                // Exactly five minutes after the one before: same group.
                (4, None, false),
                (5, None, true),
                (6, None, true),
                (7, None, true),
                (8, heading("Wed 2 Dec"), true),
            ]
        );
        assert_eq!(laid_out(&[], today), []);
    }

    #[test]
    fn a_time_that_does_not_read_gets_no_heading_and_its_own_group() {
        let messages = [
            said(1, "Ann", "2026-11-30T10:00:00.000Z"),
            said(2, "Ann", "yesterday-ish"),
            said(3, "Ann", "2026-11-30T10:01:00.000Z"),
        ];
        assert_eq!(
            laid_out(&messages, "2026-11-30T12:00:00.000Z"),
            [
                (1, Some("Today".to_string()), true),
                (2, None, true),
                (3, None, true),
            ]
        );
    }

    #[test]
    fn a_mention_is_the_name_as_a_word_in_any_case() {
        for text in [
            "@bob hi",
            "hi @Bob",
            "@BOB, look",
            "(@bob)",
            "ask @bob.",
            "@bob's turn",
            "a\n@bob",
        ] {
            assert!(mentions(text, "bob"), "{text}");
        }
        for text in [
            "bob hi",
            "@bobby",
            "@bob_x",
            "@bob-x",
            "@bob.example",
            "bill@bob",
            "@ bob",
            "",
        ] {
            assert!(!mentions(text, "bob"), "{text}");
        }
        assert!(mentions("hello @Anna Lee!", "anna lee"));
        assert!(!mentions("hello @Anna Leeds", "anna lee"));
        assert!(mentions("@Émile ça va", "émile"));
        assert!(!mentions("@anything", ""));
    }

    #[test]
    fn each_message_is_read_once_whatever_the_list_goes_through() {
        let messages = [
            said(1, "Ann", "2026-11-29T23:58:00.000Z"),
            said(2, "Ann", "2026-11-30T00:01:00.000Z"),
            said(3, "Bob", "2026-11-30T00:02:00.000Z"),
            said(4, "Bob", "2026-11-30T00:03:00.000Z"),
            said(5, "Ann", "2026-11-30T00:04:00.000Z"),
        ];
        let today = "2026-11-30T12:00:00.000Z";
        let reads = std::cell::Cell::new(0);
        let local = |sent_at: &str| {
            reads.set(reads.get() + 1);
            timestamp::local(sent_at)
        };
        let mut layout = Layout::default();
        // A page, then messages one by one, then an older page before them.
        layout.update(&messages[2..3], local);
        layout.update(&messages[2..4], local);
        layout.update(&messages[2..4], local);
        layout.update(&messages[2..], local);
        assert_eq!(reads.get(), 3);
        assert_eq!(headings(&layout, today), laid_out(&messages[2..], today));
        layout.update(&messages, local);
        assert_eq!(reads.get(), 5);
        assert_eq!(headings(&layout, today), laid_out(&messages, today));
        // A fresh start with other messages lays them out from scratch.
        layout.update(&[], local);
        layout.update(&messages[3..], local);
        assert_eq!(reads.get(), 7);
        assert_eq!(headings(&layout, today), laid_out(&messages[3..], today));
    }

    #[test]
    fn a_deleted_message_takes_its_row_and_the_groups_close_up() {
        let messages = [
            said(1, "Ann", "2026-11-29T23:58:00.000Z"),
            said(2, "Ann", "2026-11-30T10:00:00.000Z"),
            said(3, "Bob", "2026-11-30T10:01:00.000Z"),
            said(4, "Ann", "2026-11-30T10:02:00.000Z"),
            said(5, "Ann", "2026-11-30T10:03:00.000Z"),
        ];
        let today = "2026-11-30T12:00:00.000Z";
        let mut layout = Layout::default();
        layout.update(&messages, timestamp::local);
        // Bob's message goes: Ann's run is one group again.
        let without_bob = [
            messages[0].clone(),
            messages[1].clone(),
            messages[3].clone(),
            messages[4].clone(),
        ];
        layout.update(&without_bob, timestamp::local);
        assert_eq!(headings(&layout, today), laid_out(&without_bob, today));
        assert_eq!(
            headings(&layout, today)[2],
            (4, None, false),
            "joins the group before it"
        );
        // The first of today goes: the next one carries the heading.
        let rest = [
            messages[0].clone(),
            messages[3].clone(),
            messages[4].clone(),
        ];
        layout.update(&rest, timestamp::local);
        assert_eq!(headings(&layout, today), laid_out(&rest, today));
        assert_eq!(
            headings(&layout, today)[1],
            (4, Some("Today".to_string()), true)
        );
        // Deleted at the end, and a new message in the same change.
        let next = [
            messages[0].clone(),
            messages[3].clone(),
            said(6, "Bob", "2026-11-30T10:04:00.000Z"),
        ];
        layout.update(&next, timestamp::local);
        assert_eq!(headings(&layout, today), laid_out(&next, today));
    }

    #[test]
    fn an_edited_message_keeps_its_row_and_its_view_gets_the_new_text() {
        let mut messages = vec![
            said(1, "Ann", "2026-11-30T10:00:00.000Z"),
            said(2, "Ann", "2026-11-30T10:01:00.000Z"),
            said(3, "Ann", "2026-11-30T10:02:00.000Z"),
        ];
        let reads = std::cell::Cell::new(0);
        let local = |sent_at: &str| {
            reads.set(reads.get() + 1);
            timestamp::local(sent_at)
        };
        let mut layout = Layout::default();
        layout.update(&messages, local);
        let view = layout.rows[1].shown.clone();
        let before = headings(&layout, "2026-11-30T12:00:00.000Z");

        messages[1].message = "fixed".into();
        messages[1].edited_at = Some("2026-11-30T10:05:00.000Z".into());
        layout.update(&messages, local);
        assert_eq!(view.with_untracked(|m| m.message.clone()), "fixed");
        assert_eq!(layout.rows[1].shown, view, "the same row, not a new one");
        assert_eq!(layout.rows[1].message.message, "fixed");
        assert_eq!(headings(&layout, "2026-11-30T12:00:00.000Z"), before);
        assert_eq!(reads.get(), 3, "no time read again");

        // Edited again in the same instant (one batch on the server): the
        // text still counts.
        messages[1].message = "fixed twice".into();
        layout.update(&messages, local);
        assert_eq!(view.with_untracked(|m| m.message.clone()), "fixed twice");
    }

    #[test]
    fn once_the_readers_clock_is_known_rows_keep_their_views_and_take_its_times() {
        let messages = [
            said(1, "Ann", "2026-11-30T23:30:00.000Z"),
            said(2, "Ann", "2026-12-01T00:10:00.000Z"),
        ];
        let mut layout = Layout::default();
        layout.update(&messages, timestamp::utc);
        assert_eq!(
            headings(&layout, "2026-12-01T12:00:00.000Z"),
            [
                (1, Some("Yesterday".to_string()), true),
                (2, Some("Today".to_string()), true)
            ]
        );
        let (shown, when) = (layout.rows[0].shown.clone(), layout.rows[0].when.clone());
        // A reader an hour and a half ahead of UTC: both on the 1st, one run.
        let ahead = |sent_at: &str| timestamp::utc(&sent_at.replace("11-30T23:30", "12-01T01:00"));
        layout.reread(ahead);
        assert_eq!(
            headings(&layout, "2026-12-01T12:00:00.000Z"),
            [(1, Some("Today".to_string()), true), (2, None, false)]
        );
        assert_eq!(layout.rows[0].shown, shown, "the same view");
        assert_eq!(layout.rows[0].when, when, "the same view");
        assert_eq!(
            when.get_untracked().map(|at| at.clock()).as_deref(),
            Some("01:00"),
            "handed the reader's time"
        );
    }

    #[test]
    fn a_message_in_between_is_laid_out_in_its_place() {
        let messages = [
            said(1, "Ann", "2026-11-30T10:00:00.000Z"),
            said(2, "Ann", "2026-11-30T10:01:00.000Z"),
            said(3, "Ann", "2026-11-30T10:02:00.000Z"),
        ];
        let today = "2026-11-30T12:00:00.000Z";
        let mut layout = Layout::default();
        layout.update(
            &[messages[0].clone(), messages[2].clone()],
            timestamp::local,
        );
        layout.update(&messages, timestamp::local);
        assert_eq!(headings(&layout, today), laid_out(&messages, today));
    }

    #[test]
    fn an_avatar_is_the_names_initials_on_its_own_colour() {
        assert_eq!(Avatar::of("John").initials, "J");
        assert_eq!(Avatar::of("mary jane").initials, "MJ");
        assert_eq!(Avatar::of("ann.lee-smith").initials, "AL");
        assert_eq!(Avatar::of("_x").initials, "X");
        assert_eq!(Avatar::of("ñu").initials, "Ñ");
        assert_eq!(Avatar::of("John").colour, Avatar::of("John").colour);
        let colours: std::collections::HashSet<u32> = ["Ann", "Bob", "Cat", "Dan", "Eve", "Fay"]
            .iter()
            .map(|name| Avatar::of(name).colour)
            .collect();
        assert!(
            colours.len() > 2,
            "names spread over the colours: {colours:?}"
        );
        assert!(colours.iter().all(|c| *c < AVATAR_COLOURS));
    }
}
