//! `/ws/chat/`: the upgrade checks, then one socket's life.
//!
//! Each socket has a reader (this task) and a writer task. The writer alone
//! touches the sending half: it drains the socket's bounded queue, pings, and
//! closes with a code when asked. Nothing else ever waits on a client.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use app::protocol::{ServerFrame, HISTORY_PAGE, MAX_RESUME};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        RawQuery, State,
    },
    response::{IntoResponse, Response},
};
use futures::{stream::SplitSink, SinkExt, StreamExt};
use http::HeaderMap;
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit},
    time::Instant,
};

use crate::{
    connections::{close, Closer, Link, Outgoing},
    error::AppError,
    hub::Hub,
    inbound,
    persister::Submission,
    presence::SessionId,
    routes::AppState,
    security, session,
    store::{NewMessage, SessionRow},
};

/// Largest frame a client may send. A message is at most 2,000 characters
/// (8 KB of UTF-8 at worst) plus its JSON envelope; anything bigger is not a
/// chat message and is refused with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// How long a close frame may take to go out before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames written before one flush: a burst costs one syscall, not one each.
const WRITE_BATCH: usize = 64;

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if !security::upgrade_allowed(&state.config, &headers) {
        return Err(AppError::ForeignOrigin);
    }
    let session = session::current(&state, &headers)
        .await?
        .ok_or(AppError::Unauthorized)?;
    let after = parse_after(query.as_deref())?;
    let permit = state
        .connection_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::Full)?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(socket, state, session, after, permit))
        .into_response())
}

/// `?after=ID`: resume after the last message the client has.
fn parse_after(query: Option<&str>) -> Result<Option<i64>, AppError> {
    let Some(query) = query else { return Ok(None) };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "after" {
            return value
                .parse::<i64>()
                .map(Some)
                .map_err(|_| AppError::BadRequest("after must be a message id".into()));
        }
    }
    Ok(None)
}

/// Milliseconds since the socket opened when the client was last heard from.
struct LastHeard {
    start: Instant,
    at_ms: AtomicU64,
}

impl LastHeard {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.at_ms
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }

    fn silent_for(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.at_ms.load(Relaxed)))
    }
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    session: SessionRow,
    after: Option<i64>,
    permit: OwnedSemaphorePermit,
) {
    let hub = state.hub.clone();
    let (mut sink, mut stream) = socket.split();

    let attached = match hub.attach(&session) {
        Ok(attached) => attached,
        Err(_) => {
            let reason = "too many tabs open for this session: close one and retry";
            send_close(&mut sink, close::POLICY, reason).await;
            return;
        }
    };
    let id: SessionId = session.id.as_str().into();
    let (link, rx, closer) = Link::new(state.config.queue_depth);
    // Registered before history is read, so nothing published in between is
    // missed; the writer skips what the welcome already carries.
    let conn = hub.connections().register(id.clone(), link.clone());
    tracing::debug!(user = %attached.name, conn, "socket open");

    let welcomed = welcome(&hub, &attached.name, after, &mut sink).await;
    if let Some(skip_through) = welcomed {
        let heard = Arc::new(LastHeard::new());
        let writer = tokio::spawn(write(
            sink,
            rx,
            closer.clone(),
            skip_through,
            heard.clone(),
            WriterTiming {
                ping_every: state.config.ping_interval(),
                peer_timeout: state.config.peer_timeout(),
            },
            hub.clone(),
        ));
        let reader = Reader {
            hub: &hub,
            link: &link,
            author: &id,
            username: &attached.name,
            rate_per_sec: state.config.rate_per_sec,
        };
        reader.run(&mut stream, writer, &closer, &heard).await;
    }

    // The slot is free before the gauge says so.
    drop(permit);
    hub.connections().remove(conn);
    hub.detach(&id);
    tracing::debug!(user = %attached.name, conn, "socket closed");
}

