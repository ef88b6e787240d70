//! The browser's end of the socket (WASM only): connect, apply frames to
//! [`ChatState`], send what the user queued, and come back after a drop.
//!
//! A drop is followed by a reconnect with exponential backoff and jitter that
//! resumes with `?after=<last id shown>`, so nothing is missed; the store's ids
//! make the overlap harmless (the state keeps each id once). Messages the
//! server has not acknowledged are sent again under the same `client_id`, which
//! the server stores only once.

use futures::{
    channel::mpsc,
    future::{select, Either},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chat_state::{Applied, ChatState, Connection};
use crate::protocol::{ClientFrame, MessagePage, ServerFrame, HISTORY_PAGE, SIGNED_OUT_REASON};

/// First retry delay; doubles per failed attempt.
const BACKOFF_START_MS: f64 = 250.0;
/// Longest wait between attempts.
const BACKOFF_MAX_MS: f64 = 10_000.0;

/// Starts the socket client for the chat page.
pub fn start(chat: ChatState) {
    // The writer of the current connection; `None` while disconnected.
    let outbox: StoredValue<Option<mpsc::UnboundedSender<String>>, LocalStorage> =
        StoredValue::new_local(None);

    // Whatever the user queued goes out as soon as a connection is open.
    Effect::new(move |_| {
        let open = chat.connection.get() == Connection::Open;
        chat.pending.track();
        if open {
            flush_pending(chat, outbox);
        }
    });

    // Show the state on <body data-ws=...>, for people (via CSS) and tests.
    Effect::new(move |_| {
        let state = chat.connection.get().as_attr();
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-ws", state);
        }
    });

    spawn_local(run(chat, outbox, watch_network()));
}

/// Writes every unsent, unrefused pending message to the open socket.
fn flush_pending(
    chat: ChatState,
    outbox: StoredValue<Option<mpsc::UnboundedSender<String>>, LocalStorage>,
) {
    outbox.with_value(|tx| {
        let Some(tx) = tx else { return };
        chat.pending.update_untracked(|pending| {
            for p in pending.iter_mut().filter(|p| !p.sent && p.failed.is_none()) {
                let frame = ClientFrame::Message {
                    message: p.text.clone(),
                    client_id: Some(p.client_id.clone()),
                };
                if let Ok(json) = serde_json::to_string(&frame) {
                    p.sent = tx.unbounded_send(json).is_ok();
                }
            }
        });
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
    outbox: StoredValue<Option<mpsc::UnboundedSender<String>>, LocalStorage>,
    mut network: mpsc::UnboundedReceiver<Network>,
) {
    let mut failures: i32 = 0;
    loop {
        match connect(chat, outbox, &mut network).await {
            Ended::SignedOut => return go_to_login(),
            Ended::Dropped { welcomed: true } => failures = 0,
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
        let mut wait = gloo_timers::future::TimeoutFuture::new(delay as u32);
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

/// One connection, from open to close.
async fn connect(
    chat: ChatState,
    outbox: StoredValue<Option<mpsc::UnboundedSender<String>>, LocalStorage>,
    network: &mut mpsc::UnboundedReceiver<Network>,
) -> Ended {
    let after = chat.last_id();
    let Ok(socket) = WebSocket::open(&socket_url(after)) else {
        return Ended::Dropped { welcomed: false };
    };
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded::<String>();
    spawn_local(async move {
        while let Some(text) = rx.next().await {
            if sink.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    });

    let mut welcomed = false;
    let mut ended = None;
    loop {
        let item = match select(stream.next(), network.next()).await {
            Either::Left((Some(item), _)) => item,
            Either::Left((None, _)) => break,
            // The browser lost its network: this socket is dead even if it
            // has not noticed yet.
            Either::Right((Some(Network::Offline), _)) => break,
            Either::Right(_) => continue,
        };
        match item {
            Ok(Message::Text(text)) => {
                let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                    continue;
                };
                match chat.apply(frame, after.is_some()) {
                    Applied::Nothing => {}
                    Applied::Welcomed | Applied::ReloadLatest if welcomed => {}
                    applied => {
                        welcomed = true;
                        if applied == Applied::ReloadLatest {
                            spawn_local(fetch_page(chat, None));
                        }
                        // Everything unacknowledged goes out again on this socket.
                        chat.pending.update_untracked(|pending| {
                            pending.iter_mut().for_each(|p| p.sent = false)
                        });
                        outbox.set_value(Some(tx.clone()));
                        chat.connection.set(Connection::Open);
                    }
                }
            }
            Ok(Message::Bytes(_)) => {}
            Err(WebSocketError::ConnectionClose(close)) => {
                if close.reason == SIGNED_OUT_REASON {
                    ended = Some(Ended::SignedOut);
                }
                break;
            }
            Err(_) => {}
        }
    }
    outbox.set_value(None);
    ended.unwrap_or(Ended::Dropped { welcomed })
}

fn socket_url(after: Option<i64>) -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    match after {
        Some(id) => format!("{scheme}://{host}/ws/chat/?after={id}"),
        None => format!("{scheme}://{host}/ws/chat/"),
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
    let url = match before {
        Some(id) => format!("/api/messages?before={id}&limit={HISTORY_PAGE}"),
        None => format!("/api/messages?limit={HISTORY_PAGE}"),
    };
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

/// A fresh idempotency key for one outgoing message.
pub fn new_client_id() -> String {
    let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{:x}-{a:x}-{b:x}", js_sys::Date::now() as u64)
}
