//! The one writer of messages. Sockets hand it what they accepted; it stores
//! whatever has queued up in one transaction (one sync to disk per batch, not
//! per message), then broadcasts and acknowledges in id order. Being the only
//! writer is what makes broadcast order equal to id order.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::Duration,
};

use app::protocol::ServerFrame;
use axum::extract::ws::close_code;
use tokio::sync::{mpsc, Notify};

use crate::{
    bus::Bus,
    connections::{Connections, Link, Outgoing},
    lock,
    metrics::Metrics,
    presence::Presence,
    recent::Recent,
    session::SessionId,
    store::{NewMessage, Store},
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
/// The close reason for a sender whose message could not be stored: the
/// client reconnects and sends its unacknowledged messages again.
const NOT_STORED: &str = "a message could not be stored: reconnect and send it again";

/// One accepted message and where its ack goes.
pub struct Submission {
    pub message: NewMessage,
    pub reply: Option<Link>,
}

pub struct Persister {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    pub recent: Arc<Mutex<Recent>>,
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
        let sent_at = crate::clock::now_rfc3339();
        let mut messages = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for submission in batch.drain(..) {
            let mut message = submission.message;
            message.sent_at.clone_from(&sent_at);
            messages.push(message);
            replies.push(submission.reply);
        }

        let mut attempt = 1;
        let appended = loop {
            match self.store.append(&messages).await {
                Ok(appended) => break appended,
                Err(error) if attempt < ATTEMPTS => {
                    tracing::warn!(%error, attempt, "storing messages failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(error) => {
                    // Nothing was acked: closing the senders' sockets makes
                    // their clients reconnect and resend under the same
                    // client_id.
                    let lost = messages.len() as u64;
                    tracing::error!(%error, lost, "storing messages failed; closing their senders");
                    for link in replies.iter().flatten() {
                        link.close(close_code::ERROR, NOT_STORED);
                    }
                    self.metrics
                        .unstored_messages_total
                        .fetch_add(lost, Relaxed);
                    return lost;
                }
            }
        };

        {
            let mut presence = lock(&self.presence);
            for (appended, new) in appended.iter().zip(&messages) {
                if let (true, Some(client_id)) = (appended.fresh, &appended.message.client_id) {
                    presence.remember_stored(&SessionId::from_stored(&new.author), client_id);
                }
            }
        }
        // Each room's share of the batch goes out as one broadcast (each
        // socket gets one queue entry and one flush for it), then the acks.
        // Encoded before the recent window is locked: sockets opening
        // meanwhile read it.
        let mut rooms: Vec<(String, Vec<Outgoing>)> = Vec::new();
        let mut acks = Vec::with_capacity(appended.len());
        let mut stored = Vec::with_capacity(appended.len());
        for (appended, reply) in appended.into_iter().zip(replies) {
            let id = appended.message.id;
            if let (Some(link), Some(client_id)) = (reply, appended.message.client_id.clone()) {
                acks.push((link, ServerFrame::Ack { client_id, id }));
            }
            if appended.fresh {
                self.metrics.messages_total.fetch_add(1, Relaxed);
                let message = appended.message;
                if let Some(frame) = Outgoing::encode(&ServerFrame::Message(message.clone())) {
                    match rooms.iter_mut().find(|(room, _)| *room == message.room) {
                        Some((_, frames)) => frames.push(frame),
                        None => rooms.push((message.room.clone(), vec![frame])),
                    }
                }
                stored.push(message);
            }
        }
        // Into the window before anyone can see them: a socket that reads
        // the window after this has them in its welcome, one registered
        // before gets the broadcast.
        lock(&self.recent).extend(stored);
        for (room, frames) in rooms {
            self.bus.publish(&room, frames.into());
        }
        for (link, ack) in acks {
            if let Some(ack) = Outgoing::encode(&ack) {
                self.connections.offer(&link, ack);
            }
        }
        0
    }
}
