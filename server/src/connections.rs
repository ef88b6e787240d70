//! The sockets this process holds, and the one way frames reach them: a
//! bounded queue per socket, drained by that socket's writer task.
//!
//! Frames travel in [`Frames`]: a batch serialised once and shared by every
//! recipient, so a broadcast of many messages costs each socket one queue
//! entry, one wake-up and one flush.
//!
//! Offering frames never waits. A socket whose queue holds too many frames is
//! too slow: it is told to close with 1013 (it will resume with `?after=`),
//! and everyone else carries on.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex, OnceLock,
    },
};

use app::protocol::{ChatMessage, ServerFrame};
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, Notify};

use axum::extract::ws::close_code;

use crate::{metrics::Metrics, session::SessionId};

/// One frame, serialised once and shared by every recipient.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The log id, for `message`, `edited` and `deleted` frames: lets a new
    /// socket skip what its `welcome` already carried.
    pub id: Option<i64>,
    pub text: Utf8Bytes,
}

/// Frames queued together: one broadcast batch, or a single frame.
pub type Frames = Arc<[Outgoing]>;

impl Outgoing {
    /// This frame alone, ready for a queue.
    pub fn alone(self) -> Frames {
        Arc::new([self])
    }

    /// Serialises a frame once, for any number of recipients.
    pub fn encode(frame: &ServerFrame) -> Option<Self> {
        let id = match frame {
            ServerFrame::Message(ChatMessage { id, .. })
            | ServerFrame::Edited { id, .. }
            | ServerFrame::Deleted { id, .. } => Some(*id),
            _ => None,
        };
        match serde_json::to_string(frame) {
            Ok(text) => Some(Self {
                id,
                text: text.into(),
            }),
            Err(error) => {
                tracing::error!(%error, "a frame did not serialise");
                None
            }
        }
    }
}

/// Tells a socket's writer to close, once, with a code and reason.
#[derive(Debug, Default)]
pub struct Closer {
    why: OnceLock<(u16, &'static str)>,
    notify: Notify,
}

impl Closer {
    /// Asks for a close; the first request wins. True if this one did.
    pub fn close(&self, code: u16, reason: &'static str) -> bool {
        let first = self.why.set((code, reason)).is_ok();
        if first {
            self.notify.notify_one();
        }
        first
    }

    /// Whether a close was asked for already.
    pub fn is_closing(&self) -> bool {
        self.why.get().is_some()
    }

    /// Resolves once a close was asked for.
    pub async fn requested(&self) -> (u16, &'static str) {
        loop {
            if let Some(why) = self.why.get() {
                return *why;
            }
            self.notify.notified().await;
        }
    }
}

/// The sending side of one socket.
#[derive(Clone, Debug)]
pub struct Link {
    tx: mpsc::Sender<Frames>,
    /// Frames in the queue (a batch counts each of its frames).
    queued: Arc<AtomicUsize>,
    depth: usize,
    closer: Arc<Closer>,
}

/// What became of offered frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The socket is going away anyway.
    Gone,
    /// The queue was full: the socket was told to close with 1013.
    TooSlow,
}

/// The receiving side of one socket's queue, for its writer.
pub struct Queue {
    rx: mpsc::Receiver<Frames>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    /// Waits for queued frames and moves up to `limit` entries into `into`;
    /// 0 once the queue is closed and empty.
    pub async fn recv_many(&mut self, into: &mut Vec<Frames>, limit: usize) -> usize {
        let start = into.len();
        let received = self.rx.recv_many(into, limit).await;
        let frames: usize = into[start..].iter().map(|frames| frames.len()).sum();
        self.queued.fetch_sub(frames, Relaxed);
        received
    }
}

impl Link {
    /// A socket's link and queue; at most `depth` frames wait in it.
    pub fn new(depth: usize) -> (Self, Queue, Arc<Closer>) {
        let (tx, rx) = mpsc::channel(depth);
        let queued = Arc::new(AtomicUsize::new(0));
        let closer = Arc::new(Closer::default());
        (
            Self {
                tx,
                queued: queued.clone(),
                depth,
                closer: closer.clone(),
            },
            Queue { rx, queued },
            closer,
        )
    }

    /// Queues frames without waiting.
    pub fn offer(&self, frames: Frames) -> Offer {
        let count = frames.len();
        // An empty queue takes any batch: a batch larger than the depth is
        // not a slow client.
        let before = self.queued.fetch_add(count, Relaxed);
        if before > 0 && before + count > self.depth {
            self.queued.fetch_sub(count, Relaxed);
            return self.too_slow();
        }
        match self.tx.try_send(frames) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(count, Relaxed);
                Offer::Gone
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(count, Relaxed);
                self.too_slow()
            }
        }
    }

    fn too_slow(&self) -> Offer {
        if self
            .closer
            .close(close_code::AGAIN, "too slow: reconnect to catch up")
        {
            Offer::TooSlow
        } else {
            Offer::Gone
        }
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        self.closer.close(code, reason);
    }

    pub fn is_closing(&self) -> bool {
        self.closer.is_closing()
    }
}

/// A registered socket's id.
pub type ConnId = u64;

