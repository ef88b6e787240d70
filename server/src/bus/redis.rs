//! Several servers over Redis: one pub/sub channel per chat
//! (`<prefix>events`), each message a JSON envelope naming the server that
//! sent it, so a server skips its own.
//!
//! One connection (RESP3) publishes and listens; redis-rs reconnects it and
//! subscribes again. A subscription asked for again each second notices a
//! Redis that went away and, while it is away, asks for a new connection
//! with backoff. Nothing here ever waits on Redis for the chat: what is to
//! be published queues (a bounded queue; beyond it, or while Redis is
//! away, notices are dropped, and the others read what they missed from
//! the store and the snapshots).
//!
//! Each server also writes who it lists to `<prefix>seats:<server>` (kept
//! [`SNAPSHOT_LIVES`]) and names itself in the set `<prefix>nodes`, where
//! the others find it.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use async_trait::async_trait;

use super::{Bus, BusError, Heard, Snapshot};
use crate::{
    peers::{Seat, SNAPSHOT_LIVES},
    store::Entry,
};

/// Notices waiting to be published. A full queue drops new ones: the other
/// servers read the messages from the store instead.
const OUTBOX: usize = 1_024;
/// What Redis delivered, waiting to be read. A full queue drops new ones.
const INBOX: usize = 1_024;
/// The longest notice (bytes); a batch's would-be longer notice goes by
/// ids only. With the queues' lengths, what waits for Redis or for this
/// server stays within tens of megabytes.
const NOTICE_BYTES: usize = 16 * 1024;
/// Notices published in one round trip at most.
const PUBLISH_BATCH: usize = 256;
/// How often a server that can reach Redis checks it still can (and is
/// still subscribed).
const PING_EVERY: Duration = Duration::from_secs(1);
/// The first wait before asking again for a Redis that went away, doubled
/// on each failure up to [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_AT_MOST: Duration = Duration::from_secs(4);

/// What one server says to the others.
#[derive(Serialize)]
struct Said<'a> {
    node: &'a str,
    event: Saying<'a>,
}

/// [`Heard`], borrowed for sending.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Saying<'a> {
    Stored {
        prev: i64,
        last: i64,
        entries: &'a [Entry],
    },
    Room {
        room: &'a str,
        frame: &'a str,
    },
    LoggedOut {
        session: &'a str,
    },
    Joined {
        seq: u64,
        room: &'a str,
        name: &'a str,
    },
    Left {
        seq: u64,
        name: &'a str,
        rooms: &'a [String],
    },
}

/// A server's snapshot as kept in Redis.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    seq: u64,
    seats: &'a [Seat],
}

#[derive(Deserialize)]
struct SnapshotIn {
    seq: u64,
    seats: BTreeSet<Seat>,
}

#[derive(Deserialize)]
struct Envelope {
    node: String,
    event: Heard,
}

pub struct RedisBus {
    /// This server's name on the channel: random, new at every start.
    node: String,
    prefix: String,
    connection: ConnectionManager,
    outbox: mpsc::Sender<String>,
    reachable: Arc<Reachable>,
    /// Held while the bus lives: the task that pings Redis stops with it.
    _alive: Arc<()>,
}

/// Whether Redis answers, logged when that changes.
struct Reachable(AtomicBool);

impl Reachable {
    fn up(&self) {
        if !self.0.swap(true, Relaxed) {
            tracing::info!("Redis reachable: messages reach the other servers again");
        }
    }

    fn down(&self, error: &dyn std::fmt::Display) {
        if self.0.swap(false, Relaxed) {
            tracing::warn!(
                %error,
                "Redis unreachable: this server goes on with its own sockets and \
                 reads the others' messages from the database; retrying"
            );
        }
    }
}

impl RedisBus {
    /// Starts publishing and listening on `url` under `prefix`; what the
    /// other servers say goes to `heard`. Fails only on a URL that cannot
    /// name a Redis: an unreachable one is retried in the background.
    pub fn start(
        url: &str,
        prefix: &str,
        heard: mpsc::Sender<(String, Heard)>,
    ) -> redis::RedisResult<Self> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))?;
        let (pushes, inbox) = mpsc::channel(INBOX);
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                // Dropped when full: see `INBOX`.
                let _ = pushes.try_send(push);
                Ok::<(), redis::aio::SendError>(())
            })
            .set_automatic_resubscription()
            .set_number_of_retries(2)
            .set_max_delay(RETRY_AT_MOST);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let node = format!("{:016x}", rand::random::<u64>());
        let channel = format!("{prefix}events");
        // Unreachable until the first subscription is confirmed.
        let reachable = Arc::new(Reachable(AtomicBool::new(false)));
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let alive = Arc::new(());
        tokio::spawn(publish(
            connection.clone(),
            channel.clone(),
            queued,
            reachable.clone(),
        ));
        tokio::spawn(keep_subscribed(
            connection.clone(),
            channel,
            reachable.clone(),
            Arc::downgrade(&alive),
        ));
        tokio::spawn(listen(inbox, node.clone(), heard, reachable.clone()));
        Ok(Self {
            node,
            prefix: prefix.to_string(),
            connection,
            outbox,
            reachable,
            _alive: alive,
        })
    }

    /// Queues a notice, unless Redis is away: a notice kept until it is
    /// back would be stale (the others read the messages from the store,
    /// and the snapshots say who is online).
    fn say(&self, event: Saying<'_>) {
        if let Some(text) = self.encode(event) {
            self.queue(text);
        }
    }

    fn encode(&self, event: Saying<'_>) -> Option<String> {
        let said = Said {
            node: &self.node,
            event,
        };
        serde_json::to_string(&said)
            .map_err(|error| tracing::error!(%error, "a notice did not serialise"))
            .ok()
    }

    fn queue(&self, text: String) {
        if self.reachable.0.load(Relaxed) {
            // A full queue drops it: see `OUTBOX`.
            let _ = self.outbox.try_send(text);
        }
    }
}