/// Sends `welcome`. Returns the id through which history was sent (live
/// frames up to it are skipped), or `None` if the socket is already gone.
async fn welcome(
    hub: &Hub,
    username: &str,
    after: Option<i64>,
    sink: &mut SplitSink<WebSocket, Message>,
) -> Option<i64> {
    let history = match after {
        None => hub.store().latest(HISTORY_PAGE).await,
        Some(after) => hub.store().after(after, MAX_RESUME + 1).await,
    };
    let mut history = match history {
        Ok(history) => history,
        Err(error) => {
            tracing::error!(%error, "could not read history");
            send_close(sink, 1011, "could not read history; try again").await;
            return None;
        }
    };
    let complete = history.len() <= MAX_RESUME;
    history.truncate(MAX_RESUME);
    let skip_through = history.last().map(|m| m.id).or(after).unwrap_or(0);
    let frame = ServerFrame::Welcome {
        username: username.to_string(),
        online_users: hub.online(),
        history,
        complete,
    };
    let out = Outgoing::encode(&frame)?;
    sink.send(Message::Text(out.text)).await.ok()?;
    Some(skip_through)
}

async fn send_close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
}

struct WriterTiming {
    ping_every: Duration,
    peer_timeout: Duration,
}

/// The only task that writes to the socket.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    closer: Arc<Closer>,
    skip_through: i64,
    heard: Arc<LastHeard>,
    timing: WriterTiming,
    hub: Hub,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + timing.ping_every, timing.ping_every);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        tokio::select! {
            biased;
            (code, reason) = closer.requested() => {
                send_close(&mut sink, code, reason).await;
                return;
            }
            received = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if received == 0 {
                    return;
                }
            }
            _ = ping.tick() => {
                if heard.silent_for() > timing.peer_timeout {
                    hub.metrics().dropped_clients_total.fetch_add(1, Relaxed);
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        }
        let frames = batch
            .drain(..)
            .filter(|frame| frame.id.is_none_or(|id| id > skip_through))
            .map(|frame| Ok(Message::Text(frame.text)));
        let mut frames = futures::stream::iter(frames);
        tokio::select! {
            biased;
            // Asked to close while the client is not reading: its buffers are
            // too full for a close frame, so just drop it.
            _ = closer.requested() => return,
            sent = sink.send_all(&mut frames) => {
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

/// The reading half: every frame the client sends gets its documented answer.
struct Reader<'a> {
    hub: &'a Hub,
    link: &'a Link,
    author: &'a SessionId,
    username: &'a str,
    rate_per_sec: f64,
}

impl Reader<'_> {
    async fn run(
        &self,
        stream: &mut futures::stream::SplitStream<WebSocket>,
        mut writer: tokio::task::JoinHandle<()>,
        closer: &Closer,
        heard: &LastHeard,
    ) {
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = &mut writer => return,
            };
            heard.touch();
            match item {
                Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    closer.close(close::UNSUPPORTED, "binary frames are not accepted");
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    if is_too_big(&error) {
                        closer.close(close::TOO_BIG, "frame too large: at most 16 KiB");
                    }
                    break;
                }
                None => break,
            }
        }
        // Let the writer send its close frame (or notice the socket is gone).
        closer.close(close::NORMAL, "");
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    async fn on_text(&self, text: &str) {
        let refusal = match inbound::decode(text) {
            Ok(incoming) if self.hub.allow_message(self.author) => {
                let submission = Submission {
                    message: NewMessage {
                        author: self.author.to_string(),
                        username: self.username.to_string(),
                        body: incoming.message,
                        sent_at: String::new(),
                        client_id: incoming.client_id,
                    },
                    reply: Some(self.link.clone()),
                };
                if !self.hub.submit(submission).await {
                    self.link.close(close::GOING_AWAY, "server restarting");
                }
                return;
            }
            Ok(incoming) => ServerFrame::Error {
                code: app::protocol::ErrorCode::RateLimited,
                message: format!("Slow down: at most {} messages a second", self.rate_per_sec),
                client_id: incoming.client_id,
            },
            Err(refusal) => ServerFrame::Error {
                code: refusal.code,
                message: refusal.message,
                client_id: refusal.client_id,
            },
        };
        if let Some(out) = Outgoing::encode(&refusal) {
            self.hub.connections().offer(self.link, out);
        }
    }
}

/// The library ends the stream with this error when a frame is over the limit.
fn is_too_big(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("too big") || text.contains("Space limit")
}