/// Where a socket is.
struct Entry {
    session: SessionId,
    room: Arc<str>,
}

#[derive(Default)]
struct Sockets {
    entries: HashMap<ConnId, Entry>,
    /// Per room, its sockets' links: a broadcast walks one room only.
    rooms: HashMap<Arc<str>, HashMap<ConnId, Link>>,
}

impl Sockets {
    fn links(&self) -> impl Iterator<Item = &Link> {
        self.rooms.values().flat_map(|links| links.values())
    }
}

/// Every socket of this process.
pub struct Connections {
    sockets: Mutex<Sockets>,
    next: AtomicU64,
    metrics: Arc<Metrics>,
    /// Signalled whenever the last socket goes away.
    emptied: Notify,
    /// Set by [`Connections::close_all`]: a socket registered after it is
    /// closed at once, so none opens unnoticed while the server stops.
    closed_with: OnceLock<(u16, &'static str)>,
}

impl Connections {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            sockets: Mutex::new(Sockets::default()),
            next: AtomicU64::new(1),
            metrics,
            emptied: Notify::new(),
            closed_with: OnceLock::new(),
        }
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, Sockets> {
        // A panic elsewhere while holding the lock leaves the maps intact.
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, session: SessionId, room: Arc<str>, link: Link) -> ConnId {
        let id = self.next.fetch_add(1, Relaxed);
        let mut sockets = self.sockets();
        if let Some((code, reason)) = self.closed_with.get() {
            link.close(*code, reason);
        }
        sockets
            .rooms
            .entry(room.clone())
            .or_default()
            .insert(id, link);
        sockets.entries.insert(id, Entry { session, room });
        drop(sockets);
        self.metrics.connections.fetch_add(1, Relaxed);
        id
    }

    pub fn remove(&self, id: ConnId) {
        let mut sockets = self.sockets();
        if let Some(entry) = sockets.entries.remove(&id) {
            if let Some(links) = sockets.rooms.get_mut(&entry.room) {
                links.remove(&id);
                if links.is_empty() {
                    sockets.rooms.remove(&entry.room);
                }
            }
            self.metrics.connections.fetch_sub(1, Relaxed);
        }
        if sockets.entries.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until every socket has gone, so their close
    /// frames are out before the process exits.
    pub async fn drained(&self, limit: std::time::Duration) {
        let wait = async {
            loop {
                let emptied = self.emptied.notified();
                if self.is_empty() {
                    return;
                }
                emptied.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// Offers frames to every socket in `room`; counts deliveries and drops.
    pub fn broadcast(&self, room: &str, frames: &Frames) {
        let mut delivered = 0;
        let mut dropped = 0;
        let sockets = self.sockets();
        for link in sockets.rooms.get(room).into_iter().flat_map(|l| l.values()) {
            match link.offer(frames.clone()) {
                Offer::Queued => delivered += frames.len() as u64,
                Offer::TooSlow => dropped += 1,
                Offer::Gone => {}
            }
        }
        self.metrics.deliveries_total.fetch_add(delivered, Relaxed);
        self.metrics
            .dropped_clients_total
            .fetch_add(dropped, Relaxed);
    }

    /// Offers one frame to one socket's queue, counting a drop.
    pub fn offer(&self, link: &Link, frame: Outgoing) {
        if link.offer(frame.alone()) == Offer::TooSlow {
            self.metrics.dropped_clients_total.fetch_add(1, Relaxed);
        }
    }

    /// Closes every socket of one session (it logged out).
    pub fn close_session(&self, session: &SessionId, code: u16, reason: &'static str) {
        let sockets = self.sockets();
        for (id, entry) in sockets
            .entries
            .iter()
            .filter(|(_, e)| &e.session == session)
        {
            if let Some(link) = sockets.rooms.get(&entry.room).and_then(|l| l.get(id)) {
                link.close(code, reason);
            }
        }
    }

    /// Closes every socket, and any registered from now on (shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let sockets = self.sockets();
        let _ = self.closed_with.set((code, reason));
        for link in sockets.links() {
            link.close(code, reason);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sockets().entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Frames {
        (0..n)
            .map(|i| Outgoing {
                id: Some(i as i64),
                text: format!("{i}").into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_queue_counts_frames_not_batches() {
        let (link, mut queue, closer) = Link::new(4);
        // An empty queue takes a batch of any size.
        assert_eq!(link.offer(frames(6)), Offer::Queued);
        let mut taken = Vec::new();
        assert_eq!(queue.recv_many(&mut taken, 8).await, 1);
        assert_eq!(link.offer(frames(3)), Offer::Queued);
        assert_eq!(link.offer(frames(1)), Offer::Queued);
        // Five frames would be over the depth of four: too slow.
        assert_eq!(link.offer(frames(1)), Offer::TooSlow);
        assert!(closer.is_closing());
        // Asked once: later offers just find it going.
        assert_eq!(link.offer(frames(1)), Offer::Gone);
        taken.clear();
        assert_eq!(queue.recv_many(&mut taken, 8).await, 2);
        assert_eq!(taken.iter().map(|f| f.len()).sum::<usize>(), 4);
        assert_eq!(link.offer(frames(4)), Offer::Queued);
    }
}
