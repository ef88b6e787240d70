//! The browser's end of the socket (WASM only): connect to the page's room,
//! apply frames to [`ChatState`], send what the user queued, and come back
//! after a drop.
//!
//! A drop is followed by a reconnect with exponential backoff and jitter that
//! resumes with `?after=<last id shown>`, so nothing is missed; the store's ids
//! make the overlap harmless (the state keeps each id once). Messages the
//! server has not acknowledged are sent again under the same `client_id`, which
//! the server stores only once.
//!
//! Sending is paced to the server's rate limit, so a backlog (everything typed
//! while offline) goes out as fast as the server accepts it and no faster; a
//! `rate_limited` answer slows the client down and the message goes out again.

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

use crate::chat_state::{Applied, ChatState, Connection, NextSend};
use crate::protocol::{
    ClientFrame, MessagePage, RoomList, ServerFrame, HISTORY_PAGE, SIGNED_OUT_REASON,
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
/// A message unanswered this long means the socket is dead though the browser
/// has not noticed, or the server could not store it (it then sends no ack and
/// counts on the sender to try again). Either way: reconnect, and the message
/// goes out again under its `client_id`.
const ANSWER_TIMEOUT_MS: f64 = 10_000.0;

/// Wakes the current connection's writer; `None` while disconnected.
type Writer = StoredValue<Option<mpsc::UnboundedSender<Nudge>>, LocalStorage>;

/// What wakes the writer.
enum Nudge {
    /// The pending list changed: a message was queued, answered or refused.
    Pending,
    /// The server refused a message for rate.
    SlowDown,
}

/// Starts the socket client for the chat page.
pub fn start(chat: ChatState) {
    let writer: Writer = StoredValue::new_local(None);

    // Whatever the user queues, and every answer, may let a message go out.
    Effect::new(move |_| {
        chat.pending.track();
        writer.with_value(|writer| {
            if let Some(writer) = writer {
                let _ = writer.unbounded_send(Nudge::Pending);
            }
        });
    });

    // Show the state on <body data-ws=...>, for people (via CSS) and tests.
    Effect::new(move |_| {
        let state = chat.connection.get().as_attr();
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-ws", state);
        }
    });

    spawn_local(run(chat, writer, watch_network()));
}

/// How one connection ended.
enum Ended {
    /// The server ended this session (logout elsewhere): back to the login page.
    SignedOut,
    /// Anything else: try again. `welcomed` says whether it got as far as `welcome`.
    Dropped { welcomed: bool },
}

async fn run(chat: ChatState, writer: Writer, mut network: mpsc::UnboundedReceiver<Network>) {
    let mut failures: i32 = 0;
    loop {
        let opened_at = js_sys::Date::now();
        match connect(chat, writer, &mut network).await {
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
    network: &mut mpsc::UnboundedReceiver<Network>,
) -> Ended {
    let after = chat.last_id();
    let url = chat.room.with_value(|room| socket_url(room, after));
    let Ok(socket) = WebSocket::open(&url) else {
        return Ended::Dropped { welcomed: false };
    };
    let (sink, stream) = socket.split();
    let (nudge, nudges) = mpsc::unbounded();
    let reading = pin!(read(chat, stream, network, writer, nudge, after.is_some()));
    let writing = pin!(write(chat, sink, nudges));
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
                    Applied::RateLimited => {
                        let _ = nudge.unbounded_send(Nudge::SlowDown);
                    }
                    Applied::Welcomed | Applied::ReloadLatest if welcomed => {}
                    applied => {
                        welcomed = true;
                        if applied == Applied::ReloadLatest {
                            spawn_local(fetch_page(chat, None));
                        }
                        // Rooms made or visited elsewhere since the last look.
                        spawn_local(fetch_rooms(chat));
                        // Everything unacknowledged goes out again on this socket.
                        chat.pending.update_untracked(|pending| {
                            pending.iter_mut().for_each(|p| p.sent = false)
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
/// [`ChatState::next_to_send`]), paced by a [`TokenBucket`]. Sleeps until a
/// nudge, a token or an answer's deadline: never spins.
async fn write(
    chat: ChatState,
    mut sink: SplitSink<WebSocket, Message>,
    mut nudges: mpsc::UnboundedReceiver<Nudge>,
) {
    // Nothing goes out before `welcome`, which may settle some of the pending
    // messages; its nudge is the first.
    if nudges.next().await.is_none() {
        return;
    }
    // Full on every connection: by the time a reconnect succeeds the server's
    // bucket has usually refilled, and when it has not, the retry covers it.
    let mut bucket = TokenBucket::full(js_sys::Date::now());
    let mut sent_at = 0.0;
    loop {
        let now = js_sys::Date::now();
        let wait_ms = match chat.next_to_send() {
            NextSend::Idle => None,
            NextSend::Awaiting => {
                let left = ANSWER_TIMEOUT_MS - (now - sent_at);
                if left <= 0.0 {
                    return;
                }
                Some(left.min(ANSWER_TIMEOUT_MS))
            }
            NextSend::Send { client_id, text } => match bucket.take(now) {
                Err(wait_ms) => Some(wait_ms),
                Ok(()) => {
                    let frame = ClientFrame::Message {
                        message: text,
                        client_id: Some(client_id.clone()),
                    };
                    // Plain strings always encode; this only keeps `unwrap` out.
                    let Ok(json) = serde_json::to_string(&frame) else {
                        return;
                    };
                    chat.mark_sent(&client_id);
                    if sink.send(Message::Text(json)).await.is_err() {
                        return;
                    }
                    sent_at = now;
                    continue;
                }
            },
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
        let mut slow_down = matches!(first, Nudge::SlowDown);
        while let Ok(next) = nudges.try_recv() {
            slow_down |= matches!(next, Nudge::SlowDown);
        }
        if slow_down {
            bucket.refused(js_sys::Date::now());
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

/// "Load earlier messages".
pub fn load_earlier(chat: ChatState) {
    if let Some(first) = chat.first_id() {
        spawn_local(fetch_page(chat, Some(first)));
    }
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

/// Adds the rooms the server lists for this session to the room list. A
/// failure leaves the list as it is; the next `welcome` asks again.
async fn fetch_rooms(chat: ChatState) {
    let Ok(response) = gloo_net::http::Request::get("/api/rooms").send().await else {
        return;
    };
    if !response.ok() {
        return;
    }
    if let Ok(list) = response.json::<RoomList>().await {
        chat.add_rooms(list.rooms.into_iter().map(|room| room.name));
    }
}

/// A fresh idempotency key for one outgoing message.
pub fn new_client_id() -> String {
    let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{:x}-{a:x}-{b:x}", js_sys::Date::now() as u64)
}
