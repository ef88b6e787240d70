//! The browser's end of the socket (WASM only): connect to the page's room,
//! apply frames to [`ChatState`], send what the user queued, and come back
//! after a drop.
//!
//! A drop is followed by a reconnect with exponential backoff and jitter that
//! resumes with `?after=<last id seen>`, so nothing is missed; the store's ids
//! make the overlap harmless (the state keeps each id once). Edits and
//! deletions take their ids from the same sequence, so the last id seen may be
//! a change's; the server replays the changes to older messages after the
//! `welcome`. Messages the server has not acknowledged are sent again under the
//! same `client_id`, which the server stores only once.
//!
//! Sending is paced to the server's rate limit, so a backlog (everything typed
//! while offline) goes out as fast as the server accepts it and no faster; a
//! `rate_limited` answer slows the client down and the message goes out again.
//! Edits and deletions of one's own messages go out the same way: one at a
//! time, charged to the same pacing (the server counts them against the same
//! rate), and sent again on the next socket when a drop left them unanswered.
//!
//! Two small frames go out beside the messages: `typing` while the user
//! types, and `read` when the newest message is on screen. The server gives
//! them an allowance of their own, so they are not charged to the message
//! pacing: a message never waits for them. Each keeps its own pace (see
//! [`SmallFrames`]); `typing` is dropped rather than delayed.
//!
//! The client also keeps the room list's unread counts fresh (after every
//! `welcome`, when the tab comes back on screen, and every
//! [`ROOMS_EVERY_MS`], on screen or not: a hidden tab's title counts the
//! other rooms' news), follows the tab's visibility, which decides what
//! counts as read, and takes "NAME is typing…" away when it runs out.

use std::pin::pin;

