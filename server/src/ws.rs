//! `/ws/chat/`: the upgrade checks, then one socket's life.
//!
//! Each socket has a reader (this task) and a writer task. The writer alone
//! touches the sending half: it sends the `welcome`, drains the socket's
//! bounded queue, pings, drops a silent or stalled peer, and closes with a
//! code when asked. Nothing else ever waits on a client.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use app::protocol::{ErrorCode, ServerFrame};
use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        RawQuery, State,
    },
    response::{IntoResponse, Response},
};
use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use http::HeaderMap;
use tokio::{
    task::JoinHandle,
    time::{timeout_at, Instant, MissedTickBehavior},
};

use crate::{
    auth,
    connections::{Closer, Link, Outgoing, Queue},
    error::AppError,
    hub::Hub,
    inbound::{self, Inbound},
    persister::Submission,
    presence::{Rate, TokenBucket},
    security,
    session::SessionId,
    state::AppState,
    store::{NewChange, NewMessage, SessionRow, Write},
};

/// Largest frame a client may send. A message is at most 2,000 characters
/// (8 KB of UTF-8 at worst) plus its JSON envelope; anything bigger is not a
/// chat message and is refused with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Bytes read from a socket at a time. The library's default (128 KiB,
/// allocated for every socket) would make an idle socket cost over 100 KB;
/// chat frames are small, and a 16 KiB one just takes a few more reads.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Bytes gathered before they are written out (a flush writes them anyway).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// The most a socket's write buffer may hold while the client is not
/// reading: above the largest frame, a `welcome` of about 1 MB.
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// How long a close frame may take to go out before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Queue entries (each a single frame or a whole broadcast batch) written
/// before one flush: a burst costs one syscall, not one each.
const WRITE_BATCH: usize = 64;
/// Frames refused for the rate (less those allowed since) before the
/// socket is closed with 1008: a client that paces itself never gets near
/// it, a flood stops costing parses.
const FLOOD_STRIKES: u32 = 50;
/// `typing` and `read` frames a socket may send, a second and in a burst:
/// a client sends each at most every 2 s. They have an allowance of their
/// own, so they never take a message's place in the rate limit.
const SIGNALS: Rate = Rate {
    per_sec: 2.0,
    burst: 6.0,
};

pub async fn upgrade(
    State(state): State<AppState>,
    crate::limits::ClientAddr(client): crate::limits::ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if !security::upgrade_allowed(&state.config, &headers) {
        return Err(AppError::ForeignOrigin);
    }
    let session = auth::current(&state, &headers)
        .await?
        .ok_or(AppError::Unauthorized)?;
    let Place { room, after } = parse_query(query.as_deref())?;
    // This address's share first, so one address over its cap is told so
    // (429) rather than taking a server-wide slot from anyone else.
    let address_slot = state.limits.socket(client)?;
    let permit = state
        .connection_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::Full)?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            serve(
                socket,
                state,
                session,
                Place { room, after },
                (permit, address_slot),
            )
        })
        .into_response())
}

/// Where a socket goes: its room, and the last message the client has.
struct Place {
    room: Arc<str>,
    after: Option<i64>,
}

/// `?room=NAME` (the lobby without it) and `?after=ID` (resume after it).
fn parse_query(query: Option<&str>) -> Result<Place, AppError> {
    let mut place = Place {
        room: app::room::LOBBY.into(),
        after: None,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "after" => {
                let after = value
                    .parse::<i64>()
                    .map_err(|_| AppError::BadRequest("after must be a message id".into()))?;
                place.after = Some(after);
            }
            "room" => place.room = crate::names::room(&value)?.into(),
            _ => {}
        }
    }
    Ok(place)
}

