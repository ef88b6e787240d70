//! The one writer of messages. Sockets hand it what they accepted; it stores
//! whatever has queued up in one transaction (one sync to disk per batch, not
//! per message), then broadcasts and acknowledges in id order. Being the only
//! writer is what makes broadcast order equal to id order.

use std::{sync::Arc, time::Duration};

use app::protocol::ServerFrame;
use tokio::sync::{mpsc, Notify};

use crate::{
    bus::Bus,
    connections::{Connections, Link, Outgoing},
    metrics::Metrics,
    store::{NewMessage, Store},
};

/// Largest batch per transaction: bounds the latency of the first message in it.
const MAX_BATCH: usize = 512;
/// Accepted messages waiting for the writer; a sender waits when it is full.
pub const QUEUE: usize = 4_096;
/// Attempts at a failing batch (a busy or briefly unreachable database).
const ATTEMPTS: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);

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
}

impl Persister {
    /// Runs until `stop` is notified, then stores what was already accepted and returns.
    pub async fn run(self, mut rx: mpsc::Receiver<Submission>, stop: Arc<Notify>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stopping = false;
        loop {
            let received = if stopping {
                rx.recv_many(&mut batch, MAX_BATCH).await
            } else {
                tokio::select! {
                    n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                    _ = stop.notified() => {
                        // Take nothing new; what is queued is still stored.
                        rx.close();
                        stopping = true;
                        continue;
                    }
                }
            };
            if received == 0 {
                return;
            }
            self.write(&mut batch).await;
        }
    }

    async fn write(&self, batch: &mut Vec<Submission>) {
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
                    // Unacknowledged: senders keep them pending and resend.
                    tracing::error!(%error, lost = messages.len(), "storing messages failed");
                    return;
                }
            }
        };

        for (appended, reply) in appended.into_iter().zip(replies) {
            let id = appended.message.id;
            let client_id = appended.message.client_id.clone();
            if appended.fresh {
                self.metrics
                    .messages_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(frame) = Outgoing::encode(&ServerFrame::Message(appended.message)) {
                    self.bus.publish(frame);
                }
            }
            if let (Some(link), Some(client_id)) = (reply, client_id) {
                if let Some(ack) = Outgoing::encode(&ServerFrame::Ack { client_id, id }) {
                    self.connections.offer(&link, ack);
                }
            }
        }
    }
}