use futures::{
    channel::mpsc,
    future::{select, Either},
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chat_state::{
    Applied, ChatState, Connection, NextChange, NextSend, ReadStep, SmallFrames,
};
use crate::protocol::{
    ClientFrame, MessagePage, RoomList, RoomSummary, ServerFrame, HISTORY_PAGE, SIGNED_OUT_REASON,
};

/// First retry delay; doubles per failed attempt.
const BACKOFF_START_MS: f64 = 250.0;
/// Longest wait between attempts.
const BACKOFF_MAX_MS: f64 = 10_000.0;
/// A connection open this long counts as a success for the backoff.
const STABLE_MS: f64 = 10_000.0;

/// A little under the server's default rate limit per user (`RATE_PER_SEC`
/// 5, `RATE_BURST` 10): the server measures its refill between arrivals, so
/// pacing at exactly its rate would be refused now and then by a few
/// milliseconds of jitter. Pacing under it means a backlog is not refused in
/// the first place. A server configured stricter, or other tabs of
/// the same user drawing on the same bucket, make the server answer
/// `rate_limited`; the client then backs off and sends the message again.
const RATE_PER_SEC: f64 = 4.5;
const RATE_BURST: f64 = 10.0;
/// The pause after a `rate_limited` answer: two and a half tokens at the
/// default rate, so the server's bucket has refilled when the message returns.
const RATE_LIMITED_BACKOFF_MS: f64 = 500.0;
/// A message (or a change) unanswered this long means the socket is dead
/// though the browser has not noticed, or the server could not store it (it
/// then sends no answer and counts on the sender to try again). Either way:
/// reconnect, and the message or change goes out again under its
/// `client_id`, which the server acks without doing it twice.
const ANSWER_TIMEOUT_MS: f64 = 10_000.0;
/// How often the room list's unread counts are fetched, whether the tab is
/// on screen or not: often enough for a title that counts news from other
/// rooms, rarely enough that a hundred idle tabs cost the server little.
const ROOMS_EVERY_MS: u32 = 15_000;
/// A tab shown again fetches the room list at once, unless a fetch started
/// this recently (switching tabs back and forth asks once).
const ROOMS_AGAIN_MS: f64 = 2_000.0;
/// A "NAME is typing…" line is taken away this long after its deadline, so
/// that the clock has surely passed it when the timer fires.
const TYPING_EXPIRY_SLACK_MS: f64 = 50.0;

/// Wakes the current connection's writer; `None` while disconnected.
type Writer = StoredValue<Option<mpsc::UnboundedSender<Nudge>>, LocalStorage>;

/// What wakes the writer.
enum Nudge {
    /// What waits to go out changed: a message or a change to one was
    /// queued, answered or refused.
    Pending,
    /// The server refused a message for rate.
    SlowDown,
    /// The user typed in the message box.
    Typing,
    /// What the reader can see changed (messages, scrolling, the tab).
    Read,
}

/// Starts the socket client for the chat page.
pub fn start(chat: ChatState) {
    let writer: Writer = StoredValue::new_local(None);
    let rooms = RoomFetches::new();
    let nudge = move |what: Nudge| {
        writer.with_value(|writer| {
            if let Some(writer) = writer {
                let _ = writer.unbounded_send(what);
            }
        });
    };

    // Whatever the user queues, and every answer, may let a frame go out.
    Effect::new(move |_| {
        chat.pending.track();
        chat.changes.track();
        nudge(Nudge::Pending);
    });
    // Typing in the box (not the first run: nobody has typed yet).
    Effect::new(move |first: Option<()>| {
        chat.typed.track();
        if first.is_some() {
            nudge(Nudge::Typing);
        }
    });
    // A new message, a scroll to the bottom or the tab coming back may
    // make a newer message seen.
    Effect::new(move |_| {
        chat.messages.track();
        chat.at_bottom.track();
        chat.visible.track();
        nudge(Nudge::Read);
    });

    // Someone typing: one timer for everybody's line (see `expire_typing`).
    let (typing_shown, typing_shown_rx) = mpsc::unbounded();
    Effect::new(move |_| {
        if chat.typing.with(|typing| !typing.is_empty()) {
            let _ = typing_shown.unbounded_send(());
        }
    });
    spawn_local(expire_typing(chat, typing_shown_rx));

    watch_visibility(chat, rooms);
    spawn_local(refresh_rooms(chat, rooms));

    // Show the state on <body data-ws=...>, for people (via CSS) and tests.
    Effect::new(move |_| {
        let state = chat.connection.get().as_attr();
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-ws", state);
        }
    });

    // Messages left in the outbox by an earlier page go first.
    let restore = crate::outbox::keep(chat);
    let network = watch_network();
    spawn_local(async move {
        restore.await;
        run(chat, writer, rooms, network).await
    });
}

/// How one connection ended.
enum Ended {
    /// The server ended this session (logout elsewhere): back to the login page.
    SignedOut,
    /// Anything else: try again. `welcomed` says whether it got as far as `welcome`.
    Dropped { welcomed: bool },
}

async fn run(
    chat: ChatState,
    writer: Writer,
    rooms: RoomFetches,
    mut network: mpsc::UnboundedReceiver<Network>,
) {
    let mut failures: i32 = 0;
    // Paced across connections: a reconnect does not reset the intervals.
    let mut small = SmallFrames::new();
    loop {
        let opened_at = js_sys::Date::now();
        match connect(chat, writer, rooms, &mut network, &mut small).await {
            Ended::SignedOut => return go_to_login(),
            // A connection that lasted starts the backoff afresh; one closed
            // soon after its welcome (a server that cannot store, a link too
            // slow for the room) counts as a failure, so it is not retried
            // four times a second.
            Ended::Dropped { welcomed: true } if js_sys::Date::now() - opened_at >= STABLE_MS => {
                failures = 0
            }
            Ended::Dropped { welcomed: true } => failures += 1,
            Ended::Dropped { welcomed: false } => {
                // Refused before `welcome`: maybe the session is gone.
                if !signed_in().await {
                    return go_to_login();
                }
                failures += 1;
            }
        }
        chat.connection.set(Connection::Reconnecting);
        let ceiling = (BACKOFF_START_MS * 2f64.powi(failures.min(16))).min(BACKOFF_MAX_MS);
        // Jitter in the upper half: spreads the reconnects after a server restart.
        let delay = ceiling * (0.5 + js_sys::Math::random() / 2.0);
        let mut wait = TimeoutFuture::new(delay as u32);
        // Back online: try at once instead of waiting out the backoff.
        loop {
            match select(&mut wait, network.next()).await {
                Either::Left(_) | Either::Right((Some(Network::Online), _)) => break,
                Either::Right((Some(Network::Offline), _)) => continue,
                Either::Right((None, _)) => return,
            }
        }
    }
}

