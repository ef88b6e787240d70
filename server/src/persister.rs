//! The one writer of messages of this server. Sockets hand it what they
//! accepted; it stores whatever has queued up in one transaction (one sync
//! to disk per batch, not per message), tells the other servers, and hands
//! the batch and its acks to `delivery`, which broadcasts in id order.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::Duration,
};

use app::protocol::{ErrorCode, ServerFrame};
use axum::extract::ws::close_code;
use tokio::sync::{mpsc, Notify};

use crate::{
    bus::Bus,
    connections::{Connections, Link, Outgoing},
    delivery::Batch,
    lock,
    metrics::Metrics,
    presence::Presence,
    session::SessionId,
    store::{Appended, Entry, Store, StoreError, Stored, Write, WriteRefused, Written},
};

/// Largest batch per transaction: bounds the latency of the first message in it.
const MAX_BATCH: usize = 512;

/// The batch size for sockets that queue at most `queue_depth` frames: half
/// of it, so a whole batch and the acks after it fit in a socket's queue.
pub fn batch_for(queue_depth: usize) -> usize {
    (queue_depth / 2).clamp(1, MAX_BATCH)
}
/// Accepted messages waiting for the writer; a sender waits when it is full.
pub const QUEUE: usize = 4_096;
/// Attempts at a failing batch (a busy or briefly unreachable database).
const ATTEMPTS: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How long one attempt may take: a database that does not answer counts
/// as failing, so its senders hear of it.
const APPEND_WITHIN: Duration = Duration::from_secs(10);
/// What a sender whose message could not be stored is told.
const NOT_STORED: &str = "The chat cannot store messages right now: yours will be sent again \
     as soon as it can.";

/// One accepted message, edit or deletion, and where its ack or refusal goes.
pub struct Submission {
    pub write: Write,
    pub reply: Option<Link>,
}

pub struct Persister {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    /// Where stored entries go to be broadcast (see `delivery`).
    pub delivery: mpsc::Sender<Batch>,
    /// For refusals, which are not broadcast.
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    pub presence: Arc<Mutex<Presence>>,
    /// Messages per transaction at most (see [`batch_for`]).
    pub max_batch: usize,
}

impl Persister {
    /// Runs until `stop` is notified, then stores what was already accepted
    /// and returns how many accepted messages could not be stored.
    pub async fn run(self, mut rx: mpsc::Receiver<Submission>, stop: Arc<Notify>) -> u64 {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut stopping = false;
        let mut unstored = 0;
        loop {
            let received = if stopping {
                rx.recv_many(&mut batch, self.max_batch).await
            } else {
                tokio::select! {
                    n = rx.recv_many(&mut batch, self.max_batch) => n,
                    _ = stop.notified() => {
                        // Take nothing new; what is queued is still stored.
                        rx.close();
                        stopping = true;
                        continue;
                    }
                }
            };
            if received == 0 {
                return unstored;
            }
            unstored += self.write(&mut batch).await;
        }
    }