impl RedisBus {
    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    fn snapshot_key(&self, node: &str) -> String {
        format!("{}seats:{node}", self.prefix)
    }
}

#[async_trait]
impl Bus for RedisBus {
    /// A batch whose notice would be long goes without its entries: the
    /// others read them from the store, up to `last`.
    fn stored(&self, prev: i64, entries: &[Entry]) {
        let Some(last) = entries.last().map(Entry::id) else {
            return;
        };
        let whole = self.encode(Saying::Stored {
            prev,
            last,
            entries,
        });
        match whole {
            Some(text) if text.len() <= NOTICE_BYTES => self.queue(text),
            _ => {
                let ids_only = self.encode(Saying::Stored {
                    prev,
                    last,
                    entries: &[],
                });
                if let Some(text) = ids_only {
                    self.queue(text);
                }
            }
        }
    }

    fn room(&self, room: &str, frame: &str) {
        self.say(Saying::Room { room, frame });
    }

    fn logged_out(&self, session: &str) {
        self.say(Saying::LoggedOut { session });
    }

    fn joined(&self, seq: u64, room: &str, name: &str) {
        self.say(Saying::Joined { seq, room, name });
    }

    fn left(&self, seq: u64, name: &str, rooms: &[String]) {
        self.say(Saying::Left { seq, name, rooms });
    }

    fn reachable(&self) -> Option<bool> {
        Some(self.reachable.0.load(Relaxed))
    }

    /// This server's snapshot lives [`SNAPSHOT_LIVES`]; the servers named
    /// in `<prefix>nodes` whose snapshot is gone are taken off it.
    async fn exchange(
        &self,
        seq: u64,
        seats: &[Seat],
    ) -> Result<Vec<(String, Snapshot)>, BusError> {
        let mut connection = self.connection.clone();
        let mine = serde_json::to_string(&SnapshotOut { seq, seats })
            .map_err(|error| redis::RedisError::from(std::io::Error::other(error)))?;
        let lives = u64::try_from(SNAPSHOT_LIVES.as_millis()).unwrap_or(u64::MAX);
        let (nodes,): (BTreeSet<String>,) = redis::pipe()
            .pset_ex(self.snapshot_key(&self.node), mine, lives)
            .ignore()
            .sadd(self.nodes_key(), &self.node)
            .ignore()
            .smembers(self.nodes_key())
            .query_async(&mut connection)
            .await?;
        let others: Vec<String> = nodes.into_iter().filter(|n| *n != self.node).collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = others.iter().map(|n| self.snapshot_key(n)).collect();
        let kept: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await?;
        let mut snapshots = Vec::with_capacity(others.len());
        let mut gone = Vec::new();
        for (node, kept) in others.into_iter().zip(kept) {
            let snapshot = kept
                .and_then(|text| serde_json::from_str::<SnapshotIn>(&text).ok())
                .map(|s| (s.seq, s.seats));
            if snapshot.is_none() {
                gone.push(node.clone());
            }
            snapshots.push((node, snapshot));
        }
        if !gone.is_empty() {
            redis::cmd("SREM")
                .arg(self.nodes_key())
                .arg(&gone)
                .exec_async(&mut connection)
                .await?;
        }
        Ok(snapshots)
    }
}

/// Publishes what queued, a round trip per batch, in order.
async fn publish(
    mut connection: ConnectionManager,
    channel: String,
    mut queued: mpsc::Receiver<String>,
    reachable: Arc<Reachable>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for text in batch.drain(..) {
            pipe.publish(&channel, text).ignore();
        }
        // Lost when Redis is away: the others read it from the store. What
        // queued meanwhile is stale by the time Redis is back: dropped.
        // (Only the subscription says Redis is reachable again.)
        if let Err(error) = pipe.exec_async(&mut connection).await {
            reachable.down(&error);
            while queued.try_recv().is_ok() {}
        }
    }
}

/// Subscribes every [`PING_EVERY`]: Redis confirms a subscription it
/// already has, so this checks it is reachable, and after a reconnect it
/// subscribes again, whatever became of the reconnection's own attempt.
/// A failure makes redis-rs reconnect; while Redis is away this backs off.
async fn keep_subscribed(
    mut connection: ConnectionManager,
    channel: String,
    reachable: Arc<Reachable>,
    alive: std::sync::Weak<()>,
) {
    let mut wait = RETRY_FIRST;
    while alive.strong_count() > 0 {
        match connection.subscribe(&channel).await {
            Ok(()) => {
                reachable.up();
                wait = RETRY_FIRST;
                tokio::time::sleep(PING_EVERY).await;
            }
            Err(error) => {
                reachable.down(&error);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_AT_MOST);
            }
        }
    }
}

/// Reads what Redis delivered and passes on what other servers said.
async fn listen(
    mut inbox: mpsc::Receiver<PushInfo>,
    node: String,
    heard: mpsc::Sender<(String, Heard)>,
    reachable: Arc<Reachable>,
) {
    while let Some(push) = inbox.recv().await {
        match push.kind {
            PushKind::Message => {}
            PushKind::Disconnection => {
                reachable.down(&"the connection closed");
                continue;
            }
            _ => continue,
        }
        // [channel, payload]
        let Some(Value::BulkString(payload)) = push.data.get(1) else {
            continue;
        };
        match serde_json::from_slice::<Envelope>(payload) {
            Ok(envelope) if envelope.node != node => {
                if heard.send((envelope.node, envelope.event)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "an unreadable notice on the chat's channel"),
        }
    }
}
