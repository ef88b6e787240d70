//! The room: names, presence, sockets and the path of a message, behind one
//! cloneable handle.
//!
//! Invariant: the presence lock is never held across an `.await`. Presence
//! events are published while it is held (publishing only queues frames), so
//! every socket sees joins and leaves in the order they happened.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use app::protocol::ServerFrame;
use rand::RngCore;
use tokio::sync::{mpsc, Notify};

use crate::{
    bus::{Bus, LocalBus},
    config::Config,
    connections::{close, Connections, Outgoing},
    metrics::Metrics,
    persister::{self, Persister, Submission},
    presence::{Attached, Presence, Rate, Released, SessionId, TooManyTabs},
    session,
    store::{SessionRow, Store, StoreError},
};

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    presence: Mutex<Presence>,
    connections: Arc<Connections>,
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    persister: mpsc::Sender<Submission>,
    stop_persister: Arc<Notify>,
    metrics: Arc<Metrics>,
    grace: Duration,
    unclaimed_name: Duration,
    max_tabs: usize,
}

impl Hub {
    /// Builds the hub and starts its message writer; await the handle after
    /// [`Hub::shut_down`] to know every accepted message is stored.
    pub fn start(store: Arc<dyn Store>, config: &Config) -> (Self, tokio::task::JoinHandle<()>) {
        let metrics = Arc::new(Metrics::default());
        let connections = Arc::new(Connections::new(metrics.clone()));
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(connections.clone()));
        let (tx, rx) = mpsc::channel(persister::QUEUE);
        let stop = Arc::new(Notify::new());
        let writer = Persister {
            store: store.clone(),
            bus: bus.clone(),
            connections: connections.clone(),
            metrics: metrics.clone(),
        };
        let handle = tokio::spawn(writer.run(rx, stop.clone()));
        let rate = Rate {
            per_sec: config.rate_per_sec,
            burst: config.rate_burst,
        };
        let hub = Self {
            inner: Arc::new(Inner {
                presence: Mutex::new(Presence::new(rate)),
                connections,
                bus,
                store,
                persister: tx,
                stop_persister: stop,
                metrics,
                grace: config.grace(),
                unclaimed_name: config.unclaimed_name(),
                max_tabs: config.max_tabs,
            }),
        };
        (hub, handle)
    }

    fn presence(&self) -> MutexGuard<'_, Presence> {
        self.inner
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.inner.connections
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Serialises once and hands the frame to the bus.
    fn publish(&self, frame: &ServerFrame) {
        if let Some(out) = Outgoing::encode(frame) {
            self.inner.bus.publish(out);
        }
    }

    /// Announces a release, if the user was listed. Call with the lock held.
    fn announce_left(&self, presence: &Presence, released: Option<Released>) {
        if let Some(Released { name, was_online }) = released {
            self.inner
                .metrics
                .users_online
                .store(presence.online_count() as i64, Relaxed);
            if was_online {
                self.publish(&ServerFrame::UserLeft { username: name });
            }
        }
    }

    /// A new login: gives out a unique name, stores the session and returns
    /// the cookie token with the name.
    pub async fn login(&self, base: &str) -> Result<(String, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = session::hex(&bytes);
        let id: SessionId = session::id_of(&token).into();
        let (name, epoch) = self.presence().claim(id.clone(), base);
        let row = SessionRow {
            id: id.to_string(),
            username: name.clone(),
            base_name: base.to_string(),
        };
        if let Err(error) = self.inner.store.create_session(&row).await {
            self.presence().release(&id);
            return Err(error);
        }
        self.expire_later(id, epoch, self.inner.unclaimed_name);
        Ok((token, name))
    }

    /// Ends a session everywhere: its row, its name, its sockets.
    pub async fn logout(&self, id: &SessionId) -> Result<bool, StoreError> {
        let existed = self.inner.store.delete_session(id).await?;
        {
            let mut presence = self.presence();
            let released = presence.release(id);
            self.announce_left(&presence, released);
        }
        self.inner
            .connections
            .close_session(id, close::NORMAL, app::protocol::SIGNED_OUT_REASON);
        Ok(existed)
    }

    pub fn online(&self) -> Vec<String> {
        self.presence().online()
    }

    /// A socket of this session opened.
    pub fn attach(&self, session: &SessionRow) -> Result<Attached, TooManyTabs> {
        let id: SessionId = session.id.as_str().into();
        let attached = {
            let mut presence = self.presence();
            let attached = presence.attach(
                &id,
                &session.username,
                &session.base_name,
                self.inner.max_tabs,
            )?;
            if attached.joined {
                self.inner
                    .metrics
                    .users_online
                    .store(presence.online_count() as i64, Relaxed);
                self.publish(&ServerFrame::UserJoined {
                    username: attached.name.clone(),
                });
            }
            attached
        };
        if attached.renamed {
            let store = self.inner.store.clone();
            let name = attached.name.clone();
            tokio::spawn(async move {
                if let Err(error) = store.rename_session(&id, &name).await {
                    tracing::warn!(%error, "could not store a session's new name");
                }
            });
        }
        Ok(attached)
    }

    /// A socket of this session closed; the last one starts the grace period.
    pub fn detach(&self, id: &SessionId) {
        let epoch = self.presence().detach(id);
        if let Some(epoch) = epoch {
            self.expire_later(id.clone(), epoch, self.inner.grace);
        }
    }

    fn expire_later(&self, id: SessionId, epoch: u64, after: Duration) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut presence = hub.presence();
            let released = presence.expire(&id, epoch);
            hub.announce_left(&presence, released);
        });
    }

    /// Takes one message from the user's rate budget.
    pub fn allow_message(&self, id: &SessionId) -> bool {
        self.presence().allow_message(id, Instant::now())
    }

    /// Hands an accepted message to the writer. False if the server is stopping.
    pub async fn submit(&self, submission: Submission) -> bool {
        self.inner.persister.send(submission).await.is_ok()
    }

    /// Closes every socket with 1001 (clients resume elsewhere) and lets the
    /// writer finish what it accepted.
    pub fn shut_down(&self) {
        self.inner
            .connections
            .close_all(close::GOING_AWAY, "server restarting");
        self.inner.stop_persister.notify_one();
    }
}