    /// Stores one batch, then broadcasts and acks it. Returns how many
    /// messages could not be stored.
    async fn write(&self, batch: &mut Vec<Submission>) -> u64 {
        let now = crate::clock::now_rfc3339();
        let mut writes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for submission in batch.drain(..) {
            let mut write = submission.write;
            match &mut write {
                Write::Post(message) => message.sent_at.clone_from(&now),
                Write::Change(change) => change.at.clone_from(&now),
            }
            writes.push(write);
            replies.push(submission.reply);
        }

        let mut attempt = 1;
        let stored = loop {
            let appended = tokio::time::timeout(APPEND_WITHIN, self.store.append(&writes)).await;
            match appended.unwrap_or(Err(StoreError::TimedOut)) {
                Ok(stored) => break stored,
                Err(error) if attempt < ATTEMPTS => {
                    tracing::warn!(%error, attempt, "storing messages failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(error) => {
                    // Nothing was acked: each sender is told, and its client
                    // sends again under the same client_id a moment later.
                    let lost = writes.len() as u64;
                    tracing::error!(%error, lost, "storing messages failed; telling their senders");
                    for (link, write) in replies.iter().zip(&writes) {
                        if let Some(link) = link {
                            self.refuse(link, write.sender().1);
                        }
                    }
                    self.metrics
                        .unstored_messages_total
                        .fetch_add(lost, Relaxed);
                    return lost;
                }
            }
        };

        let Stored { prev, written } = stored;
        {
            let mut presence = lock(&self.presence);
            for (written, write) in written.iter().zip(&writes) {
                let done_now = matches!(
                    written,
                    Written::Posted(Appended { fresh: true, .. }) | Written::Changed(_)
                );
                if let (true, (author, Some(client_id))) = (done_now, write.sender()) {
                    presence.remember_stored(&SessionId::from_stored(author), client_id);
                }
            }
        }
        let mut entries = Vec::with_capacity(written.len());
        let mut answers = Vec::new();
        for ((written, reply), write) in written.into_iter().zip(replies).zip(&writes) {
            let client_id = write.sender().1.map(str::to_string);
            let (entry, answer) = match written {
                Written::Posted(Appended {
                    message,
                    fresh: true,
                }) => {
                    self.metrics.messages_total.fetch_add(1, Relaxed);
                    let id = message.id;
                    (Some(Entry::Message(message)), ack(client_id, id))
                }
                Written::Posted(Appended { message, .. }) => (None, ack(client_id, message.id)),
                Written::Changed(entry) => {
                    let id = entry.id();
                    (Some(entry), ack(client_id, id))
                }
                Written::ChangedBefore(id) => (None, ack(client_id, id)),
                Written::Refused(why) => (None, Some(refusal(why, client_id))),
            };
            if let (Some(link), Some(frame)) = (reply, answer.as_ref().and_then(Outgoing::encode)) {
                answers.push((link, frame));
            }
            entries.extend(entry);
        }
        self.bus.stored(prev, &entries);
        // Delivered here in id order with the other servers' entries; the
        // acks and refusals follow their batch.
        let batch = Batch {
            prev,
            entries,
            read_through: 0,
            replies: answers,
        };
        if self.delivery.send(batch).await.is_err() {
            tracing::error!("delivery stopped: stored messages are not broadcast");
        }
        0
    }

    /// Tells a sender its write was not stored: an `unavailable` error it
    /// retries from, or, without a `client_id` to name it by, a close it
    /// reconnects from.
    fn refuse(&self, link: &Link, client_id: Option<&str>) {
        let Some(client_id) = client_id else {
            link.close(close_code::ERROR, NOT_STORED);
            return;
        };
        let frame = ServerFrame::Error {
            code: ErrorCode::Unavailable,
            message: NOT_STORED.into(),
            client_id: Some(client_id.to_string()),
        };
        match Outgoing::encode(&frame) {
            Some(frame) => self.connections.offer(link, frame),
            None => link.close(close_code::ERROR, NOT_STORED),
        }
    }
}

/// The `ack` of a write that named itself.
fn ack(client_id: Option<String>, id: i64) -> Option<ServerFrame> {
    client_id.map(|client_id| ServerFrame::Ack { client_id, id })
}

/// The `error` frame for a refused write.
fn refusal(why: WriteRefused, client_id: Option<String>) -> ServerFrame {
    let (code, message) = match why {
        WriteRefused::NotFound => (
            ErrorCode::NotFound,
            "That message is not in this room: it may have been deleted.",
        ),
        WriteRefused::Forbidden => (
            ErrorCode::Forbidden,
            "Only its author can edit or delete a message.",
        ),
        WriteRefused::ClientIdTaken => (
            ErrorCode::BadFrame,
            "That client_id was used for another message or change: send each under a new one.",
        ),
    };
    ServerFrame::Error {
        code,
        message: message.into(),
        client_id,
    }
}