/// When the client was last heard from (any frame, pongs included), as
/// milliseconds since the socket opened: shared by the reader and the writer
/// without a lock.
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

    /// When the peer counts as gone if nothing more is heard.
    fn deadline(&self, peer_timeout: Duration) -> Instant {
        self.start + Duration::from_millis(self.at_ms.load(Relaxed)) + peer_timeout
    }
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    session: SessionRow,
    Place { room, after }: Place,
    permit: impl Send + 'static,
) {
    // Only what the socket needs is kept for its life, not the whole state
    // (the block moves it, so the rest is dropped here).
    let AppState { hub, config, .. } = { state };
    let (mut sink, mut stream) = socket.split();
    let (link, queue, closer) = Link::new(config.queue_depth);
    // Registered before history is read, so nothing published in between is
    // missed; the writer skips what the welcome already carries. The guard
    // unregisters the socket however this task ends.
    // Joining and reading history run once, boxed: their state would
    // otherwise stay in this task's future, in every socket, for its life.
    let guard = match Box::pin(hub.open_socket(&session, room.clone(), link.clone())).await {
        Ok(guard) => guard,
        Err(refused) => {
            if let crate::hub::Refused::Store(error) = &refused {
                tracing::error!(%error, "could not read a session");
            }
            let (code, reason) = refused.close_frame();
            send_close(&mut sink, code, reason).await;
            return;
        }
    };
    tracing::debug!(user = %guard.name, "socket open");
    let welcome = match Box::pin(hub.history(&room, after)).await {
        Ok(history) => {
            let frame = ServerFrame::Welcome {
                room: room.to_string(),
                username: guard.name.clone(),
                author: crate::session::author_tag(&session.id),
                online_users: hub.online(Some(&room)),
                history: history.messages,
                complete: history.complete,
            };
            // A resume's replayed edits and deletions follow the welcome.
            std::iter::once(&frame)
                .chain(&history.changes)
                .map(|frame| Outgoing::encode(frame).map(|out| out.text))
                .collect::<Option<Vec<_>>>()
                .map(|opening| (opening, history.skip_through))
        }
        Err(error) => {
            tracing::error!(%error, "could not read history");
            None
        }
    };
    let Some((opening, skip_through)) = welcome else {
        send_close(
            &mut sink,
            close_code::ERROR,
            "could not read history; try again",
        )
        .await;
        return;
    };

    let heard = Arc::new(LastHeard::new());
    let writer = tokio::spawn(write(
        sink,
        queue,
        closer.clone(),
        Writing {
            opening,
            skip_through,
            heard: heard.clone(),
            ping_every: config.ping_interval(),
            peer_timeout: config.peer_timeout(),
            hub: hub.clone(),
        },
    ));
    let reader = Reader {
        hub: &hub,
        link: &link,
        author: &SessionId::from_stored(&session.id),
        room: &room,
        username: &guard.name,
        rate_per_sec: config.rate_per_sec,
    };
    reader.run(&mut stream, writer, &closer, &heard).await;
    tracing::debug!(user = %guard.name, "socket closed");
    // The slot is free before the gauge says so.
    drop(permit);
    drop(guard);
}

async fn send_close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
}

/// What the writer needs besides the socket and its queue.
struct Writing {
    /// The first frames, serialised: the welcome and a resume's changes.
    /// Taken when written, so an idle socket does not keep them.
    opening: Vec<Utf8Bytes>,
    /// Live frames up to this log id are already in the opening frames.
    skip_through: i64,
    heard: Arc<LastHeard>,
    ping_every: Duration,
    peer_timeout: Duration,
    hub: Hub,
}

/// Whether the writer goes on after a write.
enum Wrote {
    Done,
    /// The socket is finished: closed, gone, silent or stalled.
    Stop,
}