/// What the browser says about its network.
enum Network {
    Online,
    Offline,
}

/// Forwards the window's `online` / `offline` events.
fn watch_network() -> mpsc::UnboundedReceiver<Network> {
    let (tx, rx) = mpsc::unbounded();
    for (event, what) in [("online", true), ("offline", false)] {
        let tx = tx.clone();
        // The chat page lives as long as the document: never removed.
        let _ = window_event_listener_untyped(event, move |_| {
            let _ = tx.unbounded_send(if what {
                Network::Online
            } else {
                Network::Offline
            });
        });
    }
    rx
}

/// One connection, from open to close: a reader and a writer side by side.
/// When either stops, the other is dropped with the socket, so nothing of
/// this connection (a writer asleep on a timer, say) outlives it.
async fn connect(
    chat: ChatState,
    writer: Writer,
    rooms: RoomFetches,
    network: &mut mpsc::UnboundedReceiver<Network>,
    small: &mut SmallFrames,
) -> Ended {
    let after = chat.last_id();
    let url = chat.room.with_value(|room| socket_url(room, after));
    let Ok(socket) = WebSocket::open(&url) else {
        return Ended::Dropped { welcomed: false };
    };
    let (sink, stream) = socket.split();
    let (nudge, nudges) = mpsc::unbounded();
    let reading = pin!(read(
        chat,
        stream,
        network,
        writer,
        rooms,
        nudge,
        after.is_some()
    ));
    let writing = pin!(write(chat, sink, nudges, small));
    let ended = match select(reading, writing).await {
        Either::Left((ended, _)) => ended,
        // The writer only starts after `welcome`, and stops when the socket
        // refuses a frame or leaves a message unanswered.
        Either::Right(((), _)) => Ended::Dropped { welcomed: true },
    };
    writer.set_value(None);
    ended
}

/// Applies the server's frames until the socket closes or the browser goes offline.
async fn read(
    chat: ChatState,
    mut stream: SplitStream<WebSocket>,
    network: &mut mpsc::UnboundedReceiver<Network>,
    writer: Writer,
    rooms: RoomFetches,
    nudge: mpsc::UnboundedSender<Nudge>,
    resuming: bool,
) -> Ended {
    let mut welcomed = false;
    loop {
        let item = match select(stream.next(), network.next()).await {
            Either::Left((Some(item), _)) => item,
            // The socket ended, or the browser lost its network (this socket
            // is dead then, even if it has not noticed yet).
            Either::Left((None, _)) | Either::Right((Some(Network::Offline) | None, _)) => break,
            Either::Right((Some(Network::Online), _)) => continue,
        };
        match item {
            Ok(Message::Text(text)) => {
                let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                    continue;
                };
                match chat.apply(frame, resuming) {
                    Applied::Nothing => {}
                    Applied::Typing(name) => chat.typing_seen(name, js_sys::Date::now()),
                    Applied::RateLimited => {
                        let _ = nudge.unbounded_send(Nudge::SlowDown);
                    }
                    Applied::Welcomed | Applied::ReloadLatest if welcomed => {}
                    applied => {
                        welcomed = true;
                        if applied == Applied::ReloadLatest {
                            spawn_local(fetch_page(chat, None));
                        }
                        // Rooms made or visited elsewhere since the last look,
                        // and this one, visited now.
                        spawn_local(fetch_rooms(chat, rooms, RoomsBecause::Welcome));
                        // Everything unanswered goes out again on this socket.
                        chat.pending.update_untracked(|pending| {
                            pending.iter_mut().for_each(|p| p.sent = false)
                        });
                        chat.changes.update_untracked(|changes| {
                            changes.iter_mut().for_each(|c| c.sent = false)
                        });
                        writer.set_value(Some(nudge.clone()));
                        let _ = nudge.unbounded_send(Nudge::Pending);
                        chat.connection.set(Connection::Open);
                    }
                }
            }
            Ok(Message::Bytes(_)) => {}
            Err(WebSocketError::ConnectionClose(close)) => {
                if close.reason == SIGNED_OUT_REASON {
                    return Ended::SignedOut;
                }
                break;
            }
            Err(_) => {}
        }
    }
    Ended::Dropped { welcomed }
}

