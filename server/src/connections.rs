//! The sockets this process holds, and the one way frames reach them: a
//! bounded queue per socket, drained by that socket's writer task.
//!
//! Offering a frame never waits. A socket whose queue is full is too slow: it
//! is told to close with 1013 (it will resume with `?after=`), and everyone
//! else carries on.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, OnceLock,
    },
};

use app::protocol::ServerFrame;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, Notify};

use axum::extract::ws::close_code;

use crate::{metrics::Metrics, session::SessionId};

/// One frame, serialised once and shared by every recipient.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The message id, for `message` frames: lets a new socket skip what its
    /// `welcome` already carried.
    pub id: Option<i64>,
    pub text: Utf8Bytes,
}

impl Outgoing {
    /// Serialises a frame once, for any number of recipients.
    pub fn encode(frame: &ServerFrame) -> Option<Self> {
        let id = match frame {
            ServerFrame::Message(message) => Some(message.id),
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
    tx: mpsc::Sender<Outgoing>,
    closer: Arc<Closer>,
}

/// What became of an offered frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The socket is going away anyway.
    Gone,
    /// The queue was full: the socket was told to close with 1013.
    TooSlow,
}

impl Link {
    pub fn new(depth: usize) -> (Self, mpsc::Receiver<Outgoing>, Arc<Closer>) {
        let (tx, rx) = mpsc::channel(depth);
        let closer = Arc::new(Closer::default());
        (
            Self {
                tx,
                closer: closer.clone(),
            },
            rx,
            closer,
        )
    }

    /// Queues a frame without waiting.
    pub fn offer(&self, frame: Outgoing) -> Offer {
        match self.tx.try_send(frame) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self
                    .closer
                    .close(close_code::AGAIN, "too slow: reconnect to catch up")
                {
                    Offer::TooSlow
                } else {
                    Offer::Gone
                }
            }
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

struct Entry {
    session: SessionId,
    link: Link,
}

/// Every socket of this process.
pub struct Connections {
    entries: Mutex<HashMap<ConnId, Entry>>,
    next: AtomicU64,
    metrics: Arc<Metrics>,
    /// Signalled whenever the last socket goes away.
    emptied: Notify,
}

impl Connections {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            metrics,
            emptied: Notify::new(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Entry>> {
        // A panic elsewhere while holding the lock leaves the map intact.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, session: SessionId, link: Link) -> ConnId {
        let id = self.next.fetch_add(1, Relaxed);
        self.entries().insert(id, Entry { session, link });
        self.metrics.connections.fetch_add(1, Relaxed);
        id
    }

    pub fn remove(&self, id: ConnId) {
        let mut entries = self.entries();
        if entries.remove(&id).is_some() {
            self.metrics.connections.fetch_sub(1, Relaxed);
        }
        if entries.is_empty() {
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

    /// Offers one frame to every socket; counts deliveries and drops.
    pub fn broadcast(&self, frame: &Outgoing) {
        let mut delivered = 0;
        let mut dropped = 0;
        for entry in self.entries().values() {
            match entry.link.offer(frame.clone()) {
                Offer::Queued => delivered += 1,
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
        if link.offer(frame) == Offer::TooSlow {
            self.metrics.dropped_clients_total.fetch_add(1, Relaxed);
        }
    }

    /// Closes every socket of one session (it logged out).
    pub fn close_session(&self, session: &SessionId, code: u16, reason: &'static str) {
        for entry in self.entries().values().filter(|e| &e.session == session) {
            entry.link.close(code, reason);
        }
    }

    /// Closes every socket (shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for entry in self.entries().values() {
            entry.link.close(code, reason);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}