/// The only task that writes to the socket. Every write, the welcome
/// included, runs under the same rules: a close request is honoured (the
/// write in flight finishes first, then the close frame, within
/// [`CLOSE_TIMEOUT`]), and a write that cannot complete within the peer
/// timeout means the client stopped reading.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: Queue,
    closer: Arc<Closer>,
    mut how: Writing,
) {
    let closing = closer.requested();
    tokio::pin!(closing);
    let opening = std::mem::take(&mut how.opening)
        .into_iter()
        .map(Message::Text)
        .collect();
    if let Wrote::Stop = write_frames(&mut sink, opening, closing.as_mut(), &how).await {
        return;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + how.ping_every, how.ping_every);
    // A late tick is not made up with a burst of pings.
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence = tokio::time::sleep_until(how.heard.deadline(how.peer_timeout));
    tokio::pin!(silence);
    // Grows on first use: an idle socket keeps no buffer.
    let mut batch = Vec::new();
    loop {
        // Checked on every turn, ahead of the queue: a peer that stopped
        // answering is dropped on time even while messages flow.
        silence.as_mut().reset(how.heard.deadline(how.peer_timeout));
        let frames = tokio::select! {
            biased;
            (code, reason) = &mut closing => {
                send_close(&mut sink, code, reason).await;
                return;
            }
            _ = &mut silence => {
                if Instant::now() >= how.heard.deadline(how.peer_timeout) {
                    how.hub.metrics().dropped_clients_total.fetch_add(1, Relaxed);
                    return;
                }
                continue;
            }
            _ = ping.tick() => vec![Message::Ping(Default::default())],
            received = queue.recv_many(&mut batch, WRITE_BATCH) => {
                if received == 0 {
                    return;
                }
                let frames = batch
                    .iter()
                    .flat_map(|frames| frames.iter())
                    .filter(|frame| frame.id.is_none_or(|id| id > how.skip_through))
                    .map(|frame| Message::Text(frame.text.clone()))
                    .collect();
                batch.clear();
                frames
            }
        };
        if let Wrote::Stop = write_frames(&mut sink, frames, closing.as_mut(), &how).await {
            return;
        }
    }
}

/// Writes `frames` with one flush, under the writer's rules.
async fn write_frames(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: Vec<Message>,
    mut closing: Pin<&mut impl Future<Output = (u16, &'static str)>>,
    how: &Writing,
) -> Wrote {
    if frames.is_empty() {
        return Wrote::Done;
    }
    let mut frames = futures::stream::iter(frames.into_iter().map(Ok));
    let asked = {
        let send = sink.send_all(&mut frames);
        tokio::pin!(send);
        tokio::select! {
            biased;
            sent = &mut send => return if sent.is_ok() { Wrote::Done } else { Wrote::Stop },
            why = &mut closing => {
                // Finish what is in flight, then close, all within the close
                // timeout; only a client whose buffers stay full is dropped
                // without its close frame.
                let deadline = Instant::now() + CLOSE_TIMEOUT;
                matches!(timeout_at(deadline, &mut send).await, Ok(Ok(())))
                    .then_some((why, deadline))
            }
            _ = tokio::time::sleep(how.peer_timeout) => {
                // The client has not taken a byte for the whole peer timeout.
                how.hub.metrics().dropped_clients_total.fetch_add(1, Relaxed);
                None
            }
        }
    };
    if let Some(((code, reason), deadline)) = asked {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = timeout_at(deadline, sink.send(frame)).await;
    }
    Wrote::Stop
}

/// The reading half: every frame the client sends gets its documented answer.
struct Reader<'a> {
    hub: &'a Hub,
    link: &'a Link,
    author: &'a SessionId,
    room: &'a Arc<str>,
    username: &'a str,
    rate_per_sec: f64,
}