/// Writes the pending messages to the socket in order, one at a time (see
/// [`ChatState::next_to_send`]), and the pending changes likewise (see
/// [`ChatState::next_change`]), both paced by one [`TokenBucket`], with
/// `typing` and `read` frames in between, paced by `small`. Sleeps until a
/// nudge, a token or a deadline: never spins.
async fn write(
    chat: ChatState,
    mut sink: SplitSink<WebSocket, Message>,
    mut nudges: mpsc::UnboundedReceiver<Nudge>,
    small: &mut SmallFrames,
) {
    // Nothing goes out before `welcome`, which may settle some of the pending
    // messages; its nudge is the first.
    if nudges.next().await.is_none() {
        return;
    }
    small.connected();
    let mut outbox = Outbox::new(js_sys::Date::now(), small);
    loop {
        let wait_ms = match outbox.next(chat, js_sys::Date::now()) {
            Step::Dead => return,
            Step::Send(frame) => {
                // Plain strings and numbers always encode; this only keeps `unwrap` out.
                let Ok(json) = serde_json::to_string(&frame) else {
                    return;
                };
                if sink.send(Message::Text(json)).await.is_err() {
                    return;
                }
                outbox.written(chat, &frame, js_sys::Date::now());
                continue;
            }
            Step::Wait(wait_ms) => wait_ms,
        };
        let woken = match wait_ms {
            None => nudges.next().await,
            Some(ms) => {
                // At least a millisecond, so a deadline just missed is not a spin.
                let timer = TimeoutFuture::new(ms.ceil().max(1.0) as u32);
                match select(nudges.next(), timer).await {
                    Either::Left((woken, _)) => woken,
                    Either::Right(_) => continue,
                }
            }
        };
        let Some(first) = woken else { return };
        // Take every nudge already queued, so that a refusal is heard before
        // the refused message (already back in line) is looked at again.
        outbox.heard(&first);
        while let Ok(next) = nudges.try_recv() {
            outbox.heard(&next);
        }
        if outbox.slow_down {
            outbox.slow_down = false;
            outbox.bucket.refused(js_sys::Date::now());
        }
    }
}

/// What the writer does next.
enum Step {
    Send(ClientFrame),
    /// Sleep until a nudge, or at most this many milliseconds.
    Wait(Option<f64>),
    /// A message or a change went unanswered: the socket is as good as dead.
    Dead,
}

/// The writer's bookkeeping for one connection. Times are milliseconds from
/// `Date.now()`.
struct Outbox<'a> {
    /// Messages and changes: `typing` and `read` are not charged to it.
    bucket: TokenBucket,
    /// When the message on the wire was written.
    message_at: f64,
    /// When the change on the wire was written.
    change_at: f64,
    slow_down: bool,
    /// The user typed since the last look.
    typed: bool,
    small: &'a mut SmallFrames,
}

