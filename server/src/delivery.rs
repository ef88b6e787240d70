//! Delivery in id order: every entry of the log reaches this server's
//! sockets once, in increasing id order, with no gap filled in later, so
//! a client that resumes `?after=` the last id it got misses nothing.
//!
//! One task takes the batches this server stored and those other servers
//! told of; `through`, the newest id of the `recent` window it alone
//! writes, is the id up to which everything has been delivered. A
//! batch that starts beyond `through` (another server's batch whose notice
//! was lost or has not come yet) is preceded by what the store holds in
//! between. With other servers, the store is also read every
//! [`POLL_EVERY`], so a lost last notice is not lost for long.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;

use crate::{
    connections::{Connections, Link, Outgoing},
    lock,
    recent::Recent,
    store::{Entry, Store},
};

/// Entries read from the store at once to fill a gap.
const PAGE: usize = 500;
/// How often a server with others reads what they stored, in case a notice
/// was lost.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Waits between attempts at a store that does not answer.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_AT_MOST: Duration = Duration::from_secs(2);
/// Batches waiting for delivery.
pub const QUEUE: usize = 256;

/// Stored entries to deliver, and what to tell this server's senders after.
pub struct Batch {
    /// The log's newest id before the batch.
    pub prev: i64,
    /// Its entries; when another server's came without them, every id to
    /// `read_through` is read from the store instead.
    pub entries: Vec<Entry>,
    pub read_through: i64,
    /// Acks and refusals, sent once the entries are out.
    pub replies: Vec<(Link, Outgoing)>,
}

/// `recent` is written by this task alone: its newest id is `through`.
pub struct Delivery {
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    recent: Arc<Mutex<Recent>>,
}

impl Delivery {
    pub fn new(
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        recent: Arc<Mutex<Recent>>,
    ) -> Self {
        Self {
            store,
            connections,
            recent,
        }
    }

    /// Every id up to this has been delivered.
    fn through(&self) -> i64 {
        lock(&self.recent).newest_id()
    }

    /// Delivers batches until every sender is gone; reads the store every
    /// `poll` as well, when given.
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>, poll: Option<Duration>) {
        let mut ticks = poll.map(tokio::time::interval);
        let mut taken = Vec::new();
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = batches.recv_many(&mut taken, QUEUE) => {
                    if n == 0 {
                        return;
                    }
                    for batch in taken.drain(..) {
                        self.take(batch).await;
                    }
                }
                () = tick => self.catch_up(None).await,
            }
        }
    }

    async fn take(&self, batch: Batch) {
        let until = batch.prev.max(batch.read_through);
        if until > self.through() {
            self.catch_up(Some(until)).await;
        }
        self.deliver(batch.entries);
        for (link, frame) in batch.replies {
            self.connections.offer(&link, frame);
        }
    }

    /// Reads and delivers what the store holds after `through`: up to
    /// `until` (every id to it is committed), or all there is. Up to
    /// `until`, waits for a store that does not answer: nothing newer may
    /// go out before it.
    async fn catch_up(&self, until: Option<i64>) {
        let mut wait = RETRY_FIRST;
        loop {
            let through = self.through();
            if until.is_some_and(|until| through >= until) {
                return;
            }
            let page = match self.store.since(through, PAGE).await {
                Ok(page) => page,
                // A poll has nothing to keep in order: the next one retries.
                Err(error) if until.is_none() => {
                    tracing::debug!(%error, "reading the messages of other servers failed");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the messages of other servers failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_AT_MOST);
                    continue;
                }
            };
            let full = page.len() == PAGE;
            self.deliver(page);
            if !full {
                // Every id to `until` was committed before it was named,
                // so the ids read are all there are (a deleted message's
                // own row is not in the log).
                if let Some(until) = until {
                    lock(&self.recent).reached(until);
                }
                return;
            }
        }
    }

    /// Delivers the entries beyond `through`, each room's as one broadcast.
    fn deliver(&self, entries: Vec<Entry>) {
        let mut through = self.through();
        let mut rooms: Vec<(String, Vec<Outgoing>)> = Vec::new();
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.id() <= through {
                continue;
            }
            through = entry.id();
            if let Some(frame) = Outgoing::encode(&entry.clone().frame()) {
                match rooms.iter_mut().find(|(room, _)| room == entry.room()) {
                    Some((_, frames)) => frames.push(frame),
                    None => rooms.push((entry.room().to_string(), vec![frame])),
                }
            }
            fresh.push(entry);
        }
        if fresh.is_empty() {
            return;
        }
        // Into the window before anyone can see them: a socket that reads
        // the window after this has them in its welcome, one registered
        // before gets the broadcast.
        lock(&self.recent).extend(fresh);
        for (room, frames) in rooms {
            self.connections.broadcast(&room, &frames.into());
        }
    }
}