impl Reader<'_> {
    async fn run(
        &self,
        stream: &mut SplitStream<WebSocket>,
        mut writer: JoinHandle<()>,
        closer: &Closer,
        heard: &LastHeard,
    ) {
        // Refusals for rate, less one for each frame allowed: a client that
        // paces itself stays near zero, a flood climbs whatever its speed.
        let mut strikes: u32 = 0;
        let mut signals = TokenBucket::full(SIGNALS);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = &mut writer => return,
            };
            heard.touch();
            let allowed = match &item {
                Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), &mut signals).await,
                // Control frames are frames too: a browser sends a pong per
                // server ping, one token every 20 s.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    self.hub.allow_frame(self.author, None)
                }
                _ => true,
            };
            strikes = if allowed {
                strikes.saturating_sub(1)
            } else {
                strikes + 1
            };
            if strikes >= FLOOD_STRIKES {
                closer.close(close_code::POLICY, "sending too fast");
                break;
            }
            match item {
                // A close is answered by the library; the stream ends next.
                Some(Ok(
                    Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Close(_),
                )) => {}
                Some(Ok(Message::Binary(_))) => {
                    closer.close(close_code::UNSUPPORTED, "binary frames are not accepted");
                    break;
                }
                None => break,
                Some(Err(error)) => {
                    if is_too_big(&error) {
                        closer.close(close_code::SIZE, "frame too large: at most 16 KiB");
                    }
                    break;
                }
            }
        }
        // Let the writer send its close frame (or notice the socket is gone).
        closer.close(close_code::NORMAL, "");
        if tokio::time::timeout(CLOSE_TIMEOUT * 2, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    /// Answers one text frame. Every message or refused frame costs a token
    /// from the user's rate budget (only the resend of a message already
    /// stored is free); `typing` and `read` come out of the socket's own
    /// allowance and are dropped without an answer when it is spent. False
    /// when the frame was over its budget.
    async fn on_text(&self, text: &str, signals: &mut TokenBucket) -> bool {
        let decoded = match inbound::decode(text) {
            Ok(Inbound::Typing) => {
                let allowed = signals.take(SIGNALS, std::time::Instant::now());
                if allowed {
                    self.hub.typing(self.author, self.room);
                }
                return allowed;
            }
            Ok(Inbound::Read(id)) => {
                let allowed = signals.take(SIGNALS, std::time::Instant::now());
                if allowed {
                    self.hub.mark_read(self.author, self.room, id);
                }
                return allowed;
            }
            Ok(Inbound::Message(incoming)) => Ok(Write::Post(NewMessage {
                author: self.author.as_str().to_string(),
                room: self.room.to_string(),
                username: self.username.to_string(),
                body: incoming.message,
                sent_at: String::new(),
                client_id: incoming.client_id,
            })),
            Ok(Inbound::Edit {
                id,
                text,
                client_id,
            }) => Ok(self.change(id, Some(text), client_id)),
            Ok(Inbound::Delete { id, client_id }) => Ok(self.change(id, None, client_id)),
            Err(refusal) => Err(refusal),
        };
        let client_id = match &decoded {
            Ok(Write::Post(message)) => message.client_id.as_deref(),
            Ok(Write::Change(change)) => change.client_id.as_deref(),
            Err(_) => None,
        };
        let allowed = self.hub.allow_frame(self.author, client_id);
        let refusal = match decoded {
            Ok(write) if allowed => {
                let submission = Submission {
                    write,
                    reply: Some(self.link.clone()),
                };
                if !self.hub.submit(submission).await {
                    self.link.close(close_code::AWAY, "server restarting");
                }
                return true;
            }
            Ok(Write::Post(message)) => self.rate_limited(message.client_id),
            Ok(Write::Change(change)) => self.rate_limited(change.client_id),
            Err(refusal) if allowed => ServerFrame::Error {
                code: refusal.code,
                message: refusal.message,
                client_id: refusal.client_id,
            },
            Err(refusal) => self.rate_limited(refusal.client_id),
        };
        if let Some(out) = Outgoing::encode(&refusal) {
            self.hub.connections().offer(self.link, out);
        }
        allowed
    }

    /// An edit (with its new text) or deletion of message `target`, asked
    /// for by this socket's user in its room.
    fn change(&self, target: i64, edit: Option<String>, client_id: Option<String>) -> Write {
        Write::Change(NewChange {
            author: self.author.as_str().to_string(),
            room: self.room.to_string(),
            username: self.username.to_string(),
            target,
            edit,
            at: String::new(),
            client_id,
        })
    }

    fn rate_limited(&self, client_id: Option<String>) -> ServerFrame {
        self.hub.metrics().rate_limited_total.fetch_add(1, Relaxed);
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: format!("Slow down: at most {} messages a second", self.rate_per_sec),
            client_id,
        }
    }
}

/// The library ends the stream with this error when a frame is over the limit.
fn is_too_big(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("too big") || text.contains("Space limit")
}