impl<'a> Outbox<'a> {
    fn new(now: f64, small: &'a mut SmallFrames) -> Self {
        Self {
            // Full on every connection: by the time a reconnect succeeds the
            // server's bucket has usually refilled, and when it has not, the
            // retry covers it.
            bucket: TokenBucket::full(now),
            message_at: 0.0,
            change_at: 0.0,
            slow_down: false,
            typed: false,
            small,
        }
    }

    fn heard(&mut self, nudge: &Nudge) {
        match nudge {
            Nudge::SlowDown => self.slow_down = true,
            Nudge::Typing => self.typed = true,
            Nudge::Pending | Nudge::Read => {}
        }
    }

    /// Messages first, then changes; then `typing`, only while no message
    /// is waiting or on the wire (after a message it would announce typing
    /// that is over); then `read`. Nothing is recorded as sent here: see
    /// [`Self::written`].
    fn next(&mut self, chat: ChatState, now: f64) -> Step {
        let mut wait: Option<f64> = None;
        let mut wait_at_most = |ms: f64| wait = Some(wait.map_or(ms, |w: f64| w.min(ms)));
        let next = chat.next_to_send();
        match &next {
            NextSend::Idle => {}
            NextSend::Awaiting => {
                let left = ANSWER_TIMEOUT_MS - (now - self.message_at);
                if left <= 0.0 {
                    return Step::Dead;
                }
                wait_at_most(left);
            }
            NextSend::Send { client_id, text } => match self.bucket.take(now) {
                Err(ms) => wait_at_most(ms),
                Ok(()) => {
                    return Step::Send(ClientFrame::Message {
                        message: text.clone(),
                        client_id: Some(client_id.clone()),
                    });
                }
            },
        }
        match chat.next_change() {
            NextChange::Idle => {}
            NextChange::Awaiting => {
                let left = ANSWER_TIMEOUT_MS - (now - self.change_at);
                if left <= 0.0 {
                    return Step::Dead;
                }
                wait_at_most(left);
            }
            NextChange::Send(frame) => match self.bucket.take(now) {
                Err(ms) => wait_at_most(ms),
                Ok(()) => return Step::Send(frame),
            },
        }
        if std::mem::take(&mut self.typed) && next == NextSend::Idle && self.small.typing_due(now) {
            return Step::Send(ClientFrame::Typing);
        }
        match self.small.read(chat.read_mark(), now) {
            ReadStep::Idle => {}
            ReadStep::Wait(ms) => wait_at_most(ms),
            ReadStep::Send(id) => return Step::Send(ClientFrame::Read { id }),
        }
        Step::Wait(wait)
    }

    /// `frame` was written to the socket at `now`.
    fn written(&mut self, chat: ChatState, frame: &ClientFrame, now: f64) {
        match frame {
            ClientFrame::Message { client_id, .. } => {
                if let Some(client_id) = client_id {
                    chat.mark_sent(client_id);
                }
                self.message_at = now;
            }
            ClientFrame::Edit { .. } | ClientFrame::Delete { .. } => {
                chat.change_written(frame);
                self.change_at = now;
            }
            ClientFrame::Typing => self.small.typing_written(now),
            &ClientFrame::Read { id } => self.small.read_written(id, now),
        }
    }
}

/// The client's copy of the server's per-user token bucket: a token per
/// message, refilled at [`RATE_PER_SEC`] up to [`RATE_BURST`]. Times are
/// milliseconds from `Date.now()`.
struct TokenBucket {
    tokens: f64,
    at: f64,
}

impl TokenBucket {
    fn full(now: f64) -> Self {
        Self {
            tokens: RATE_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: f64) {
        // A clock set back earns nothing rather than going negative.
        let earned = (now - self.at).max(0.0) * RATE_PER_SEC / 1_000.0;
        self.tokens = (self.tokens + earned).min(RATE_BURST);
        self.at = now;
    }

    /// Takes a token, or says how many milliseconds until there is one.
    fn take(&mut self, now: f64) -> Result<(), f64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) * 1_000.0 / RATE_PER_SEC)
        }
    }

    /// The server's bucket is empty whatever this copy says: go into debt so
    /// that the next token comes [`RATE_LIMITED_BACKOFF_MS`] from now.
    fn refused(&mut self, now: f64) {
        self.refill(now);
        self.tokens = 1.0 - RATE_LIMITED_BACKOFF_MS * RATE_PER_SEC / 1_000.0;
    }
}

/// The socket of `room`. Room names are `a-z`, `0-9`, `-` and `_`: nothing
/// to escape in a query.
fn socket_url(room: &str, after: Option<i64>) -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    match after {
        Some(id) => format!("{scheme}://{host}/ws/chat/?room={room}&after={id}"),
        None => format!("{scheme}://{host}/ws/chat/?room={room}"),
    }
}

/// Whether the session cookie still opens the chat (a refused upgrade does
/// not say why, so ask an endpoint that does).
async fn signed_in() -> bool {
    match gloo_net::http::Request::get("/get_online_users/")
        .send()
        .await
    {
        Ok(response) => response.status() != 401,
        // The server is unreachable: keep trying, the session may be fine.
        Err(_) => true,
    }
}

fn go_to_login() {
    let _ = window().location().set_href("/");
}

/// "Load earlier messages": the page before the oldest shown, or, when
/// every message shown has been deleted, the room's latest page (which is
/// then older than anything that was on screen).
pub fn load_earlier(chat: ChatState) {
    spawn_local(fetch_page(chat, chat.first_id()));
}

/// Fetches one page of history before `before` (or the latest page) and merges it.
async fn fetch_page(chat: ChatState, before: Option<i64>) {
    let url = chat.room.with_value(|room| match before {
        Some(id) => format!("/api/messages?room={room}&before={id}&limit={HISTORY_PAGE}"),
        None => format!("/api/messages?room={room}&limit={HISTORY_PAGE}"),
    });
    let Ok(response) = gloo_net::http::Request::get(&url).send().await else {
        chat.notice
            .set(Some("Could not load messages; try again.".into()));
        return;
    };
    match response.json::<MessagePage>().await {
        Ok(page) => chat.add_older(page.messages, HISTORY_PAGE),
        Err(_) => chat
            .notice
            .set(Some("Could not load messages; try again.".into())),
    }
}

/// The room list's fetches, so that they neither pile up nor undo each
/// other: at most one asked for by the timer or the tab at a time, and an
/// answer older than one already taken is dropped.
#[derive(Clone, Copy)]
struct RoomFetches(StoredValue<FetchLog, LocalStorage>);

#[derive(Default)]
struct FetchLog {
    /// Fetches started, the number of the newest.
    started: u64,
    /// The number of the newest fetch whose answer was taken.
    taken: u64,
    in_flight: u32,
    /// When the newest fetch started (`Date.now()`).
    started_at: f64,
}

/// Why the room list is fetched.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RoomsBecause {
    /// A `welcome`: this room was just visited, so the answer must come
    /// from a fetch that starts now, whatever is in flight.
    Welcome,
    /// The periodic look: skipped while another fetch is in flight.
    Timer,
    /// The tab came back on screen: skipped while another fetch is in
    /// flight or one started in the last [`ROOMS_AGAIN_MS`].
    Shown,
}

impl RoomFetches {
    fn new() -> Self {
        Self(StoredValue::new_local(FetchLog::default()))
    }

    /// The number of a fetch that may start now, if it may.
    fn begin(self, because: RoomsBecause, now: f64) -> Option<u64> {
        self.0
            .try_update_value(|log| {
                let busy = log.in_flight > 0;
                let skip = match because {
                    RoomsBecause::Welcome => false,
                    RoomsBecause::Timer => busy,
                    RoomsBecause::Shown => busy || now - log.started_at < ROOMS_AGAIN_MS,
                };
                if skip {
                    return None;
                }
                log.started += 1;
                log.in_flight += 1;
                log.started_at = now;
                Some(log.started)
            })
            .flatten()
    }

    /// Fetch `number` is over; whether its answer is the newest yet.
    fn end(self, number: u64, answered: bool) -> bool {
        self.0
            .try_update_value(|log| {
                log.in_flight = log.in_flight.saturating_sub(1);
                let newest = answered && number > log.taken;
                if newest {
                    log.taken = number;
                }
                newest
            })
            .unwrap_or(false)
    }
}

/// Takes the server's room list for this session, with its unread counts,
/// unless `because` says to skip it now (see [`RoomsBecause`]).
async fn fetch_rooms(chat: ChatState, rooms: RoomFetches, because: RoomsBecause) {
    let Some(number) = rooms.begin(because, js_sys::Date::now()) else {
        return;
    };
    let list = get_rooms().await;
    if rooms.end(number, list.is_some()) {
        if let Some(list) = list {
            chat.update_rooms(list);
        }
    }
}

/// `GET /api/rooms`. A failure leaves the list as it is; the next look asks
/// again.
async fn get_rooms() -> Option<Vec<RoomSummary>> {
    let response = gloo_net::http::Request::get("/api/rooms")
        .send()
        .await
        .ok()?;
    if !response.ok() {
        return None;
    }
    let list: RoomList = response.json().await.ok()?;
    Some(list.rooms)
}

/// Looks at the room list again every [`ROOMS_EVERY_MS`], on screen or
/// not: hidden, the tab's title counts the other rooms' news. The page
/// lives as long as the document, and so does this.
async fn refresh_rooms(chat: ChatState, rooms: RoomFetches) {
    loop {
        TimeoutFuture::new(ROOMS_EVERY_MS).await;
        fetch_rooms(chat, rooms, RoomsBecause::Timer).await;
    }
}

/// Follows `document.visibilityState`. Back on screen, the counts may be
/// old: the room list is fetched at once.
fn watch_visibility(chat: ChatState, rooms: RoomFetches) {
    use wasm_bindgen::{closure::Closure, JsCast};

    let visible = || document().visibility_state() == web_sys::VisibilityState::Visible;
    chat.set_visible(visible());
    let on_change = Closure::<dyn Fn()>::new(move || {
        let now_visible = visible();
        chat.set_visible(now_visible);
        if now_visible {
            spawn_local(fetch_rooms(chat, rooms, RoomsBecause::Shown));
        }
    });
    let _ = document()
        .add_event_listener_with_callback("visibilitychange", on_change.as_ref().unchecked_ref());
    // The chat page lives as long as the document: the listener is never removed.
    on_change.forget();
}

/// Takes "NAME is typing…" away when it runs out: one timer, set for the
/// earliest deadline while anybody is shown, and none while nobody is.
/// `shown` says that somebody is (again). Deadlines only move later (a
/// newcomer's is the latest), so the earliest is the one to wait for.
async fn expire_typing(chat: ChatState, mut shown: mpsc::UnboundedReceiver<()>) {
    loop {
        let earliest = chat
            .typing
            .with_untracked(|typing| typing.iter().map(|t| t.until).reduce(f64::min));
        match earliest {
            None => {
                if shown.next().await.is_none() {
                    return;
                }
            }
            Some(until) => {
                let ms = (until - js_sys::Date::now()).max(0.0) + TYPING_EXPIRY_SLACK_MS;
                TimeoutFuture::new(ms as u32).await;
                chat.typing_expire(js_sys::Date::now());
            }
        }
        // What was said while waiting is in the list already.
        while shown.try_recv().is_ok() {}
    }
}
